// tests/test_backend_attn.c: a backend's token-mixing ops (Lightning attention, GLA,
// softmax attention) against the fp32 CPU reference kernels, as tests/test_backend_ops.c
// does for the other ops: fresh random inputs per case, read back in the backend's compute
// type, outputs poisoned with NaN, relative errors (1e-5 fp32, 1e-2 bf16). q, k and v sit
// inside wider projections whose other columns must stay untouched; packed sequences of
// equal and unequal lengths are checked against the reference run one sequence at a time,
// and the ops against themselves: a sequence split in two with the state passed between
// the halves, and packed documents against separate calls. $BOLT_TEST_DEVICE picks the
// backend (default "cpu"); on a GPU the cases include sequences of 1000 and 4097 tokens.
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
    big = strcmp(be->name, "cpu") != 0 && !getenv("BOLT_TEST_QUICK");
}

static void teardown(void) {
    backend_free(be);
}

static Rng test_rng(int index) {
    return rng_seeded(9000 + (uint64_t)index);
}

static void dfree(void *p) {
    be->ops->free(be, p);
}

// Packed sequences of the given lengths: host offsets (cu[n + 1]) and backend ones.
typedef struct Packed {
    int n, *cu, *d_cu, max_len;
} Packed;

static Packed pack(const int *lens, int n) {
    Packed p = {n, xmalloc((size_t)(n + 1) * sizeof(int)), NULL, 0};
    p.cu[0] = 0;
    for (int i = 0; i < n; i++) {
        p.cu[i + 1] = p.cu[i] + lens[i];
        p.max_len = lens[i] > p.max_len ? lens[i] : p.max_len;
    }
    p.d_cu = be_ints(be, p.cu, n + 1);
    return p;
}

static Seqs seqs_of(const Packed *p) {
    return (Seqs){p->d_cu, p->n, p->max_len, p->cu[p->n]};
}

static void unpack(Packed *p) {
    free(p->cu);
    dfree(p->d_cu);
}

// ---- linear attention (Lightning and GLA) -------------------------------------------------

// One case: the packing, the sizes and the options.
typedef struct LinCase {
    bool gla;
    int n, lens[6], H, kdim, vdim, block; // block: lightning's block / GLA's chunk
    bool silu, state_in, dstate_out;
} LinCase;

// A problem's inputs, on the host (h*) and in backend memory (d*). qkv [N, ld] holds q at
// column 0, k at H*kdim, v at 2*H*kdim and pad_cols more columns: 3 makes rows odd (the
// kernels' unaligned path), 8 keeps them 16-byte aligned (the fast path training takes).
// Loop tests alternate the two.
static int pad_cols = 8;
typedef struct LinProblem {
    LinCase c;
    Packed pk;
    int N, ld;
    long qw, vw, sd; // widths of q and v, one sequence's state size
    float scale;     // GLA's output scale
    float *hqkv, *hg, *hdecay, *hs_in, *hdout, *hds_out;
    Act *dqkv_in, *dg_in, *ddout;
    float *ddecay, *d_state_in, *d_dstate_out;
} LinProblem;

static LinProblem lin_problem(const LinCase *c, Rng *rng) {
    LinProblem p = {.c = *c};
    p.pk = pack(c->lens, c->n);
    p.N = p.pk.cu[c->n];
    p.qw = (long)c->H * c->kdim, p.vw = (long)c->H * c->vdim, p.sd = p.qw * c->vdim;
    p.ld = (int)(2 * p.qw + p.vw + pad_cols);
    p.scale = 1.0f / sqrtf((float)c->kdim);
    p.dqkv_in = be_rand_act(be, rng, (long)p.N * p.ld, 0.5f, &p.hqkv);
    p.ddout = be_rand_act(be, rng, (long)p.N * p.vw, 1.0f, &p.hdout);
    if (c->gla) { // log-gates as GLA makes them: logsigmoid(x) / 16
        float *x = rand_tensor(rng, (long)p.N * p.qw, 2.0f);
        p.hg = zeros((long)p.N * p.qw);
        logsigmoid_forward(p.hg, x, 1.0f / 16, (long)p.N * p.qw);
        p.dg_in = be_act(be, p.hg, (long)p.N * p.qw);
        free(x);
    }
    p.hdecay = zeros(c->H); // from nearly 1 (-1e-3) to fast (-2)
    for (int h = 0; h < c->H; h++) p.hdecay[h] = -(1e-3f + 2.0f * h / (c->H > 1 ? c->H - 1 : 1));
    p.ddecay = be_f32(be, p.hdecay, c->H);
    if (c->state_in) {
        p.hs_in = rand_tensor(rng, c->n * p.sd, 0.5f);
        p.d_state_in = be_f32(be, p.hs_in, c->n * p.sd);
    }
    if (c->dstate_out) {
        p.hds_out = rand_tensor(rng, c->n * p.sd, 0.5f);
        p.d_dstate_out = be_f32(be, p.hds_out, c->n * p.sd);
    }
    return p;
}

static void lin_free(LinProblem *p) {
    unpack(&p->pk);
    free(p->hqkv), free(p->hg), free(p->hdecay), free(p->hs_in), free(p->hdout), free(p->hds_out);
    dfree(p->dqkv_in), dfree(p->dg_in), dfree(p->ddout), dfree(p->ddecay), dfree(p->d_state_in);
    dfree(p->d_dstate_out);
}

// The op's outputs in backend memory, poisoned when made: o, state_out, the gradient of
// the qkv projection (its q, k, v blocks written, the pad_cols columns left alone), dg and
// dstate_in; and the chunk_states (ops.h: what the forward keeps for the backward), a
// row's share (chunk_width values) for every row, so calls on disjoint rows keep theirs
// apart.
typedef struct LinOut {
    Act *o, *dqkv, *dg, *chunks;
    float *s_out, *ds_in;
} LinOut;

static long chunk_width(const LinProblem *p) {
    return (p->qw * p->c.vdim + 63) / 64;
}

static LinOut lin_out(const LinProblem *p) {
    LinOut d = {be_poison(be, (size_t)p->N * p->vw * be->act_size),
                be_poison(be, (size_t)p->N * p->ld * be->act_size),
                p->c.gla ? be_poison(be, (size_t)p->N * p->qw * be->act_size) : NULL,
                be_poison(be, (size_t)p->N * chunk_width(p) * be->act_size),
                be_poison(be, (size_t)p->c.n * p->sd * sizeof(float)),
                be_poison(be, (size_t)p->c.n * p->sd * sizeof(float))};
    return d;
}

static void lin_out_free(LinOut *d) {
    dfree(d->o), dfree(d->dqkv), dfree(d->dg), dfree(d->chunks), dfree(d->s_out), dfree(d->ds_in);
}

// Where one call's rows and states sit: rows [r0, ...) of every row tensor, the packing,
// and the state pointers of its sequences.
typedef struct LinCall {
    int r0;
    Seqs seqs;
    const float *s_in, *ds_out;
    float *s_out, *ds_in;
} LinCall;

// The op's forward on one call's rows.
static void lin_forward(const LinProblem *p, const LinOut *d, const LinCall *k) {
    const LinCase *c = &p->c;
    Act *row = act_at(be, p->dqkv_in, (size_t)k->r0 * p->ld);
    Act *q = row, *kk = act_at(be, row, p->qw), *v = act_at(be, row, 2 * p->qw);
    Act *o = act_at(be, d->o, (size_t)k->r0 * p->vw);
    if (c->gla) {
        be->ops->gla_forward(be, o, k->s_out, q, kk, v, p->ld,
                             act_at(be, p->dg_in, (size_t)k->r0 * p->qw), k->s_in, p->scale,
                             k->seqs, c->H, c->kdim, c->vdim, c->block,
                             act_at(be, d->chunks, (size_t)k->r0 * chunk_width(p)));
    } else {
        be->ops->lightning_attn_forward(be, o, k->s_out, q, kk, v, p->ld, k->s_in, p->ddecay,
                                        k->seqs, c->H, c->kdim, c->vdim, c->silu, c->block,
                                        act_at(be, d->chunks, (size_t)k->r0 * chunk_width(p)));
    }
}

// The op's backward on one call's rows.
static void lin_backward(const LinProblem *p, const LinOut *d, const LinCall *k) {
    const LinCase *c = &p->c;
    Act *row = act_at(be, p->dqkv_in, (size_t)k->r0 * p->ld);
    Act *q = row, *kk = act_at(be, row, p->qw), *v = act_at(be, row, 2 * p->qw);
    Act *grow = act_at(be, d->dqkv, (size_t)k->r0 * p->ld);
    Act *dq = grow, *dk = act_at(be, grow, p->qw), *dv = act_at(be, grow, 2 * p->qw);
    Act *dout = act_at(be, p->ddout, (size_t)k->r0 * p->vw);
    if (c->gla) {
        be->ops->gla_backward(be, dq, dk, dv, act_at(be, d->dg, (size_t)k->r0 * p->qw), k->ds_in,
                              dout, k->ds_out, q, kk, v, p->ld,
                              act_at(be, p->dg_in, (size_t)k->r0 * p->qw), k->s_in, p->scale,
                              k->seqs, c->H, c->kdim, c->vdim, c->block,
                              act_at(be, d->chunks, (size_t)k->r0 * chunk_width(p)));
    } else {
        be->ops->lightning_attn_backward(be, dq, dk, dv, k->ds_in, dout, k->ds_out, q, kk, v, p->ld,
                                         k->s_in, p->ddecay, k->seqs, c->H, c->kdim, c->vdim,
                                         c->silu, c->block,
                                         act_at(be, d->chunks, (size_t)k->r0 * chunk_width(p)));
    }
}

// Everything a run computes, on the host and contiguous: o [N, H*vdim], state_out,
// dq, dk [N, H*kdim], dv, dg, dstate_in.
typedef struct LinResult {
    float *o, *s_out, *dq, *dk, *dv, *dg, *ds_in;
} LinResult;

static void lin_result_free(LinResult *r) {
    free(r->o), free(r->s_out), free(r->dq), free(r->dk), free(r->dv), free(r->dg);
    free(r->ds_in);
}

// Read an op run's outputs back; the pad_cols columns of the qkv gradient must still be NaN.
static LinResult lin_read(const LinProblem *p, const LinOut *d) {
    LinResult r = {0};
    long N = p->N;
    r.o = be_read_act(be, d->o, N * p->vw);
    r.s_out = be_read_f32(be, d->s_out, p->c.n * p->sd);
    r.ds_in = be_read_f32(be, d->ds_in, p->c.n * p->sd);
    float *g = be_read_act(be, d->dqkv, N * p->ld);
    r.dq = cols_of(g, p->ld, N, 0, p->qw);
    r.dk = cols_of(g, p->ld, N, p->qw, p->qw);
    r.dv = cols_of(g, p->ld, N, 2 * p->qw, p->vw);
    float *pad = cols_of(g, p->ld, N, 2 * p->qw + p->vw, pad_cols);
    ck_assert_msg(all_nan(pad, N * pad_cols), "dq/dk/dv: columns outside q, k, v were written");
    free(g), free(pad);
    if (p->c.gla) r.dg = be_read_act(be, d->dg, N * p->qw);
    return r;
}

// The whole packed batch through the op in one forward and one backward call.
static LinResult lin_run_op(const LinProblem *p) {
    LinOut d = lin_out(p);
    LinCall k = {0, seqs_of(&p->pk), p->d_state_in, p->d_dstate_out, d.s_out, d.ds_in};
    lin_forward(p, &d, &k);
    lin_backward(p, &d, &k);
    LinResult r = lin_read(p, &d);
    lin_out_free(&d);
    return r;
}

// The reference, one sequence at a time (B = 1): SiLU'd q, k for lightning's silu_qk, the
// block / chunked form with the case's block, gradients into zeros, and SiLU's backward.
static LinResult lin_run_ref(const LinProblem *p) {
    const LinCase *c = &p->c;
    long N = p->N;
    LinResult r = {zeros(N * p->vw),   zeros(c->n * p->sd), zeros(N * p->qw),
                   zeros(N * p->qw),   zeros(N * p->vw),    c->gla ? zeros(N * p->qw) : NULL,
                   zeros(c->n * p->sd)};
    for (int i = 0; i < c->n; i++) {
        int L = c->lens[i];
        long r0 = p->pk.cu[i];
        const float *rows = p->hqkv + r0 * p->ld;
        float *q = cols_of(rows, p->ld, L, 0, p->qw), *k = cols_of(rows, p->ld, L, p->qw, p->qw);
        float *v = cols_of(rows, p->ld, L, 2 * p->qw, p->vw);
        float *qa = copy_tensor(q, L * p->qw), *ka = copy_tensor(k, L * p->qw);
        if (c->silu) silu_forward(qa, q, L * p->qw), silu_forward(ka, k, L * p->qw);
        const float *s_in = p->hs_in ? p->hs_in + i * p->sd : NULL;
        const float *ds_out = p->hds_out ? p->hds_out + i * p->sd : NULL;
        const float *dout = p->hdout + r0 * p->vw;
        float *gq = zeros(L * p->qw), *gk = zeros(L * p->qw);
        float *o = r.o + r0 * p->vw, *s_out = r.s_out + i * p->sd, *ds_in = r.ds_in + i * p->sd;
        if (c->gla) {
            const float *g = p->hg + r0 * p->qw;
            gla_forward(o, s_out, q, k, v, g, s_in, p->scale, 1, L, c->H, c->kdim, c->vdim,
                        c->block);
            gla_backward(gq, gk, r.dv + r0 * p->vw, r.dg + r0 * p->qw, ds_in, dout, ds_out, q, k, v,
                         g, s_in, p->scale, 1, L, c->H, c->kdim, c->vdim, c->block);
        } else {
            lightning_attn_forward(o, s_out, qa, ka, v, s_in, p->hdecay, 1, L, c->H, c->kdim,
                                   c->vdim, c->block);
            lightning_attn_backward(gq, gk, r.dv + r0 * p->vw, ds_in, dout, ds_out, qa, ka, v, s_in,
                                    p->hdecay, 1, L, c->H, c->kdim, c->vdim, c->block);
        }
        if (c->silu) {
            silu_backward(r.dq + r0 * p->qw, gq, q, L * p->qw);
            silu_backward(r.dk + r0 * p->qw, gk, k, L * p->qw);
        } else {
            memcpy(r.dq + r0 * p->qw, gq, (size_t)L * p->qw * sizeof(float));
            memcpy(r.dk + r0 * p->qw, gk, (size_t)L * p->qw * sizeof(float));
        }
        free(q), free(k), free(v), free(qa), free(ka), free(gq), free(gk);
    }
    return r;
}

// Compare two runs tensor by tensor; `what` names the case.
static void lin_compare(const LinProblem *p, const LinResult *got, const LinResult *want,
                        double tolerance, const char *what) {
    long N = p->N;
    char name[160];
    const struct {
        const char *name;
        const float *got, *want;
        long n;
    } t[] = {{"o", got->o, want->o, N * p->vw},
             {"state_out", got->s_out, want->s_out, p->c.n * p->sd},
             {"dq", got->dq, want->dq, N * p->qw},
             {"dk", got->dk, want->dk, N * p->qw},
             {"dv", got->dv, want->dv, N * p->vw},
             {"dg", got->dg, want->dg, p->c.gla ? N * p->qw : 0},
             {"dstate_in", got->ds_in, want->ds_in, p->c.n * p->sd}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (t[i].n == 0) continue;
        snprintf(name, sizeof name, "%s: %s", what, t[i].name);
        be_expect_close(t[i].got, t[i].want, t[i].n, tolerance, name);
    }
}

// A case's description for failure messages.
static void lin_name(const LinCase *c, char *buf, size_t cap) {
    int len = snprintf(buf, cap, "%s n=%d H=%d k=%d v=%d block=%d%s%s%s lens",
                       c->gla ? "gla" : "lightning", c->n, c->H, c->kdim, c->vdim, c->block,
                       c->silu ? " silu" : "", c->state_in ? " state_in" : "",
                       c->dstate_out ? " dstate_out" : "");
    for (int i = 0; i < c->n && len < (int)cap; i++)
        len += snprintf(buf + len, cap - len, " %d", c->lens[i]);
}

// One case: the op against the reference.
static void check_lin_case(const LinCase *c, int seed) {
    Rng rng = test_rng(seed);
    LinProblem p = lin_problem(c, &rng);
    LinResult got = lin_run_op(&p), want = lin_run_ref(&p);
    char name[200];
    lin_name(c, name, sizeof name);
    lin_compare(&p, &got, &want, tol, name);
    lin_result_free(&got), lin_result_free(&want);
    lin_free(&p);
}

// The case lists are loop tests (one forked test per case): the small cases always, the
// large ones on a GPU.
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define PICK(small, large, i) ((i) < COUNT(small) ? &(small)[i] : &(large)[(i)-COUNT(small)])

// Lightning: equal-length batches (one batched call) and unequal lengths (runs of equal
// lengths inside), head sizes 16..128, SiLU on and off, with and without states.
static const LinCase LIGHTNING_SMALL[] = {
    {false, 3, {40, 40, 40}, 2, 16, 16, 16, true, true, true},
    {false, 5, {17, 33, 5, 33, 33}, 2, 32, 32, 16, false, false, false},
    {false, 2, {24, 24}, 1, 64, 64, 64, true, true, false},
    {false, 2, {9, 20}, 1, 128, 128, 8, true, false, true},
    {false, 4, {1, 7, 1, 12}, 3, 16, 32, 4, false, true, true},
    // equal lengths, multiples of 64: the backward's dq reads the forward's chunk states
    // (at 1024 rows and one head the sequence is also cut into segments)
    {false, 2, {128, 128}, 2, 64, 64, 64, true, true, true},
    {false, 1, {1024}, 1, 64, 64, 64, false, true, true},
    // head sizes in (64, 128], equal and not: one CUDA kernel gives dv, dk and, from the
    // kept chunk states (lengths of whole chunks), dq
    {false, 2, {100, 64}, 2, 96, 96, 64, true, true, true},
    {false, 1, {130}, 2, 96, 128, 64, false, false, true},
    {false, 2, {128, 128}, 2, 128, 96, 64, true, true, true},
    {false, 2, {64, 64}, 1, 96, 128, 64, false, true, false},
    {false, 1, {192}, 2, 128, 128, 64, true, false, true},
};
static const LinCase LIGHTNING_BIG[] = {
    {false, 1, {1000}, 4, 128, 128, 64, true, true, true},
    {false, 1, {4097}, 2, 128, 128, 64, true, false, true},
    {false, 1, {4097}, 4, 64, 64, 64, false, true, false},
    {false, 4, {512, 512, 512, 512}, 8, 64, 64, 64, true, true, true},
    {false, 5, {100, 1000, 37, 512, 512}, 4, 128, 128, 64, true, true, true},
};

START_TEST(test_lightning) {
    NEED(lightning_attn_forward);
    NEED(lightning_attn_backward);
    pad_cols = _i % 2 ? 3 : 8;
    check_lin_case(PICK(LIGHTNING_SMALL, LIGHTNING_BIG, _i), 100 + _i);
}
END_TEST

// The lightning cases on each path of the CUDA backend, whichever the plan would take
// (BOLT_LIGHTNING, read when the backend is made): the recurrent kernel for the first
// COUNT(cases), the chunk-parallel ones for the next; each meets the reference.
START_TEST(test_lightning_paths) {
    NEED(lightning_attn_forward);
    NEED(lightning_attn_backward);
    int n = COUNT(LIGHTNING_SMALL) + (big ? COUNT(LIGHTNING_BIG) : 0), i = _i % n;
    backend_free(be);
    setenv("BOLT_LIGHTNING", _i < n ? "recurrent" : "parallel", 1);
    be = backend_create(device);
    unsetenv("BOLT_LIGHTNING"); // read once, above: later tests get the plan again
    pad_cols = i % 2 ? 3 : 8;
    check_lin_case(PICK(LIGHTNING_SMALL, LIGHTNING_BIG, i), 100 + i);
}
END_TEST

// GLA: kdim = vdim / 2 (GLA's shape) and kdim = vdim.
static const LinCase GLA_SMALL[] = {
    {true, 3, {40, 40, 40}, 2, 16, 32, 16, false, true, true},
    {true, 5, {17, 33, 5, 33, 33}, 2, 16, 16, 16, false, false, false},
    {true, 2, {24, 24}, 1, 64, 128, 64, false, true, false},
    {true, 2, {9, 20}, 1, 64, 64, 8, false, false, true},
    {true, 2, {70, 130}, 2, 32, 64, 64, false, true, true}, // the state walks' shapes:
    {true, 1, {200}, 1, 128, 32, 64, false, true, false},   // kdim 32, value tiles of 32
    {true, 2, {65, 64}, 1, 64, 16, 64, false, false, true}, // and of 16 under kdim 64
    // equal lengths, multiples of 64: the backward reads the forward's chunk states
    {true, 3, {128, 128, 128}, 2, 64, 128, 64, false, true, true},
    {true, 1, {256}, 2, 128, 64, 64, false, false, true},
    // 384 walks: more than two an SM (their four-an-SM instance) on GPUs of up to 192 SMs
    {true, 3, {40, 64, 17}, 32, 128, 128, 64, false, true, true},
};
static const LinCase GLA_BIG[] = {
    {true, 1, {1000}, 4, 128, 128, 64, false, true, true},
    {true, 1, {4097}, 4, 64, 128, 64, false, true, true},
    {true, 1, {4097}, 2, 128, 256, 64, false, false, false},
    {true, 5, {100, 1000, 37, 512, 512}, 4, 128, 256, 64, false, true, true},
};

START_TEST(test_gla) {
    NEED(gla_forward);
    NEED(gla_backward);
    pad_cols = _i % 2 ? 3 : 8;
    check_lin_case(PICK(GLA_SMALL, GLA_BIG, _i), 200 + _i);
}
END_TEST

// One sequence split in two, the state passed between the halves (forward: state_out of
// the first is state_in of the second; backward: the second half's dstate_in is the
// first's dstate_out), equals the op on the whole sequence.
static void check_round_trip(const LinCase *c, int split, int seed) {
    Rng rng = test_rng(seed);
    LinProblem p = lin_problem(c, &rng);
    LinResult whole = lin_run_op(&p);
    int lens1[1] = {split}, lens2[1] = {c->lens[0] - split};
    Packed a = pack(lens1, 1), b = pack(lens2, 1);
    LinOut d = lin_out(&p);
    float *mid = be_poison(be, p.sd * sizeof(float)), *dmid = be_poison(be, p.sd * sizeof(float));
    LinCall first = {0, seqs_of(&a), p.d_state_in, dmid, mid, d.ds_in};
    LinCall second = {split, seqs_of(&b), mid, p.d_dstate_out, d.s_out, dmid};
    lin_forward(&p, &d, &first);
    lin_forward(&p, &d, &second);
    lin_backward(&p, &d, &second);
    lin_backward(&p, &d, &first);
    LinResult halves = lin_read(&p, &d);
    char name[200];
    lin_name(c, name, sizeof name);
    strncat(name, " (two halves, state passed)", sizeof name - strlen(name) - 1);
    lin_compare(&p, &halves, &whole, tol, name);
    lin_result_free(&whole), lin_result_free(&halves);
    lin_out_free(&d);
    dfree(mid), dfree(dmid);
    unpack(&a), unpack(&b);
    lin_free(&p);
}

START_TEST(test_state_round_trip) {
    NEED(lightning_attn_forward);
    NEED(lightning_attn_backward);
    NEED(gla_forward);
    NEED(gla_backward);
    LinCase light = {false, 1, {50}, 2, 16, 16, 16, true, true, true};
    LinCase gla = {true, 1, {50}, 2, 16, 32, 16, false, true, true};
    check_round_trip(&light, 23, 1);
    check_round_trip(&gla, 23, 2);
    if (big) {
        LinCase light_big = {false, 1, {4097}, 4, 128, 128, 64, true, true, true};
        LinCase gla_big = {true, 1, {4097}, 4, 64, 128, 64, false, true, true};
        check_round_trip(&light_big, 1000, 3);
        check_round_trip(&gla_big, 1000, 4);
    }
}
END_TEST

// Packed documents (one varlen call) equal one call per document, states included.
static void check_documents(const LinCase *c, int seed) {
    Rng rng = test_rng(seed);
    LinProblem p = lin_problem(c, &rng);
    LinResult packed = lin_run_op(&p);
    LinOut d = lin_out(&p);
    for (int i = 0; i < c->n; i++) {
        Packed one = pack(&c->lens[i], 1);
        long s = i * p.sd;
        LinCall k = {p.pk.cu[i],
                     seqs_of(&one),
                     p.d_state_in ? p.d_state_in + s : NULL,
                     p.d_dstate_out ? p.d_dstate_out + s : NULL,
                     d.s_out + s,
                     d.ds_in + s};
        lin_forward(&p, &d, &k);
        lin_backward(&p, &d, &k);
        unpack(&one);
    }
    LinResult separate = lin_read(&p, &d);
    char name[200];
    lin_name(c, name, sizeof name);
    strncat(name, " (packed vs separate calls)", sizeof name - strlen(name) - 1);
    lin_compare(&p, &packed, &separate, tol, name);
    lin_result_free(&packed), lin_result_free(&separate);
    lin_out_free(&d);
    lin_free(&p);
}

START_TEST(test_documents) {
    NEED(lightning_attn_forward);
    NEED(lightning_attn_backward);
    NEED(gla_forward);
    NEED(gla_backward);
    LinCase light = {false, 4, {13, 30, 2, 30}, 2, 16, 16, 8, true, true, true};
    LinCase gla = {true, 4, {13, 30, 2, 30}, 2, 16, 32, 8, false, true, true};
    check_documents(&light, 1);
    check_documents(&gla, 2);
    if (big) {
        LinCase light_big = {false, 4, {700, 64, 1, 2000}, 4, 128, 128, 64, true, true, true};
        LinCase gla_big = {true, 4, {700, 64, 1, 2000}, 4, 64, 128, 64, false, true, true};
        check_documents(&light_big, 3);
        check_documents(&gla_big, 4);
    }
}
END_TEST

// ---- softmax attention --------------------------------------------------------------------

// One case: per-sequence query and key lengths, heads, and whether q, k, v share one
// projection (then Lq = Lk and ld_q = ld_kv, the training layout).
typedef struct SmCase {
    int n, lq[4], lk[4], H, Hkv, hd;
    bool fused;
} SmCase;

static void check_softmax(const SmCase *c, int seed) {
    Rng rng = test_rng(seed);
    Packed sq = pack(c->lq, c->n), sk = pack(c->lk, c->n);
    long Nq = sq.cu[c->n], Nk = sk.cu[c->n], qw = (long)c->H * c->hd, kw = (long)c->Hkv * c->hd;
    // fused: one [N, qw + 2 kw + pad_cols] buffer; else q [Nq, qw + pad_cols] and kv [Nk, 2 kw +
    // pad_cols]
    int ld_q = (int)(c->fused ? qw + 2 * kw + pad_cols : qw + pad_cols);
    int ld_kv = (int)(c->fused ? ld_q : 2 * kw + pad_cols);
    long q_col = 0, k_col = c->fused ? qw : 0, v_col = k_col + kw;
    float *hq, *hkv = NULL, *hdout;
    Act *dq_in = be_rand_act(be, &rng, Nq * ld_q, 1.0f, &hq);
    Act *dkv_in = c->fused ? dq_in : be_rand_act(be, &rng, Nk * ld_kv, 1.0f, &hkv);
    const float *kvsrc = c->fused ? hq : hkv;
    Act *ddout = be_rand_act(be, &rng, Nq * qw, 1.0f, &hdout);
    Act *o = be_poison(be, (size_t)Nq * qw * be->act_size);
    float *lse = be_poison(be, (size_t)Nq * c->H * sizeof(float));
    Act *gq = be_poison(be, (size_t)Nq * ld_q * be->act_size);
    Act *gkv = c->fused ? gq : be_poison(be, (size_t)Nk * ld_kv * be->act_size);
    Act *q = act_at(be, dq_in, q_col), *k = act_at(be, dkv_in, k_col);
    Act *v = act_at(be, dkv_in, v_col);
    be->ops->softmax_attn_forward(be, o, lse, q, ld_q, k, v, ld_kv, seqs_of(&sq), seqs_of(&sk),
                                  c->H, c->Hkv, c->hd);
    be->ops->softmax_attn_backward(be, act_at(be, gq, q_col), act_at(be, gkv, k_col),
                                   act_at(be, gkv, v_col), ddout, o, lse, q, ld_q, k, v, ld_kv,
                                   seqs_of(&sq), seqs_of(&sk), c->H, c->Hkv, c->hd);

    // the reference one sequence at a time
    float *wo = zeros(Nq * qw), *wdq = zeros(Nq * qw), *wdk = zeros(Nk * kw), *wdv = zeros(Nk * kw);
    for (int i = 0; i < c->n; i++) {
        int Lq = c->lq[i], Lk = c->lk[i];
        long rq = sq.cu[i], rk = sk.cu[i];
        float *qi = cols_of(hq + rq * ld_q, ld_q, Lq, q_col, qw);
        float *ki = cols_of(kvsrc + rk * ld_kv, ld_kv, Lk, k_col, kw);
        float *vi = cols_of(kvsrc + rk * ld_kv, ld_kv, Lk, v_col, kw);
        float *li = zeros((long)c->H * Lq);
        softmax_attn_forward(wo + rq * qw, li, qi, ki, vi, 1, Lq, Lk, c->H, c->Hkv, c->hd);
        softmax_attn_backward(wdq + rq * qw, wdk + rk * kw, wdv + rk * kw, hdout + rq * qw,
                              wo + rq * qw, li, qi, ki, vi, 1, Lq, Lk, c->H, c->Hkv, c->hd);
        free(qi), free(ki), free(vi), free(li);
    }
    char name[160];
    snprintf(name, sizeof name, "softmax n=%d H=%d Hkv=%d hd=%d%s Lq %d.. Lk %d..", c->n, c->H,
             c->Hkv, c->hd, c->fused ? " fused" : "", c->lq[0], c->lk[0]);
    char what[200];
    float *got = be_read_act(be, o, Nq * qw);
    snprintf(what, sizeof what, "%s: o", name);
    be_expect_close(got, wo, Nq * qw, tol, what);
    free(got);
    float *g = be_read_act(be, gq, Nq * ld_q);
    float *gk = c->fused ? g : be_read_act(be, gkv, Nk * ld_kv);
    float *dq = cols_of(g, ld_q, Nq, q_col, qw), *dk = cols_of(gk, ld_kv, Nk, k_col, kw);
    float *dv = cols_of(gk, ld_kv, Nk, v_col, kw);
    float *padq = cols_of(g, ld_q, Nq, ld_q - pad_cols, pad_cols),
          *padk = cols_of(gk, ld_kv, Nk, ld_kv - pad_cols, pad_cols);
    snprintf(what, sizeof what, "%s: dq", name);
    be_expect_close(dq, wdq, Nq * qw, tol, what);
    snprintf(what, sizeof what, "%s: dk", name);
    be_expect_close(dk, wdk, Nk * kw, tol, what);
    snprintf(what, sizeof what, "%s: dv", name);
    be_expect_close(dv, wdv, Nk * kw, tol, what);
    ck_assert_msg(all_nan(padq, Nq * pad_cols) && all_nan(padk, Nk * pad_cols),
                  "%s: columns outside q, k, v were written", name);
    free(g), free(dq), free(dk), free(dv), free(padq), free(padk);
    if (!c->fused) free(gk);
    free(hq), free(hkv), free(hdout), free(wo), free(wdq), free(wdk), free(wdv);
    dfree(dq_in), dfree(ddout), dfree(o), dfree(lse), dfree(gq);
    if (!c->fused) dfree(dkv_in), dfree(gkv);
    unpack(&sq), unpack(&sk);
}

// GQA (H = 8, Hkv = 2), head sizes 64 and 128, equal and unequal lengths, more keys than
// queries (a KV cache, including one decoding step), fused and separate projections. Head
// sizes 24, 96 and 100 run on a larger kernel size (extra columns zero); each meets both
// pad_cols (the comments: 3 makes rows unaligned, 8 keeps them aligned).
static const SmCase SOFTMAX_SMALL[] = {
    {2, {20, 20}, {20, 20}, 8, 2, 64, true},        // pad 8
    {3, {5, 12, 1}, {9, 12, 30}, 8, 2, 128, false}, // pad 3
    {3, {7, 19, 19}, {7, 19, 19}, 8, 2, 64, true},  // pad 8
    {2, {20, 20}, {20, 20}, 8, 2, 24, true},        // pad 3
    {3, {5, 12, 1}, {9, 12, 30}, 8, 2, 24, false},  // pad 8
    {3, {5, 12, 1}, {9, 12, 30}, 8, 2, 96, false},  // pad 3
    {3, {7, 19, 19}, {7, 19, 19}, 8, 2, 96, true},  // pad 8
};
static const SmCase SOFTMAX_BIG[] = {
    {2, {1000, 1000}, {1000, 1000}, 8, 2, 128, true},       // pad 3
    {3, {300, 1000, 77}, {300, 1000, 77}, 8, 2, 64, true},  // pad 8
    {3, {64, 1, 200}, {1000, 513, 200}, 8, 2, 128, false},  // pad 3
    {1, {4097}, {4097}, 8, 2, 64, true},                    // pad 8
    {3, {64, 1, 200}, {1000, 513, 200}, 8, 2, 96, false},   // pad 3
    {3, {300, 1000, 77}, {300, 1000, 77}, 8, 2, 96, true},  // pad 8
    {2, {1000, 1000}, {1000, 1000}, 8, 2, 24, true},        // pad 3
    {3, {64, 1, 200}, {1000, 513, 200}, 8, 2, 24, false},   // pad 8
    {3, {300, 1000, 77}, {300, 1000, 77}, 8, 2, 100, true}, // pad 3
};

START_TEST(test_softmax_attn) {
    NEED(softmax_attn_forward);
    NEED(softmax_attn_backward);
    pad_cols = _i % 2 ? 3 : 8;
    check_softmax(PICK(SOFTMAX_SMALL, SOFTMAX_BIG, _i), 300 + _i);
}
END_TEST

static Suite *backend_attn_suite(void) {
    Suite *s = suite_create("backend_attn");
    TCase *tc = tcase_create(device);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_lightning, 0,
                        COUNT(LIGHTNING_SMALL) + (big ? COUNT(LIGHTNING_BIG) : 0));
    if (strcmp(device, "cuda") == 0) // the two paths of kernels/lightning_attn.cu
        tcase_add_loop_test(tc, test_lightning_paths, 0,
                            2 * (COUNT(LIGHTNING_SMALL) + (big ? COUNT(LIGHTNING_BIG) : 0)));
    tcase_add_loop_test(tc, test_gla, 0, COUNT(GLA_SMALL) + (big ? COUNT(GLA_BIG) : 0));
    tcase_add_test(tc, test_state_round_trip);
    tcase_add_test(tc, test_documents);
    tcase_add_loop_test(tc, test_softmax_attn, 0,
                        COUNT(SOFTMAX_SMALL) + (big ? COUNT(SOFTMAX_BIG) : 0));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    device = be_test_device("test_backend_attn");
    // The loop tests' counts (setup sets it again). BOLT_TEST_QUICK=1 keeps the small shapes
    // on a GPU too (the sanitizers).
    big = strcmp(device, "cpu") != 0 && !getenv("BOLT_TEST_QUICK");
    printf("test_backend_attn: backend %s\n", device);
    return run_suite(backend_attn_suite());
}
