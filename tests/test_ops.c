// tests/test_ops.c: the basic CPU kernels (matmul, embedding, norms, activations, RoPE,
// fused LM head + cross-entropy, reductions, AdamW) against naive double-precision
// references and finite differences, plus the "+=" gradient convention, ignored targets,
// bad-token exits and bit-identical results for 1 and 2 threads.
//
// Gradient checks: loss = dot(forward output, fixed random vector) in double, central
// differences with eps = 1e-2 in fp32, pass if ||numeric - analytic|| / ||numeric|| < 1e-2.
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../kernels/kernels.h"
#include "testing.h"

enum { GRAD_SAMPLES = 48 };
static const float GRAD_EPS = 1e-2f;
static const double GRAD_TOL = 1e-2;

// One op under test: `forward` writes n_out values into out from the current inputs, and
// the loss is dot(out, r). The input fields mean what each op's forward says.
typedef struct OpCase {
    void (*forward)(struct OpCase *c, float *out);
    long n_out;
    float *out, *r;
    float *a, *b, *c;  // inputs and parameters
    int *ids;          // tokens / targets
    int n, d, k, t, h; // sizes
    float s, eps;      // scale, theta or epsilon
    NormKind kind;
} OpCase;

static double case_loss(void *ctx) {
    OpCase *c = ctx;
    c->forward(c, c->out);
    return dot_double(c->out, c->r, c->n_out);
}

// Finite differences of the case's loss against `analytic`, the gradient for input x. The
// hundreds of tiny forward calls run on one thread: waking a second one costs more than
// the work (the kernels' results do not depend on the thread count).
static void expect_grad(OpCase *c, float *x, const float *analytic, long n, const char *what) {
    Rng rng = rng_seeded(99);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    double err = grad_check(case_loss, c, x, analytic, n, GRAD_SAMPLES, GRAD_EPS, &rng);
    omp_set_num_threads(threads);
    ck_assert_msg(err < GRAD_TOL, "%s: gradient rel error %g", what, err);
}

// after == before + fresh: the backward pass added its gradient to what was there.
static void expect_accumulated(const float *after, const float *before, const float *fresh, long n,
                               const char *what) {
    float *sum = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) sum[i] = before[i] + fresh[i];
    double err = rel_error(after, sum, n);
    ck_assert_msg(err < 1e-6, "%s: backward does not accumulate (rel error %g)", what, err);
    free(sum);
}

static void expect_close(const float *got, const float *want, long n, double tol,
                         const char *what) {
    double err = rel_error(got, want, n);
    ck_assert_msg(err < tol, "%s: rel error %g (tolerance %g)", what, err, tol);
}

// Bit-identical (thread counts, in-place vs out-of-place, optional outputs left out).
static void expect_identical(const float *a, const float *b, long n, const char *what) {
    ck_assert_msg(memcmp(a, b, (size_t)n * sizeof(float)) == 0, "%s: results not bit-identical",
                  what);
}

// ---- matmul ------------------------------------------------------------------------

static void matmul_case(OpCase *c, float *out) {
    matmul_forward(out, c->a, c->b, c->c, c->n, c->d, c->k);
}

// out = inp W^T + bias, dinp = dout W, dW = dout^T inp, dbias = colsum(dout), in double.
static void naive_matmul(float *out, float *dinp, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, const float *bias, int N, int C,
                         int OC) {
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int i = 0; i < C; i++) s += (double)inp[n * C + i] * w[o * C + i];
            out[n * OC + o] = (float)s;
        }
        for (int i = 0; i < C; i++) {
            double s = 0.0;
            for (int o = 0; o < OC; o++) s += (double)dout[n * OC + o] * w[o * C + i];
            dinp[n * C + i] = (float)s;
        }
    }
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < C; i++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += (double)dout[n * OC + o] * inp[n * C + i];
            dw[o * C + i] = (float)s;
        }
        double s = 0.0;
        for (int n = 0; n < N; n++) s += dout[n * OC + o];
        db[o] = (float)s;
    }
}

// Sizes that are no multiple of any tile and cross the k-block (256) in every product.
START_TEST(test_matmul_vs_naive) {
    int sizes[3][3] = {{1, 1, 1}, {37, 29, 45}, {301, 259, 263}};
    Rng rng = rng_seeded(1);
    for (int s = 0; s < 3; s++) {
        int N = sizes[s][0], C = sizes[s][1], OC = sizes[s][2];
        float *inp = rand_tensor(&rng, N * C, 1.0f), *w = rand_tensor(&rng, OC * C, 1.0f);
        float *bias = rand_tensor(&rng, OC, 1.0f), *dout = rand_tensor(&rng, N * OC, 1.0f);
        float *out = zeros(N * OC), *dinp = zeros(N * C), *dw = zeros(OC * C), *db = zeros(OC);
        float *ref = zeros(N * OC), *rdinp = zeros(N * C), *rdw = zeros(OC * C);
        float *rdb = zeros(OC);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *b = with_bias ? bias : NULL;
            naive_matmul(ref, rdinp, rdw, rdb, dout, inp, w, b, N, C, OC);
            matmul_forward(out, inp, w, b, N, C, OC);
            expect_close(out, ref, N * OC, 1e-5, "matmul forward");
        }
        matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
        expect_close(dinp, rdinp, N * C, 1e-5, "matmul dinp");
        expect_close(dw, rdw, OC * C, 1e-5, "matmul dweight");
        expect_close(db, rdb, OC, 1e-5, "matmul dbias");
        free(inp), free(w), free(bias), free(dout), free(out), free(dinp), free(dw), free(db);
        free(ref), free(rdinp), free(rdw), free(rdb);
    }
}
END_TEST

START_TEST(test_matmul_grad) {
    int N = 7, C = 11, OC = 13;
    Rng rng = rng_seeded(2);
    OpCase c = {.forward = matmul_case, .n_out = N * OC, .n = N, .d = C, .k = OC};
    c.a = rand_tensor(&rng, N * C, 1.0f), c.b = rand_tensor(&rng, OC * C, 1.0f);
    c.c = rand_tensor(&rng, OC, 1.0f), c.r = rand_tensor(&rng, N * OC, 1.0f);
    c.out = zeros(N * OC);
    float *dinp = zeros(N * C), *dw = zeros(OC * C), *db = zeros(OC);
    matmul_backward(dinp, dw, db, c.r, c.a, c.b, N, C, OC);
    expect_grad(&c, c.a, dinp, N * C, "matmul dinp");
    expect_grad(&c, c.b, dw, OC * C, "matmul dweight");
    expect_grad(&c, c.c, db, OC, "matmul dbias");
    // into non-zero buffers: adds; with NULL pointers: skips those gradients
    float *dinp2 = rand_tensor(&rng, N * C, 1.0f), *dw2 = rand_tensor(&rng, OC * C, 1.0f);
    float *db2 = rand_tensor(&rng, OC, 1.0f);
    float *dinp0 = copy_tensor(dinp2, N * C), *dw0 = copy_tensor(dw2, OC * C);
    float *db0 = copy_tensor(db2, OC);
    matmul_backward(dinp2, dw2, db2, c.r, c.a, c.b, N, C, OC);
    expect_accumulated(dinp2, dinp0, dinp, N * C, "matmul dinp");
    expect_accumulated(dw2, dw0, dw, OC * C, "matmul dweight");
    expect_accumulated(db2, db0, db, OC, "matmul dbias");
    float *dw3 = zeros(OC * C);
    matmul_backward(NULL, dw3, NULL, c.r, c.a, c.b, N, C, OC);
    expect_identical(dw3, dw, OC * C, "matmul dweight alone");
}
END_TEST

START_TEST(test_matmul_threads) {
    int N = 301, C = 259, OC = 263;
    Rng rng = rng_seeded(3);
    float *inp = rand_tensor(&rng, N * C, 1.0f), *w = rand_tensor(&rng, OC * C, 1.0f);
    float *bias = rand_tensor(&rng, OC, 1.0f), *dout = rand_tensor(&rng, N * OC, 1.0f);
    float *out[2], *dinp[2], *dw[2], *db[2];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        out[run] = zeros(N * OC), dinp[run] = zeros(N * C), dw[run] = zeros(OC * C);
        db[run] = zeros(OC);
        matmul_forward(out[run], inp, w, bias, N, C, OC);
        matmul_backward(dinp[run], dw[run], db[run], dout, inp, w, N, C, OC);
    }
    expect_identical(out[0], out[1], N * OC, "matmul forward");
    expect_identical(dinp[0], dinp[1], N * C, "matmul dinp");
    expect_identical(dw[0], dw[1], OC * C, "matmul dweight");
    expect_identical(db[0], db[1], OC, "matmul dbias");
}
END_TEST

// ---- embedding ---------------------------------------------------------------------

static void embedding_case(OpCase *c, float *out) {
    embedding_forward(out, c->ids, c->a, c->n, c->d, c->k, c->s);
}

START_TEST(test_embedding) {
    int N = 23, D = 37, V = 11; // more tokens than ids: rows repeat
    Rng rng = rng_seeded(4);
    OpCase c = {.forward = embedding_case, .n_out = N * D, .n = N, .d = D, .k = V, .s = 1.7f};
    c.a = rand_tensor(&rng, V * D, 1.0f), c.r = rand_tensor(&rng, N * D, 1.0f);
    c.out = zeros(N * D), c.ids = test_owned(xmalloc(N * sizeof(int)));
    for (int n = 0; n < N; n++) c.ids[n] = (int)(rng_next(&rng) % V);
    c.ids[0] = 0, c.ids[1] = V - 1;
    embedding_forward(c.out, c.ids, c.a, N, D, V, c.s);
    for (int n = 0; n < N; n++) {
        for (int d = 0; d < D; d++) {
            ck_assert_float_eq(c.out[n * D + d], c.s * c.a[c.ids[n] * D + d]);
        }
    }
    float *dtable = zeros(V * D);
    embedding_backward(dtable, c.r, c.ids, N, D, c.s);
    expect_grad(&c, c.a, dtable, V * D, "embedding dtable");
    float *dtable2 = rand_tensor(&rng, V * D, 1.0f), *before = copy_tensor(dtable2, V * D);
    embedding_backward(dtable2, c.r, c.ids, N, D, c.s);
    expect_accumulated(dtable2, before, dtable, V * D, "embedding dtable");
}
END_TEST

// Token V is one past the vocabulary: must die (exit status 1), not read past the table.
START_TEST(test_embedding_bad_token) {
    int tokens[3] = {0, 5, 2};
    float table[5 * 4] = {0}, out[3 * 4];
    embedding_forward(out, tokens, table, 3, 4, 5, 1.0f);
}
END_TEST

START_TEST(test_embedding_negative_token) {
    int tokens[3] = {0, -1, 2};
    float table[5 * 4] = {0}, out[3 * 4];
    embedding_forward(out, tokens, table, 3, 4, 5, 1.0f);
}
END_TEST

// ---- norms -------------------------------------------------------------------------

static void norm_case(OpCase *c, float *out) {
    float *rstd = xmalloc((size_t)c->n * sizeof(float));
    norm_forward(out, rstd, c->a, c->b, c->n, c->d, c->eps, c->kind);
    free(rstd);
}

// Forward against the formulas, then gradients of x and weight, for RMS with a weight,
// RMS without one, and SRMS.
static void check_norm(NormKind kind, int with_weight, uint64_t seed) {
    int N = 9, D = 37;
    Rng rng = rng_seeded(seed);
    OpCase c = {.forward = norm_case, .n_out = N * D, .n = N, .d = D, .eps = 0.1f};
    c.kind = kind;
    c.a = rand_tensor(&rng, N * D, 1.0f), c.r = rand_tensor(&rng, N * D, 1.0f);
    c.b = with_weight ? rand_tensor(&rng, D, 1.0f) : NULL;
    c.out = zeros(N * D);
    float *rstd = zeros(N), *ref = zeros(N * D);
    norm_forward(c.out, rstd, c.a, c.b, N, D, c.eps, kind);
    for (int n = 0; n < N; n++) {
        double ms = 0.0;
        for (int d = 0; d < D; d++) ms += (double)c.a[n * D + d] * c.a[n * D + d] / D;
        double r = kind == NORM_RMS ? 1.0 / sqrt(ms + c.eps) : 1.0 / (sqrt(ms) + c.eps);
        ck_assert_msg(fabs(rstd[n] - r) < 1e-5 * r, "rstd %g, want %g", rstd[n], r);
        for (int d = 0; d < D; d++)
            ref[n * D + d] = (float)(c.a[n * D + d] * r * (c.b ? c.b[d] : 1.0));
    }
    expect_close(c.out, ref, N * D, 1e-6, "norm forward");
    float *dx = zeros(N * D), *dw = zeros(D);
    norm_backward(dx, dw, c.r, c.a, c.b, rstd, N, D, c.eps, kind);
    expect_grad(&c, c.a, dx, N * D, "norm dx");
    if (c.b) expect_grad(&c, c.b, dw, D, "norm dweight");
    float *dx2 = rand_tensor(&rng, N * D, 1.0f), *dw2 = rand_tensor(&rng, D, 1.0f);
    float *dx0 = copy_tensor(dx2, N * D), *dw0 = copy_tensor(dw2, D);
    norm_backward(dx2, dw2, c.r, c.a, c.b, rstd, N, D, c.eps, kind);
    expect_accumulated(dx2, dx0, dx, N * D, "norm dx");
    if (c.b) expect_accumulated(dw2, dw0, dw, D, "norm dweight");
    // dweight NULL: dx alone, unchanged
    float *dx3 = zeros(N * D);
    norm_backward(dx3, NULL, c.r, c.a, c.b, rstd, N, D, c.eps, kind);
    expect_identical(dx3, dx, N * D, "norm dx without dweight");
}

START_TEST(test_norm_rms) {
    check_norm(NORM_RMS, 1, 5);
}
END_TEST
START_TEST(test_norm_rms_no_weight) {
    check_norm(NORM_RMS, 0, 6);
}
END_TEST
START_TEST(test_norm_srms) {
    check_norm(NORM_SRMS, 0, 7);
}
END_TEST

// ---- activations -------------------------------------------------------------------

static void silu_case(OpCase *c, float *out) {
    silu_forward(out, c->a, c->n);
}
static void swiglu_case(OpCase *c, float *out) {
    swiglu_forward(out, c->a, c->b, c->n);
}
static void mul_case(OpCase *c, float *out) {
    mul_forward(out, c->a, c->b, c->n);
}
static void logsigmoid_case(OpCase *c, float *out) {
    logsigmoid_forward(out, c->a, c->s, c->n);
}
static void add_case(OpCase *c, float *out) {
    add_forward(out, c->a, c->b, c->n);
}

static double silu_ref(double x) {
    return x / (1.0 + exp(-x));
}

START_TEST(test_activations) {
    int n = 97;
    Rng rng = rng_seeded(8);
    OpCase c = {.n_out = n, .n = n, .s = 1.0f / 16};
    c.a = rand_tensor(&rng, n, 2.0f), c.b = rand_tensor(&rng, n, 1.0f);
    c.r = rand_tensor(&rng, n, 1.0f), c.out = zeros(n);
    float *ref = zeros(n), *da = zeros(n), *db = zeros(n);
    // forward against the formulas
    add_forward(c.out, c.a, c.b, n);
    for (int i = 0; i < n; i++) ref[i] = c.a[i] + c.b[i];
    expect_close(c.out, ref, n, 1e-7, "add");
    silu_forward(c.out, c.a, n);
    for (int i = 0; i < n; i++) ref[i] = (float)silu_ref(c.a[i]);
    expect_close(c.out, ref, n, 1e-6, "silu");
    swiglu_forward(c.out, c.a, c.b, n);
    for (int i = 0; i < n; i++) ref[i] = (float)(silu_ref(c.a[i]) * c.b[i]);
    expect_close(c.out, ref, n, 1e-6, "swiglu");
    mul_forward(c.out, c.a, c.b, n);
    for (int i = 0; i < n; i++) ref[i] = c.a[i] * c.b[i];
    expect_close(c.out, ref, n, 1e-7, "mul");
    logsigmoid_forward(c.out, c.a, c.s, n);
    for (int i = 0; i < n; i++) ref[i] = (float)(c.s * log(1.0 / (1.0 + exp(-(double)c.a[i]))));
    expect_close(c.out, ref, n, 1e-6, "logsigmoid");
    // add: both gradients are dout (no backward kernel; the loss is linear)
    c.forward = add_case;
    expect_grad(&c, c.a, c.r, n, "add da");
    expect_grad(&c, c.b, c.r, n, "add db");
    // silu
    c.forward = silu_case;
    silu_backward(da, c.r, c.a, n);
    expect_grad(&c, c.a, da, n, "silu dx");
    float *d2 = rand_tensor(&rng, n, 1.0f), *d0 = copy_tensor(d2, n);
    silu_backward(d2, c.r, c.a, n);
    expect_accumulated(d2, d0, da, n, "silu dx");
    // swiglu
    c.forward = swiglu_case;
    memset(da, 0, n * sizeof(float)), memset(db, 0, n * sizeof(float));
    swiglu_backward(da, db, c.r, c.a, c.b, n);
    expect_grad(&c, c.a, da, n, "swiglu dgate");
    expect_grad(&c, c.b, db, n, "swiglu dup");
    float *e2 = rand_tensor(&rng, n, 1.0f), *e0 = copy_tensor(e2, n);
    memcpy(d2, d0, n * sizeof(float));
    swiglu_backward(d2, e2, c.r, c.a, c.b, n);
    expect_accumulated(d2, d0, da, n, "swiglu dgate");
    expect_accumulated(e2, e0, db, n, "swiglu dup");
    // mul
    c.forward = mul_case;
    memset(da, 0, n * sizeof(float)), memset(db, 0, n * sizeof(float));
    mul_backward(da, db, c.r, c.a, c.b, n);
    expect_grad(&c, c.a, da, n, "mul da");
    expect_grad(&c, c.b, db, n, "mul db");
    memcpy(d2, d0, n * sizeof(float)), memcpy(e2, e0, n * sizeof(float));
    mul_backward(d2, e2, c.r, c.a, c.b, n);
    expect_accumulated(d2, d0, da, n, "mul da");
    expect_accumulated(e2, e0, db, n, "mul db");
    // logsigmoid
    c.forward = logsigmoid_case;
    memset(da, 0, n * sizeof(float));
    logsigmoid_backward(da, c.r, c.a, c.s, n);
    expect_grad(&c, c.a, da, n, "logsigmoid dx");
    memcpy(d2, d0, n * sizeof(float));
    logsigmoid_backward(d2, c.r, c.a, c.s, n);
    expect_accumulated(d2, d0, da, n, "logsigmoid dx");
}
END_TEST

// logsigmoid(x) ~ x for x << 0 and ~ -e^-x for x >> 0, its slope 1 and 0: no inf or NaN
// where a naive log(1 / (1 + e^-x)) overflows or rounds to log(0). SiLU likewise.
START_TEST(test_activation_extremes) {
    float x[6] = {-1000.0f, -100.0f, -30.0f, 30.0f, 100.0f, 1000.0f};
    float out[6], dx[6] = {0}, ones[6] = {1, 1, 1, 1, 1, 1};
    logsigmoid_forward(out, x, 1.0f, 6);
    logsigmoid_backward(dx, ones, x, 1.0f, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(isfinite(out[i]) && isfinite(dx[i]), "x=%g: out %g dx %g", x[i], out[i],
                      dx[i]);
        double want = x[i] < 0 ? x[i] - log1p(exp(x[i])) : -log1p(exp(-x[i]));
        double slope = x[i] < 0 ? 1.0 / (1.0 + exp(x[i])) : exp(-x[i]) / (1.0 + exp(-x[i]));
        ck_assert_msg(fabs(out[i] - want) <= 1e-6 * fmax(1.0, fabs(want)) + 1e-30,
                      "logsigmoid(%g) = %g, want %g", x[i], out[i], want);
        ck_assert_msg(fabs(dx[i] - slope) <= 1e-6 * slope + 1e-30, "slope(%g) = %g, want %g", x[i],
                      dx[i], slope);
    }
    ck_assert(out[5] <= 0.0f && out[0] == -1000.0f && dx[0] == 1.0f);
    // silu at the same points: x sigmoid(x) and its slope, finite
    float silu[6], dsilu[6] = {0};
    silu_forward(silu, x, 6);
    silu_backward(dsilu, ones, x, 6);
    for (int i = 0; i < 6; i++) {
        double s = 1.0 / (1.0 + exp(-(double)x[i]));
        double want = x[i] * s, slope = s * (1.0 + x[i] * (1.0 - s));
        ck_assert_msg(fabs(silu[i] - want) <= 1e-6 * fabs(want) + 1e-30, "silu(%g) = %g, want %g",
                      x[i], silu[i], want);
        ck_assert_msg(fabs(dsilu[i] - slope) <= 1e-6 * fabs(slope) + 1e-30,
                      "silu'(%g) = %g, want %g", x[i], dsilu[i], slope);
    }
}
END_TEST

// ---- rope --------------------------------------------------------------------------

static void rope_case(OpCase *c, float *out) {
    rope_forward(out, c->a, c->n, c->t, c->h, c->d, c->s, c->k);
}

START_TEST(test_rope) {
    int B = 2, T = 7, H = 3, hd = 10, pos0 = 5;
    float theta = 10000.0f;
    long n = (long)B * T * H * hd;
    Rng rng = rng_seeded(9);
    OpCase c = {.forward = rope_case, .n_out = n, .n = B, .t = T, .h = H, .d = hd, .k = pos0};
    c.s = theta, c.a = rand_tensor(&rng, n, 1.0f), c.r = rand_tensor(&rng, n, 1.0f);
    c.out = zeros(n);
    rope_forward(c.out, c.a, B, T, H, hd, theta, pos0);
    // pair i as the complex number x[i] + j x[i + hd/2], multiplied by e^(j angle)
    float *ref = zeros(n);
    int half = hd / 2;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < H; h++) {
                long base = (((long)b * T + t) * H + h) * hd;
                double norm_in = 0.0, norm_out = 0.0;
                for (int i = 0; i < half; i++) {
                    double angle = (pos0 + t) * pow(theta, -2.0 * i / hd);
                    double re = c.a[base + i], im = c.a[base + i + half];
                    ref[base + i] = (float)(re * cos(angle) - im * sin(angle));
                    ref[base + i + half] = (float)(re * sin(angle) + im * cos(angle));
                    norm_in += re * re + im * im;
                    norm_out += (double)c.out[base + i] * c.out[base + i] +
                                (double)c.out[base + i + half] * c.out[base + i + half];
                }
                ck_assert_msg(fabs(sqrt(norm_out) - sqrt(norm_in)) < 1e-5 * sqrt(norm_in),
                              "rope changes a norm: %g -> %g", sqrt(norm_in), sqrt(norm_out));
            }
        }
    }
    expect_close(c.out, ref, n, 1e-5, "rope forward");
    // in place (out aliases x) gives the same result
    float *inplace = copy_tensor(c.a, n);
    rope_forward(inplace, inplace, B, T, H, hd, theta, pos0);
    expect_identical(inplace, c.out, n, "rope in place");
    float *dx = zeros(n);
    rope_backward(dx, c.r, B, T, H, hd, theta, pos0);
    expect_grad(&c, c.a, dx, n, "rope dx");
    float *dx2 = rand_tensor(&rng, n, 1.0f), *dx0 = copy_tensor(dx2, n);
    rope_backward(dx2, c.r, B, T, H, hd, theta, pos0);
    expect_accumulated(dx2, dx0, dx, n, "rope dx");
}
END_TEST

// ---- fused LM head + cross-entropy -------------------------------------------------

static void ce_case(OpCase *c, float *out) {
    lm_head_cross_entropy(out, NULL, NULL, c->a, c->b, c->ids, c->n, c->d, c->k, 1.0f);
}

// Full [N, V] logits in double: losses, and the gradients of scale * sum(losses).
static int naive_ce(float *losses, float *dh, float *dW, const float *h, const float *W,
                    const int *targets, int N, int D, int V, double scale) {
    double *logits = xmalloc((size_t)V * sizeof(double));
    int counted = 0;
    memset(dh, 0, (size_t)N * D * sizeof(float)), memset(dW, 0, (size_t)V * D * sizeof(float));
    for (int n = 0; n < N; n++) {
        losses[n] = 0.0f;
        if (targets[n] < 0) continue;
        counted++;
        double max = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++) {
            double s = 0.0;
            for (int d = 0; d < D; d++) s += (double)h[n * D + d] * W[v * D + d];
            logits[v] = s;
            max = fmax(max, s);
        }
        for (int v = 0; v < V; v++) sum += exp(logits[v] - max);
        losses[n] = (float)(log(sum) + max - logits[targets[n]]);
        for (int v = 0; v < V; v++) {
            double g = scale * (exp(logits[v] - max) / sum - (v == targets[n]));
            for (int d = 0; d < D; d++) {
                dh[n * D + d] += (float)(g * W[v * D + d]);
                dW[v * D + d] += (float)(g * h[n * D + d]);
            }
        }
    }
    free(logits);
    return counted;
}

// Odd sizes, some ignored targets; the second case has a vocabulary so large that the rows
// go in several blocks (64, 64, 22).
static void check_cross_entropy(int N, int D, int V, uint64_t seed) {
    float scale = 1.0f / 250;
    Rng rng = rng_seeded(seed);
    float *h = rand_tensor(&rng, N * D, 1.0f), *W = rand_tensor(&rng, (long)V * D, 0.5f);
    int *targets = test_owned(xmalloc(N * sizeof(int))), expected_count = 0;
    for (int n = 0; n < N; n++) {
        targets[n] = n % 7 == 3 ? -1 : (int)(rng_next(&rng) % V);
        expected_count += targets[n] >= 0;
    }
    targets[5] = V - 1, targets[6] = 0;
    float *losses = zeros(N), *dh = zeros(N * D), *dW = zeros((long)V * D);
    float *rl = zeros(N), *rdh = zeros(N * D), *rdW = zeros((long)V * D);
    int rc = naive_ce(rl, rdh, rdW, h, W, targets, N, D, V, scale);
    int count = lm_head_cross_entropy(losses, dh, dW, h, W, targets, N, D, V, scale);
    ck_assert_int_eq(rc, expected_count);
    ck_assert_int_eq(count, expected_count);
    expect_close(losses, rl, N, 1e-5, "cross-entropy losses");
    expect_close(dh, rdh, N * D, 1e-4, "cross-entropy dh");
    expect_close(dW, rdW, (long)V * D, 1e-4, "cross-entropy dW");
    for (int n = 0; n < N; n++) {
        if (targets[n] >= 0) continue;
        ck_assert_float_eq(losses[n], 0.0f);
        for (int d = 0; d < D; d++) ck_assert_float_eq(dh[n * D + d], 0.0f);
    }
    // forward only: the same losses
    float *losses2 = zeros(N);
    ck_assert_int_eq(lm_head_cross_entropy(losses2, NULL, NULL, h, W, targets, N, D, V, scale),
                     expected_count);
    expect_identical(losses2, losses, N, "cross-entropy forward only");
    // into non-zero buffers: adds
    float *dh2 = rand_tensor(&rng, N * D, 1.0f), *dW2 = rand_tensor(&rng, (long)V * D, 1.0f);
    float *dh0 = copy_tensor(dh2, N * D), *dW0 = copy_tensor(dW2, (long)V * D);
    lm_head_cross_entropy(losses2, dh2, dW2, h, W, targets, N, D, V, scale);
    expect_accumulated(dh2, dh0, dh, N * D, "cross-entropy dh");
    expect_accumulated(dW2, dW0, dW, (long)V * D, "cross-entropy dW");
}

START_TEST(test_cross_entropy_vs_naive) {
    check_cross_entropy(300, 33, 101, 10);
    check_cross_entropy(150, 7, 70001, 15);
}
END_TEST

START_TEST(test_cross_entropy_grad) {
    int N = 9, D = 13, V = 37;
    Rng rng = rng_seeded(11);
    OpCase c = {.forward = ce_case, .n_out = N, .n = N, .d = D, .k = V};
    c.a = rand_tensor(&rng, N * D, 1.0f), c.b = rand_tensor(&rng, V * D, 1.0f);
    c.r = test_owned(xmalloc(N * sizeof(float))), c.out = zeros(N),
    c.ids = test_owned(xmalloc(N * sizeof(int)));
    for (int n = 0; n < N; n++) c.r[n] = 1.0f, c.ids[n] = (int)(rng_next(&rng) % V);
    c.ids[4] = -1, c.ids[7] = -100; // ignored
    float *dh = zeros(N * D), *dW = zeros(V * D);
    int count = lm_head_cross_entropy(c.out, dh, dW, c.a, c.b, c.ids, N, D, V, 1.0f);
    ck_assert_int_eq(count, N - 2);
    expect_grad(&c, c.a, dh, N * D, "cross-entropy dh");
    expect_grad(&c, c.b, dW, V * D, "cross-entropy dW");
    // only dh, only dW
    float *dh3 = zeros(N * D), *dW3 = zeros(V * D);
    lm_head_cross_entropy(c.out, dh3, NULL, c.a, c.b, c.ids, N, D, V, 1.0f);
    lm_head_cross_entropy(c.out, NULL, dW3, c.a, c.b, c.ids, N, D, V, 1.0f);
    expect_identical(dh3, dh, N * D, "cross-entropy dh alone");
    expect_identical(dW3, dW, V * D, "cross-entropy dW alone");
}
END_TEST

// One block of 531 rows, then 3 blocks (vocabulary 70001): losses, dh and dW bit-identical.
START_TEST(test_cross_entropy_threads) {
    int sizes[2][3] = {{531, 45, 203}, {150, 5, 70001}};
    for (int s = 0; s < 2; s++) {
        int N = sizes[s][0], D = sizes[s][1], V = sizes[s][2];
        Rng rng = rng_seeded(12);
        float *h = rand_tensor(&rng, N * D, 1.0f), *W = rand_tensor(&rng, (long)V * D, 1.0f);
        int *targets = test_owned(xmalloc(N * sizeof(int)));
        for (int n = 0; n < N; n++) targets[n] = n % 11 == 0 ? -1 : (int)(rng_next(&rng) % V);
        float *losses[2], *dh[2], *dW[2];
        for (int run = 0; run < 2; run++) {
            omp_set_num_threads(run + 1);
            losses[run] = zeros(N), dh[run] = zeros(N * D), dW[run] = zeros((long)V * D);
            lm_head_cross_entropy(losses[run], dh[run], dW[run], h, W, targets, N, D, V, 0.01f);
        }
        expect_identical(losses[0], losses[1], N, "cross-entropy losses");
        expect_identical(dh[0], dh[1], N * D, "cross-entropy dh");
        expect_identical(dW[0], dW[1], (long)V * D, "cross-entropy dW");
    }
}
END_TEST

START_TEST(test_cross_entropy_bad_target) {
    float h[2 * 3] = {0}, W[4 * 3] = {0}, losses[2];
    int targets[2] = {1, 4};
    lm_head_cross_entropy(losses, NULL, NULL, h, W, targets, 2, 3, 4, 1.0f);
}
END_TEST

// ---- reductions and AdamW ----------------------------------------------------------

START_TEST(test_reduce) {
    long n = 3 * 65536 + 17;
    Rng rng = rng_seeded(13);
    float *x = rand_tensor(&rng, n, 1.0f);
    double want = 0.0;
    for (long i = 0; i < n; i++) want += (double)x[i] * x[i];
    double got[2];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        got[run] = sum_squares(x, n);
    }
    ck_assert_msg(fabs(got[0] - want) < 1e-12 * want, "sum_squares %.17g, want %.17g", got[0],
                  want);
    ck_assert_msg(got[0] == got[1], "sum_squares differs between 1 and 2 threads");
    ck_assert(sum_squares(x, 0) == 0.0);
    float *y = copy_tensor(x, n);
    scale_inplace(y, 0.37f, n);
    for (long i = 0; i < n; i++) ck_assert_float_eq(y[i], x[i] * 0.37f);
}
END_TEST

START_TEST(test_adamw) {
    long n = 1001;
    float lr = 3e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
    Rng rng = rng_seeded(14);
    int steps[2] = {1, 7};
    for (int s = 0; s < 2; s++) {
        int step = steps[s];
        float *w = rand_tensor(&rng, n, 1.0f), *g = rand_tensor(&rng, n, 1.0f);
        float *m = rand_tensor(&rng, n, 0.1f), *v = rand_tensor(&rng, n, 0.1f);
        if (step == 1) memset(m, 0, n * sizeof(float)), memset(v, 0, n * sizeof(float));
        for (long i = 0; i < n; i++) v[i] = fabsf(v[i]);
        float *w0 = copy_tensor(w, n), *m0 = copy_tensor(m, n), *v0 = copy_tensor(v, n);
        float *rw = zeros(n), *rm = zeros(n), *rv = zeros(n);
        for (long i = 0; i < n; i++) {
            double mi = (double)b1 * m0[i] + (1.0 - b1) * g[i];
            double vi = (double)b2 * v0[i] + (1.0 - b2) * (double)g[i] * g[i];
            double mhat = mi / (1.0 - pow(b1, step)), vhat = vi / (1.0 - pow(b2, step));
            rm[i] = (float)mi, rv[i] = (float)vi;
            rw[i] = (float)(w0[i] - lr * (mhat / (sqrt(vhat) + eps) + wd * w0[i]));
        }
        adamw_update(w, g, m, v, n, lr, b1, b2, eps, wd, step);
        expect_close(m, rm, n, 1e-6, "adamw m");
        expect_close(v, rv, n, 1e-6, "adamw v");
        // compare the update itself, not w (which is much larger than the update)
        for (long i = 0; i < n; i++) w[i] -= w0[i], rw[i] -= w0[i];
        expect_close(w, rw, n, 1e-4, "adamw update");
    }
}
END_TEST

static Suite *ops_suite(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_matmul_vs_naive);
    tcase_add_test(tc, test_matmul_grad);
    tcase_add_test(tc, test_matmul_threads);
    tcase_add_test(tc, test_embedding);
    tcase_add_exit_test(tc, test_embedding_bad_token, 1);
    tcase_add_exit_test(tc, test_embedding_negative_token, 1);
    tcase_add_test(tc, test_norm_rms);
    tcase_add_test(tc, test_norm_rms_no_weight);
    tcase_add_test(tc, test_norm_srms);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_activation_extremes);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_cross_entropy_vs_naive);
    tcase_add_test(tc, test_cross_entropy_grad);
    tcase_add_test(tc, test_cross_entropy_threads);
    tcase_add_exit_test(tc, test_cross_entropy_bad_target, 1);
    tcase_add_test(tc, test_reduce);
    tcase_add_test(tc, test_adamw);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(ops_suite());
}
