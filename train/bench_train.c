// train/bench_train.c: `bolt bench train CONFIG`: the training step of the model CONFIG
// describes, on random tokens (no data needed): time to the first finished step, median
// step time, tokens/s, MFU and peak memory, in a table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../model/model.h"
#include "../optim/optimizer.h"
#include "commands.h"
#include "config.h"

static void bench_train_usage(FILE *f) {
    fprintf(f, "usage: bolt bench train CONFIG [--key=value ...] [--bench_steps=N]\n"
               "\n"
               "Runs N optimizer steps (default 10, after 2 warm-up steps) of the model and\n"
               "batch CONFIG describes, on random tokens, and prints time to the first step\n"
               "(start-up, allocation, init and one step), the median step, tokens/s, MFU and\n"
               "peak memory. Any config key can be overridden (--seq_len=..., --device=...).\n");
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
    int steps = 10;
    char **rest = xmalloc((size_t)(argc + 1) * sizeof(char *));
    int n_rest = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bench_train_usage(stdout);
            free(rest);
            return 0;
        }
        if (strncmp(argv[i], "--bench_steps=", 14) == 0)
            steps = (int)parse_int_arg("bench train: --bench_steps", argv[i] + 14, 1, 100000);
        else
            rest[n_rest++] = argv[i];
    }
    Config cfg, *c = &cfg;
    config_defaults(c);
    config_from_args(c, n_rest, rest);
    free(rest);
    if (!c->train_data[0]) strcpy(c->train_data, "(random tokens)");
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
    if (be->peak_flops > 0)
        snprintf(mfu, sizeof mfu, "%.1f%%", 100 * flops / median / be->peak_flops);
    printf("%6d %6d %6d | %10.2f %10.2f %10.0f %7s %9.2f\n", c->batch_size, c->seq_len,
           c->grad_accum, first, median * 1e3, tokens_per_step / median, mfu,
           (double)peak / (1024.0 * 1024 * 1024));
    free(sec);
    free(tokens);
    free(targets);
    optimizer_free(&opt, &m);
    model_free(&m);
    backend_free(be);
    return 0;
}
