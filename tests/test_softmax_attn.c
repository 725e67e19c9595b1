// tests/test_softmax_attn.c: causal GQA softmax attention against a naive double-precision
// full-matrix reference (forward, lse and backward), finite differences, decoding against a
// KV cache, the accumulate convention, large logits and thread-count independence.
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "testing.h"

// One problem: shapes and inputs.
typedef struct Attn {
    int B, Tq, Tk, H, Hkv, hd;
    float *q, *k, *v;
} Attn;

static long q_size(const Attn *a) {
    return (long)a->B * a->Tq * a->H * a->hd;
}
static long kv_size(const Attn *a) {
    return (long)a->B * a->Tk * a->Hkv * a->hd;
}
static long lse_size(const Attn *a) {
    return (long)a->B * a->H * a->Tq;
}

static Attn attn_make(Rng *rng, int B, int Tq, int Tk, int H, int Hkv, int hd, float q_std) {
    Attn a = {B, Tq, Tk, H, Hkv, hd, NULL, NULL, NULL};
    a.q = rand_tensor(rng, q_size(&a), q_std);
    a.k = rand_tensor(rng, kv_size(&a), 1.0f);
    a.v = rand_tensor(rng, kv_size(&a), 1.0f);
    return a;
}

static void attn_free(Attn *a) {
    free(a->q), free(a->k), free(a->v);
}

static void attn_forward(const Attn *a, float *o, float *lse) {
    softmax_attn_forward(o, lse, a->q, a->k, a->v, a->B, a->Tq, a->Tk, a->H, a->Hkv, a->hd);
}

static void attn_backward(const Attn *a, float *dq, float *dk, float *dv, const float *dout,
                          const float *o, const float *lse) {
    softmax_attn_backward(dq, dk, dv, dout, o, lse, a->q, a->k, a->v, a->B, a->Tq, a->Tk, a->H,
                          a->Hkv, a->hd);
}

// The naive reference in double: the full probability matrix of each (b, h), the output, lse
// and, if dout is non-NULL, the gradients (written, not accumulated).
static void naive_attention(const Attn *a, double *o, double *lse, const float *dout, double *dq,
                            double *dk, double *dv) {
    int group = a->H / a->Hkv, Tq = a->Tq, Tk = a->Tk, hd = a->hd;
    double scale = 1.0 / sqrt((double)hd);
    double *P = xmalloc((size_t)Tq * Tk * sizeof(double));
    double *dS = xmalloc((size_t)Tk * sizeof(double));
    if (dout) {
        memset(dq, 0, q_size(a) * sizeof(double));
        memset(dk, 0, kv_size(a) * sizeof(double));
        memset(dv, 0, kv_size(a) * sizeof(double));
    }
    for (int b = 0; b < a->B; b++) {
        for (int h = 0; h < a->H; h++) {
            int hk = h / group;
            for (int t = 0; t < Tq; t++) {
                const float *qt = a->q + (((long)b * Tq + t) * a->H + h) * hd;
                int keys = Tk - Tq + t + 1;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s < Tk; s++) {
                    const float *ks = a->k + (((long)b * Tk + s) * a->Hkv + hk) * hd;
                    double sc = 0;
                    for (int i = 0; i < hd; i++) sc += (double)qt[i] * ks[i];
                    P[(long)t * Tk + s] = s < keys ? sc * scale : -INFINITY;
                    if (s < keys && P[(long)t * Tk + s] > mx) mx = P[(long)t * Tk + s];
                }
                for (int s = 0; s < Tk; s++) sum += exp(P[(long)t * Tk + s] - mx);
                lse[((long)b * a->H + h) * Tq + t] = mx + log(sum);
                double *ot = o + (((long)b * Tq + t) * a->H + h) * hd;
                for (int i = 0; i < hd; i++) ot[i] = 0;
                for (int s = 0; s < Tk; s++) {
                    double p = exp(P[(long)t * Tk + s] - mx) / sum;
                    P[(long)t * Tk + s] = p;
                    const float *vs = a->v + (((long)b * Tk + s) * a->Hkv + hk) * hd;
                    for (int i = 0; i < hd; i++) ot[i] += p * vs[i];
                }
                if (!dout) continue;
                const float *dot = dout + (((long)b * Tq + t) * a->H + h) * hd;
                double D = 0;
                for (int i = 0; i < hd; i++) D += dot[i] * ot[i];
                for (int s = 0; s < Tk; s++) {
                    const float *vs = a->v + (((long)b * Tk + s) * a->Hkv + hk) * hd;
                    double dp = 0;
                    for (int i = 0; i < hd; i++) dp += (double)dot[i] * vs[i];
                    dS[s] = P[(long)t * Tk + s] * (dp - D);
                }
                double *dqt = dq + (((long)b * Tq + t) * a->H + h) * hd;
                for (int s = 0; s < Tk; s++) {
                    long kv = (((long)b * Tk + s) * a->Hkv + hk) * hd;
                    for (int i = 0; i < hd; i++) {
                        dqt[i] += scale * dS[s] * a->k[kv + i];
                        dk[kv + i] += scale * dS[s] * qt[i];
                        dv[kv + i] += P[(long)t * Tk + s] * dot[i];
                    }
                }
            }
        }
    }
    free(P);
    free(dS);
}

// ||a - b|| / ||b|| with b in double.
static double rel_error_double(const float *a, const double *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return isnan(num) ? INFINITY : sqrt(num) / fmax(sqrt(den), 1e-30);
}

// Forward, lse and backward against the double reference for Tq = Tk and Tq < Tk, GQA groups
// 1, 2 and 4, lengths below and above the 64-key block of the online softmax.
START_TEST(test_matches_naive) {
    const int shapes[][2] = {{37, 37}, {13, 50}, {130, 130}, {70, 150}};
    const int kv_heads[] = {4, 2, 1};
    double worst_fwd = 0, worst_bwd = 0;
    Rng rng = rng_seeded(11);
    for (int si = 0; si < 4; si++) {
        for (int gi = 0; gi < 3; gi++) {
            Attn a = attn_make(&rng, 2, shapes[si][0], shapes[si][1], 4, kv_heads[gi], 16, 1.0f);
            float *o = zeros(q_size(&a)), *lse = zeros(lse_size(&a));
            attn_forward(&a, o, lse);
            float *dout = rand_tensor(&rng, q_size(&a), 1.0f);
            float *dq = zeros(q_size(&a)), *dk = zeros(kv_size(&a)), *dv = zeros(kv_size(&a));
            attn_backward(&a, dq, dk, dv, dout, o, lse);
            double *o_ref = xmalloc(q_size(&a) * sizeof(double));
            double *lse_ref = xmalloc(lse_size(&a) * sizeof(double));
            double *dq_ref = xmalloc(q_size(&a) * sizeof(double));
            double *dk_ref = xmalloc(kv_size(&a) * sizeof(double));
            double *dv_ref = xmalloc(kv_size(&a) * sizeof(double));
            naive_attention(&a, o_ref, lse_ref, dout, dq_ref, dk_ref, dv_ref);
            double e_o = rel_error_double(o, o_ref, q_size(&a));
            double e_lse = 0;
            for (long i = 0; i < lse_size(&a); i++) e_lse = fmax(e_lse, fabs(lse[i] - lse_ref[i]));
            double e_dq = rel_error_double(dq, dq_ref, q_size(&a));
            double e_dk = rel_error_double(dk, dk_ref, kv_size(&a));
            double e_dv = rel_error_double(dv, dv_ref, kv_size(&a));
            worst_fwd = fmax(worst_fwd, fmax(e_o, e_lse));
            worst_bwd = fmax(worst_bwd, fmax(e_dq, fmax(e_dk, e_dv)));
            ck_assert_msg(e_o < 1e-5, "Tq %d Tk %d Hkv %d: o rel err %.3g", a.Tq, a.Tk, a.Hkv, e_o);
            ck_assert_msg(e_lse < 1e-5, "lse abs err %.3g", e_lse);
            ck_assert_msg(e_dq < 1e-4, "Tq %d Tk %d Hkv %d: dq %.3g", a.Tq, a.Tk, a.Hkv, e_dq);
            ck_assert_msg(e_dk < 1e-4, "Tq %d Tk %d Hkv %d: dk %.3g", a.Tq, a.Tk, a.Hkv, e_dk);
            ck_assert_msg(e_dv < 1e-4, "Tq %d Tk %d Hkv %d: dv %.3g", a.Tq, a.Tk, a.Hkv, e_dv);
            free(o), free(lse), free(dout), free(dq), free(dk), free(dv);
            free(o_ref), free(lse_ref), free(dq_ref), free(dk_ref), free(dv_ref);
            attn_free(&a);
        }
    }
    printf("softmax attn vs naive: forward/lse worst %.3g, backward worst %.3g\n", worst_fwd,
           worst_bwd);
}
END_TEST

// Large logits (q scaled by 30) stay finite and accurate: the online softmax subtracts the
// running max.
START_TEST(test_large_logits) {
    Rng rng = rng_seeded(22);
    Attn a = attn_make(&rng, 1, 100, 100, 2, 1, 16, 30.0f);
    float *o = zeros(q_size(&a)), *lse = zeros(lse_size(&a));
    attn_forward(&a, o, lse);
    double *o_ref = xmalloc(q_size(&a) * sizeof(double));
    double *lse_ref = xmalloc(lse_size(&a) * sizeof(double));
    naive_attention(&a, o_ref, lse_ref, NULL, NULL, NULL, NULL);
    for (long i = 0; i < q_size(&a); i++) ck_assert(isfinite(o[i]));
    double err = rel_error_double(o, o_ref, q_size(&a));
    ck_assert_msg(err < 1e-5, "o rel err %.3g", err);
    free(o), free(lse), free(o_ref), free(lse_ref);
    attn_free(&a);
}
END_TEST

// loss = dot(o, R) for the finite-difference check.
typedef struct LossCtx {
    Attn *a;
    const float *R;
    float *o, *lse;
} LossCtx;

static double attn_loss(void *ctx) {
    LossCtx *c = ctx;
    attn_forward(c->a, c->o, c->lse);
    return dot_double(c->o, c->R, q_size(c->a));
}

START_TEST(test_finite_differences) {
    const int kv_heads[] = {2, 1};
    Rng rng = rng_seeded(33);
    for (int gi = 0; gi < 2; gi++) {
        Attn a = attn_make(&rng, 1, 20, 29, 2, kv_heads[gi], 8, 1.0f);
        float *R = rand_tensor(&rng, q_size(&a), 1.0f);
        LossCtx c = {&a, R, zeros(q_size(&a)), zeros(lse_size(&a))};
        attn_forward(&a, c.o, c.lse);
        float *dq = zeros(q_size(&a)), *dk = zeros(kv_size(&a)), *dv = zeros(kv_size(&a));
        attn_backward(&a, dq, dk, dv, R, c.o, c.lse);
        const char *names[] = {"q", "k", "v"};
        float *x[] = {a.q, a.k, a.v}, *dx[] = {dq, dk, dv};
        long n[] = {q_size(&a), kv_size(&a), kv_size(&a)};
        for (int m = 0; m < 3; m++) {
            double err = grad_check(attn_loss, &c, x[m], dx[m], n[m], 80, 1e-2f, &rng);
            printf("softmax attn fd Hkv %d d%s: rel err %.3g\n", a.Hkv, names[m], err);
            ck_assert_msg(err < 1e-2, "Hkv %d: d%s rel err %.3g", a.Hkv, names[m], err);
        }
        free(R), free(c.o), free(c.lse), free(dq), free(dk), free(dv);
        attn_free(&a);
    }
}
END_TEST

// Decoding: the last query alone against all keys (Tq = 1), and the last 5 queries
// (Tq = 5), reproduce the last rows of the full run.
START_TEST(test_decode_matches_full) {
    Rng rng = rng_seeded(44);
    Attn full = attn_make(&rng, 2, 90, 90, 4, 2, 16, 1.0f);
    float *o = zeros(q_size(&full)), *lse = zeros(lse_size(&full));
    attn_forward(&full, o, lse);
    const int tails[] = {1, 5};
    for (int ti = 0; ti < 2; ti++) {
        int n = tails[ti], t0 = full.Tq - n;
        Attn tail = full;
        tail.Tq = n;
        long row = (long)full.H * full.hd;
        tail.q = xmalloc(q_size(&tail) * sizeof(float));
        for (int b = 0; b < full.B; b++)
            memcpy(tail.q + (long)b * n * row, full.q + ((long)b * full.Tq + t0) * row,
                   n * row * sizeof(float));
        float *o_tail = zeros(q_size(&tail)), *lse_tail = zeros(lse_size(&tail));
        attn_forward(&tail, o_tail, lse_tail);
        for (int b = 0; b < full.B; b++) {
            const float *want = o + ((long)b * full.Tq + t0) * row;
            double err = rel_error(o_tail + (long)b * n * row, want, n * row);
            ck_assert_msg(err < 1e-6, "Tq %d: o differs from the full run (%.3g)", n, err);
            for (int h = 0; h < full.H; h++) {
                for (int t = 0; t < n; t++) {
                    float got = lse_tail[((long)b * full.H + h) * n + t];
                    float ref = lse[((long)b * full.H + h) * full.Tq + t0 + t];
                    ck_assert_msg(fabsf(got - ref) < 1e-5f, "lse %g vs %g", got, ref);
                }
            }
        }
        free(tail.q), free(o_tail), free(lse_tail);
    }
    free(o), free(lse);
    attn_free(&full);
}
END_TEST

// Backward adds to the gradient buffers.
START_TEST(test_accumulates) {
    Rng rng = rng_seeded(55);
    Attn a = attn_make(&rng, 2, 30, 40, 4, 2, 8, 1.0f);
    float *o = zeros(q_size(&a)), *lse = zeros(lse_size(&a));
    attn_forward(&a, o, lse);
    float *dout = rand_tensor(&rng, q_size(&a), 1.0f);
    float *fresh[3] = {zeros(q_size(&a)), zeros(kv_size(&a)), zeros(kv_size(&a))};
    attn_backward(&a, fresh[0], fresh[1], fresh[2], dout, o, lse);
    long n[3] = {q_size(&a), kv_size(&a), kv_size(&a)};
    float *pre[3], *init[3];
    for (int m = 0; m < 3; m++)
        pre[m] = rand_tensor(&rng, n[m], 1.0f), init[m] = copy_tensor(pre[m], n[m]);
    attn_backward(&a, pre[0], pre[1], pre[2], dout, o, lse);
    for (int m = 0; m < 3; m++) {
        for (long i = 0; i < n[m]; i++) pre[m][i] -= init[m][i];
        double err = rel_error(pre[m], fresh[m], n[m]);
        ck_assert_msg(err < 1e-5, "gradient %d does not accumulate (%.3g)", m, err);
        free(fresh[m]), free(pre[m]), free(init[m]);
    }
    free(o), free(lse), free(dout);
    attn_free(&a);
}
END_TEST

// 1 and 2 OpenMP threads give bit-identical outputs and gradients.
START_TEST(test_thread_count_independent) {
    Rng rng = rng_seeded(66);
    Attn a = attn_make(&rng, 2, 50, 70, 4, 2, 16, 1.0f);
    float *dout = rand_tensor(&rng, q_size(&a), 1.0f);
    float *o[2], *lse[2], *dq[2], *dk[2], *dv[2];
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r + 1);
        o[r] = zeros(q_size(&a)), lse[r] = zeros(lse_size(&a));
        dq[r] = zeros(q_size(&a)), dk[r] = zeros(kv_size(&a)), dv[r] = zeros(kv_size(&a));
        attn_forward(&a, o[r], lse[r]);
        attn_backward(&a, dq[r], dk[r], dv[r], dout, o[r], lse[r]);
    }
    ck_assert(memcmp(o[0], o[1], q_size(&a) * sizeof(float)) == 0);
    ck_assert(memcmp(lse[0], lse[1], lse_size(&a) * sizeof(float)) == 0);
    ck_assert(memcmp(dq[0], dq[1], q_size(&a) * sizeof(float)) == 0);
    ck_assert(memcmp(dk[0], dk[1], kv_size(&a) * sizeof(float)) == 0);
    ck_assert(memcmp(dv[0], dv[1], kv_size(&a) * sizeof(float)) == 0);
    for (int r = 0; r < 2; r++) free(o[r]), free(lse[r]), free(dq[r]), free(dk[r]), free(dv[r]);
    free(dout);
    attn_free(&a);
}
END_TEST

// Shape errors die with a message: H not a multiple of Hkv, fewer keys than queries.
START_TEST(test_bad_groups_die) {
    Rng rng = rng_seeded(77);
    Attn a = attn_make(&rng, 1, 4, 4, 3, 2, 8, 1.0f);
    float *o = zeros(q_size(&a)), *lse = zeros(lse_size(&a));
    attn_forward(&a, o, lse);
}
END_TEST

START_TEST(test_too_few_keys_die) {
    Rng rng = rng_seeded(88);
    Attn a = attn_make(&rng, 1, 8, 8, 2, 2, 8, 1.0f);
    a.Tk = 4;
    float *o = zeros(q_size(&a)), *lse = zeros(lse_size(&a));
    attn_forward(&a, o, lse);
}
END_TEST

static Suite *softmax_attn_suite(void) {
    Suite *s = suite_create("softmax_attn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_matches_naive);
    tcase_add_test(tc, test_large_logits);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_decode_matches_full);
    tcase_add_test(tc, test_accumulates);
    tcase_add_test(tc, test_thread_count_independent);
    tcase_add_exit_test(tc, test_bad_groups_die, 1);
    tcase_add_exit_test(tc, test_too_few_keys_die, 1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(softmax_attn_suite());
}
