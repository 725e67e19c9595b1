// tests/test_backend_ops.c: every non-attention op of a backend's op table against the
// fp32 CPU reference kernels (kernels.h), in the manner of ggml's test-backend-ops: fresh
// random inputs per op, converted to the backend's compute type and read back so the
// reference sees exactly what the backend sees, every output poisoned with NaN before the
// call, and the result compared by relative error (1e-5 for the fp32 CPU backend, 1e-2 for
// bf16 backends). The backend is $BOLT_TEST_DEVICE (default "cpu"); the attention ops are
// in tests/test_backend_attn.c.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../kernels/kernels.h"
#include "../kernels/ops.h"
#include "testing.h"

// A test of an op the backend's table lacks fails (instead of calling NULL).
#define NEED(op) ck_assert_msg(be->ops->op != NULL, "%s backend: op " #op " is missing", be->name)

static const char *device; // $BOLT_TEST_DEVICE, chosen by main
static Backend *be;        // the backend under test, made for each test by setup
static double tol;         // relative error allowed: 1e-5 with fp32 activations, 1e-2 with bf16
static bool big;           // large shapes too (a GPU backend; the CPU suite stays small)

// Each test (a forked child) makes its own backend, so a GPU context is never inherited.
static void setup(void) {
    be = backend_create(device);
    tol = be->act_size == sizeof(float) ? 1e-5 : 1e-2;
    big = strcmp(be->name, "cpu") != 0 && !getenv("BOLT_TEST_QUICK"); // sanitizers: small
}

static void teardown(void) {
    backend_free(be);
}

// Every test draws its inputs from its own seed, a fixed base plus the test's index.
static Rng test_rng(int index) {
    return rng_seeded(7000 + (uint64_t)index);
}

static bool fp32_acts(void) {
    return be->act_size == sizeof(float);
}

// Backend memory helpers in the suite's shorthand.
static void dfree(void *p) {
    be->ops->free(be, p);
}
static Act *poison_act(long n) {
    return be_poison(be, (size_t)n * be->act_size);
}
static float *poison_f32(long n) {
    return be_poison(be, (size_t)n * sizeof(float));
}
static void expect_act(const Act *dev, const float *want, long n, const char *what) {
    float *got = be_read_act(be, dev, n);
    be_expect_close(got, want, n, tol, what);
    free(got);
}
static void expect_f32(const float *dev, const float *want, long n, const char *what) {
    float *got = be_read_f32(be, dev, n);
    be_expect_close(got, want, n, tol, what);
    free(got);
}

// ---- memory ---------------------------------------------------------------------------

// alloc zeroes, upload/download/copy/copy_2d/zero move bytes exactly, the conversions
// round to the compute type (to nearest, ties to even, for bf16), and memory_in_use
// counts a live allocation.
START_TEST(test_memory) {
    NEED(alloc);
    NEED(free);
    NEED(zero);
    NEED(upload);
    NEED(download);
    NEED(copy);
    NEED(copy_2d);
    NEED(float_to_act);
    NEED(act_to_float);
    NEED(memory_in_use);
    Rng rng = test_rng(1);
    long n = 1000;
    size_t before = be->ops->memory_in_use(be);
    float *a = be->ops->alloc(be, n * sizeof(float)), *b = be->ops->alloc(be, n * sizeof(float));
    ck_assert(be->ops->memory_in_use(be) >= before + 2 * n * sizeof(float));
    float *got = be_read_f32(be, a, n);
    for (long i = 0; i < n; i++) ck_assert_msg(got[i] == 0.0f, "alloc: not zeroed at %ld", i);
    free(got);

    float *x = rand_tensor(&rng, n, 1.0f);
    be->ops->upload(be, a, x, n * sizeof(float));
    be->ops->copy(be, b, a, n * sizeof(float));
    be->ops->zero(be, b + 10, 100 * sizeof(float));
    got = be_read_f32(be, b, n);
    for (long i = 0; i < n; i++) ck_assert(got[i] == (i >= 10 && i < 110 ? 0.0f : x[i]));
    free(got);

    // 7 rows of 13 floats: from column 5 of rows 40 floats apart to column 2 of rows 20 apart
    be->ops->zero(be, b, n * sizeof(float));
    be->ops->copy_2d(be, b + 2, 20 * sizeof(float), a + 5, 40 * sizeof(float), 13 * sizeof(float),
                     7);
    got = be_read_f32(be, b, n);
    for (long i = 0; i < n; i++) {
        long r = i / 20, c = i % 20;
        float want = r < 7 && c >= 2 && c < 15 ? x[r * 40 + 5 + c - 2] : 0.0f;
        ck_assert_msg(got[i] == want, "copy_2d: element %ld", i);
    }
    free(got);

    Act *act = be->ops->alloc(be, n * be->act_size);
    be->ops->float_to_act(be, act, a, n);
    be->ops->act_to_float(be, b, act, n);
    got = be_read_f32(be, b, n);
    for (long i = 0; i < n; i++) {
        float want = fp32_acts() ? x[i] : ref_bf16(x[i]);
        ck_assert_msg(got[i] == want, "float_to_act: %g became %g (expected %g)", (double)x[i],
                      (double)got[i], (double)want);
    }
    free(got);
    size_t live = be->ops->memory_in_use(be);
    dfree(a), dfree(b), dfree(act);
    ck_assert(be->ops->memory_in_use(be) <= live - 2 * n * sizeof(float));
    free(x);
}
END_TEST

// ---- matmul -----------------------------------------------------------------------------

// Shapes (N, C, OC) no multiple of any tile; a GPU also gets large ones.
static const int MM_SHAPES[][3] = {
    {1, 1, 1}, {37, 29, 45}, {64, 96, 80}, {333, 257, 129}, {1024, 768, 2048}};
static int mm_shape_count(void) {
    return big ? 5 : 3;
}

START_TEST(test_matmul_forward) {
    NEED(matmul_forward);
    Rng rng = test_rng(2);
    for (int s = 0; s < mm_shape_count(); s++) {
        int N = MM_SHAPES[s][0], C = MM_SHAPES[s][1], OC = MM_SHAPES[s][2];
        float *inp, *w, *bias;
        Act *d_inp = be_rand_act(be, &rng, (long)N * C, 1.0f, &inp);
        Act *d_w = be_rand_act(be, &rng, (long)OC * C, 0.1f, &w);
        Act *d_bias = be_rand_act(be, &rng, OC, 1.0f, &bias);
        float *want = zeros((long)N * OC);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            Act *out = poison_act((long)N * OC);
            be->ops->matmul_forward(be, out, d_inp, d_w, with_bias ? d_bias : NULL, N, C, OC);
            matmul_forward(want, inp, w, with_bias ? bias : NULL, N, C, OC);
            expect_act(out, want, (long)N * OC, with_bias ? "matmul out (bias)" : "matmul out");
            dfree(out);
        }
        free(inp), free(w), free(bias), free(want);
        dfree(d_inp), dfree(d_w), dfree(d_bias);
    }
}
END_TEST

// Three cases per shape: dinp written from a compact dout with dweight and dbias
// accumulating; dinp accumulating from a dout inside wider rows (ld_dout = OC + 7) with
// no dweight; dweight alone.
START_TEST(test_matmul_backward) {
    NEED(matmul_backward);
    Rng rng = test_rng(3);
    for (int s = 0; s < mm_shape_count(); s++) {
        int N = MM_SHAPES[s][0], C = MM_SHAPES[s][1], OC = MM_SHAPES[s][2];
        for (int c = 0; c < 3; c++) {
            int ld = c == 1 ? OC + 7 : OC, col = c == 1 ? 3 : 0;
            bool acc = c == 1, want_dinp = c != 2, want_dw = c != 1, want_db = c != 2;
            float *inp, *w, *dbuf, *dinp0;
            Act *d_inp = be_rand_act(be, &rng, (long)N * C, 1.0f, &inp);
            Act *d_w = be_rand_act(be, &rng, (long)OC * C, 0.1f, &w);
            Act *d_dbuf = be_rand_act(be, &rng, (long)N * ld, 1.0f, &dbuf);
            Act *d_dinp =
                acc ? be_rand_act(be, &rng, (long)N * C, 1.0f, &dinp0) : poison_act((long)N * C);
            float *dw = rand_tensor(&rng, (long)OC * C, 1.0f), *db = rand_tensor(&rng, OC, 1.0f);
            float *d_dw = be_f32(be, dw, (long)OC * C), *d_db = be_f32(be, db, OC);

            float *dout = cols_of(dbuf, ld, N, col, OC);
            float *want_in = acc ? copy_tensor(dinp0, (long)N * C) : zeros((long)N * C);
            matmul_backward(want_in, want_dw ? dw : NULL, want_db ? db : NULL, dout, inp, w, N, C,
                            OC);
            be->ops->matmul_backward(be, want_dinp ? d_dinp : NULL, want_dw ? d_dw : NULL,
                                     want_db ? d_db : NULL, act_at(be, d_dbuf, col), ld, d_inp, d_w,
                                     N, C, OC, acc);
            if (want_dinp) expect_act(d_dinp, want_in, (long)N * C, "matmul dinp");
            expect_f32(d_dw, dw, (long)OC * C, "matmul dweight");
            expect_f32(d_db, db, OC, "matmul dbias");
            free(inp), free(w), free(dbuf), free(dw), free(db), free(dout), free(want_in);
            if (acc) free(dinp0);
            dfree(d_inp), dfree(d_w), dfree(d_dbuf), dfree(d_dinp), dfree(d_dw), dfree(d_db);
        }
    }
}
END_TEST

// The decoding LM head: fp32 logits of h[N, D] against W[V, D], a decode step (N = 1) and
// a few rows; V and D no multiple of any tile. The output is fp32, so even a bf16 backend
// must match the fp32 product of the values it holds far inside its rounding (2^-9): 1e-4.
static const int LOGITS_SHAPES[][3] = {
    {1, 1, 1}, {1, 96, 1003}, {37, 29, 45}, {1, 2048, 32001}, {5, 768, 50257}};

START_TEST(test_logits_forward) {
    NEED(logits_forward);
    Rng rng = test_rng(14);
    for (int s = 0; s < (big ? 5 : 3); s++) {
        int N = LOGITS_SHAPES[s][0], D = LOGITS_SHAPES[s][1], V = LOGITS_SHAPES[s][2];
        float *h, *w;
        Act *d_h = be_rand_act(be, &rng, (long)N * D, 1.0f, &h);
        Act *d_w = be_rand_act(be, &rng, (long)V * D, 0.1f, &w);
        float *logits = poison_f32((long)N * V);
        be->ops->logits_forward(be, logits, d_h, d_w, N, D, V);
        float *want = zeros((long)N * V);
        matmul_forward(want, h, w, NULL, N, D, V);
        float *got = be_read_f32(be, logits, (long)N * V);
        be_expect_close(got, want, (long)N * V, fp32_acts() ? tol : 1e-4, "logits");
        free(h), free(w), free(want), free(got);
        dfree(d_h), dfree(d_w), dfree(logits);
    }
}
END_TEST

// ---- embedding ------------------------------------------------------------------------

// Forward written, backward accumulating into a random table gradient; tokens repeat.
START_TEST(test_embedding) {
    NEED(embedding_forward);
    NEED(embedding_backward);
    Rng rng = test_rng(4);
    int N = big ? 4096 : 40, D = big ? 768 : 24, V = big ? 5000 : 50;
    float scale = 1.7f;
    int *tokens = xmalloc((size_t)N * sizeof(int));
    for (int n = 0; n < N; n++) tokens[n] = (int)(rng_next(&rng) % (uint64_t)(n % 3 ? V : 5));
    int *d_tokens = be_ints(be, tokens, N);
    float *table, *dout;
    Act *d_table = be_rand_act(be, &rng, (long)V * D, 1.0f, &table);
    Act *d_dout = be_rand_act(be, &rng, (long)N * D, 1.0f, &dout);
    Act *out = poison_act((long)N * D);
    be->ops->embedding_forward(be, out, d_tokens, d_table, N, D, V, scale);
    float *want = zeros((long)N * D);
    embedding_forward(want, tokens, table, N, D, V, scale);
    expect_act(out, want, (long)N * D, "embedding out");

    float *dtable = rand_tensor(&rng, (long)V * D, 1.0f), *d_dtable = be_f32(be, dtable, V * D);
    be->ops->embedding_backward(be, d_dtable, d_dout, d_tokens, N, D, scale);
    embedding_backward(dtable, dout, tokens, N, D, scale);
    expect_f32(d_dtable, dtable, (long)V * D, "embedding dtable");
    free(tokens), free(table), free(dout), free(want), free(dtable);
    dfree(d_tokens), dfree(d_table), dfree(d_dout), dfree(out), dfree(d_dtable);
}
END_TEST

// ---- norms --------------------------------------------------------------------------

// The norm variants: RMSNorm with and without a weight, SimpleRMSNorm (no weight).
static const struct {
    NormKind kind;
    bool weight;
} NORMS[] = {{NORM_RMS, true}, {NORM_RMS, false}, {NORM_SRMS, false}};

// Shape v (1: the large one); odd: a width that is not a multiple of 8, so the kernels
// take their one-value-at-a-time path instead of 16-byte vectors.
static void norm_shape(int v, bool odd, int *N, int *D) {
    *N = big && v == 1 ? 2048 : 33;
    *D = (big && v == 1 ? 2048 : 48) - (odd ? 3 : 0);
}

START_TEST(test_norm_forward) {
    NEED(norm_forward);
    Rng rng = test_rng(5);
    for (int v = 0; v < (big ? 2 : 1); v++) {
        for (int c = 0; c < 6; c++) { // each variant at an even width, then an odd one
            int N, D;
            norm_shape(v, c >= 3, &N, &D);
            float *x, *w = rand_tensor(&rng, D, 0.2f);
            for (int d = 0; d < D; d++) w[d] += 1.0f;
            Act *d_w = NORMS[c % 3].weight ? be_act(be, w, D) : NULL;
            Act *d_x = be_rand_act(be, &rng, (long)N * D, 2.0f, &x);
            Act *out = poison_act((long)N * D);
            float *rstd = poison_f32(N);
            be->ops->norm_forward(be, out, rstd, d_x, d_w, N, D, 1e-5f, NORMS[c % 3].kind);
            float *want = zeros((long)N * D), *want_rstd = zeros(N);
            norm_forward(want, want_rstd, x, NORMS[c % 3].weight ? w : NULL, N, D, 1e-5f,
                         NORMS[c % 3].kind);
            expect_act(out, want, (long)N * D, "norm out");
            expect_f32(rstd, want_rstd, N, "norm rstd");
            free(x), free(w), free(want), free(want_rstd);
            dfree(d_w), dfree(d_x), dfree(out), dfree(rstd);
        }
    }
}
END_TEST

// resid = a + b and its norm; once into a fresh resid, once in place (resid is a).
START_TEST(test_residual_norm_forward) {
    NEED(residual_norm_forward);
    Rng rng = test_rng(6);
    for (int c = 0; c < 6; c++) { // each variant at an even width, then an odd one
        int N, D;
        norm_shape(big, c >= 3, &N, &D);
        for (int in_place = 0; in_place < 2; in_place++) {
            float *a, *b, *w = rand_tensor(&rng, D, 0.2f);
            for (int d = 0; d < D; d++) w[d] += 1.0f;
            Act *d_w = NORMS[c % 3].weight ? be_act(be, w, D) : NULL;
            Act *d_a = be_rand_act(be, &rng, (long)N * D, 1.0f, &a);
            Act *d_b = be_rand_act(be, &rng, (long)N * D, 1.0f, &b);
            Act *resid = in_place ? d_a : poison_act((long)N * D);
            Act *out = poison_act((long)N * D);
            float *rstd = poison_f32(N);
            be->ops->residual_norm_forward(be, resid, out, rstd, d_a, d_b, d_w, N, D, 1e-5f,
                                           NORMS[c % 3].kind);
            float *sum = zeros((long)N * D), *want = zeros((long)N * D), *want_rstd = zeros(N);
            add_forward(sum, a, b, (long)N * D);
            // the norm of the sum as the backend holds it (rounded to its compute type)
            float *held = be_read_act(be, resid, (long)N * D);
            be_expect_close(held, sum, (long)N * D, tol, "residual sum");
            norm_forward(want, want_rstd, held, NORMS[c % 3].weight ? w : NULL, N, D, 1e-5f,
                         NORMS[c % 3].kind);
            expect_act(out, want, (long)N * D, "residual norm out");
            expect_f32(rstd, want_rstd, N, "residual norm rstd");
            free(a), free(b), free(w), free(sum), free(want), free(want_rstd), free(held);
            dfree(d_w), dfree(d_a), dfree(d_b), dfree(out), dfree(rstd);
            if (!in_place) dfree(resid);
        }
    }
}
END_TEST

// dx = dresid + the gradient through the norm, with dresid separate, NULL, or dx itself;
// dweight accumulates (or is NULL every other case).
START_TEST(test_norm_backward) {
    NEED(norm_backward);
    Rng rng = test_rng(7);
    for (int c = 0; c < 6; c++) { // each variant at an even width, then an odd one
        int N, D;
        norm_shape(big, c >= 3, &N, &D);
        for (int mode = 0; mode < 3; mode++) { // 0: dresid separate, 1: NULL, 2: dresid = dx
            bool with_dw = NORMS[c % 3].weight && mode != 1;
            float *x, *dout, *dresid = NULL, *w = rand_tensor(&rng, D, 0.2f);
            for (int d = 0; d < D; d++) w[d] += 1.0f;
            Act *d_w = NORMS[c % 3].weight ? be_act(be, w, D) : NULL;
            Act *d_x = be_rand_act(be, &rng, (long)N * D, 2.0f, &x);
            Act *d_dout = be_rand_act(be, &rng, (long)N * D, 1.0f, &dout);
            Act *d_dresid = mode != 1 ? be_rand_act(be, &rng, (long)N * D, 1.0f, &dresid) : NULL;
            Act *dx = mode == 2 ? d_dresid : poison_act((long)N * D);
            float *dw = rand_tensor(&rng, D, 1.0f), *d_dw = be_f32(be, dw, D);
            float *y = zeros((long)N * D), *rstd = zeros(N);
            norm_forward(y, rstd, x, NORMS[c % 3].weight ? w : NULL, N, D, 1e-5f,
                         NORMS[c % 3].kind);
            float *d_rstd = be_f32(be, rstd, N);
            be->ops->norm_backward(be, dx, with_dw ? d_dw : NULL, d_dresid, d_dout, d_x, d_w,
                                   d_rstd, N, D, 1e-5f, NORMS[c % 3].kind);
            float *want = dresid ? copy_tensor(dresid, (long)N * D) : zeros((long)N * D);
            norm_backward(want, with_dw ? dw : NULL, dout, x, NORMS[c % 3].weight ? w : NULL, rstd,
                          N, D, 1e-5f, NORMS[c % 3].kind);
            expect_act(dx, want, (long)N * D, "norm dx");
            expect_f32(d_dw, dw, D, "norm dweight");
            free(x), free(dout), free(dresid), free(w), free(dw), free(y), free(rstd), free(want);
            dfree(d_w), dfree(d_x), dfree(d_dout), dfree(d_dresid), dfree(d_dw), dfree(d_rstd);
            if (mode != 2) dfree(dx);
        }
    }
}
END_TEST

// ---- gates ----------------------------------------------------------------------------

// Both gates, with a and b as column blocks of one [N, 2F + 3] projection and the
// gradients written into column blocks of a poisoned [N, 2F + 5] buffer (whose other
// columns must stay poisoned), or everything contiguous; da or db left out in turn.
START_TEST(test_gate) {
    NEED(gate_forward);
    NEED(gate_backward);
    Rng rng = test_rng(8);
    int N = big ? 2048 : 19, F = big ? 1376 : 40;
    for (int kind = 0; kind < 2; kind++) {
        for (int layout = 0; layout < 4;
             layout++) { // 0: contiguous, 1: strided, 2: no db, 3: no da
            GateKind gk = kind ? GATE_SWISH : GATE_MUL;
            bool strided = layout > 0, with_da = layout != 3, with_db = layout != 2;
            int ldab = strided ? 2 * F + 3 : F, ca = 0, cb = strided ? F + 2 : 0;
            int ldg = strided ? 2 * F + 5 : F, cda = strided ? 1 : 0, cdb = strided ? F + 4 : 0;
            float *abuf, *bbuf = NULL, *dout;
            Act *d_abuf = be_rand_act(be, &rng, (long)N * ldab, 1.5f, &abuf);
            Act *d_bbuf = strided ? d_abuf : be_rand_act(be, &rng, (long)N * F, 1.0f, &bbuf);
            const float *bsrc = strided ? abuf : bbuf;
            Act *d_dout = be_rand_act(be, &rng, (long)N * F, 1.0f, &dout);
            Act *out = poison_act((long)N * F);
            Act *gda = poison_act((long)N * ldg), *gdb = strided ? gda : poison_act((long)N * F);
            Act *pa = act_at(be, d_abuf, ca), *pb = act_at(be, d_bbuf, cb);
            be->ops->gate_forward(be, out, pa, ldab, pb, ldab, N, F, gk);
            be->ops->gate_backward(be, with_da ? act_at(be, gda, cda) : NULL, ldg,
                                   with_db ? act_at(be, gdb, cdb) : NULL, ldg, d_dout, pa, ldab, pb,
                                   ldab, N, F, gk);
            float *a = cols_of(abuf, ldab, N, ca, F), *b = cols_of(bsrc, ldab, N, cb, F);
            float *want = zeros((long)N * F), *wda = zeros((long)N * F), *wdb = zeros((long)N * F);
            if (gk == GATE_SWISH) {
                swiglu_forward(want, a, b, (long)N * F);
                swiglu_backward(wda, wdb, dout, a, b, (long)N * F);
            } else {
                mul_forward(want, a, b, (long)N * F);
                mul_backward(wda, wdb, dout, a, b, (long)N * F);
            }
            expect_act(out, want, (long)N * F, "gate out");
            float *ga = be_read_act(be, gda, (long)N * ldg);
            float *gb = strided ? ga : be_read_act(be, gdb, (long)N * F);
            float *got_a = cols_of(ga, ldg, N, cda, F), *got_b = cols_of(gb, ldg, N, cdb, F);
            if (with_da) be_expect_close(got_a, wda, (long)N * F, tol, "gate da");
            if (with_db) be_expect_close(got_b, wdb, (long)N * F, tol, "gate db");
            if (!with_da) ck_assert_msg(all_nan(got_a, (long)N * F), "gate: da written when NULL");
            if (!with_db) ck_assert_msg(all_nan(got_b, (long)N * F), "gate: db written when NULL");
            if (strided) { // the columns outside both blocks stay poisoned
                for (int n = 0; n < N; n++) {
                    ck_assert(isnan(ga[(long)n * ldg]) && isnan(ga[(long)n * ldg + F + 1]));
                    ck_assert(isnan(ga[(long)n * ldg + F + 2]) && isnan(ga[(long)n * ldg + F + 3]));
                    ck_assert(isnan(ga[(long)n * ldg + 2 * F + 4]));
                }
            }
            free(abuf), free(bbuf), free(dout), free(a), free(b), free(want), free(wda);
            free(wdb), free(ga), free(got_a), free(got_b);
            if (!strided) free(gb);
            dfree(d_abuf), dfree(d_dout), dfree(out), dfree(gda);
            if (!strided) dfree(d_bbuf), dfree(gdb);
        }
    }
}
END_TEST

// GLA's gate logsigmoid(x) * scale, forward and backward (written).
START_TEST(test_logsigmoid) {
    NEED(logsigmoid_forward);
    NEED(logsigmoid_backward);
    Rng rng = test_rng(9);
    long n = big ? 1000003 : 1001;
    float scales[2] = {1.0f / 16, 1.0f};
    for (int s = 0; s < 2; s++) {
        float *x, *dout;
        Act *d_x = be_rand_act(be, &rng, n, 4.0f, &x),
            *d_dout = be_rand_act(be, &rng, n, 1.0f, &dout);
        Act *out = poison_act(n), *dx = poison_act(n);
        be->ops->logsigmoid_forward(be, out, d_x, scales[s], n);
        be->ops->logsigmoid_backward(be, dx, d_dout, d_x, scales[s], n);
        float *want = zeros(n), *want_dx = zeros(n);
        logsigmoid_forward(want, x, scales[s], n);
        logsigmoid_backward(want_dx, dout, x, scales[s], n);
        expect_act(out, want, n, "logsigmoid out");
        expect_act(dx, want_dx, n, "logsigmoid dx");
        free(x), free(dout), free(want), free(want_dx);
        dfree(d_x), dfree(d_dout), dfree(out), dfree(dx);
    }
}
END_TEST

// ---- RoPE -----------------------------------------------------------------------------

// RoPE in place on x, a column block of a [N, ld] projection, with positions restarting
// per sequence (two sequences) or arbitrary; the reference rotates each row at its
// position. The other columns must be untouched. On fp32 the results equal the reference
// bit for bit.
START_TEST(test_rope) {
    NEED(rope_forward);
    NEED(rope_backward);
    Rng rng = test_rng(10);
    int N = big ? 2048 : 29, H = big ? 8 : 3, hd = big ? 128 : 16;
    float thetas[2] = {10000.0f, 500000.0f};
    for (int c = 0; c < 8; c++) {
        bool backward = c & 1, arbitrary = c & 2;
        // col 8: every head's halves 16-byte aligned (the vector path); col 5: not
        int col = c & 4 ? 5 : 8, ld = H * hd + 2 * hd + col;
        float theta = thetas[c / 2 % 2];
        int *pos = xmalloc((size_t)N * sizeof(int));
        for (int n = 0; n < N; n++)
            pos[n] = arbitrary ? (int)(rng_next(&rng) % 100000) : (n < N / 3 ? n : n - N / 3);
        int *d_pos = be_ints(be, pos, N);
        float *buf;
        Act *d_buf = be_rand_act(be, &rng, (long)N * ld, 1.0f, &buf);
        Act *x = act_at(be, d_buf, col);
        if (backward) {
            be->ops->rope_backward(be, x, ld, d_pos, N, H, hd, theta);
        } else {
            be->ops->rope_forward(be, x, ld, d_pos, N, H, hd, theta);
        }
        float *want = copy_tensor(buf, (long)N * ld), *row = zeros((long)H * hd);
        for (int n = 0; n < N; n++) {
            float *xr = want + (long)n * ld + col;
            if (backward) {
                memset(row, 0, (size_t)H * hd * sizeof(float));
                rope_backward(row, xr, 1, 1, H, hd, theta, pos[n]);
            } else {
                rope_forward(row, xr, 1, 1, H, hd, theta, pos[n]);
            }
            memcpy(xr, row, (size_t)H * hd * sizeof(float));
        }
        float *got = be_read_act(be, d_buf, (long)N * ld);
        be_expect_close(got, want, (long)N * ld, tol, backward ? "rope backward" : "rope forward");
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < ld; j++) {
                if (j >= col && j < col + H * hd) continue;
                ck_assert_msg(got[(long)n * ld + j] == buf[(long)n * ld + j],
                              "rope: column %d outside x changed", j);
            }
        }
        if (fp32_acts())
            ck_assert_msg(memcmp(got, want, (size_t)N * ld * sizeof(float)) == 0,
                          "rope: not bit-identical to the reference");
        free(pos), free(buf), free(want), free(row), free(got);
        dfree(d_pos), dfree(d_buf);
    }
}
END_TEST

// ---- loss, reductions, optimizer --------------------------------------------------------

// The fused LM head + cross-entropy, V = 1000 and V no multiple of 8 (on CUDA rows held
// in registers with one, two, four and eight groups of four logits a thread, the longest
// such row, rows held in shared memory when there is a gradient pass, 40000 and 50257 (on
// a GPU with 227 KB of it a block), and a row too long for that, 65537), about a fifth of
// the targets ignored; losses and dh written, dW accumulating, in three modes: both
// gradients, dh alone (dW NULL), neither (losses only).
START_TEST(test_cross_entropy) {
    NEED(lm_head_cross_entropy);
    Rng rng = test_rng(11);
    static const int SHAPES[][3] = {{50, 32, 1000},  {37, 40, 997},   {48, 32, 5001},
                                    {32, 40, 12289}, {40, 32, 32003}, {32, 48, 32768},
                                    {33, 32, 40000}, {17, 32, 65537}, {1024, 512, 50257}};
    for (int s = 0; s < (big ? 9 : 8); s++) {
        int N = SHAPES[s][0], D = SHAPES[s][1], V = SHAPES[s][2];
        for (int mode = 0; mode < 3; mode++) {
            bool with_dh = mode < 2, with_dw = mode == 0;
            float grad_scale = 0.37f;
            int *targets = xmalloc((size_t)N * sizeof(int));
            for (int n = 0; n < N; n++)
                targets[n] = rng_uniform(&rng) < 0.2f ? -1 : (int)(rng_next(&rng) % (uint64_t)V);
            targets[0] = V - 1;
            int *d_targets = be_ints(be, targets, N);
            float *h, *W;
            Act *d_h = be_rand_act(be, &rng, (long)N * D, 1.0f, &h);
            Act *d_W = be_rand_act(be, &rng, (long)V * D, 0.2f, &W);
            float *losses = poison_f32(N);
            Act *dh = with_dh ? poison_act((long)N * D) : NULL;
            float *dW = rand_tensor(&rng, (long)V * D, 0.01f), *d_dW = be_f32(be, dW, (long)V * D);
            be->ops->lm_head_cross_entropy(be, losses, dh, with_dw ? d_dW : NULL, d_h, d_W,
                                           d_targets, N, D, V, grad_scale);
            float *want = zeros(N), *want_dh = zeros((long)N * D);
            lm_head_cross_entropy(want, with_dh ? want_dh : NULL, with_dw ? dW : NULL, h, W,
                                  targets, N, D, V, grad_scale);
            expect_f32(losses, want, N, "cross-entropy losses");
            float *got = be_read_f32(be, losses, N);
            for (int n = 0; n < N; n++)
                if (targets[n] < 0) ck_assert_msg(got[n] == 0.0f, "ignored target's loss not 0");
            if (with_dh) expect_act(dh, want_dh, (long)N * D, "cross-entropy dh");
            expect_f32(d_dW, dW, (long)V * D, "cross-entropy dW");
            free(targets), free(h), free(W), free(dW), free(want), free(want_dh), free(got);
            dfree(d_targets), dfree(d_h), dfree(d_W), dfree(losses), dfree(dh), dfree(d_dW);
        }
    }
}
END_TEST

// acc += scale * sum(x) and acc += sum(x^2), twice each (they accumulate), against fp64.
START_TEST(test_reductions) {
    NEED(sum_into);
    NEED(sum_squares_into);
    Rng rng = test_rng(12);
    long sizes[3] = {1, 100003, 1L << 24};
    for (int s = 0; s < (big ? 3 : 2); s++) {
        long n = sizes[s];
        float *x = xmalloc((size_t)n * sizeof(float));
        for (long i = 0; i < n; i++) x[i] = rng_uniform(&rng) * 3.0f;
        float *d_x = be_f32(be, x, n), init = 1.5f;
        float *acc = be_f32(be, &init, 1), *acc2 = be_f32(be, &init, 1);
        be->ops->sum_into(be, acc, d_x, n, 0.25f);
        be->ops->sum_into(be, acc, d_x, n, 0.25f);
        be->ops->sum_squares_into(be, acc2, d_x, n);
        be->ops->sum_squares_into(be, acc2, d_x, n);
        double sum = 0, sq = 0;
        for (long i = 0; i < n; i++) sum += x[i], sq += (double)x[i] * x[i];
        float want = (float)(1.5 + 0.5 * sum), want2 = (float)(1.5 + 2.0 * sq);
        expect_f32(acc, &want, 1, "sum_into");
        expect_f32(acc2, &want2, 1, "sum_squares_into");
        free(x);
        dfree(d_x), dfree(acc), dfree(acc2);
    }
}
END_TEST

// Attention transfer's MSE for n of no multiple of a block (a GPU also gets 2^22 + 5):
// acc += scale * sum((x - target)^2), called twice (it accumulates), and dx (poisoned
// before) = 2 * scale * (x - target). Both sides sum the same compute-type values in
// fp64, so the sum is held to 1e-5 on every backend; two calls into fresh accumulators
// give the same bits (a fixed-order sum).
START_TEST(test_mse_loss) {
    NEED(mse_loss);
    Rng rng = test_rng(14);
    long sizes[4] = {1, 1000, 100003, (1L << 22) + 5};
    for (int s = 0; s < (big ? 4 : 3); s++) {
        long n = sizes[s];
        float *x, *target, init = 1.5f, scale = 0.37f / (float)n;
        Act *d_x = be_rand_act(be, &rng, n, 1.0f, &x),
            *d_t = be_rand_act(be, &rng, n, 1.0f, &target);
        float *acc = be_f32(be, &init, 1), *acc1 = be_f32(be, &init, 1),
              *acc2 = be_f32(be, &init, 1);
        Act *dx = poison_act(n);
        be->ops->mse_loss(be, acc, dx, d_x, d_t, n, scale);
        be->ops->mse_loss(be, acc, dx, d_x, d_t, n, scale);
        float *want_dx = zeros(n);
        float want = (float)(1.5 + 2.0 * scale * mse_loss(want_dx, x, target, n, scale));
        float *got = be_read_f32(be, acc, 1);
        be_expect_close(got, &want, 1, 1e-5, "mse_loss sum");
        expect_act(dx, want_dx, n, "mse_loss dx");
        be->ops->mse_loss(be, acc1, dx, d_x, d_t, n, scale);
        be->ops->mse_loss(be, acc2, dx, d_x, d_t, n, scale);
        float *got1 = be_read_f32(be, acc1, 1), *got2 = be_read_f32(be, acc2, 1);
        ck_assert_msg(memcmp(got1, got2, sizeof(float)) == 0, "mse_loss: %.9g then %.9g",
                      (double)got1[0], (double)got2[0]);
        free(x), free(target), free(want_dx), free(got), free(got1), free(got2);
        dfree(d_x), dfree(d_t), dfree(acc), dfree(acc1), dfree(acc2), dfree(dx);
    }
}
END_TEST

// Logit distillation at T = 1 and T = 2 for V = 1000, 997 (no multiple of 8) and 50257
// (GPT-2's; a GPU also gets more rows and 151936), about a fifth of the targets ignored:
// kl, ce and dlogits (all poisoned before) against the fp64 reference. The teacher's
// logits are spread (std 3) and the student's follow them in part, so the KL is well
// away from 0. kl and ce come from fp32 logits with fp32 / fp64 sums: held to 1e-4 on a
// bf16 backend (an fp32 emulation of the CUDA kernel's arithmetic is within 1e-6);
// dlogits, in the compute type, to tol.
START_TEST(test_kd_loss) {
    NEED(kd_loss);
    Rng rng = test_rng(15);
    static const int SHAPES[][2] = {{9, 1000}, {7, 997}, {3, 50257}, {64, 50257}, {16, 151936}};
    double tol_loss = fp32_acts() ? tol : 1e-4;
    for (int s = 0; s < (big ? 5 : 3); s++) {
        for (int k = 0; k < 2; k++) {
            int N = SHAPES[s][0], V = SHAPES[s][1];
            long NV = (long)N * V;
            float T = k == 0 ? 1.0f : 2.0f, grad_scale = 0.37f;
            float *teacher = rand_tensor(&rng, NV, 3.0f), *student = rand_tensor(&rng, NV, 1.5f);
            for (long i = 0; i < NV; i++) student[i] += 0.7f * teacher[i];
            int *targets = xmalloc((size_t)N * sizeof(int));
            for (int n = 0; n < N; n++)
                targets[n] = rng_uniform(&rng) < 0.2f ? -1 : (int)(rng_next(&rng) % (uint64_t)V);
            targets[0] = V - 1;
            targets[N - 1] = -1;
            float *d_s = be_f32(be, student, NV), *d_t = be_f32(be, teacher, NV);
            int *d_targets = be_ints(be, targets, N);
            float *kl = poison_f32(N), *ce = poison_f32(N);
            Act *dlogits = poison_act(NV);
            be->ops->kd_loss(be, kl, ce, dlogits, d_s, d_t, d_targets, N, V, T, grad_scale);
            float *want_kl = zeros(N), *want_ce = zeros(N), *want_d = zeros(NV);
            kd_loss(want_kl, want_ce, want_d, student, teacher, targets, N, V, T, grad_scale);
            float *got_kl = be_read_f32(be, kl, N), *got_ce = be_read_f32(be, ce, N);
            be_expect_close(got_kl, want_kl, N, tol_loss, "kd_loss kl");
            be_expect_close(got_ce, want_ce, N, tol_loss, "kd_loss ce");
            for (int n = 0; n < N; n++)
                if (targets[n] < 0) ck_assert_msg(got_ce[n] == 0.0f, "ignored target's ce not 0");
            expect_act(dlogits, want_d, NV, "kd_loss dlogits");
            free(teacher), free(student), free(targets), free(want_kl), free(want_ce);
            free(want_d), free(got_kl), free(got_ce);
            dfree(d_s), dfree(d_t), dfree(d_targets), dfree(kl), dfree(ce), dfree(dlogits);
        }
    }
}
END_TEST

// One AdamW step with a gradient scale (clipping), with w's compute copy apart (poisoned
// before) and, where activations are fp32, the same memory as w; grad is left as it was.
// On fp32 a scale of 1 reproduces the reference bit for bit.
START_TEST(test_adamw) {
    NEED(adamw_update);
    Rng rng = test_rng(13);
    long n = big ? (1L << 22) + 3 : 10007;
    for (int c = 0; c < (fp32_acts() ? 3 : 1); c++) { // 0: apart, 1: w_act is w, 2: scale 1
        float grad_scale = c == 2 ? 1.0f : 0.5f;
        float *w = rand_tensor(&rng, n, 1.0f), *g = rand_tensor(&rng, n, 1.0f);
        float *m = rand_tensor(&rng, n, 0.1f), *v = rand_tensor(&rng, n, 0.1f);
        for (long i = 0; i < n; i++) v[i] *= v[i];
        float *d_w = be_f32(be, w, n), *d_g = be_f32(be, g, n), *d_m = be_f32(be, m, n);
        float *d_v = be_f32(be, v, n);
        Act *w_act = c == 1 ? (Act *)d_w : poison_act(n);
        be->ops->adamw_update(be, d_w, w_act, d_g, d_m, d_v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                              grad_scale, 3);
        float *gs = copy_tensor(g, n);
        for (long i = 0; i < n; i++) gs[i] *= grad_scale;
        adamw_update(w, gs, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3);
        expect_f32(d_w, w, n, "adamw w");
        expect_f32(d_m, m, n, "adamw m");
        expect_f32(d_v, v, n, "adamw v");
        expect_act(w_act, w, n, "adamw w_act");
        float *got_g = be_read_f32(be, d_g, n);
        ck_assert_msg(memcmp(got_g, g, (size_t)n * sizeof(float)) == 0, "adamw changed grad");
        if (c == 2) {
            float *got = be_read_f32(be, d_w, n);
            ck_assert_msg(memcmp(got, w, (size_t)n * sizeof(float)) == 0,
                          "adamw: scale 1 not bit-identical to the reference");
            free(got);
        }
        free(w), free(g), free(m), free(v), free(gs), free(got_g);
        dfree(d_w), dfree(d_g), dfree(d_m), dfree(d_v);
        if (c != 1) dfree(w_act);
    }
}
END_TEST

static Suite *backend_ops_suite(void) {
    Suite *s = suite_create("backend_ops");
    TCase *tc = tcase_create(device);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_memory);
    tcase_add_test(tc, test_matmul_forward);
    tcase_add_test(tc, test_matmul_backward);
    tcase_add_test(tc, test_logits_forward);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_norm_forward);
    tcase_add_test(tc, test_residual_norm_forward);
    tcase_add_test(tc, test_norm_backward);
    tcase_add_test(tc, test_gate);
    tcase_add_test(tc, test_logsigmoid);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_cross_entropy);
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_mse_loss);
    tcase_add_test(tc, test_kd_loss);
    tcase_add_test(tc, test_adamw);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    device = be_test_device("test_backend_ops");
    printf("test_backend_ops: backend %s\n", device);
    return run_suite(backend_ops_suite());
}
