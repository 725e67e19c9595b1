// kernels/ops_cpu.c: the CPU backend's op table. Memory is host memory, an activation
// (Act) is a float, and every op is a composition of the fp32 reference kernels
// (kernels.h): the op adapts the seam's conventions (row strides, written gradients, packed
// sequences) and the reference does the arithmetic, so the reference kernels' tests pin the
// numbers and tests/test_backend_ops.c pins the adaptation.
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "kernels.h"
#include "ops.h"

// Act on the CPU is float.
static inline float *fp(Act *p) {
    return (float *)p;
}
static inline const float *cfp(const Act *p) {
    return (const float *)p;
}

// ---- memory ---------------------------------------------------------------------------
// Every block carries its size in a 16-byte header (keeping malloc's alignment), so
// memory_in_use can count what is live.

enum { HEADER = 16 };
static _Atomic size_t cpu_bytes_in_use;

// Zeroed host memory; dies when out of memory.
static void *cpu_alloc(Backend *be, size_t bytes) {
    char *block = xcalloc(1, bytes + HEADER);
    memcpy(block, &bytes, sizeof bytes);
    atomic_fetch_add(&cpu_bytes_in_use, bytes);
    return block + HEADER;
}

// Frees a block from cpu_alloc (NULL: nothing).
static void cpu_free(Backend *be, void *p) {
    if (!p) return;
    char *block = (char *)p - HEADER;
    size_t bytes;
    memcpy(&bytes, block, sizeof bytes);
    atomic_fetch_sub(&cpu_bytes_in_use, bytes);
    free(block);
}

static size_t cpu_memory_in_use(Backend *be) {
    return atomic_load(&cpu_bytes_in_use);
}

static void cpu_zero(Backend *be, void *p, size_t bytes) {
    memset(p, 0, bytes);
}

// upload, download and copy: host to host. memmove: a copy onto itself is harmless.
static void cpu_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}

static void cpu_copy_2d(Backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                        size_t width, size_t rows) {
    for (size_t r = 0; r < rows; r++)
        memmove((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, width);
}

// fp32 <-> Act is a copy on the CPU (dst may be src).
static void cpu_float_to_act(Backend *be, Act *dst, const float *src, long n) {
    cpu_copy(be, dst, src, (size_t)n * sizeof(float));
}
static void cpu_act_to_float(Backend *be, float *dst, const Act *src, long n) {
    cpu_copy(be, dst, src, (size_t)n * sizeof(float));
}

// Everything ran when it was called.
static void cpu_sync(Backend *be) {}

// ---- row and sequence helpers ---------------------------------------------------------

// ---- scratch --------------------------------------------------------------------------
// Ops gather q, k, v into contiguous copies and accumulate gradients in zeroed buffers.
// Fresh allocations of that size fault in every page on first touch, inside the
// reference's parallel loops, which measured as slow as the attention itself; so the
// buffers are slots that keep their pages from call to call, grown on demand. Ops never
// nest, so each op numbers its buffers from slot 0. Per thread, so that two threads
// running ops never share one.

enum { SLOTS = 8, ZERO_CHUNK = 1 << 16 };
static _Thread_local struct {
    float *p;
    size_t n;
} slots[SLOTS];

// Slot i with room for n floats (contents undefined).
static float *slot(int i, long n) {
    size_t need = n > 0 ? (size_t)n : 1;
    if (slots[i].n < need) {
        free(slots[i].p);
        slots[i].p = xmalloc(need * sizeof(float));
        slots[i].n = need;
    }
    return slots[i].p;
}

// x[0..n) = 0, in parallel chunks.
static void zero_floats(float *x, long n) {
    long chunks = (n + ZERO_CHUNK - 1) / ZERO_CHUNK;
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++) {
        long len = n - c * ZERO_CHUNK < ZERO_CHUNK ? n - c * ZERO_CHUNK : ZERO_CHUNK;
        memset(x + c * ZERO_CHUNK, 0, (size_t)len * sizeof(float));
    }
}

// Slot i zeroed over n floats (an accumulation target for the reference).
static float *slot_zeroed(int i, long n) {
    float *p = slot(i, n);
    zero_floats(p, n);
    return p;
}

// Frees the calling thread's slots (backend_free on the CPU backend).
void ops_cpu_release_scratch(void) {
    for (int i = 0; i < SLOTS; i++) {
        free(slots[i].p);
        slots[i].p = NULL;
        slots[i].n = 0;
    }
}

// ---- row and sequence helpers ---------------------------------------------------------

// Slot i = a contiguous copy [N, width] of N rows that are ld floats apart.
static float *gather_rows(int i, const float *src, long ld, long N, long width) {
    float *dst = slot(i, N * width);
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++)
        memcpy(dst + n * width, src + n * ld, (size_t)width * sizeof(float));
    return dst;
}

// dst's N rows (ld floats apart) = src [N, width]; a NULL dst is skipped.
static void scatter_rows(float *dst, long ld, const float *src, long N, long width) {
    if (!dst) return;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++)
        memcpy(dst + n * ld, src + n * width, (size_t)width * sizeof(float));
}

// The end of the run of sequences starting at i whose lengths all equal sequence i's:
// such a run is one reference call with B = run length (the reference parallelises over
// B * H), and without document resets the whole batch is one run.
static int run_end(const int *cu, int n, int i) {
    int len = cu[i + 1] - cu[i], j = i + 1;
    while (j < n && cu[j + 1] - cu[j] == len) j++;
    return j;
}

// The same for pairs of packed sequences (queries and keys): both lengths equal.
static int run_end2(const int *cq, const int *ck, int n, int i) {
    int lq = cq[i + 1] - cq[i], lk = ck[i + 1] - ck[i], j = i + 1;
    while (j < n && cq[j + 1] - cq[j] == lq && ck[j + 1] - ck[j] == lk) j++;
    return j;
}

// A sequence of no rows passes its state through: dst = src (zero if src is NULL).
static void pass_state(float *dst, const float *src, long n) {
    if (!dst) return;
    if (src) {
        memmove(dst, src, (size_t)n * sizeof(float));
    } else {
        memset(dst, 0, (size_t)n * sizeof(float));
    }
}

// p + off, keeping NULL.
static inline float *off_or_null(float *p, long off) {
    return p ? p + off : NULL;
}
static inline const float *coff_or_null(const float *p, long off) {
    return p ? p + off : NULL;
}

// ---- dense ----------------------------------------------------------------------------

static void cpu_matmul_forward(Backend *be, Act *out, const Act *inp, const Act *weight,
                               const Act *bias, int N, int C, int OC) {
    matmul_forward(fp(out), cfp(inp), cfp(weight), cfp(bias), N, C, OC);
}

static void cpu_logits_forward(Backend *be, float *logits, const Act *h, const Act *W, int N, int D,
                               int V) {
    matmul_forward(logits, cfp(h), cfp(W), NULL, N, D, V);
}

// The reference accumulates every gradient: dinp is zeroed first unless `accumulate`, and a
// dout with rows wider than OC is gathered into a contiguous copy.
static void cpu_matmul_backward(Backend *be, Act *dinp, float *dweight, float *dbias,
                                const Act *dout, int ld_dout, const Act *inp, const Act *weight,
                                int N, int C, int OC, bool accumulate) {
    const float *d = ld_dout != OC ? gather_rows(0, cfp(dout), ld_dout, N, OC) : cfp(dout);
    if (dinp && !accumulate) zero_floats(fp(dinp), (long)N * C);
    matmul_backward(fp(dinp), dweight, dbias, d, cfp(inp), cfp(weight), N, C, OC);
}

static void cpu_embedding_forward(Backend *be, Act *out, const int *tokens, const Act *table, int N,
                                  int D, int V, float scale) {
    embedding_forward(fp(out), tokens, cfp(table), N, D, V, scale);
}

static void cpu_embedding_backward(Backend *be, float *dtable, const Act *dout, const int *tokens,
                                   int N, int D, float scale) {
    embedding_backward(dtable, cfp(dout), tokens, N, D, scale);
}

// ---- norms and gates ------------------------------------------------------------------

static void cpu_norm_forward(Backend *be, Act *out, float *rstd, const Act *x, const Act *weight,
                             int N, int D, float eps, NormKind kind) {
    norm_forward(fp(out), rstd, cfp(x), cfp(weight), N, D, eps, kind);
}

// resid = a + b (resid may be a or b), then the norm of resid.
static void cpu_residual_norm_forward(Backend *be, Act *resid, Act *out, float *rstd, const Act *a,
                                      const Act *b, const Act *weight, int N, int D, float eps,
                                      NormKind kind) {
    add_forward(fp(resid), cfp(a), cfp(b), (long)N * D);
    norm_forward(fp(out), rstd, cfp(resid), cfp(weight), N, D, eps, kind);
}

// dx starts as dresid (already there when it aliases dx; zero when NULL), then the
// reference adds the gradient through the norm.
static void cpu_norm_backward(Backend *be, Act *dx, float *dweight, const Act *dresid,
                              const Act *dout, const Act *x, const Act *weight, const float *rstd,
                              int N, int D, float eps, NormKind kind) {
    if (!dresid) {
        zero_floats(fp(dx), (long)N * D);
    } else if ((const void *)dresid != (void *)dx) {
        memcpy(dx, dresid, (size_t)N * D * sizeof(float));
    }
    norm_backward(fp(dx), dweight, cfp(dout), cfp(x), cfp(weight), rstd, N, D, eps, kind);
}

static void cpu_gate_forward(Backend *be, Act *out, const Act *a, int lda, const Act *b, int ldb,
                             int N, int F, GateKind kind) {
    gate_rows_forward(fp(out), cfp(a), lda, cfp(b), ldb, N, F, kind);
}

static void cpu_gate_backward(Backend *be, Act *da, int ldda, Act *db, int lddb, const Act *dout,
                              const Act *a, int lda, const Act *b, int ldb, int N, int F,
                              GateKind kind) {
    gate_rows_backward(fp(da), ldda, fp(db), lddb, cfp(dout), cfp(a), lda, cfp(b), ldb, N, F, kind);
}

static void cpu_logsigmoid_forward(Backend *be, Act *out, const Act *x, float scale, long n) {
    logsigmoid_forward(fp(out), cfp(x), scale, n);
}

// Written: the reference accumulates into zeros (into a scratch when dx is an input).
static void cpu_logsigmoid_backward(Backend *be, Act *dx, const Act *dout, const Act *x,
                                    float scale, long n) {
    bool alias = (const Act *)dx == dout || (const Act *)dx == x;
    float *dst = alias ? slot(0, n) : fp(dx);
    zero_floats(dst, n);
    logsigmoid_backward(dst, cfp(dout), cfp(x), scale, n);
    if (alias) memcpy(dx, dst, (size_t)n * sizeof(float));
}

static void cpu_rope_forward(Backend *be, Act *x, int ld, const int *pos, int N, int H, int hd,
                             float theta) {
    rope_rows(fp(x), ld, pos, N, H, hd, theta, 1.0f);
}

static void cpu_rope_backward(Backend *be, Act *dx, int ld, const int *pos, int N, int H, int hd,
                              float theta) {
    rope_rows(fp(dx), ld, pos, N, H, hd, theta, -1.0f);
}

// ---- token mixing ---------------------------------------------------------------------
// q, k and v are gathered out of their projection into contiguous [N, H, d] copies, the
// layout of the references, and each run of equal-length sequences is one reference call.

// Lightning attention: SiLU on the gathered q and k when silu_qk, then the block form
// (which recomputes its chunk states in the backward: chunk_states is not used).
static void cpu_lightning_attn_forward(Backend *be, Act *o, float *state_out, const Act *q,
                                       const Act *k, const Act *v, int ld, const float *state_in,
                                       const float *log_decay, Seqs seqs, int H, int kdim, int vdim,
                                       bool silu_qk, int block, Act *chunk_states) {
    long N = seqs.cu[seqs.n], qw = (long)H * kdim, vw = (long)H * vdim;
    long sd = (long)H * kdim * vdim;
    float *qt = gather_rows(0, cfp(q), ld, N, qw), *kt = gather_rows(1, cfp(k), ld, N, qw);
    float *vt = gather_rows(2, cfp(v), ld, N, vw);
    if (silu_qk) {
        silu_forward(qt, qt, N * qw);
        silu_forward(kt, kt, N * qw);
    }
    for (int i = 0; i < seqs.n;) {
        int j = run_end(seqs.cu, seqs.n, i), L = seqs.cu[i + 1] - seqs.cu[i];
        long r = seqs.cu[i];
        if (L == 0) {
            pass_state(off_or_null(state_out, i * sd), coff_or_null(state_in, i * sd),
                       (j - i) * sd);
        } else {
            lightning_attn_forward(fp(o) + r * vw, off_or_null(state_out, i * sd), qt + r * qw,
                                   kt + r * qw, vt + r * vw, coff_or_null(state_in, i * sd),
                                   log_decay, j - i, L, H, kdim, vdim, block);
        }
        i = j;
    }
}

// The reference backward into zeroed copies (with silu_qk: against the SiLU'd q and k,
// then through SiLU's derivative at the op's inputs), scattered into dq, dk, dv at the end,
// so they may share memory with q, k, v.
static void cpu_lightning_attn_backward(Backend *be, Act *dq, Act *dk, Act *dv, float *dstate_in,
                                        const Act *dout, const float *dstate_out, const Act *q,
                                        const Act *k, const Act *v, int ld, const float *state_in,
                                        const float *log_decay, Seqs seqs, int H, int kdim,
                                        int vdim, bool silu_qk, int block,
                                        const Act *chunk_states) {
    long N = seqs.cu[seqs.n], qw = (long)H * kdim, vw = (long)H * vdim;
    long sd = (long)H * kdim * vdim;
    float *q0 = gather_rows(0, cfp(q), ld, N, qw), *k0 = gather_rows(1, cfp(k), ld, N, qw);
    float *vt = gather_rows(2, cfp(v), ld, N, vw), *q1 = q0, *k1 = k0;
    if (silu_qk) {
        q1 = slot(3, N * qw), k1 = slot(4, N * qw);
        silu_forward(q1, q0, N * qw);
        silu_forward(k1, k0, N * qw);
    }
    float *gq = slot_zeroed(5, N * qw), *gk = slot_zeroed(6, N * qw);
    float *gv = slot_zeroed(7, N * vw);
    if (dstate_in) memset(dstate_in, 0, (size_t)seqs.n * sd * sizeof(float));
    for (int i = 0; i < seqs.n;) {
        int j = run_end(seqs.cu, seqs.n, i), L = seqs.cu[i + 1] - seqs.cu[i];
        long r = seqs.cu[i];
        if (L == 0) {
            pass_state(off_or_null(dstate_in, i * sd), coff_or_null(dstate_out, i * sd),
                       (j - i) * sd);
        } else {
            lightning_attn_backward(gq + r * qw, gk + r * qw, gv + r * vw,
                                    off_or_null(dstate_in, i * sd), cfp(dout) + r * vw,
                                    coff_or_null(dstate_out, i * sd), q1 + r * qw, k1 + r * qw,
                                    vt + r * vw, coff_or_null(state_in, i * sd), log_decay, j - i,
                                    L, H, kdim, vdim, block);
        }
        i = j;
    }
    if (silu_qk) {
        // q1, k1 are free now: they take the gradients before SiLU
        zero_floats(q1, N * qw);
        zero_floats(k1, N * qw);
        silu_backward(q1, gq, q0, N * qw);
        silu_backward(k1, gk, k0, N * qw);
        gq = q1, gk = k1;
    }
    scatter_rows(fp(dq), ld, gq, N, qw);
    scatter_rows(fp(dk), ld, gk, N, qw);
    scatter_rows(fp(dv), ld, gv, N, vw);
}

// Gated linear attention: g is already contiguous [N, H*kdim]. The reference recomputes
// its chunk states in the backward, so chunk_states is not used.
static void cpu_gla_forward(Backend *be, Act *o, float *state_out, const Act *q, const Act *k,
                            const Act *v, int ld, const Act *g, const float *state_in, float scale,
                            Seqs seqs, int H, int kdim, int vdim, int chunk, Act *chunk_states) {
    long N = seqs.cu[seqs.n], qw = (long)H * kdim, vw = (long)H * vdim;
    long sd = (long)H * kdim * vdim;
    float *qt = gather_rows(0, cfp(q), ld, N, qw), *kt = gather_rows(1, cfp(k), ld, N, qw);
    float *vt = gather_rows(2, cfp(v), ld, N, vw);
    for (int i = 0; i < seqs.n;) {
        int j = run_end(seqs.cu, seqs.n, i), L = seqs.cu[i + 1] - seqs.cu[i];
        long r = seqs.cu[i];
        if (L == 0) {
            pass_state(off_or_null(state_out, i * sd), coff_or_null(state_in, i * sd),
                       (j - i) * sd);
        } else {
            gla_forward(fp(o) + r * vw, off_or_null(state_out, i * sd), qt + r * qw, kt + r * qw,
                        vt + r * vw, cfp(g) + r * qw, coff_or_null(state_in, i * sd), scale, j - i,
                        L, H, kdim, vdim, chunk);
        }
        i = j;
    }
}

// dq, dk, dv as for lightning; dg (contiguous) and dstate_in are zeroed, then accumulated.
static void cpu_gla_backward(Backend *be, Act *dq, Act *dk, Act *dv, Act *dg, float *dstate_in,
                             const Act *dout, const float *dstate_out, const Act *q, const Act *k,
                             const Act *v, int ld, const Act *g, const float *state_in, float scale,
                             Seqs seqs, int H, int kdim, int vdim, int chunk,
                             const Act *chunk_states) {
    long N = seqs.cu[seqs.n], qw = (long)H * kdim, vw = (long)H * vdim;
    long sd = (long)H * kdim * vdim;
    float *qt = gather_rows(0, cfp(q), ld, N, qw), *kt = gather_rows(1, cfp(k), ld, N, qw);
    float *vt = gather_rows(2, cfp(v), ld, N, vw);
    float *gq = slot_zeroed(5, N * qw), *gk = slot_zeroed(6, N * qw);
    float *gv = slot_zeroed(7, N * vw);
    bool own_dg = dg == NULL || (const Act *)dg == g;
    float *gg = own_dg ? slot(3, N * qw) : fp(dg);
    zero_floats(gg, N * qw);
    if (dstate_in) memset(dstate_in, 0, (size_t)seqs.n * sd * sizeof(float));
    for (int i = 0; i < seqs.n;) {
        int j = run_end(seqs.cu, seqs.n, i), L = seqs.cu[i + 1] - seqs.cu[i];
        long r = seqs.cu[i];
        if (L == 0) {
            pass_state(off_or_null(dstate_in, i * sd), coff_or_null(dstate_out, i * sd),
                       (j - i) * sd);
        } else {
            gla_backward(gq + r * qw, gk + r * qw, gv + r * vw, gg + r * qw,
                         off_or_null(dstate_in, i * sd), cfp(dout) + r * vw,
                         coff_or_null(dstate_out, i * sd), qt + r * qw, kt + r * qw, vt + r * vw,
                         cfp(g) + r * qw, coff_or_null(state_in, i * sd), scale, j - i, L, H, kdim,
                         vdim, chunk);
        }
        i = j;
    }
    if (own_dg && dg) memcpy(dg, gg, (size_t)N * qw * sizeof(float));
    scatter_rows(fp(dq), ld, gq, N, qw);
    scatter_rows(fp(dk), ld, gk, N, qw);
    scatter_rows(fp(dv), ld, gv, N, vw);
}

// Softmax attention: sequence i's queries and keys are gathered apart (rows ld_q and
// ld_kv apart). lse for sequence i is [H, Lq] at lse + sq.cu[i] * H, which for a run of
// equal sequences is the reference's [B, H, Tq].
static void cpu_softmax_attn_forward(Backend *be, Act *o, float *lse, const Act *q, int ld_q,
                                     const Act *k, const Act *v, int ld_kv, Seqs sq, Seqs sk, int H,
                                     int Hkv, int hd) {
    check(sq.n == sk.n, "softmax_attn_forward: %d query sequences but %d key sequences", sq.n,
          sk.n);
    long Nq = sq.cu[sq.n], Nk = sk.cu[sk.n], qw = (long)H * hd, kw = (long)Hkv * hd;
    float *qt = gather_rows(0, cfp(q), ld_q, Nq, qw), *kt = gather_rows(1, cfp(k), ld_kv, Nk, kw);
    float *vt = gather_rows(2, cfp(v), ld_kv, Nk, kw);
    for (int i = 0; i < sq.n;) {
        int j = run_end2(sq.cu, sk.cu, sq.n, i);
        int Lq = sq.cu[i + 1] - sq.cu[i], Lk = sk.cu[i + 1] - sk.cu[i];
        long rq = sq.cu[i], rk = sk.cu[i];
        if (Lq > 0)
            softmax_attn_forward(fp(o) + rq * qw, lse + rq * H, qt + rq * qw, kt + rk * kw,
                                 vt + rk * kw, j - i, Lq, Lk, H, Hkv, hd);
        i = j;
    }
}

// The reference backward into zeroed copies, scattered into dq (ld_q) and dk, dv (ld_kv).
static void cpu_softmax_attn_backward(Backend *be, Act *dq, Act *dk, Act *dv, const Act *dout,
                                      const Act *o, const float *lse, const Act *q, int ld_q,
                                      const Act *k, const Act *v, int ld_kv, Seqs sq, Seqs sk,
                                      int H, int Hkv, int hd) {
    check(sq.n == sk.n, "softmax_attn_backward: %d query sequences but %d key sequences", sq.n,
          sk.n);
    long Nq = sq.cu[sq.n], Nk = sk.cu[sk.n], qw = (long)H * hd, kw = (long)Hkv * hd;
    float *qt = gather_rows(0, cfp(q), ld_q, Nq, qw), *kt = gather_rows(1, cfp(k), ld_kv, Nk, kw);
    float *vt = gather_rows(2, cfp(v), ld_kv, Nk, kw);
    float *gq = slot_zeroed(5, Nq * qw), *gk = slot_zeroed(6, Nk * kw);
    float *gv = slot_zeroed(7, Nk * kw);
    for (int i = 0; i < sq.n;) {
        int j = run_end2(sq.cu, sk.cu, sq.n, i);
        int Lq = sq.cu[i + 1] - sq.cu[i], Lk = sk.cu[i + 1] - sk.cu[i];
        long rq = sq.cu[i], rk = sk.cu[i];
        if (Lq > 0)
            softmax_attn_backward(gq + rq * qw, gk + rk * kw, gv + rk * kw, cfp(dout) + rq * qw,
                                  cfp(o) + rq * qw, lse + rq * H, qt + rq * qw, kt + rk * kw,
                                  vt + rk * kw, j - i, Lq, Lk, H, Hkv, hd);
        i = j;
    }
    scatter_rows(fp(dq), ld_q, gq, Nq, qw);
    scatter_rows(fp(dk), ld_kv, gk, Nk, kw);
    scatter_rows(fp(dv), ld_kv, gv, Nk, kw);
}

// ---- loss, reductions, optimizer --------------------------------------------------------

// dh is written (zeroed, then the reference accumulates); dW accumulates or is skipped.
static void cpu_lm_head_cross_entropy(Backend *be, float *losses, Act *dh, float *dW, const Act *h,
                                      const Act *W, const int *targets, int N, int D, int V,
                                      float grad_scale) {
    if (dh) zero_floats(fp(dh), (long)N * D);
    lm_head_cross_entropy(losses, fp(dh), dW, cfp(h), cfp(W), targets, N, D, V, grad_scale);
}

// Values per partial sum: fixed, so the result does not depend on the thread count.
enum { SUM_CHUNK = 1 << 16 };

// acc[0] += scale * sum(x): fp64 partial sums of fixed chunks, added in chunk order.
static void cpu_sum_into(Backend *be, float *acc, const float *x, long n, float scale) {
    long chunks = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double *partial = xcalloc((size_t)(chunks > 0 ? chunks : 1), sizeof(double));
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++) {
        long end = (c + 1) * SUM_CHUNK < n ? (c + 1) * SUM_CHUNK : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (long i = c * SUM_CHUNK; i < end; i++) s += (double)x[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (long c = 0; c < chunks; c++) total += partial[c];
    free(partial);
    acc[0] = (float)((double)acc[0] + (double)scale * total);
}

static void cpu_sum_squares_into(Backend *be, float *acc, const float *x, long n) {
    acc[0] += (float)sum_squares(x, n);
}

// The transfer MSE and its gradient (kernels/distill_loss.c), the sum added into acc.
static void cpu_mse_loss(Backend *be, float *acc, Act *dx, const Act *x, const Act *target, long n,
                         float scale) {
    double sum = mse_loss(fp(dx), cfp(x), cfp(target), n, scale);
    acc[0] = (float)((double)acc[0] + (double)scale * sum);
}

// Temperature KL, CE and the KL's logit gradient (kernels/distill_loss.c).
static void cpu_kd_loss(Backend *be, float *kl, float *ce, Act *dlogits, const float *student,
                        const float *teacher, const int *targets, int N, int V, float T,
                        float grad_scale) {
    kd_loss(kl, ce, fp(dlogits), student, teacher, targets, N, V, T, grad_scale);
}

// The reference step with the gradient scale; w_act is w on the CPU unless the caller
// keeps a separate compute copy, which then gets the new weights.
static void cpu_adamw_update(Backend *be, float *w, Act *w_act, const float *grad, float *m,
                             float *v, long n, float lr, float beta1, float beta2, float eps,
                             float weight_decay, float grad_scale, int step) {
    adamw_update_scaled(w, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, step);
    if (w_act && (void *)w_act != (void *)w) memcpy(w_act, w, (size_t)n * sizeof(float));
}

const Ops ops_cpu = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .copy_2d = cpu_copy_2d,
    .float_to_act = cpu_float_to_act,
    .act_to_float = cpu_act_to_float,
    .sync = cpu_sync,
    .memory_in_use = cpu_memory_in_use,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .logits_forward = cpu_logits_forward,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .norm_forward = cpu_norm_forward,
    .residual_norm_forward = cpu_residual_norm_forward,
    .norm_backward = cpu_norm_backward,
    .gate_forward = cpu_gate_forward,
    .gate_backward = cpu_gate_backward,
    .logsigmoid_forward = cpu_logsigmoid_forward,
    .logsigmoid_backward = cpu_logsigmoid_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .lightning_attn_forward = cpu_lightning_attn_forward,
    .lightning_attn_backward = cpu_lightning_attn_backward,
    .gla_forward = cpu_gla_forward,
    .gla_backward = cpu_gla_backward,
    .softmax_attn_forward = cpu_softmax_attn_forward,
    .softmax_attn_backward = cpu_softmax_attn_backward,
    .lm_head_cross_entropy = cpu_lm_head_cross_entropy,
    .mse_loss = cpu_mse_loss,
    .kd_loss = cpu_kd_loss,
    .sum_into = cpu_sum_into,
    .sum_squares_into = cpu_sum_squares_into,
    .adamw_update = cpu_adamw_update,
};
