// kernels/lightning_attn.c: Lightning Attention (constant decay per head), the fp32 CPU
// reference. Two forms with one contract (kernels.h):
// - the token-by-token recurrence S_t = lambda S_{t-1} + k_t^T v_t, o_t = q_t S_t, the
//   reference and the decoding step;
// - the block form of Lightning Attention-2 (SPEC sec. 3): masked-decay matmuls inside a
//   block, the running state KV [kdim, vdim] between blocks.
// Every (batch, head) pair is an independent sequence: OpenMP splits the B*H pairs across
// threads and each pair is computed by one thread in a fixed order, so results do not
// depend on the thread count. Each pair copies its state_in before writing state_out, so
// state_out may alias state_in (in-place decoding).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "kernels.h"
#include "vec_math.h"

// The block size actually used: one block longer than the sequence is the same as one
// block of exactly T rows, and keeps the [block, block] scratch small.
static int effective_block(int block, int T) {
    return block < T ? block : (T > 0 ? T : 1);
}

// Die on shapes or decays the kernels cannot take: a positive log-decay would make
// exponents positive and the state grow without bound.
static void check_args(const char *fn, const float *log_decay, int B, int T, int H, int kdim,
                       int vdim, int block) {
    check(B > 0 && T >= 0 && H > 0 && kdim > 0 && vdim > 0,
          "%s: bad shape B=%d T=%d H=%d kdim=%d vdim=%d", fn, B, T, H, kdim, vdim);
    check(block > 0, "%s: block size must be positive, got %d", fn, block);
    for (int h = 0; h < H; h++)
        check(log_decay[h] <= 0.0f, "%s: log_decay[%d] = %g must be <= 0", fn, h,
              (double)log_decay[h]);
}

// pw[n] = lambda^n = exp(log_decay * n) for n = 0..n_max (all exponents <= 0), rounded
// once from double so long powers carry no accumulated error.
static void decay_powers(float *pw, float log_decay, int n_max) {
    for (int n = 0; n <= n_max; n++) pw[n] = (float)exp((double)log_decay * n);
}

// The decay mask read forwards: mask[c] = lambda^(block-1-c), so the row of M for
// query a within a block, M[a][b] = lambda^(a-b), is (mask + block-1-a)[b].
static void decay_mask(float *mask, const float *pw, int block) {
    for (int c = 0; c < block; c++) mask[c] = pw[block - 1 - c];
}

// x[0..n) *= c.
static inline void scale(float *x, float c, long n) {
#pragma omp simd
    for (long j = 0; j < n; j++) x[j] *= c;
}

// y[0..n) += sum_{r < m} c[r * ldc] * X[r * ldx + 0..n): a vector times a matrix, the shape
// of every product here. Four rows per pass: one axpy per row would make each pass wait
// on the previous pass's store of y.
static void vec_mat(float *restrict y, const float *restrict c, long ldc, const float *restrict X,
                    long ldx, int m, int n) {
    int r = 0;
    for (; r + 4 <= m; r += 4) {
        const float *x0 = X + r * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        float c0 = c[r * ldc], c1 = c[(r + 1) * ldc], c2 = c[(r + 2) * ldc], c3 = c[(r + 3) * ldc];
#pragma omp simd
        for (int j = 0; j < n; j++) y[j] += c0 * x0[j] + c1 * x1[j] + c2 * x2[j] + c3 * x3[j];
    }
    for (; r < m; r++) axpy(y, c[r * ldc], X + r * ldx, n);
}

// Copy L rows (stride `stride`) of width d into a contiguous [L, d] matrix.
static void load_rows(float *dst, const float *src, int L, long stride, int d) {
    for (int a = 0; a < L; a++) memcpy(dst + (long)a * d, src + a * stride, (size_t)d * 4);
}

// Copy L rows (stride `stride`) of width d into the transposed [d, block] matrix.
static void load_cols(float *dst, const float *src, int L, long stride, int d, int block) {
    for (int a = 0; a < L; a++)
        for (int i = 0; i < d; i++) dst[(long)i * block + a] = src[a * stride + i];
}

// dst[c, r] = src[r, c] for a [rows, cols] matrix.
static void transpose(float *dst, const float *src, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(long)c * rows + r] = src[(long)r * cols + c];
}

// Masked score row for query a: row[b] = lambda^(a-b) * (x_a . y_b) for b <= a, where
// x_a is a row of length d and yt the transposed [d, block] keys (or values).
static void masked_row(float *row, const float *x_a, const float *yt, const float *mask, int a,
                       int d, int block) {
    int n = a + 1;
    memset(row, 0, (size_t)n * sizeof(float));
    vec_mat(row, x_a, 1, yt, block, d, n);
    const float *m = mask + block - 1 - a;
#pragma omp simd
    for (int b = 0; b < n; b++) row[b] *= m[b];
}

// KV <- lambda^L KV + (lambda^(L-1-b) K)^T V for one block of L rows (Kt transposed).
static void state_update(float *kv, const float *Kt, const float *Vb, const float *pw, int L,
                         int kdim, int vdim, int block) {
    float lL = pw[L];
    scale(kv, lL, (long)kdim * vdim);
    for (int b = 0; b < L; b++) {
        float w = pw[L - 1 - b];
        const float *vb = Vb + (long)b * vdim;
        for (int i = 0; i < kdim; i++) {
            float c = w * Kt[(long)i * block + b];
            float *kvr = kv + (long)i * vdim;
            axpy(kvr, c, vb, vdim);
        }
    }
}

// ---- recurrent form ------------------------------------------------------------------

// One (batch, head) sequence of the recurrence. q,k,v,o point at the head's first row;
// rows are qs / vs floats apart. S [kdim, vdim] holds state_in on entry, state_out on exit.
static void recurrent_forward_head(float *o, float *S, const float *q, const float *k,
                                   const float *v, float lambda, int T, long qs, long vs, int kdim,
                                   int vdim) {
    for (int t = 0; t < T; t++) {
        const float *qt = q + t * qs, *kt = k + t * qs, *vt = v + t * vs;
        float *ot = o + t * vs;
        for (int i = 0; i < kdim; i++) {
            float *s = S + (long)i * vdim;
            float c = kt[i];
#pragma omp simd
            for (int j = 0; j < vdim; j++) s[j] = lambda * s[j] + c * vt[j];
        }
        memset(ot, 0, (size_t)vdim * sizeof(float));
        vec_mat(ot, qt, 1, S, vdim, kdim, vdim);
    }
}

void lightning_attn_recurrent_forward(float *o, float *state_out, const float *q, const float *k,
                                      const float *v, const float *state_in, const float *log_decay,
                                      int B, int T, int H, int kdim, int vdim) {
    check_args("lightning_attn_recurrent_forward", log_decay, B, T, H, kdim, vdim, 1);
    long qs = (long)H * kdim, vs = (long)H * vdim, sd = (long)kdim * vdim;
#pragma omp parallel
    {
        float *S = xmalloc((size_t)sd * sizeof(float));
#pragma omp for schedule(static)
        for (int p = 0; p < B * H; p++) {
            int b = p / H, h = p % H;
            long qoff = (long)b * T * qs + (long)h * kdim, voff = (long)b * T * vs + (long)h * vdim;
            load_or_zero(S, state_in ? state_in + p * sd : NULL, sd);
            float lambda = (float)exp((double)log_decay[h]);
            recurrent_forward_head(o + voff, S, q + qoff, k + qoff, v + voff, lambda, T, qs, vs,
                                   kdim, vdim);
            if (state_out) memcpy(state_out + p * sd, S, (size_t)sd * sizeof(float));
        }
        free(S);
    }
}

// Backward of one (batch, head) sequence: a forward sweep rebuilds S_t for dq_t = do_t S_t^T,
// then a reverse sweep carries dS (the gradient of S_t) from dS = dstate_out:
// dS += q_t^T do_t; dk_t = dS v_t^T; dv_t = k_t dS; dS *= lambda. On exit dS is the
// gradient of state_in. `row` is scratch of vdim floats.
static void recurrent_backward_head(float *dq, float *dk, float *dv, float *S, float *dS,
                                    float *row, const float *dout, const float *q, const float *k,
                                    const float *v, float lambda, int T, long qs, long vs, int kdim,
                                    int vdim) {
    for (int t = 0; t < T; t++) {
        const float *kt = k + t * qs, *vt = v + t * vs, *got = dout + t * vs;
        float *dqt = dq + t * qs;
        for (int i = 0; i < kdim; i++) {
            float *s = S + (long)i * vdim;
            float c = kt[i];
#pragma omp simd
            for (int j = 0; j < vdim; j++) s[j] = lambda * s[j] + c * vt[j];
            dqt[i] += dot(s, got, vdim);
        }
    }
    for (int t = T - 1; t >= 0; t--) {
        const float *qt = q + t * qs, *kt = k + t * qs, *vt = v + t * vs, *got = dout + t * vs;
        float *dkt = dk + t * qs, *dvt = dv + t * vs;
        for (int i = 0; i < kdim; i++) axpy(dS + (long)i * vdim, qt[i], got, vdim);
        for (int i = 0; i < kdim; i++) dkt[i] += dot(dS + (long)i * vdim, vt, vdim);
        memset(row, 0, (size_t)vdim * sizeof(float));
        vec_mat(row, kt, 1, dS, vdim, kdim, vdim);
        for (int j = 0; j < vdim; j++) dvt[j] += row[j];
        scale(dS, lambda, (long)kdim * vdim);
    }
}

void lightning_attn_recurrent_backward(float *dq, float *dk, float *dv, float *dstate_in,
                                       const float *dout, const float *dstate_out, const float *q,
                                       const float *k, const float *v, const float *state_in,
                                       const float *log_decay, int B, int T, int H, int kdim,
                                       int vdim) {
    check_args("lightning_attn_recurrent_backward", log_decay, B, T, H, kdim, vdim, 1);
    long qs = (long)H * kdim, vs = (long)H * vdim, sd = (long)kdim * vdim;
#pragma omp parallel
    {
        float *S = xmalloc((size_t)sd * sizeof(float));
        float *dS = xmalloc((size_t)sd * sizeof(float));
        float *row = xmalloc((size_t)vdim * sizeof(float));
#pragma omp for schedule(static)
        for (int p = 0; p < B * H; p++) {
            int b = p / H, h = p % H;
            long qoff = (long)b * T * qs + (long)h * kdim, voff = (long)b * T * vs + (long)h * vdim;
            load_or_zero(S, state_in ? state_in + p * sd : NULL, sd);
            load_or_zero(dS, dstate_out ? dstate_out + p * sd : NULL, sd);
            float lambda = (float)exp((double)log_decay[h]);
            recurrent_backward_head(dq + qoff, dk + qoff, dv + voff, S, dS, row, dout + voff,
                                    q + qoff, k + qoff, v + voff, lambda, T, qs, vs, kdim, vdim);
            if (dstate_in)
                for (long x = 0; x < sd; x++) dstate_in[p * sd + x] += dS[x];
        }
        free(S);
        free(dS);
        free(row);
    }
}

// ---- block form ----------------------------------------------------------------------

// Per-thread scratch of the block form, sized for one (batch, head) sequence.
typedef struct BlockWork {
    float *pw, *mask;         // decay powers [block+1], decay mask [block]
    float *Qb, *Kb, *Kt, *Vb; // block rows [block, d] and transposed keys [kdim, block]
    float *Vt, *dOb;          // transposed values [vdim, block], output gradient rows
    float *P, *D;             // masked scores (Q K^T).*M, (dO V^T).*M [block, block]
                              // (the forward keeps one row of P)
    float *kv, *G, *Gt;       // running state, its gradient and transpose [kdim, vdim]
    float *kvt;               // per-block starting states, transposed [nblocks, vdim, kdim]
    float *rows;              // row scratch [2 * max(kdim, vdim)]
} BlockWork;

static BlockWork block_work_alloc(int T, int kdim, int vdim, int block, int backward) {
    BlockWork w = {0};
    long d = kdim > vdim ? kdim : vdim, nb = (T + block - 1) / block;
    w.pw = xmalloc((size_t)(block + 1) * sizeof(float));
    w.mask = xmalloc((size_t)block * sizeof(float));
    w.Qb = xmalloc((size_t)block * kdim * sizeof(float));
    w.Kt = xmalloc((size_t)block * kdim * sizeof(float));
    w.Vb = xmalloc((size_t)block * vdim * sizeof(float));
    w.kv = xmalloc((size_t)kdim * vdim * sizeof(float));
    w.P = xmalloc((size_t)block * (backward ? block : 1) * sizeof(float));
    w.rows = xmalloc((size_t)2 * d * sizeof(float));
    if (backward) {
        w.Kb = xmalloc((size_t)block * kdim * sizeof(float));
        w.Vt = xmalloc((size_t)block * vdim * sizeof(float));
        w.dOb = xmalloc((size_t)block * vdim * sizeof(float));
        w.D = xmalloc((size_t)block * block * sizeof(float));
        w.G = xmalloc((size_t)kdim * vdim * sizeof(float));
        w.Gt = xmalloc((size_t)kdim * vdim * sizeof(float));
        w.kvt = xmalloc((size_t)(nb > 0 ? nb : 1) * kdim * vdim * sizeof(float));
    }
    return w;
}

static void block_work_free(BlockWork *w) {
    float *all[] = {w->pw, w->mask, w->Qb, w->Kb, w->Kt, w->Vb,  w->Vt,  w->dOb,
                    w->P,  w->D,    w->kv, w->G,  w->Gt, w->kvt, w->rows};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) free(all[i]);
}

// Block forward of one (batch, head) sequence; w->kv holds state_in on entry and
// state_out on exit, w->pw / w->mask this head's decays. Per block of L rows:
// O = Lambda (Q KV) + ((Q K^T) .* M) V, then the state update.
static void block_forward_head(float *o, const float *q, const float *k, const float *v, int T,
                               long qs, long vs, int kdim, int vdim, int block, BlockWork *w) {
    float *row = w->P;
    for (int t0 = 0; t0 < T; t0 += block) {
        int L = T - t0 < block ? T - t0 : block;
        load_rows(w->Qb, q + t0 * qs, L, qs, kdim);
        load_cols(w->Kt, k + t0 * qs, L, qs, kdim, block);
        load_rows(w->Vb, v + t0 * vs, L, vs, vdim);
        for (int a = 0; a < L; a++) {
            const float *qa = w->Qb + (long)a * kdim;
            float *oa = o + (t0 + a) * vs;
            float *acc = w->rows;
            memset(acc, 0, (size_t)vdim * sizeof(float));
            vec_mat(acc, qa, 1, w->kv, vdim, kdim, vdim);
            scale(acc, w->pw[a + 1], vdim);
            masked_row(row, qa, w->Kt, w->mask, a, kdim, block);
            vec_mat(acc, row, 1, w->Vb, vdim, a + 1, vdim);
            memcpy(oa, acc, (size_t)vdim * sizeof(float));
        }
        state_update(w->kv, w->Kt, w->Vb, w->pw, L, kdim, vdim, block);
    }
}

void lightning_attn_forward(float *o, float *state_out, const float *q, const float *k,
                            const float *v, const float *state_in, const float *log_decay, int B,
                            int T, int H, int kdim, int vdim, int block) {
    check_args("lightning_attn_forward", log_decay, B, T, H, kdim, vdim, block);
    block = effective_block(block, T);
    long qs = (long)H * kdim, vs = (long)H * vdim, sd = (long)kdim * vdim;
#pragma omp parallel
    {
        BlockWork w = block_work_alloc(T, kdim, vdim, block, 0);
#pragma omp for schedule(static)
        for (int p = 0; p < B * H; p++) {
            int b = p / H, h = p % H;
            long qoff = (long)b * T * qs + (long)h * kdim, voff = (long)b * T * vs + (long)h * vdim;
            load_or_zero(w.kv, state_in ? state_in + p * sd : NULL, sd);
            decay_powers(w.pw, log_decay[h], block);
            decay_mask(w.mask, w.pw, block);
            block_forward_head(o + voff, q + qoff, k + qoff, v + voff, T, qs, vs, kdim, vdim, block,
                               &w);
            if (state_out) memcpy(state_out + p * sd, w.kv, (size_t)sd * sizeof(float));
        }
        block_work_free(&w);
    }
}

// Block backward of one (batch, head) sequence. w->kv holds state_in and w->G the
// incoming state gradient on entry; on exit w->G is the gradient of state_in. A forward
// sweep stores each block's starting state (transposed), then the reverse sweep does,
// per block with G the gradient of the state at the block's end:
//   dQ = D K + Lambda dO KV^T,  dK = D^T Q + (lambda^(L-1-b) V) G^T,
//   dV = P^T dO + (lambda^(L-1-b) K) G,  G <- lambda^L G + (Lambda Q)^T dO,
// with P = (Q K^T) .* M and D = (dO V^T) .* M.
static void block_backward_head(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, int T, long qs, long vs, int kdim,
                                int vdim, int block, BlockWork *w) {
    int nb = (T + block - 1) / block;
    long sd = (long)kdim * vdim;
    for (int n = 0; n < nb; n++) {
        int t0 = n * block, L = T - t0 < block ? T - t0 : block;
        transpose(w->kvt + n * sd, w->kv, kdim, vdim);
        load_cols(w->Kt, k + t0 * qs, L, qs, kdim, block);
        load_rows(w->Vb, v + t0 * vs, L, vs, vdim);
        state_update(w->kv, w->Kt, w->Vb, w->pw, L, kdim, vdim, block);
    }
    float *acc = w->rows, *acc2 = w->rows + (kdim > vdim ? kdim : vdim);
    for (int n = nb - 1; n >= 0; n--) {
        int t0 = n * block, L = T - t0 < block ? T - t0 : block;
        const float *kvt = w->kvt + n * sd;
        load_rows(w->Qb, q + t0 * qs, L, qs, kdim);
        load_rows(w->Kb, k + t0 * qs, L, qs, kdim);
        load_cols(w->Kt, k + t0 * qs, L, qs, kdim, block);
        load_rows(w->Vb, v + t0 * vs, L, vs, vdim);
        load_cols(w->Vt, v + t0 * vs, L, vs, vdim, block);
        load_rows(w->dOb, dout + t0 * vs, L, vs, vdim);
        transpose(w->Gt, w->G, kdim, vdim);
        for (int a = 0; a < L; a++) {
            masked_row(w->P + (long)a * block, w->Qb + (long)a * kdim, w->Kt, w->mask, a, kdim,
                       block);
            masked_row(w->D + (long)a * block, w->dOb + (long)a * vdim, w->Vt, w->mask, a, vdim,
                       block);
        }
        // dQ row a: sum_b D[a][b] K_b + lambda^(a+1) dO_a KV^T.
        for (int a = 0; a < L; a++) {
            memset(acc, 0, (size_t)kdim * sizeof(float));
            memset(acc2, 0, (size_t)kdim * sizeof(float));
            vec_mat(acc, w->D + (long)a * block, 1, w->Kb, kdim, a + 1, kdim);
            vec_mat(acc2, w->dOb + (long)a * vdim, 1, kvt, kdim, vdim, kdim);
            float la = w->pw[a + 1], *dqa = dq + (t0 + a) * qs;
            for (int i = 0; i < kdim; i++) dqa[i] += acc[i] + la * acc2[i];
        }
        // dK row b: sum_{a>=b} D[a][b] Q_a + lambda^(L-1-b) V_b G^T;
        // dV row b: sum_{a>=b} P[a][b] dO_a + lambda^(L-1-b) K_b G.
        for (int b = 0; b < L; b++) {
            float wb = w->pw[L - 1 - b];
            long diag = (long)b * block + b;
            memset(acc, 0, (size_t)kdim * sizeof(float));
            memset(acc2, 0, (size_t)kdim * sizeof(float));
            vec_mat(acc, w->D + diag, block, w->Qb + (long)b * kdim, kdim, L - b, kdim);
            vec_mat(acc2, w->Vb + (long)b * vdim, 1, w->Gt, kdim, vdim, kdim);
            float *dkb = dk + (t0 + b) * qs;
            for (int i = 0; i < kdim; i++) dkb[i] += acc[i] + wb * acc2[i];

            memset(acc, 0, (size_t)vdim * sizeof(float));
            memset(acc2, 0, (size_t)vdim * sizeof(float));
            vec_mat(acc, w->P + diag, block, w->dOb + (long)b * vdim, vdim, L - b, vdim);
            vec_mat(acc2, w->Kb + (long)b * kdim, 1, w->G, vdim, kdim, vdim);
            float *dvb = dv + (t0 + b) * vs;
            for (int j = 0; j < vdim; j++) dvb[j] += acc[j] + wb * acc2[j];
        }
        // G <- lambda^L G + (Lambda Q)^T dO.
        float lL = w->pw[L];
        scale(w->G, lL, sd);
        for (int a = 0; a < L; a++) {
            float la = w->pw[a + 1];
            const float *qa = w->Qb + (long)a * kdim, *doa = w->dOb + (long)a * vdim;
            for (int i = 0; i < kdim; i++) {
                float c = la * qa[i];
                float *gr = w->G + (long)i * vdim;
                axpy(gr, c, doa, vdim);
            }
        }
    }
}

void lightning_attn_backward(float *dq, float *dk, float *dv, float *dstate_in, const float *dout,
                             const float *dstate_out, const float *q, const float *k,
                             const float *v, const float *state_in, const float *log_decay, int B,
                             int T, int H, int kdim, int vdim, int block) {
    check_args("lightning_attn_backward", log_decay, B, T, H, kdim, vdim, block);
    block = effective_block(block, T);
    long qs = (long)H * kdim, vs = (long)H * vdim, sd = (long)kdim * vdim;
#pragma omp parallel
    {
        BlockWork w = block_work_alloc(T, kdim, vdim, block, 1);
#pragma omp for schedule(static)
        for (int p = 0; p < B * H; p++) {
            int b = p / H, h = p % H;
            long qoff = (long)b * T * qs + (long)h * kdim, voff = (long)b * T * vs + (long)h * vdim;
            load_or_zero(w.kv, state_in ? state_in + p * sd : NULL, sd);
            load_or_zero(w.G, dstate_out ? dstate_out + p * sd : NULL, sd);
            decay_powers(w.pw, log_decay[h], block);
            decay_mask(w.mask, w.pw, block);
            block_backward_head(dq + qoff, dk + qoff, dv + voff, dout + voff, q + qoff, k + qoff,
                                v + voff, T, qs, vs, kdim, vdim, block, &w);
            if (dstate_in)
                for (long x = 0; x < sd; x++) dstate_in[p * sd + x] += w.G[x];
        }
        block_work_free(&w);
    }
}
