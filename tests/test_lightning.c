// tests/test_lightning.c: Lightning Attention kernels. The recurrence against its
// closed form, the block form against the recurrence (outputs, states, every gradient),
// state round trips across a split sequence, finite-difference gradients of both forms,
// the += convention, optional pointers, thread-count determinism and argument errors.
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../kernels/kernels.h"
#include "testing.h"

// One random problem: inputs, the incoming gradients and the per-head decays.
typedef struct Problem {
    int B, T, H, kdim, vdim;
    float *q, *k, *v, *state_in, *log_decay; // state_in may be NULL
    float *dout, *dstate_out;                // dstate_out may be NULL
} Problem;

// Everything one form computes: forward outputs and gradients (backward into zeros).
typedef struct Result {
    float *o, *state_out, *dq, *dk, *dv, *dstate_in;
} Result;

static long q_size(const Problem *p) {
    return (long)p->B * p->T * p->H * p->kdim;
}
static long v_size(const Problem *p) {
    return (long)p->B * p->T * p->H * p->vdim;
}
static long s_size(const Problem *p) {
    return (long)p->B * p->H * p->kdim * p->vdim;
}

static Problem make_problem(Rng *rng, int B, int T, int H, int kdim, int vdim, const float *decays,
                            int with_state_in, int with_dstate_out) {
    Problem p = {B, T, H, kdim, vdim, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    p.q = rand_tensor(rng, q_size(&p), 1.0f);
    p.k = rand_tensor(rng, q_size(&p), 1.0f);
    p.v = rand_tensor(rng, v_size(&p), 1.0f);
    p.dout = rand_tensor(rng, v_size(&p), 1.0f);
    if (with_state_in) p.state_in = rand_tensor(rng, s_size(&p), 1.0f);
    if (with_dstate_out) p.dstate_out = rand_tensor(rng, s_size(&p), 1.0f);
    p.log_decay = copy_tensor(decays, H);
    return p;
}

static void free_problem(Problem *p) {
    free(p->q), free(p->k), free(p->v), free(p->dout);
    free(p->state_in), free(p->dstate_out), free(p->log_decay);
}

// Forward and backward of one form: block > 0 is the block form, block == 0 the recurrence.
static Result run_form(const Problem *p, int block) {
    Result r = {zeros(v_size(p)), zeros(s_size(p)), zeros(q_size(p)),
                zeros(q_size(p)), zeros(v_size(p)), zeros(s_size(p))};
    if (block > 0) {
        lightning_attn_forward(r.o, r.state_out, p->q, p->k, p->v, p->state_in, p->log_decay, p->B,
                               p->T, p->H, p->kdim, p->vdim, block);
        lightning_attn_backward(r.dq, r.dk, r.dv, r.dstate_in, p->dout, p->dstate_out, p->q, p->k,
                                p->v, p->state_in, p->log_decay, p->B, p->T, p->H, p->kdim, p->vdim,
                                block);
    } else {
        lightning_attn_recurrent_forward(r.o, r.state_out, p->q, p->k, p->v, p->state_in,
                                         p->log_decay, p->B, p->T, p->H, p->kdim, p->vdim);
        lightning_attn_recurrent_backward(r.dq, r.dk, r.dv, r.dstate_in, p->dout, p->dstate_out,
                                          p->q, p->k, p->v, p->state_in, p->log_decay, p->B, p->T,
                                          p->H, p->kdim, p->vdim);
    }
    return r;
}

static void free_result(Result *r) {
    free(r->o), free(r->state_out), free(r->dq), free(r->dk), free(r->dv), free(r->dstate_in);
}

// Compare every tensor of two results; `what` names the case in the failure message.
static void expect_close(const Result *a, const Result *b, const Problem *p, double tol,
                         const char *what) {
    const char *names[] = {"o", "state_out", "dq", "dk", "dv", "dstate_in"};
    const float *xa[] = {a->o, a->state_out, a->dq, a->dk, a->dv, a->dstate_in};
    const float *xb[] = {b->o, b->state_out, b->dq, b->dk, b->dv, b->dstate_in};
    long n[] = {v_size(p), s_size(p), q_size(p), q_size(p), v_size(p), s_size(p)};
    for (int i = 0; i < 6; i++) {
        double e = rel_error(xa[i], xb[i], n[i]);
        ck_assert_msg(e < tol, "%s: %s rel error %.3g >= %.3g", what, names[i], e, tol);
    }
}

// The decay sets every comparison runs through: no decay, strong decay, mixed, random.
#define N_DECAY_SETS 4
static void decay_set(float *out, int set, int H, Rng *rng) {
    for (int h = 0; h < H; h++) {
        if (set == 0)
            out[h] = 0.0f;
        else if (set == 1)
            out[h] = -2.0f;
        else if (set == 2)
            out[h] = h % 2 ? -0.7f : -0.05f;
        else
            out[h] = -rng_uniform(rng);
    }
}

// The recurrence against its closed form, evaluated independently in double:
// o_t = lambda^(t+1) q_t S_in + sum_{s<=t} lambda^(t-s) (q_t . k_s) v_s,
// S_out = lambda^T S_in + sum_s lambda^(T-1-s) k_s^T v_s.
START_TEST(test_recurrent_matches_closed_form) {
    Rng rng = rng_seeded(11);
    int B = 2, T = 30, H = 3, kd = 5, vd = 4;
    float decays[3] = {0.0f, -0.3f, -2.0f};
    Problem p = make_problem(&rng, B, T, H, kd, vd, decays, 1, 0);
    Result r = run_form(&p, 0);
    float *o_ref = zeros(v_size(&p)), *s_ref = zeros(s_size(&p));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            double ld = decays[h];
            const float *S0 = p.state_in + ((long)b * H + h) * kd * vd;
            for (int t = 0; t < T; t++) {
                const float *qt = p.q + (((long)b * T + t) * H + h) * kd;
                for (int j = 0; j < vd; j++) {
                    double acc = 0;
                    for (int i = 0; i < kd; i++) acc += exp(ld * (t + 1)) * qt[i] * S0[i * vd + j];
                    for (int s = 0; s <= t; s++) {
                        const float *ks = p.k + (((long)b * T + s) * H + h) * kd;
                        const float *vs = p.v + (((long)b * T + s) * H + h) * vd;
                        double qk = 0;
                        for (int i = 0; i < kd; i++) qk += (double)qt[i] * ks[i];
                        acc += exp(ld * (t - s)) * qk * vs[j];
                    }
                    o_ref[(((long)b * T + t) * H + h) * vd + j] = (float)acc;
                }
            }
            for (int i = 0; i < kd; i++)
                for (int j = 0; j < vd; j++) {
                    double acc = exp(ld * T) * S0[i * vd + j];
                    for (int s = 0; s < T; s++) {
                        const float *ks = p.k + (((long)b * T + s) * H + h) * kd;
                        const float *vs = p.v + (((long)b * T + s) * H + h) * vd;
                        acc += exp(ld * (T - 1 - s)) * ks[i] * vs[j];
                    }
                    s_ref[((long)b * H + h) * kd * vd + i * vd + j] = (float)acc;
                }
        }
    double eo = rel_error(r.o, o_ref, v_size(&p)), es = rel_error(r.state_out, s_ref, s_size(&p));
    ck_assert_msg(eo < 1e-5, "o vs closed form: rel error %.3g", eo);
    ck_assert_msg(es < 1e-5, "state_out vs closed form: rel error %.3g", es);
    free(o_ref), free(s_ref);
    free_result(&r);
    free_problem(&p);
}
END_TEST

// Block form == recurrence for block sizes 1, 7, 16, 64, T not a multiple of the block,
// with and without state_in / dstate_out, across the decay sets.
START_TEST(test_block_matches_recurrent) {
    Rng rng = rng_seeded(21);
    int blocks[] = {1, 7, 16, 64}, Ts[] = {37, 100};
    int H = 2;
    float decays[2];
    for (int set = 0; set < N_DECAY_SETS; set++)
        for (int ti = 0; ti < 2; ti++)
            for (int bi = 0; bi < 4; bi++)
                for (int flags = 0; flags < 4; flags++) {
                    decay_set(decays, set, H, &rng);
                    Problem p =
                        make_problem(&rng, 2, Ts[ti], H, 12, 8, decays, flags & 1, flags & 2);
                    Result ref = run_form(&p, 0), blk = run_form(&p, blocks[bi]);
                    char what[128];
                    snprintf(what, sizeof(what),
                             "decays %d T %d block %d state_in %d dstate_out %d", set, Ts[ti],
                             blocks[bi], flags & 1, (flags & 2) >> 1);
                    expect_close(&blk, &ref, &p, 1e-5, what);
                    free_result(&ref), free_result(&blk);
                    free_problem(&p);
                }
}
END_TEST

// x[:, t0:t0+len] of a [B, T, H*d] tensor as a fresh [B, len, H*d] tensor.
static float *slice_time(const float *x, int B, int T, long row, int t0, int len) {
    float *y = xmalloc((size_t)B * len * row * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(y + (long)b * len * row, x + ((long)b * T + t0) * row,
               (size_t)len * row * sizeof(float));
    return y;
}

// The second half of a split run is the problem on x[:, n:2n], starting from `state_in`
// and with the whole run's dstate_out; the first half ends in the given dstate_out.
static Problem half_problem(const Problem *p, int t0, int n, float *state_in, float *dstate_out) {
    long qr = (long)p->H * p->kdim, vr = (long)p->H * p->vdim;
    Problem h = {p->B, n, p->H, p->kdim, p->vdim, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    h.q = slice_time(p->q, p->B, p->T, qr, t0, n);
    h.k = slice_time(p->k, p->B, p->T, qr, t0, n);
    h.v = slice_time(p->v, p->B, p->T, vr, t0, n);
    h.dout = slice_time(p->dout, p->B, p->T, vr, t0, n);
    h.state_in = state_in ? copy_tensor(state_in, s_size(p)) : NULL;
    h.dstate_out = dstate_out ? copy_tensor(dstate_out, s_size(p)) : NULL;
    h.log_decay = copy_tensor(p->log_decay, p->H);
    return h;
}

// Running T = 2n as two halves (state_out of the first is state_in of the second; the
// second's dstate_in is the first's dstate_out) equals running the whole, both forms.
static void check_round_trip(int block) {
    Rng rng = rng_seeded(31 + block);
    int n = 20, B = 2, H = 2;
    float decays[2] = {-0.2f, 0.0f};
    Problem p = make_problem(&rng, B, 2 * n, H, 6, 5, decays, 1, 1);
    Result whole = run_form(&p, block);
    Problem second = half_problem(&p, n, n, NULL, p.dstate_out);
    Problem first = half_problem(&p, 0, n, p.state_in, NULL);
    // Forward of the first half gives the second's state_in; backward of the second gives
    // the first's dstate_out.
    Result r1 = run_form(&first, block);
    second.state_in = copy_tensor(r1.state_out, s_size(&p));
    Result r2 = run_form(&second, block);
    first.dstate_out = copy_tensor(r2.dstate_in, s_size(&p));
    free_result(&r1);
    r1 = run_form(&first, block);

    long qr = (long)H * p.kdim, vr = (long)H * p.vdim;
    struct {
        const char *name;
        const float *whole, *a, *b;
        long row;
    } parts[] = {{"o", whole.o, r1.o, r2.o, vr},
                 {"dq", whole.dq, r1.dq, r2.dq, qr},
                 {"dk", whole.dk, r1.dk, r2.dk, qr},
                 {"dv", whole.dv, r1.dv, r2.dv, vr}};
    for (int i = 0; i < 4; i++) {
        float *a = slice_time(parts[i].whole, B, 2 * n, parts[i].row, 0, n);
        float *b = slice_time(parts[i].whole, B, 2 * n, parts[i].row, n, n);
        double ea = rel_error(parts[i].a, a, (long)B * n * parts[i].row);
        double eb = rel_error(parts[i].b, b, (long)B * n * parts[i].row);
        ck_assert_msg(ea < 1e-5 && eb < 1e-5, "block %d: %s halves rel errors %.3g %.3g", block,
                      parts[i].name, ea, eb);
        free(a), free(b);
    }
    double es = rel_error(r2.state_out, whole.state_out, s_size(&p));
    double eds = rel_error(r1.dstate_in, whole.dstate_in, s_size(&p));
    ck_assert_msg(es < 1e-5, "block %d: state_out rel error %.3g", block, es);
    ck_assert_msg(eds < 1e-5, "block %d: dstate_in rel error %.3g", block, eds);
    free_result(&whole), free_result(&r1), free_result(&r2);
    free_problem(&p), free_problem(&first), free_problem(&second);
}

START_TEST(test_state_round_trip_recurrent) {
    check_round_trip(0);
}
END_TEST

START_TEST(test_state_round_trip_block) {
    check_round_trip(7);  // halves of 20 split blocks differently from the whole
    check_round_trip(64); // one partial block per call
}
END_TEST

// Decoding: feeding the tokens one at a time (T = 1, state updated in place, so
// state_out aliases state_in) reproduces the full forward, both forms.
START_TEST(test_decode_steps_match_full) {
    Rng rng = rng_seeded(41);
    int B = 2, T = 9, H = 2, kd = 4, vd = 3;
    float decays[2] = {-0.5f, 0.0f};
    Problem p = make_problem(&rng, B, T, H, kd, vd, decays, 1, 0);
    Result whole = run_form(&p, 0);
    long qr = (long)H * kd, vr = (long)H * vd;
    for (int form = 0; form < 2; form++) {
        float *state = copy_tensor(p.state_in, s_size(&p));
        float *o = zeros(v_size(&p)), *ot = zeros((long)B * vr);
        for (int t = 0; t < T; t++) {
            float *qt = slice_time(p.q, B, T, qr, t, 1), *kt = slice_time(p.k, B, T, qr, t, 1);
            float *vt = slice_time(p.v, B, T, vr, t, 1);
            if (form == 0)
                lightning_attn_recurrent_forward(ot, state, qt, kt, vt, state, p.log_decay, B, 1, H,
                                                 kd, vd);
            else
                lightning_attn_forward(ot, state, qt, kt, vt, state, p.log_decay, B, 1, H, kd, vd,
                                       16);
            for (int b = 0; b < B; b++)
                memcpy(o + ((long)b * T + t) * vr, ot + b * vr, (size_t)vr * sizeof(float));
            free(qt), free(kt), free(vt);
        }
        double eo = rel_error(o, whole.o, v_size(&p));
        double es = rel_error(state, whole.state_out, s_size(&p));
        ck_assert_msg(eo < 1e-5 && es < 1e-5, "form %d: decode o %.3g state %.3g", form, eo, es);
        free(state), free(o), free(ot);
    }
    free_result(&whole);
    free_problem(&p);
}
END_TEST

// Loss for the gradient check: dot(o, R1) + dot(state_out, R2), R1 = dout, R2 = dstate_out.
typedef struct LossCtx {
    Problem *p;
    int block; // 0: recurrence
    float *o, *state_out;
} LossCtx;

static double lightning_loss(void *ctx) {
    LossCtx *c = ctx;
    Problem *p = c->p;
    if (c->block > 0)
        lightning_attn_forward(c->o, c->state_out, p->q, p->k, p->v, p->state_in, p->log_decay,
                               p->B, p->T, p->H, p->kdim, p->vdim, c->block);
    else
        lightning_attn_recurrent_forward(c->o, c->state_out, p->q, p->k, p->v, p->state_in,
                                         p->log_decay, p->B, p->T, p->H, p->kdim, p->vdim);
    return dot_double(c->o, p->dout, v_size(p)) +
           dot_double(c->state_out, p->dstate_out, s_size(p));
}

// Central differences on every entry of q, k, v and state_in against the backward pass.
static void check_gradients(int block) {
    Rng rng = rng_seeded(51 + block);
    float decays[2] = {-0.3f, 0.0f};
    Problem p = make_problem(&rng, 2, 13, 2, 5, 4, decays, 1, 1);
    Result r = run_form(&p, block);
    LossCtx ctx = {&p, block, zeros(v_size(&p)), zeros(s_size(&p))};
    struct {
        const char *name;
        float *x;
        const float *grad;
        long n;
    } inputs[] = {{"q", p.q, r.dq, q_size(&p)},
                  {"k", p.k, r.dk, q_size(&p)},
                  {"v", p.v, r.dv, v_size(&p)},
                  {"state_in", p.state_in, r.dstate_in, s_size(&p)}};
    for (int i = 0; i < 4; i++) {
        double e = grad_check(lightning_loss, &ctx, inputs[i].x, inputs[i].grad, inputs[i].n,
                              1 << 20, 1e-2f, &rng);
        ck_assert_msg(e < 1e-2, "block %d: d%s finite-difference rel error %.3g", block,
                      inputs[i].name, e);
    }
    free(ctx.o), free(ctx.state_out);
    free_result(&r);
    free_problem(&p);
}

START_TEST(test_grad_check_recurrent) {
    check_gradients(0);
}
END_TEST

START_TEST(test_grad_check_block) {
    check_gradients(4);
}
END_TEST

// Backward into non-zero buffers adds its gradients to what is there, both forms.
START_TEST(test_backward_accumulates) {
    Rng rng = rng_seeded(61);
    float decays[2] = {-0.1f, -1.0f};
    Problem p = make_problem(&rng, 2, 21, 2, 6, 5, decays, 1, 1);
    for (int block = 0; block <= 8; block += 8) {
        Result fresh = run_form(&p, block);
        float *base[4] = {rand_tensor(&rng, q_size(&p), 1.0f), rand_tensor(&rng, q_size(&p), 1.0f),
                          rand_tensor(&rng, v_size(&p), 1.0f), rand_tensor(&rng, s_size(&p), 1.0f)};
        long n[4] = {q_size(&p), q_size(&p), v_size(&p), s_size(&p)};
        float *acc[4], *expect[4];
        for (int i = 0; i < 4; i++) acc[i] = copy_tensor(base[i], n[i]);
        if (block > 0)
            lightning_attn_backward(acc[0], acc[1], acc[2], acc[3], p.dout, p.dstate_out, p.q, p.k,
                                    p.v, p.state_in, p.log_decay, p.B, p.T, p.H, p.kdim, p.vdim,
                                    block);
        else
            lightning_attn_recurrent_backward(acc[0], acc[1], acc[2], acc[3], p.dout, p.dstate_out,
                                              p.q, p.k, p.v, p.state_in, p.log_decay, p.B, p.T, p.H,
                                              p.kdim, p.vdim);
        const float *g[4] = {fresh.dq, fresh.dk, fresh.dv, fresh.dstate_in};
        for (int i = 0; i < 4; i++) {
            expect[i] = xmalloc((size_t)n[i] * sizeof(float));
            for (long x = 0; x < n[i]; x++) expect[i][x] = base[i][x] + g[i][x];
            double e = rel_error(acc[i], expect[i], n[i]);
            ck_assert_msg(e < 1e-6, "block %d: gradient %d not accumulated (rel error %.3g)", block,
                          i, e);
            free(base[i]), free(acc[i]), free(expect[i]);
        }
        free_result(&fresh);
    }
    free_problem(&p);
}
END_TEST

// NULL state_out / dstate_in ("not wanted") leave the other outputs unchanged.
START_TEST(test_optional_outputs) {
    Rng rng = rng_seeded(71);
    float decays[2] = {-0.4f, 0.0f};
    Problem p = make_problem(&rng, 1, 19, 2, 4, 6, decays, 1, 1);
    for (int block = 0; block <= 5; block += 5) {
        Result full = run_form(&p, block);
        float *o = zeros(v_size(&p)), *dq = zeros(q_size(&p)), *dk = zeros(q_size(&p));
        float *dv = zeros(v_size(&p));
        if (block > 0) {
            lightning_attn_forward(o, NULL, p.q, p.k, p.v, p.state_in, p.log_decay, p.B, p.T, p.H,
                                   p.kdim, p.vdim, block);
            lightning_attn_backward(dq, dk, dv, NULL, p.dout, p.dstate_out, p.q, p.k, p.v,
                                    p.state_in, p.log_decay, p.B, p.T, p.H, p.kdim, p.vdim, block);
        } else {
            lightning_attn_recurrent_forward(o, NULL, p.q, p.k, p.v, p.state_in, p.log_decay, p.B,
                                             p.T, p.H, p.kdim, p.vdim);
            lightning_attn_recurrent_backward(dq, dk, dv, NULL, p.dout, p.dstate_out, p.q, p.k, p.v,
                                              p.state_in, p.log_decay, p.B, p.T, p.H, p.kdim,
                                              p.vdim);
        }
        ck_assert(memcmp(o, full.o, (size_t)v_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(dq, full.dq, (size_t)q_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(dk, full.dk, (size_t)q_size(&p) * sizeof(float)) == 0);
        ck_assert(memcmp(dv, full.dv, (size_t)v_size(&p) * sizeof(float)) == 0);
        free(o), free(dq), free(dk), free(dv);
        free_result(&full);
    }
    free_problem(&p);
}
END_TEST

// Bit-identical results with 1 and 2 OpenMP threads, both forms.
START_TEST(test_thread_count_determinism) {
    Rng rng = rng_seeded(81);
    float decays[3] = {0.0f, -0.2f, -2.0f};
    Problem p = make_problem(&rng, 2, 45, 3, 8, 8, decays, 1, 1);
    for (int block = 0; block <= 16; block += 16) {
        omp_set_num_threads(1);
        Result one = run_form(&p, block);
        omp_set_num_threads(2);
        Result two = run_form(&p, block);
        const float *a[] = {one.o, one.state_out, one.dq, one.dk, one.dv, one.dstate_in};
        const float *b[] = {two.o, two.state_out, two.dq, two.dk, two.dv, two.dstate_in};
        long n[] = {v_size(&p), s_size(&p), q_size(&p), q_size(&p), v_size(&p), s_size(&p)};
        for (int i = 0; i < 6; i++)
            ck_assert_msg(memcmp(a[i], b[i], (size_t)n[i] * sizeof(float)) == 0,
                          "block %d: output %d differs between 1 and 2 threads", block, i);
        free_result(&one), free_result(&two);
    }
    free_problem(&p);
}
END_TEST

// T = 0: the state passes through unchanged and so does its gradient, both forms.
START_TEST(test_empty_sequence) {
    Rng rng = rng_seeded(91);
    int B = 2, H = 2, kd = 3, vd = 4;
    long ns = (long)B * H * kd * vd;
    float decays[2] = {-0.5f, 0.0f}, dummy[1] = {0};
    float *state_in = rand_tensor(&rng, ns, 1.0f), *dstate_out = rand_tensor(&rng, ns, 1.0f);
    for (int block = 0; block <= 16; block += 16) {
        float *state_out = zeros(ns), *dstate_in = zeros(ns);
        if (block > 0) {
            lightning_attn_forward(dummy, state_out, dummy, dummy, dummy, state_in, decays, B, 0, H,
                                   kd, vd, block);
            lightning_attn_backward(dummy, dummy, dummy, dstate_in, dummy, dstate_out, dummy, dummy,
                                    dummy, state_in, decays, B, 0, H, kd, vd, block);
        } else {
            lightning_attn_recurrent_forward(dummy, state_out, dummy, dummy, dummy, state_in,
                                             decays, B, 0, H, kd, vd);
            lightning_attn_recurrent_backward(dummy, dummy, dummy, dstate_in, dummy, dstate_out,
                                              dummy, dummy, dummy, state_in, decays, B, 0, H, kd,
                                              vd);
        }
        ck_assert_msg(memcmp(state_out, state_in, (size_t)ns * sizeof(float)) == 0,
                      "block %d: T = 0 changed the state", block);
        ck_assert_msg(memcmp(dstate_in, dstate_out, (size_t)ns * sizeof(float)) == 0,
                      "block %d: T = 0 changed the state gradient", block);
        free(state_out), free(dstate_in);
    }
    free(state_in), free(dstate_out);
}
END_TEST

START_TEST(test_zero_block_dies) {
    float q[4] = {0}, o[4], decay[1] = {0};
    lightning_attn_forward(o, NULL, q, q, q, NULL, decay, 1, 1, 1, 4, 4, 0);
}
END_TEST

START_TEST(test_positive_log_decay_dies) {
    float q[4] = {0}, o[4], decay[1] = {0.1f};
    lightning_attn_recurrent_forward(o, NULL, q, q, q, NULL, decay, 1, 1, 1, 4, 4);
}
END_TEST

static Suite *lightning_suite(void) {
    Suite *s = suite_create("lightning_attn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_recurrent_matches_closed_form);
    tcase_add_test(tc, test_block_matches_recurrent);
    tcase_add_test(tc, test_state_round_trip_recurrent);
    tcase_add_test(tc, test_state_round_trip_block);
    tcase_add_test(tc, test_decode_steps_match_full);
    tcase_add_test(tc, test_grad_check_recurrent);
    tcase_add_test(tc, test_grad_check_block);
    tcase_add_test(tc, test_backward_accumulates);
    tcase_add_test(tc, test_optional_outputs);
    tcase_add_test(tc, test_thread_count_determinism);
    tcase_add_test(tc, test_empty_sequence);
    tcase_add_exit_test(tc, test_zero_block_dies, 1);
    tcase_add_exit_test(tc, test_positive_log_decay_dies, 1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return run_suite(lightning_suite());
}
