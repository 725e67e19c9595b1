// tests/test_gla.c: gated linear attention. The chunked form against the token-by-token
// recurrence (outputs, final state and every gradient), state round trips, finite-difference
// gradients of both forms, the accumulate convention, strong gates and thread-count
// independence.
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "testing.h"

enum { RECURRENT = 0 }; // the "chunk size" that selects the recurrent form in these helpers

// One problem: inputs of a GLA layer, with or without an initial state.
typedef struct Gla {
    int B, T, H, dk, dv;
    float scale;
    float *q, *k, *v, *g, *state_in; // state_in may be NULL
} Gla;

// Gradients of one backward call.
typedef struct GlaGrads {
    float *dq, *dk, *dv, *dg, *dstate_in;
} GlaGrads;

static long qk_size(const Gla *p) {
    return (long)p->B * p->T * p->H * p->dk;
}
static long v_size(const Gla *p) {
    return (long)p->B * p->T * p->H * p->dv;
}
static long state_size(const Gla *p) {
    return (long)p->B * p->H * p->dk * p->dv;
}

// rel_error with the denominator floored at 1: a gradient that is exactly zero (dg when
// there is no earlier state, T = 1) leaves only rounding noise of order 1e-7.
static double rel_error_floor(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return isnan(num) ? INFINITY : sqrt(num) / fmax(sqrt(den), 1.0);
}

static float softplus(float x) {
    return x > 20.0f ? x : log1pf(expf(x));
}

// Log-gates. Strong: -softplus(u), u uniform in [-6, 5], so g spans about -5 .. 0 per step.
// Weak: -softplus(N(0,1)) / 16, the size fla's gate normaliser gives.
static float *rand_gates(Rng *rng, long n, int strong) {
    float *g = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) {
        g[i] =
            strong ? -softplus(11.0f * rng_uniform(rng) - 6.0f) : -softplus(rng_normal(rng)) / 16;
    }
    return g;
}

static Gla gla_make(Rng *rng, int B, int T, int H, int dk, int dv, int strong, int with_state) {
    Gla p = {B, T, H, dk, dv, 1.0f / sqrtf((float)dk), NULL, NULL, NULL, NULL, NULL};
    p.q = rand_tensor(rng, qk_size(&p), 1.0f);
    p.k = rand_tensor(rng, qk_size(&p), 1.0f);
    p.v = rand_tensor(rng, v_size(&p), 1.0f);
    p.g = rand_gates(rng, qk_size(&p), strong);
    if (with_state) p.state_in = rand_tensor(rng, state_size(&p), 1.0f);
    return p;
}

static void gla_free(Gla *p) {
    free(p->q), free(p->k), free(p->v), free(p->g), free(p->state_in);
}

static GlaGrads grads_zero(const Gla *p) {
    GlaGrads d = {zeros(qk_size(p)), zeros(qk_size(p)), zeros(v_size(p)), zeros(qk_size(p)),
                  zeros(state_size(p))};
    return d;
}

static void grads_free(GlaGrads *d) {
    free(d->dq), free(d->dk), free(d->dv), free(d->dg), free(d->dstate_in);
}

// Forward in the chunked form (chunk > 0) or the recurrence (chunk == RECURRENT).
static void run_forward(const Gla *p, int chunk, float *o, float *state_out) {
    if (chunk == RECURRENT)
        gla_recurrent_forward(o, state_out, p->q, p->k, p->v, p->g, p->state_in, p->scale, p->B,
                              p->T, p->H, p->dk, p->dv);
    else
        gla_forward(o, state_out, p->q, p->k, p->v, p->g, p->state_in, p->scale, p->B, p->T, p->H,
                    p->dk, p->dv, chunk);
}

static void run_backward(const Gla *p, int chunk, GlaGrads *d, const float *dout,
                         const float *dstate_out) {
    if (chunk == RECURRENT)
        gla_recurrent_backward(d->dq, d->dk, d->dv, d->dg, d->dstate_in, dout, dstate_out, p->q,
                               p->k, p->v, p->g, p->state_in, p->scale, p->B, p->T, p->H, p->dk,
                               p->dv);
    else
        gla_backward(d->dq, d->dk, d->dv, d->dg, d->dstate_in, dout, dstate_out, p->q, p->k, p->v,
                     p->g, p->state_in, p->scale, p->B, p->T, p->H, p->dk, p->dv, chunk);
}

// Chunked == recurrent for every output and gradient, over chunk sizes, lengths that are not
// multiples of the chunk, with and without an initial state, weak and strong gates.
START_TEST(test_chunked_matches_recurrent) {
    const int chunks[] = {1, 16, 64}, lengths[] = {1, 37, 130};
    const double tol = 1e-4;
    double worst = 0;
    Rng rng = rng_seeded(101);
    for (int ci = 0; ci < 3; ci++) {
        for (int ti = 0; ti < 3; ti++) {
            for (int with_state = 0; with_state < 2; with_state++) {
                for (int strong = 0; strong < 2; strong++) {
                    Gla p = gla_make(&rng, 2, lengths[ti], 2, 16, 24, strong, with_state);
                    float *o_ref = zeros(v_size(&p)), *o = zeros(v_size(&p));
                    float *s_ref = zeros(state_size(&p)), *s = zeros(state_size(&p));
                    run_forward(&p, RECURRENT, o_ref, s_ref);
                    run_forward(&p, chunks[ci], o, s);
                    float *dout = rand_tensor(&rng, v_size(&p), 1.0f);
                    float *dstate_out = with_state ? rand_tensor(&rng, state_size(&p), 1.0f) : NULL;
                    GlaGrads ref = grads_zero(&p), got = grads_zero(&p);
                    run_backward(&p, RECURRENT, &ref, dout, dstate_out);
                    run_backward(&p, chunks[ci], &got, dout, dstate_out);
                    const char *names[] = {"o", "state_out", "dq", "dk", "dv", "dg", "dstate_in"};
                    const float *a[] = {o, s, got.dq, got.dk, got.dv, got.dg, got.dstate_in};
                    const float *b[] = {o_ref,  s_ref,  ref.dq,       ref.dk,
                                        ref.dv, ref.dg, ref.dstate_in};
                    long n[] = {v_size(&p), state_size(&p), qk_size(&p),   qk_size(&p),
                                v_size(&p), qk_size(&p),    state_size(&p)};
                    for (int m = 0; m < 7; m++) {
                        double err = rel_error_floor(a[m], b[m], n[m]);
                        if (err > worst) worst = err;
                        ck_assert_msg(err < tol,
                                      "%s: chunk %d T %d state %d strong %d: rel err %.3g",
                                      names[m], chunks[ci], lengths[ti], with_state, strong, err);
                    }
                    free(o_ref), free(o), free(s_ref), free(s), free(dout), free(dstate_out);
                    grads_free(&ref), grads_free(&got), gla_free(&p);
                }
            }
        }
    }
    printf("gla chunked vs recurrent: worst rel err %.3g (tol %.0e)\n", worst, tol);
}
END_TEST

// Copy time steps [t0, t0 + len) of x [B, T, H, d] into out [B, len, H, d] (or back when
// to_whole is set).
static void time_slice(float *whole, float *part, int B, int T, int H, int d, int t0, int len,
                       int to_whole) {
    long row = (long)H * d;
    for (int b = 0; b < B; b++) {
        float *w = whole + ((long)b * T + t0) * row, *s = part + (long)b * len * row;
        if (to_whole)
            memcpy(w, s, (size_t)len * row * sizeof(float));
        else
            memcpy(s, w, (size_t)len * row * sizeof(float));
    }
}

// The sub-problem of steps [t0, t0 + len) of p, with the given initial state (not owned).
static Gla gla_part(const Gla *p, int t0, int len, float *state_in) {
    Gla s = *p;
    s.T = len;
    s.q = zeros(qk_size(&s)), s.k = zeros(qk_size(&s)), s.g = zeros(qk_size(&s));
    s.v = zeros(v_size(&s));
    time_slice(p->q, s.q, p->B, p->T, p->H, p->dk, t0, len, 0);
    time_slice(p->k, s.k, p->B, p->T, p->H, p->dk, t0, len, 0);
    time_slice(p->g, s.g, p->B, p->T, p->H, p->dk, t0, len, 0);
    time_slice(p->v, s.v, p->B, p->T, p->H, p->dv, t0, len, 0);
    s.state_in = state_in;
    return s;
}

// Running two halves with the state passed between them equals one run, forward and
// backward (the backward of the second half hands its dstate_in to the first).
START_TEST(test_state_round_trip) {
    const int forms[] = {RECURRENT, 16, 64};
    Rng rng = rng_seeded(202);
    for (int fi = 0; fi < 3; fi++) {
        int chunk = forms[fi], T1 = 37, T2 = 63;
        Gla p = gla_make(&rng, 2, T1 + T2, 2, 16, 24, fi == 1, 1);
        float *o = zeros(v_size(&p)), *s = zeros(state_size(&p));
        run_forward(&p, chunk, o, s);
        float *dout = rand_tensor(&rng, v_size(&p), 1.0f);
        float *dstate_out = rand_tensor(&rng, state_size(&p), 1.0f);
        GlaGrads whole = grads_zero(&p);
        run_backward(&p, chunk, &whole, dout, dstate_out);

        float *s_mid = zeros(state_size(&p)), *s_end = zeros(state_size(&p));
        Gla p1 = gla_part(&p, 0, T1, p.state_in), p2 = gla_part(&p, T1, T2, s_mid);
        float *o1 = zeros(v_size(&p1)), *o2 = zeros(v_size(&p2)), *o_cat = zeros(v_size(&p));
        run_forward(&p1, chunk, o1, s_mid);
        run_forward(&p2, chunk, o2, s_end);
        time_slice(o_cat, o1, p.B, p.T, p.H, p.dv, 0, T1, 1);
        time_slice(o_cat, o2, p.B, p.T, p.H, p.dv, T1, T2, 1);
        ck_assert_msg(rel_error(o_cat, o, v_size(&p)) < 1e-5, "chunk %d: o differs", chunk);
        ck_assert_msg(rel_error(s_end, s, state_size(&p)) < 1e-5, "chunk %d: state", chunk);

        float *dout1 = zeros(v_size(&p1)), *dout2 = zeros(v_size(&p2));
        time_slice(dout, dout1, p.B, p.T, p.H, p.dv, 0, T1, 0);
        time_slice(dout, dout2, p.B, p.T, p.H, p.dv, T1, T2, 0);
        GlaGrads d1 = grads_zero(&p1), d2 = grads_zero(&p2), cat = grads_zero(&p);
        run_backward(&p2, chunk, &d2, dout2, dstate_out);
        run_backward(&p1, chunk, &d1, dout1, d2.dstate_in);
        float *whole_g[] = {whole.dq, whole.dk, whole.dg, whole.dv};
        float *cat_g[] = {cat.dq, cat.dk, cat.dg, cat.dv};
        float *g1[] = {d1.dq, d1.dk, d1.dg, d1.dv}, *g2[] = {d2.dq, d2.dk, d2.dg, d2.dv};
        for (int m = 0; m < 4; m++) {
            int d = m == 3 ? p.dv : p.dk;
            time_slice(cat_g[m], g1[m], p.B, p.T, p.H, d, 0, T1, 1);
            time_slice(cat_g[m], g2[m], p.B, p.T, p.H, d, T1, T2, 1);
            long n = m == 3 ? v_size(&p) : qk_size(&p);
            double err = rel_error(cat_g[m], whole_g[m], n);
            ck_assert_msg(err < 1e-5, "chunk %d: gradient %d differs: %.3g", chunk, m, err);
        }
        double err = rel_error(d1.dstate_in, whole.dstate_in, state_size(&p));
        ck_assert_msg(err < 1e-5, "chunk %d: dstate_in differs: %.3g", chunk, err);

        free(o), free(s), free(dout), free(dstate_out), free(s_mid), free(s_end);
        free(o1), free(o2), free(o_cat), free(dout1), free(dout2);
        grads_free(&whole), grads_free(&d1), grads_free(&d2), grads_free(&cat);
        p1.state_in = p2.state_in = NULL;
        gla_free(&p1), gla_free(&p2), gla_free(&p);
    }
}
END_TEST

// loss = dot(o, R1) + dot(state_out, R2), in double from the fp32 forward.
typedef struct LossCtx {
    Gla *p;
    int chunk;
    const float *R1, *R2;
    float *o, *state_out;
} LossCtx;

static double gla_loss(void *ctx) {
    LossCtx *c = ctx;
    run_forward(c->p, c->chunk, c->o, c->state_out);
    return dot_double(c->o, c->R1, v_size(c->p)) +
           dot_double(c->state_out, c->R2, state_size(c->p));
}

// Finite differences of q, k, v, g and state_in for the recurrence and two chunked forms
// (chunk 64: sub-chunks 16+16+5; chunk 20: chunks of 20 and 17, sub-chunks 16+4 and 16+1).
START_TEST(test_finite_differences) {
    const int forms[] = {RECURRENT, 64, 20};
    const double tol = 1e-2;
    Rng rng = rng_seeded(303);
    for (int fi = 0; fi < 3; fi++) {
        Gla p = gla_make(&rng, 1, 37, 2, 8, 6, 1, 1);
        // Half the gate values weak, so both regimes are probed.
        for (long i = 0; i < qk_size(&p); i += 2) p.g[i] /= 16;
        float *R1 = rand_tensor(&rng, v_size(&p), 1.0f),
              *R2 = rand_tensor(&rng, state_size(&p), 1.0f);
        LossCtx c = {&p, forms[fi], R1, R2, zeros(v_size(&p)), zeros(state_size(&p))};
        GlaGrads d = grads_zero(&p);
        run_backward(&p, forms[fi], &d, R1, R2);
        const char *names[] = {"q", "k", "v", "g", "state_in"};
        float *x[] = {p.q, p.k, p.v, p.g, p.state_in};
        float *dx[] = {d.dq, d.dk, d.dv, d.dg, d.dstate_in};
        long n[] = {qk_size(&p), qk_size(&p), v_size(&p), qk_size(&p), state_size(&p)};
        for (int m = 0; m < 5; m++) {
            double err = grad_check(gla_loss, &c, x[m], dx[m], n[m], 60, 1e-2f, &rng);
            printf("gla fd chunk %d d%s: rel err %.3g\n", forms[fi], names[m], err);
            ck_assert_msg(err < tol, "chunk %d: d%s rel err %.3g", forms[fi], names[m], err);
        }
        free(R1), free(R2), free(c.o), free(c.state_out);
        grads_free(&d), gla_free(&p);
    }
}
END_TEST

// Backward adds to whatever the gradient buffers hold; NULL dstate_in is allowed.
START_TEST(test_accumulates) {
    const int forms[] = {RECURRENT, 16};
    Rng rng = rng_seeded(404);
    for (int fi = 0; fi < 2; fi++) {
        Gla p = gla_make(&rng, 2, 45, 2, 8, 12, 0, 1);
        float *dout = rand_tensor(&rng, v_size(&p), 1.0f);
        float *dstate_out = rand_tensor(&rng, state_size(&p), 1.0f);
        GlaGrads fresh = grads_zero(&p);
        run_backward(&p, forms[fi], &fresh, dout, dstate_out);
        GlaGrads pre = {rand_tensor(&rng, qk_size(&p), 1.0f), rand_tensor(&rng, qk_size(&p), 1.0f),
                        rand_tensor(&rng, v_size(&p), 1.0f), rand_tensor(&rng, qk_size(&p), 1.0f),
                        rand_tensor(&rng, state_size(&p), 1.0f)};
        GlaGrads before = {copy_tensor(pre.dq, qk_size(&p)), copy_tensor(pre.dk, qk_size(&p)),
                           copy_tensor(pre.dv, v_size(&p)), copy_tensor(pre.dg, qk_size(&p)),
                           copy_tensor(pre.dstate_in, state_size(&p))};
        run_backward(&p, forms[fi], &pre, dout, dstate_out);
        float *after[] = {pre.dq, pre.dk, pre.dv, pre.dg, pre.dstate_in};
        float *init[] = {before.dq, before.dk, before.dv, before.dg, before.dstate_in};
        float *want[] = {fresh.dq, fresh.dk, fresh.dv, fresh.dg, fresh.dstate_in};
        long n[] = {qk_size(&p), qk_size(&p), v_size(&p), qk_size(&p), state_size(&p)};
        for (int m = 0; m < 5; m++) {
            for (long i = 0; i < n[m]; i++) after[m][i] -= init[m][i];
            double err = rel_error(after[m], want[m], n[m]);
            ck_assert_msg(err < 1e-5, "chunk %d: gradient %d does not accumulate (%.3g)", forms[fi],
                          m, err);
        }
        // Without dstate_in the other gradients are unchanged.
        GlaGrads no_state = grads_zero(&p);
        free(no_state.dstate_in);
        no_state.dstate_in = NULL;
        run_backward(&p, forms[fi], &no_state, dout, dstate_out);
        ck_assert(memcmp(no_state.dq, fresh.dq, qk_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(no_state.dg, fresh.dg, qk_size(&p) * sizeof(float)) == 0);
        free(dout), free(dstate_out);
        grads_free(&fresh), grads_free(&pre), grads_free(&before), grads_free(&no_state);
        gla_free(&p);
    }
}
END_TEST

// Very strong gates (every step -5, then -30 so exp underflows, mixed with g = 0) over long
// sequences stay finite and match the recurrence.
START_TEST(test_strong_gates) {
    const float levels[] = {-5.0f, -30.0f};
    Rng rng = rng_seeded(505);
    for (int li = 0; li < 2; li++) {
        Gla p = gla_make(&rng, 1, 200, 2, 16, 16, 1, 1);
        for (long i = 0; i < qk_size(&p); i++) p.g[i] = (i % 5 == 0) ? 0.0f : levels[li];
        float *o_ref = zeros(v_size(&p)), *o = zeros(v_size(&p));
        float *s_ref = zeros(state_size(&p)), *s = zeros(state_size(&p));
        run_forward(&p, RECURRENT, o_ref, s_ref);
        run_forward(&p, 64, o, s);
        float *dout = rand_tensor(&rng, v_size(&p), 1.0f);
        float *dstate_out = rand_tensor(&rng, state_size(&p), 1.0f);
        GlaGrads ref = grads_zero(&p), got = grads_zero(&p);
        run_backward(&p, RECURRENT, &ref, dout, dstate_out);
        run_backward(&p, 64, &got, dout, dstate_out);
        const float *a[] = {o, s, got.dq, got.dk, got.dv, got.dg, got.dstate_in};
        const float *b[] = {o_ref, s_ref, ref.dq, ref.dk, ref.dv, ref.dg, ref.dstate_in};
        long n[] = {v_size(&p), state_size(&p), qk_size(&p),   qk_size(&p),
                    v_size(&p), qk_size(&p),    state_size(&p)};
        for (int m = 0; m < 7; m++) {
            for (long i = 0; i < n[m]; i++) ck_assert_msg(isfinite(a[m][i]), "non-finite %d", m);
            double err = rel_error(a[m], b[m], n[m]);
            ck_assert_msg(err < 1e-4, "gate %g: tensor %d rel err %.3g", levels[li], m, err);
        }
        free(o_ref), free(o), free(s_ref), free(s), free(dout), free(dstate_out);
        grads_free(&ref), grads_free(&got), gla_free(&p);
    }
}
END_TEST

// 1 and 2 OpenMP threads give bit-identical results, both forms, forward and backward.
START_TEST(test_thread_count_independent) {
    const int forms[] = {RECURRENT, 64};
    Rng rng = rng_seeded(606);
    for (int fi = 0; fi < 2; fi++) {
        Gla p = gla_make(&rng, 2, 80, 3, 16, 8, 0, 1);
        float *dout = rand_tensor(&rng, v_size(&p), 1.0f);
        float *dstate_out = rand_tensor(&rng, state_size(&p), 1.0f);
        float *o[2], *s[2];
        GlaGrads d[2];
        for (int r = 0; r < 2; r++) {
            omp_set_num_threads(r + 1);
            o[r] = zeros(v_size(&p)), s[r] = zeros(state_size(&p)), d[r] = grads_zero(&p);
            run_forward(&p, forms[fi], o[r], s[r]);
            run_backward(&p, forms[fi], &d[r], dout, dstate_out);
        }
        ck_assert(memcmp(o[0], o[1], v_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(s[0], s[1], state_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(d[0].dq, d[1].dq, qk_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(d[0].dk, d[1].dk, qk_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(d[0].dv, d[1].dv, v_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(d[0].dg, d[1].dg, qk_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(d[0].dstate_in, d[1].dstate_in, state_size(&p) * sizeof(float)) == 0);
        for (int r = 0; r < 2; r++) free(o[r]), free(s[r]), grads_free(&d[r]);
        free(dout), free(dstate_out), gla_free(&p);
    }
}
END_TEST

// A non-positive chunk size is a caller error and dies with a message.
START_TEST(test_bad_chunk_dies) {
    Rng rng = rng_seeded(707);
    Gla p = gla_make(&rng, 1, 8, 1, 4, 4, 0, 0);
    float *o = zeros(v_size(&p));
    run_forward(&p, -1, o, NULL);
}
END_TEST

static Suite *gla_suite(void) {
    Suite *s = suite_create("gla");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_chunked_matches_recurrent);
    tcase_add_test(tc, test_state_round_trip);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_accumulates);
    tcase_add_test(tc, test_strong_gates);
    tcase_add_test(tc, test_thread_count_independent);
    tcase_add_exit_test(tc, test_bad_chunk_dies, 1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(gla_suite());
}
