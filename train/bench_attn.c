// train/bench_attn.c: `bolt bench attn`: the token-mixing ops (lightning, GLA, softmax)
// forward and forward+backward over a sweep of sequence lengths at a fixed token count,
// with the memory floor of each shape beside the median time.
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../kernels/ops.h"
#include "commands.h"
#include "options.h"

enum { MAX_LENGTHS = 16 };

typedef struct AttnBench {
    const char *kind; // lightning | gla | softmax
    int H, d, tokens, reps, warmup;
    bool silu; // lightning: SiLU on q and k inside the op, as TNL layers run it
    int lengths[MAX_LENGTHS], n_lengths;
    const char *dump_dir; // write the first shape's inputs and outputs here (peer checks)
    Backend *be;
} AttnBench;

// Activations of n elements in backend memory (compute type) from host values.
static Act *act_from_host(Backend *be, const float *host, long n) {
    float *dev = be->ops->alloc(be, (size_t)n * sizeof(float));
    be->ops->upload(be, dev, host, (size_t)n * sizeof(float));
    Act *act = be->ops->alloc(be, (size_t)n * be->act_size);
    be->ops->float_to_act(be, act, dev, n);
    be->ops->free(be, dev);
    return act;
}

// Random activations: std * N(0, 1).
static Act *random_act(Backend *be, uint64_t seed, long n, float std) {
    float *host = xmalloc((size_t)n * sizeof(float));
    fill_normal(host, (size_t)n, std, seed);
    Act *act = act_from_host(be, host, n);
    free(host);
    return act;
}

// Log-gates for GLA as the model makes them: logsigmoid(N(0, 1)) / 16 (all <= 0).
static Act *random_gates(Backend *be, uint64_t seed, long n) {
    float *host = xmalloc((size_t)n * sizeof(float));
    fill_normal(host, (size_t)n, 1.0f, seed);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) host[i] = -log1pf(expf(-host[i])) / 16.0f;
    Act *act = act_from_host(be, host, n);
    free(host);
    return act;
}

// The buffers of one shape.
typedef struct Shape {
    int B, T, N, W; // W: the projection's width (row stride of q, k, v)
    Act *qkv, *o, *dout, *dqkv, *g, *dg, *chunk_states; // linear attention's, as a layer keeps them
    float *lse, *log_decay;
    int *cu;
    Seqs seqs;
} Shape;

static Shape make_shape(AttnBench *ab, int T, uint64_t seed) {
    Backend *be = ab->be;
    Shape s = {.T = T, .B = ab->tokens / T};
    s.N = s.B * T;
    int Hd = ab->H * ab->d;
    s.W = 3 * Hd;
    s.qkv = random_act(be, seed, (long)s.N * s.W, 0.5f);
    s.dout = random_act(be, seed + 1, (long)s.N * Hd, 1.0f);
    s.g = random_gates(be, seed + 2, (long)s.N * Hd);
    s.o = be->ops->alloc(be, (size_t)s.N * Hd * be->act_size);
    s.dqkv = be->ops->alloc(be, (size_t)s.N * s.W * be->act_size);
    s.dg = be->ops->alloc(be, (size_t)s.N * Hd * be->act_size);
    s.chunk_states = be->ops->alloc(be, (size_t)s.N * Hd * ab->d / 64 * be->act_size);
    s.lse = be->ops->alloc(be, (size_t)s.N * ab->H * sizeof(float));
    int *cu = xmalloc((size_t)(s.B + 1) * sizeof(int));
    for (int b = 0; b <= s.B; b++) cu[b] = b * T;
    s.cu = be->ops->alloc(be, (size_t)(s.B + 1) * sizeof(int));
    be->ops->upload(be, s.cu, cu, (size_t)(s.B + 1) * sizeof(int));
    free(cu);
    s.seqs = (Seqs){s.cu, s.B, T, s.B * T};
    float *decay = xmalloc((size_t)ab->H * sizeof(float));
    for (int h = 0; h < ab->H; h++) decay[h] = -exp2f(-8.0f * (h + 1) / ab->H); // ALiBi slopes
    s.log_decay = be->ops->alloc(be, (size_t)ab->H * sizeof(float));
    be->ops->upload(be, s.log_decay, decay, (size_t)ab->H * sizeof(float));
    free(decay);
    return s;
}

static void free_shape(Backend *be, Shape *s) {
    void *bufs[] = {s->qkv, s->o,   s->dout,      s->dqkv, s->g,
                    s->dg,  s->lse, s->log_decay, s->cu,   s->chunk_states};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->ops->free(be, bufs[i]);
}

// One call of the op (forward, or forward then backward).
static void run_op(AttnBench *ab, Shape *s, bool backward) {
    Backend *be = ab->be;
    const Ops *ops = be->ops;
    int H = ab->H, d = ab->d, Hd = H * d;
    Act *q = s->qkv, *k = act_at(be, s->qkv, Hd), *v = act_at(be, s->qkv, 2 * Hd);
    Act *dq = s->dqkv, *dk = act_at(be, s->dqkv, Hd), *dv = act_at(be, s->dqkv, 2 * Hd);
    if (strcmp(ab->kind, "lightning") == 0) {
        ops->lightning_attn_forward(be, s->o, NULL, q, k, v, s->W, NULL, s->log_decay, s->seqs, H,
                                    d, d, ab->silu, 64, s->chunk_states);
        if (backward)
            ops->lightning_attn_backward(be, dq, dk, dv, NULL, s->dout, NULL, q, k, v, s->W, NULL,
                                         s->log_decay, s->seqs, H, d, d, ab->silu, 64,
                                         s->chunk_states);
    } else if (strcmp(ab->kind, "gla") == 0) {
        float scale = 1.0f / sqrtf((float)d);
        ops->gla_forward(be, s->o, NULL, q, k, v, s->W, s->g, NULL, scale, s->seqs, H, d, d, 64,
                         s->chunk_states);
        if (backward)
            ops->gla_backward(be, dq, dk, dv, s->dg, NULL, s->dout, NULL, q, k, v, s->W, s->g, NULL,
                              scale, s->seqs, H, d, d, 64, s->chunk_states);
    } else {
        ops->softmax_attn_forward(be, s->o, s->lse, q, s->W, k, v, s->W, s->seqs, s->seqs, H, H, d);
        if (backward)
            ops->softmax_attn_backward(be, dq, dk, dv, s->dout, s->o, s->lse, q, s->W, k, v, s->W,
                                       s->seqs, s->seqs, H, H, d);
    }
}

// Write n activations as raw little-endian fp32 to dir/name.f32.
static void dump_act(Backend *be, const char *dir, const char *name, const Act *p, long n) {
    float *dev = be->ops->alloc(be, (size_t)n * sizeof(float));
    float *host = xmalloc((size_t)n * sizeof(float));
    be->ops->act_to_float(be, dev, p, n);
    be->ops->download(be, host, dev, (size_t)n * sizeof(float));
    char path[4096], file[256];
    snprintf(file, sizeof file, "%s.f32", name);
    path_join(path, sizeof path, dir, file);
    AtomicFile af = atomic_open(path);
    xfwrite(host, (size_t)n * sizeof(float), af.f, af.tmp_path);
    atomic_commit(&af);
    free(host);
    be->ops->free(be, dev);
}

// One forward+backward on shape s, its inputs and outputs written to dump_dir/KIND/ with
// a meta.json, for tools/peers/attn_crosscheck.py to run the peers on the same inputs.
static void dump_shape(AttnBench *ab, Shape *s) {
    Backend *be = ab->be;
    char dir[4096], path[4096];
    path_join(dir, sizeof dir, ab->dump_dir, ab->kind);
    make_dirs(dir);
    run_op(ab, s, true);
    long Hd = (long)ab->H * ab->d, N = s->N;
    dump_act(be, dir, "qkv", s->qkv, N * s->W);
    dump_act(be, dir, "dout", s->dout, N * Hd);
    dump_act(be, dir, "g", s->g, N * Hd);
    dump_act(be, dir, "o", s->o, N * Hd);
    dump_act(be, dir, "dqkv", s->dqkv, N * s->W);
    dump_act(be, dir, "dg", s->dg, N * Hd);
    float *decay = xmalloc((size_t)ab->H * sizeof(float));
    be->ops->download(be, decay, s->log_decay, (size_t)ab->H * sizeof(float));
    path_join(path, sizeof path, dir, "meta.json");
    FILE *f = xfopen(path, "w");
    fprintf(f,
            "{\"kind\": \"%s\", \"H\": %d, \"d\": %d, \"B\": %d, \"T\": %d, \"W\": %d, "
            "\"log_decay\": [",
            ab->kind, ab->H, ab->d, s->B, s->T, s->W);
    for (int h = 0; h < ab->H; h++) fprintf(f, "%s%.9g", h ? ", " : "", decay[h]);
    fprintf(f, "]}\n");
    fclose(f);
    free(decay);
    printf("  (inputs and outputs of T=%d written to %s)\n", s->T, dir);
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Median milliseconds of one call: warm-up, then reps timed groups of calls (each group
// synchronised once, so launch gaps are amortised as in training).
static double time_op(AttnBench *ab, Shape *s, bool backward) {
    Backend *be = ab->be;
    for (int i = 0; i < ab->warmup; i++) run_op(ab, s, backward);
    be->ops->sync(be);
    enum { GROUP = 5 };
    double *ms = xmalloc((size_t)ab->reps * sizeof(double));
    for (int r = 0; r < ab->reps; r++) {
        double t0 = now_seconds();
        for (int i = 0; i < GROUP; i++) run_op(ab, s, backward);
        be->ops->sync(be);
        ms[r] = (now_seconds() - t0) * 1e3 / GROUP;
    }
    qsort(ms, (size_t)ab->reps, sizeof(double), compare_double);
    double median = ms[ab->reps / 2];
    free(ms);
    return median;
}

// Bytes an ideal kernel moves: inputs read once and outputs written once (compute type).
static double floor_bytes(const AttnBench *ab, const Shape *s, bool backward) {
    double tensor = (double)s->N * ab->H * ab->d * (double)ab->be->act_size;
    bool gla = strcmp(ab->kind, "gla") == 0;
    double fwd = (4 + gla) * tensor;                      // q, k, v (, g) in; o out
    double bwd = (5 + gla) * tensor + (3 + gla) * tensor; // q, k, v, (g,) o/dout in; grads out
    return backward ? fwd + bwd : fwd;
}

static void bench_kind(AttnBench *ab, const char *kind) {
    ab->kind = kind;
    bool silu = ab->silu && strcmp(kind, "lightning") == 0;
    printf("\n%s%s  H=%d D=%d  B*T=%d  (%s, %s)\n", kind, silu ? " (SiLU on q, k)" : "", ab->H,
           ab->d, ab->tokens, ab->be->name, ab->be->device_name);
    printf("%8s %6s | %10s %10s | %12s %12s\n", "T", "B", "fwd ms", "fwd+bwd ms", "fwd floor ms",
           "f+b floor ms");
    for (int i = 0; i < ab->n_lengths; i++) {
        int T = ab->lengths[i];
        if (T > ab->tokens || ab->tokens % T != 0) {
            printf("%8d: skipped (tokens %d is not a multiple)\n", T, ab->tokens);
            continue;
        }
        Shape s = make_shape(ab, T, 1234 + 10 * (uint64_t)i); // fresh inputs per shape
        double fwd = time_op(ab, &s, false), both = time_op(ab, &s, true);
        double bw = 4.24e12; // device copy rate measured on an H200 (bytes/s)
        printf("%8d %6d | %10.3f %10.3f | ", T, s.B, fwd, both);
        if (strcmp(ab->be->name, "cuda") == 0) // the floor is a GPU's; none for the CPU
            printf("%12.3f %12.3f\n", floor_bytes(ab, &s, false) / bw * 1e3,
                   floor_bytes(ab, &s, true) / bw * 1e3);
        else
            printf("%12s %12s\n", "-", "-");
        fflush(stdout);
        if (ab->dump_dir && i == 0) dump_shape(ab, &s);
        free_shape(ab->be, &s);
    }
}

// "1024,4096" into lengths; dies on a bad item.
static int parse_lengths(const char *text, int *out) {
    int n = 0;
    char buf[256];
    check(strlen(text) < sizeof buf, "bench attn: --lengths too long");
    strcpy(buf, text);
    for (char *item = strtok(buf, ","); item; item = strtok(NULL, ",")) {
        check(n < MAX_LENGTHS, "bench attn: at most %d lengths", MAX_LENGTHS);
        out[n++] = (int)parse_int_arg("bench attn: --lengths", item, 1, 1 << 30);
    }
    return n;
}

typedef struct BenchAttnArgs {
    const char *kind, *lengths, *device, *dump;
    int heads, head_dim, tokens, reps, threads;
    bool silu;
} BenchAttnArgs;

static const Option BENCH_ATTN_OPTIONS[] = {
    {"kind", OPT_CHOICE, offsetof(BenchAttnArgs, kind), 0, 0, 0, "lightning|gla|softmax|all", NULL,
     "the op(s) to time"},
    {"heads", OPT_INT, offsetof(BenchAttnArgs, heads), 0, 1, 1024, NULL, NULL, "heads"},
    {"head_dim", OPT_INT, offsetof(BenchAttnArgs, head_dim), 0, 1, 1024, NULL, NULL, "head size"},
    {"tokens", OPT_INT, offsetof(BenchAttnArgs, tokens), 0, 1, 1 << 28, NULL, NULL,
     "B*T tokens per call"},
    {"lengths", OPT_STRING, offsetof(BenchAttnArgs, lengths), 0, 0, 0, NULL, NULL,
     "comma list of sequence lengths T"},
    {"reps", OPT_INT, offsetof(BenchAttnArgs, reps), 0, 1, 100000, NULL, NULL, "timed repetitions"},
    {"device", OPT_CHOICE, offsetof(BenchAttnArgs, device), 0, 0, 0, "cpu|cuda|auto", NULL,
     "backend (auto: cuda if a GPU is visible)"},
    {"dump", OPT_STRING, offsetof(BenchAttnArgs, dump), 0, 0, 0, NULL, NULL,
     "also write the first length's inputs and outputs (fp32) to DIR/KIND/ for "
     "tools/peers/attn_crosscheck.py"},
    {"silu", OPT_BOOL, offsetof(BenchAttnArgs, silu), 0, 0, 0, NULL, NULL,
     "lightning: SiLU on q and k inside the op (TNL's feature map; the peer has none)"},
    {"threads", OPT_INT, offsetof(BenchAttnArgs, threads), 0, 0, 4096, NULL, NULL,
     "CPU threads; 0: the cores not busy with other work"},
};

static const OptionTable BENCH_ATTN_TABLE = {
    .command = "bench attn",
    .args = "",
    .about = "Times the token-mixing ops on random bf16 inputs (fp32 on the CPU): for each\n"
             "sequence length T, B = N / T sequences, the forward alone and forward+backward,\n"
             "median of R timed repetitions after warm-up. q, k, v sit in one [N, 3HD]\n"
             "projection as in training; GLA runs kdim = vdim = D (the peers' benchmark shape).",
    .options = BENCH_ATTN_OPTIONS,
    .count = sizeof BENCH_ATTN_OPTIONS / sizeof BENCH_ATTN_OPTIONS[0],
};

int bench_attn_main(int argc, char **argv) {
    BenchAttnArgs a = {.kind = "all",
                       .lengths = "1024,4096,16384,32768",
                       .device = "auto",
                       .dump = "",
                       .heads = 16,
                       .head_dim = 128,
                       .tokens = 32768,
                       .reps = 20};
    if (options_parse(&BENCH_ATTN_TABLE, &a, argc, argv, NULL) < 0) return 0;
    set_threads(a.threads);
    AttnBench ab = {.H = a.heads,
                    .d = a.head_dim,
                    .tokens = a.tokens,
                    .reps = a.reps,
                    .warmup = 3,
                    .silu = a.silu,
                    .dump_dir = a.dump[0] ? a.dump : NULL};
    ab.n_lengths = parse_lengths(a.lengths, ab.lengths);
    const char *kinds[] = {"lightning", "gla", "softmax"};
    ab.be = backend_create(a.device);
    for (int i = 0; i < 3; i++) {
        if (strcmp(a.kind, "all") == 0 || strcmp(a.kind, kinds[i]) == 0) bench_kind(&ab, kinds[i]);
    }
    backend_free(ab.be);
    return 0;
}
