// train/bench_loader.c: `bolt bench loader GLOB`: how fast the data loader hands out
// batches (shuffled, as in training, with its background shard read-ahead), measured
// against the token rate a GPU training step consumes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../data/loader.h"
#include "commands.h"

// The reference consumer: an H100 training a ~385M-parameter model takes ~400k tokens/s.
static const double GPU_TOKENS_PER_SECOND = 400e3;

static void bench_loader_usage(FILE *f) {
    fprintf(f, "usage: bolt bench loader GLOB [--batch_size=B] [--seq_len=T] [--batches=N]\n"
               "\n"
               "Time N calls of the loader's next-batch (B x T tokens each, shuffled as in\n"
               "training) over the shards matching GLOB, and compare its tokens/s with what\n"
               "a GPU training step consumes.\n"
               "\n"
               "  --batch_size=B   sequences per batch (default 16)\n"
               "  --seq_len=T      tokens per sequence (default 1024)\n"
               "  --batches=N      batches to time (default 2000)\n"
               "  --help           show this help\n");
}

// The value of "--key=value" as an int in [1, 2^30] (dying on a bad one), or 0 if arg is
// not that option.
static int int_option(const char *arg, const char *key) {
    size_t n = strlen(key);
    if (strncmp(arg, key, n) != 0 || arg[n] != '=') return 0;
    char what[64];
    snprintf(what, sizeof what, "bench loader: %s", key);
    return (int)parse_int_arg(what, arg + n + 1, 1, 1 << 30);
}

int bench_loader_main(int argc, char **argv) {
    const char *pattern = NULL;
    int B = 16, T = 1024, batches = 2000, v;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            bench_loader_usage(stdout);
            return 0;
        }
        if ((v = int_option(arg, "--batch_size"))) {
            B = v;
        } else if ((v = int_option(arg, "--seq_len"))) {
            T = v;
        } else if ((v = int_option(arg, "--batches"))) {
            batches = v;
        } else if (arg[0] == '-') {
            die("bench loader: unknown option '%s' (see bolt bench loader --help)", arg);
        } else {
            check(pattern == NULL, "bench loader: one GLOB only (quote it: 'dir/*_train_*.bin')");
            pattern = arg;
        }
    }
    check(pattern != NULL, "bench loader: no shard GLOB given (see bolt bench loader --help)");

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
