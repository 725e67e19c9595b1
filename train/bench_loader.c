// train/bench_loader.c: `bolt bench loader GLOB`: how fast the data loader hands out
// batches (shuffled, as in training, with its background shard read-ahead), measured
// against the token rate a GPU training step consumes.
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../data/loader.h"
#include "commands.h"
#include "options.h"

// The reference consumer: an H100 training a ~385M-parameter model takes ~400k tokens/s.
static const double GPU_TOKENS_PER_SECOND = 400e3;

typedef struct BenchLoaderArgs {
    int batch_size, seq_len, batches;
} BenchLoaderArgs;

static const Option BENCH_LOADER_OPTIONS[] = {
    {"batch_size", OPT_INT, offsetof(BenchLoaderArgs, batch_size), 0, 1, 1 << 30, NULL, NULL,
     "sequences per batch"},
    {"seq_len", OPT_INT, offsetof(BenchLoaderArgs, seq_len), 0, 1, 1 << 30, NULL, NULL,
     "tokens per sequence"},
    {"batches", OPT_INT, offsetof(BenchLoaderArgs, batches), 0, 1, 1 << 30, NULL, NULL,
     "batches to time"},
};

static const OptionTable BENCH_LOADER_TABLE = {
    .command = "bench loader",
    .args = "GLOB",
    .min_args = 1,
    .max_args = 1,
    .about = "Times N calls of the loader's next-batch (B x T tokens each, shuffled as in\n"
             "training) over the shards matching GLOB (quote it), and compares its tokens/s with\n"
             "what a GPU training step consumes.",
    .options = BENCH_LOADER_OPTIONS,
    .count = sizeof BENCH_LOADER_OPTIONS / sizeof BENCH_LOADER_OPTIONS[0],
};

int bench_loader_main(int argc, char **argv) {
    BenchLoaderArgs a = {.batch_size = 16, .seq_len = 1024, .batches = 2000};
    char *args[1];
    if (options_parse(&BENCH_LOADER_TABLE, &a, argc, argv, args) < 0) return 0;
    const char *pattern = args[0];
    int B = a.batch_size, T = a.seq_len, batches = a.batches;

    Loader *l = loader_open(pattern, B, T, 0, 1, 1337, true, 0); // 0: no vocabulary check
    int nshards = loader_nfiles(l);
    size_t n = (size_t)B * (size_t)T;
    int *tokens = xmalloc(n * sizeof(int)), *targets = xmalloc(n * sizeof(int));
    double t_first = now_seconds(); // the first batch reads its shard in the foreground
    loader_next(l, tokens, targets);
    t_first = now_seconds() - t_first;

    double worst = 0, start = now_seconds();
    uint64_t checksum = 0;
    for (int i = 0; i < batches; i++) {
        double t = now_seconds();
        loader_next(l, tokens, targets);
        t = now_seconds() - t;
        if (t > worst) worst = t;
        checksum += (uint64_t)tokens[i % (int)n];
    }
    double seconds = now_seconds() - start;
    double tokens_total = (double)batches * (double)n;
    double rate = tokens_total / seconds;

    double per_shard = (double)loader_total_tokens(l) / nshards;
    printf("bench loader: '%s': %d shard(s), %.2fM tokens; batches of %d x %d = %zu tokens\n",
           pattern, nshards, (double)loader_total_tokens(l) / 1e6, B, T, n);
    printf("first batch %.1f ms (it reads the first shard in the foreground)\n", t_first * 1e3);
    printf("loader_next: %d batches in %.3f s: %.1fM tokens/s (mean %.3f ms a batch, worst %.1f "
           "ms: a wait for the read-ahead of the next shard, at this pace only; checksum %llu)\n",
           batches, seconds, rate / 1e6, seconds / batches * 1e3, worst * 1e3,
           (unsigned long long)checksum);
    printf("an H100 training a 385M model at ~400k tok/s needs 400k tok/s: the loader gives %.0fx "
           "that\n",
           rate / GPU_TOKENS_PER_SECOND);
    printf("at 400k tok/s a shard (%.2fM tokens) lasts %.1f s, while the background thread reads "
           "the next one in ~%.0f ms: %s\n",
           per_shard / 1e6, per_shard / GPU_TOKENS_PER_SECOND, t_first * 1e3,
           t_first < per_shard / GPU_TOKENS_PER_SECOND
               ? "no step waits on I/O"
               : "steps WILL wait on I/O (use smaller shards "
                 "or faster storage)");
    free(tokens);
    free(targets);
    loader_close(l);
    return 0;
}
