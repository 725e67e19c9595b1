// train/bench_train.c: `bolt bench train CONFIG`: the training step of the model CONFIG
// describes, on random tokens (no data needed): time to the first finished step, median
// step time, tokens/s, MFU and peak memory, in a table; with --json=FILE also one JSON
// line appended to FILE (train/bench_file.h), which `bolt plot --bench=FILE` tabulates and
// draws against the sequence length.
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../data/tokenizer.h"
#include "../model/model.h"
#include "../optim/optimizer.h"
#include "bench_file.h"
#include "commands.h"
#include "config.h"
#include "options.h"

// bench train's own options; every other --key=value is a config key (bolt train --help).
typedef struct BenchTrainArgs {
    int bench_steps;
    const char *json;
} BenchTrainArgs;

static const Option BENCH_TRAIN_OPTIONS[] = {
    {"bench_steps", OPT_INT, offsetof(BenchTrainArgs, bench_steps), 0, 1, 100000, NULL, NULL,
     "timed optimizer steps (after 2 warm-up steps)"},
    {"json", OPT_STRING, offsetof(BenchTrainArgs, json), 0, 0, 0, NULL, NULL,
     "also append the result as one JSON line to this file (config, family, params, seq_len, "
     "batch_size, grad_accum, recompute, device, step_s, tok_per_s, mfu, peak_mem_bytes, "
     "first_step_s, commit, ok); `bolt plot --bench=FILE` turns the lines into a table and a "
     "figure. A run that dies (out of memory) writes no line: add one by hand as {\"name\": "
     "..., \"seq_len\": ..., \"recompute\": ..., \"ok\": false, \"error\": \"out of "
     "memory\"} to show it as failed"},
};

static const OptionTable BENCH_TRAIN_TABLE = {
    .command = "bench train",
    .args = "[CONFIG]",
    .max_args = 1,
    .about = "Runs optimizer steps of the model and batch CONFIG describes, on random tokens, and\n"
             "prints time to the first step (start-up, allocation, init and one step), the\n"
             "median step, tokens/s, MFU and peak memory. Any config key can be overridden\n"
             "(--seq_len=..., --recompute=1, --device=...; see bolt train --help). Over the\n"
             "lengths 2K to 1M, then the table and figure (bench.png) of them all:\n"
             "  for k in $(seq 11 20); do bolt bench train CONFIG --batch_size=1 \\\n"
             "      --seq_len=$((1 << k)) --json=bench.jsonl; done\n"
             "  bolt plot --bench=bench.jsonl",
    .options = BENCH_TRAIN_OPTIONS,
    .count = sizeof BENCH_TRAIN_OPTIONS / sizeof BENCH_TRAIN_OPTIONS[0],
};

// Split argv into bench train's own options (mine) and the rest (config and keys).
static void split_args(int argc, char **argv, char **mine, int *n_mine, char **rest, int *n_rest) {
    *n_mine = *n_rest = 0;
    for (int i = 0; i < argc; i++) {
        char name[128] = "";
        if (strncmp(argv[i], "--", 2) == 0) {
            const char *eq = strchr(argv[i], '=');
            size_t n = eq ? (size_t)(eq - argv[i] - 2) : strlen(argv[i] + 2);
            if (n < sizeof name) snprintf(name, sizeof name, "%.*s", (int)n, argv[i] + 2);
        }
        bool own = option_find(&BENCH_TRAIN_TABLE, name) || strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0;
        if (own)
            mine[(*n_mine)++] = argv[i];
        else
            rest[(*n_rest)++] = argv[i];
    }
}

// The config file among the arguments (the first that is not an option), or "".
static const char *config_path(char **rest, int n_rest) {
    for (int i = 0; i < n_rest; i++)
        if (rest[i][0] != '-') return rest[i];
    return "";
}

// Append the measurement as one record of the bench file (train/bench_file.h).
static void append_record(const char *path, const char *config, const Config *c, const Model *m,
                          const Backend *be, int steps, double first, double median,
                          double tok_per_s, double mfu, size_t peak) {
    BenchRecord r = {.seq_len = c->seq_len,
                     .batch_size = c->batch_size,
                     .grad_accum = c->grad_accum,
                     .bench_steps = steps,
                     .recompute = c->model.recompute,
                     .ok = true,
                     .params = (double)m->n_weights,
                     .first_step_s = first,
                     .step_s = median,
                     .tok_per_s = tok_per_s,
                     .mfu = mfu,
                     .peak_mem_bytes = (double)peak};
    snprintf(r.config, sizeof r.config, "%s", config);
    snprintf(r.family, sizeof r.family, "%s", family_name(m->cfg.family));
    snprintf(r.device, sizeof r.device, "%s", be->device_name);
    snprintf(r.backend, sizeof r.backend, "%s", be->name);
    snprintf(r.commit, sizeof r.commit, "%s", bolt_commit());
    bench_append(path, &r);
    printf("appended to %s\n", path);
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// One optimizer step on random tokens, finished on the device.
static void bench_step(Model *m, Optimizer *opt, const Config *c, int *tokens, int *targets,
                       Rng *rng, int step) {
    int N = c->batch_size * c->seq_len, V = m->cfg.vocab_size;
    model_zero_grad(m);
    for (int a = 0; a < c->grad_accum; a++) {
        for (int i = 0; i < N; i++) {
            tokens[i] = (int)(rng_next(rng) % (uint64_t)V);
            targets[i] = (int)(rng_next(rng) % (uint64_t)V);
        }
        model_forward_backward(m, tokens, targets, c->batch_size, c->seq_len, 1.0f / c->grad_accum);
    }
    model_grad_norm_squared(m);
    float loss, norm;
    model_read_stats(m, &loss, &norm);
    check(loss == loss, "bench train: the loss is NaN at step %d", step);
    optimizer_step(opt, m, c->lr, clip_scale(norm, c->grad_clip), step);
    m->be->ops->sync(m->be);
}

int bench_train_main(int argc, char **argv) {
    double t_start = now_seconds();
    BenchTrainArgs args = {.bench_steps = 10, .json = ""};
    char **mine = xmalloc((size_t)(argc + 1) * sizeof(char *));
    char **rest = xmalloc((size_t)(argc + 1) * sizeof(char *));
    int n_mine, n_rest;
    split_args(argc, argv, mine, &n_mine, rest, &n_rest);
    Config cfg, *c = &cfg;
    config_defaults(c);
    bool go = options_parse(&BENCH_TRAIN_TABLE, &args, n_mine, mine, NULL) >= 0 &&
              config_from_args(c, "bench train", n_rest, rest);
    char *config = xstrdup(config_path(rest, n_rest));
    free(mine);
    free(rest);
    if (!go) {
        free(config);
        return 0; // --help
    }
    int steps = args.bench_steps;
    set_threads(c->threads);
    if (!c->train_data[0]) strcpy(c->train_data, "(random tokens)");
    if (c->model.vocab_size == 0) { // the tokenizer's, as in training
        Tokenizer tok = tokenizer_load(c->tokenizer);
        config_resolve_vocab(c, tok.vocab_size);
        tokenizer_free(&tok);
    }
    config_finalize(c);
    Backend *be = backend_create(c->device);
    Model m;
    model_create(&m, &c->model, be);
    model_init_weights(&m, c->seed);
    Optimizer opt;
    optimizer_create(&opt, &m, c->beta1, c->beta2, c->adam_eps, c->weight_decay);
    size_t N = (size_t)c->batch_size * c->seq_len;
    int *tokens = xmalloc(N * sizeof(int)), *targets = xmalloc(N * sizeof(int));
    Rng rng = rng_seeded(c->seed);

    bench_step(&m, &opt, c, tokens, targets, &rng, 1);
    double first = now_seconds() - t_start;
    bench_step(&m, &opt, c, tokens, targets, &rng, 2);
    size_t peak = be->ops->memory_in_use(be);
    double *sec = xmalloc((size_t)steps * sizeof(double));
    for (int s = 0; s < steps; s++) {
        double t0 = now_seconds();
        bench_step(&m, &opt, c, tokens, targets, &rng, s + 3);
        sec[s] = now_seconds() - t0;
        size_t used = be->ops->memory_in_use(be);
        if (used > peak) peak = used;
    }
    qsort(sec, (size_t)steps, sizeof(double), compare_double);
    double median = sec[steps / 2];
    double tokens_per_step = (double)N * c->grad_accum;
    double flops = model_flops_per_token(&m, c->seq_len) * tokens_per_step;
    printf("bench train: %s, %.1fM params, %s (%s)%s\n", family_name(m.cfg.family),
           m.n_weights / 1e6, be->name, be->device_name, c->model.recompute ? ", recompute" : "");
    printf("%6s %6s %6s | %10s %10s %10s %7s %9s\n", "B", "T", "accum", "first s", "step ms",
           "tok/s", "MFU", "mem GiB");
    char mfu[16] = "-";
    double mfu_fraction = be->peak_flops > 0 ? flops / median / be->peak_flops : NAN;
    if (be->peak_flops > 0) snprintf(mfu, sizeof mfu, "%.1f%%", 100 * mfu_fraction);
    printf("%6d %6d %6d | %10.2f %10.2f %10.0f %7s %9.2f\n", c->batch_size, c->seq_len,
           c->grad_accum, first, median * 1e3, tokens_per_step / median, mfu,
           (double)peak / (1024.0 * 1024 * 1024));
    if (args.json[0])
        append_record(args.json, config, c, &m, be, steps, first, median, tokens_per_step / median,
                      mfu_fraction, peak);
    free(config);
    free(sec);
    free(tokens);
    free(targets);
    optimizer_free(&opt, &m);
    model_free(&m);
    backend_free(be);
    return 0;
}
