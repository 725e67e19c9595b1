// kernels/gla.c: gated linear attention (GLA), fp32 CPU reference, forward and backward, in
// two forms: the token-by-token recurrence (the exact reference and the decoding step) and
// the chunked form of SPEC sec. 3 (what the GPU kernel computes).
//
// Per (batch, head), with the per-key-channel log decay g_t <= 0:
//   S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,   o_t = scale * q_t S_t.
//
// The chunked form works on chunks of `chunk` tokens with the local cumulative log-gates
// gc_t = g_c0 + ... + g_t (t inside the chunk). On the CPU they stay in natural log and are
// used with expf (the GPU kernel keeps them in log2 units and uses exp2). Every exponent
// evaluated is <= 0, so strong gates underflow harmlessly and never overflow:
// - intra-chunk scores between a query sub-chunk (SUB tokens, reference point p = its first
//   token) and an earlier key sub-chunk factor as exp(gc_t - gc_p) * exp(gc_p - gc_s);
// - inside the diagonal sub-chunk the decay exp(gc_t - gc_s), s <= t, is taken elementwise,
//   as the running product exp(g_{s+1}) ... exp(g_t) of per-step decays (each <= 1; at most
//   SUB - 1 factors, so the rounding stays ~1e-6; this saves an expf per (t, s, channel));
// - the state update uses exp(gc_last) and exp(gc_last - gc_s).
// The backward pass recomputes the chunk states and takes the gate gradient as
// dg_r = sum_{t >= r in chunk} (q_t dq_t - k_t dk_t) + sum_j dh_out[:, j] h_out[:, j],
// where h_out is the state leaving the chunk and dh_out its gradient.
//
// Parallel over (batch, head); each head is computed by one thread in a fixed order, so
// the results do not depend on the thread count.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "kernels.h"
#include "vec_math.h"

enum {
    SUB = 16,     // sub-chunk length of the chunked form
    SEGMENT = 64, // recurrent backward: tokens between saved states
};

static void check_gla_shapes(const char *fn, int B, int T, int H, int kdim, int vdim) {
    check(B > 0 && T > 0 && H > 0 && kdim > 0 && vdim > 0,
          "kernels/gla.c: %s: bad shape B=%d T=%d H=%d kdim=%d vdim=%d", fn, B, T, H, kdim, vdim);
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

// ---- the recurrence ------------------------------------------------------------------

// One step of the recurrence on a [kdim, vdim] state: S = diag(exp(g)) S + k^T v.
static void recurrent_step(float *S, const float *k, const float *v, const float *g, int kdim,
                           int vdim) {
    for (int i = 0; i < kdim; i++) {
        float decay = expf(g[i]), ki = k[i];
        float *row = S + (long)i * vdim;
#pragma omp simd
        for (int j = 0; j < vdim; j++) row[j] = decay * row[j] + ki * v[j];
    }
}

// out[j] = scale * sum_i x[i] S[i, j]  (a row vector times the state).
static void row_times_state(float *out, const float *x, const float *S, float scale, int kdim,
                            int vdim) {
    for (int j = 0; j < vdim; j++) out[j] = 0.0f;
    for (int i = 0; i < kdim; i++) axpy(out, scale * x[i], S + (long)i * vdim, vdim);
}

// Token-by-token forward: one (batch, head) at a time, state kept in a [kdim, vdim] buffer.
void gla_recurrent_forward(float *o, float *state_out, const float *q, const float *k,
                           const float *v, const float *g, const float *state_in, float scale,
                           int B, int T, int H, int kdim, int vdim) {
    check_gla_shapes("gla_recurrent_forward", B, T, H, kdim, vdim);
    long sk = (long)H * kdim, sv = (long)H * vdim, state_size = (long)kdim * vdim;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            long head = (long)b * H + h;
            long k_off = (long)b * T * sk + (long)h * kdim,
                 v_off = (long)b * T * sv + (long)h * vdim;
            float *S = xcalloc((size_t)state_size, sizeof(float));
            if (state_in) memcpy(S, state_in + head * state_size, state_size * sizeof(float));
            for (int t = 0; t < T; t++) {
                recurrent_step(S, k + k_off + t * sk, v + v_off + t * sv, g + k_off + t * sk, kdim,
                               vdim);
                row_times_state(o + v_off + t * sv, q + k_off + t * sk, S, scale, kdim, vdim);
            }
            if (state_out) memcpy(state_out + head * state_size, S, state_size * sizeof(float));
            free(S);
        }
    }
}

// Token-by-token backward by the plain chain rule, walking the tokens in reverse with dS
// the gradient of the current state:
//   dq_t = scale * S_t do_t^T,  dS += scale * q_t^T do_t,  dk_t = dS v_t^T,  dv_t = k_t dS,
//   dg_t[i] = exp(g_t[i]) * sum_j dS[i,j] S_{t-1}[i,j],  dS <- diag(exp(g_t)) dS.
// States are recomputed forward from checkpoints saved every SEGMENT tokens (never by
// dividing by the decay, which strong gates would make unstable).
void gla_recurrent_backward(float *dq, float *dk, float *dv, float *dg, float *dstate_in,
                            const float *dout, const float *dstate_out, const float *q,
                            const float *k, const float *v, const float *g, const float *state_in,
                            float scale, int B, int T, int H, int kdim, int vdim) {
    check_gla_shapes("gla_recurrent_backward", B, T, H, kdim, vdim);
    long sk = (long)H * kdim, sv = (long)H * vdim, state_size = (long)kdim * vdim;
    int segments = (T + SEGMENT - 1) / SEGMENT;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            long head = (long)b * H + h;
            long k_off = (long)b * T * sk + (long)h * kdim;
            long v_off = (long)b * T * sv + (long)h * vdim;
            float *checkpoints = xcalloc((size_t)segments * state_size, sizeof(float));
            float *states = xmalloc((size_t)(SEGMENT + 1) * state_size * sizeof(float));
            float *dS = xcalloc((size_t)state_size, sizeof(float));
            float *dv_row = xmalloc((size_t)vdim * sizeof(float));
            // Forward: the state entering each segment.
            float *S = states;
            load_or_zero(S, state_in ? state_in + head * state_size : NULL, state_size);
            for (int m = 0; m < segments; m++) {
                memcpy(checkpoints + m * state_size, S, state_size * sizeof(float));
                for (int t = m * SEGMENT; t < min_int(T, (m + 1) * SEGMENT); t++)
                    recurrent_step(S, k + k_off + t * sk, v + v_off + t * sv, g + k_off + t * sk,
                                   kdim, vdim);
            }
            if (dstate_out) memcpy(dS, dstate_out + head * state_size, state_size * sizeof(float));
            for (int m = segments - 1; m >= 0; m--) {
                int t0 = m * SEGMENT, t1 = min_int(T, t0 + SEGMENT);
                // states[n] = S_{t0 + n - 1}: the state before token t0 + n.
                memcpy(states, checkpoints + m * state_size, state_size * sizeof(float));
                for (int t = t0; t < t1; t++) {
                    float *next = states + (t - t0 + 1) * state_size;
                    memcpy(next, next - state_size, state_size * sizeof(float));
                    recurrent_step(next, k + k_off + t * sk, v + v_off + t * sv, g + k_off + t * sk,
                                   kdim, vdim);
                }
                for (int t = t1 - 1; t >= t0; t--) {
                    const float *St = states + (t - t0 + 1) * state_size;
                    const float *Sprev = St - state_size;
                    const float *qt = q + k_off + t * sk, *kt = k + k_off + t * sk;
                    const float *gt = g + k_off + t * sk;
                    const float *vt = v + v_off + t * sv, *do_t = dout + v_off + t * sv;
                    float *dqt = dq + k_off + t * sk, *dkt = dk + k_off + t * sk;
                    float *dgt = dg + k_off + t * sk, *dvt = dv + v_off + t * sv;
                    for (int i = 0; i < kdim; i++)
                        dqt[i] += scale * dot(St + (long)i * vdim, do_t, vdim);
                    for (int j = 0; j < vdim; j++) dv_row[j] = 0.0f;
                    for (int i = 0; i < kdim; i++) {
                        float *drow = dS + (long)i * vdim;
                        const float *prow = Sprev + (long)i * vdim;
                        float qi = scale * qt[i], ki = kt[i], decay = expf(gt[i]);
                        axpy(drow, qi, do_t, vdim);
                        dkt[i] += dot(drow, vt, vdim);
                        dgt[i] += decay * dot(drow, prow, vdim);
                        axpy(dv_row, ki, drow, vdim);
                        for (int j = 0; j < vdim; j++) drow[j] *= decay;
                    }
                    for (int j = 0; j < vdim; j++) dvt[j] += dv_row[j];
                }
            }
            if (dstate_in) {
                float *dst = dstate_in + head * state_size;
                for (long n = 0; n < state_size; n++) dst[n] += dS[n];
            }
            free(checkpoints);
            free(states);
            free(dS);
            free(dv_row);
        }
    }
}

// ---- the chunked form ------------------------------------------------------------------

// Scratch for one chunk of at most `chunk` tokens, owned by one thread.
typedef struct ChunkWork {
    float *gc;   // [L, kdim] local cumulative log-gates
    float *a;    // [L, kdim] per-step decays exp(g_t)
    float *egc;  // [L, kdim] exp(gc_t)
    float *egl;  // [L, kdim] exp(gc_last - gc_t)
    float *eq;   // [L, kdim] exp(gc_t - gc_p(t)), p(t) the first token of t's sub-chunk
    float *qg;   // [L, kdim] q_t * eq_t
    float *A;    // [L, L] intra-chunk scores (unscaled), lower triangle
    float *dA;   // [L, L] scale * do_t . v_s, lower triangle
    float *tq;   // [L, kdim] off-diagonal part of dq relative to the sub-chunk reference
    float *f;    // [kdim] exp(gc_p - gc_s) for one key s before the reference point p
    float *kf;   // [kdim] k_s * f
    float *e;    // [kdim] running decay exp(gc_t - gc_s) inside a diagonal sub-chunk
    float *qsum; // [kdim] sum over a query sub-chunk of dA[t, s] * qg_t
    float *dq;   // [L, kdim] this chunk's dq (needed whole for the gate gradient)
    float *dk;   // [L, kdim]
    float *dv;   // [L, vdim]
    float *row;  // [vdim]
    float *gsum; // [kdim] running reverse sum of the gate gradient
} ChunkWork;

static ChunkWork chunk_work_alloc(int chunk, int kdim, int vdim) {
    ChunkWork w;
    size_t Lk = (size_t)chunk * kdim, LL = (size_t)chunk * chunk, K = (size_t)kdim;
    w.gc = xmalloc(Lk * sizeof(float));
    w.a = xmalloc(Lk * sizeof(float));
    w.egc = xmalloc(Lk * sizeof(float));
    w.egl = xmalloc(Lk * sizeof(float));
    w.eq = xmalloc(Lk * sizeof(float));
    w.qg = xmalloc(Lk * sizeof(float));
    w.A = xmalloc(LL * sizeof(float));
    w.dA = xmalloc(LL * sizeof(float));
    w.tq = xmalloc(Lk * sizeof(float));
    w.f = xmalloc(K * sizeof(float));
    w.kf = xmalloc(K * sizeof(float));
    w.e = xmalloc(K * sizeof(float));
    w.qsum = xmalloc(K * sizeof(float));
    w.dq = xmalloc(Lk * sizeof(float));
    w.dk = xmalloc(Lk * sizeof(float));
    w.dv = xmalloc((size_t)chunk * vdim * sizeof(float));
    w.row = xmalloc((size_t)vdim * sizeof(float));
    w.gsum = xmalloc(K * sizeof(float));
    return w;
}

static void chunk_work_free(ChunkWork *w) {
    float *all[] = {w->gc, w->a,  w->egc, w->egl,  w->eq, w->qg, w->A,  w->dA,  w->tq,
                    w->f,  w->kf, w->e,   w->qsum, w->dq, w->dk, w->dv, w->row, w->gsum};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

// The chunk's local cumulative log-gates gc_t = g_0 + ... + g_t and the decays built from
// them: exp(g_t), exp(gc_t) and exp(gc_last - gc_t).
static void chunk_gates(ChunkWork *w, const float *g, long sk, int L, int kdim) {
    for (int t = 0; t < L; t++) {
        const float *gt = g + t * sk;
        float *gc = w->gc + (long)t * kdim;
        for (int i = 0; i < kdim; i++) {
            gc[i] = t == 0 ? gt[i] : gc[i - kdim] + gt[i];
            w->a[(long)t * kdim + i] = expf(gt[i]);
            w->egc[(long)t * kdim + i] = expf(gc[i]);
        }
    }
    const float *gl = w->gc + (long)(L - 1) * kdim;
    for (long n = 0; n < (long)L * kdim; n++) w->egl[n] = expf(gl[n % kdim] - w->gc[n]);
}

// exp(gc_p - gc_s) for a key s before the reference point p, into w->f; k_s * f into w->kf.
static void chunk_key_decay(ChunkWork *w, const float *ks, int p, int s, int kdim) {
    const float *gcp = w->gc + (long)p * kdim, *gcs = w->gc + (long)s * kdim;
    for (int i = 0; i < kdim; i++) {
        w->f[i] = expf(gcp[i] - gcs[i]);
        w->kf[i] = ks[i] * w->f[i];
    }
}

// Advance the diagonal sub-chunk decay from exp(gc_{t-1} - gc_s) to exp(gc_t - gc_s)
// (or start it at 1 when t == s).
static void chunk_step_decay(ChunkWork *w, int t, int s, int kdim) {
    const float *at = w->a + (long)t * kdim;
    if (t == s) {
        for (int i = 0; i < kdim; i++) w->e[i] = 1.0f;
    } else {
#pragma omp simd
        for (int i = 0; i < kdim; i++) w->e[i] *= at[i];
    }
}

// The in-sub-chunk decays eq and qg = q * eq, and the intra-chunk score matrix
// A[t, s] = sum_i q_t[i] k_s[i] exp(gc_t[i] - gc_s[i]) for s <= t (0 above). Needs gates.
static void chunk_scores(ChunkWork *w, const float *q, const float *k, long sk, int L, int kdim) {
    for (int t = 0; t < L; t++) {
        int p = t / SUB * SUB;
        const float *gct = w->gc + (long)t * kdim, *gcp = w->gc + (long)p * kdim;
        const float *qt = q + t * sk;
        for (int i = 0; i < kdim; i++) {
            float e = expf(gct[i] - gcp[i]);
            w->eq[(long)t * kdim + i] = e;
            w->qg[(long)t * kdim + i] = qt[i] * e;
        }
    }
    memset(w->A, 0, (size_t)L * L * sizeof(float));
    for (int p = 0; p < L; p += SUB) {
        int pe = min_int(L, p + SUB);
        // Earlier key sub-chunks, through the reference point p.
        for (int s = 0; s < p; s++) {
            chunk_key_decay(w, k + s * sk, p, s, kdim);
            for (int t = p; t < pe; t++)
                w->A[(long)t * L + s] = dot(w->qg + (long)t * kdim, w->kf, kdim);
        }
        // The diagonal sub-chunk, elementwise: the decay grows one step per t.
        for (int s = p; s < pe; s++) {
            const float *ks = k + s * sk;
            for (int t = s; t < pe; t++) {
                const float *qt = q + t * sk;
                chunk_step_decay(w, t, s, kdim);
#pragma omp simd
                for (int i = 0; i < kdim; i++) w->kf[i] = ks[i] * w->e[i];
                w->A[(long)t * L + s] = dot(qt, w->kf, kdim);
            }
        }
    }
}

// h <- diag(exp(gc_last)) h + sum_s (k_s * exp(gc_last - gc_s))^T v_s. Needs gates.
static void chunk_state_update(ChunkWork *w, float *h, const float *k, const float *v, long sk,
                               long sv, int L, int kdim, int vdim) {
    const float *decay = w->egc + (long)(L - 1) * kdim;
    for (int i = 0; i < kdim; i++) {
        for (int j = 0; j < vdim; j++) h[(long)i * vdim + j] *= decay[i];
    }
    for (int s = 0; s < L; s++) {
        const float *ks = k + s * sk, *egl = w->egl + (long)s * kdim;
        for (int i = 0; i < kdim; i++) axpy(h + (long)i * vdim, ks[i] * egl[i], v + s * sv, vdim);
    }
}

// One chunk forward: o_t = scale * ((q_t * exp(gc_t)) h + sum_{s<=t} A[t,s] v_s), then the
// state update.
static void chunk_forward(ChunkWork *w, float *o, float *h, const float *q, const float *k,
                          const float *v, const float *g, float scale, long sk, long sv, int L,
                          int kdim, int vdim) {
    chunk_gates(w, g, sk, L, kdim);
    chunk_scores(w, q, k, sk, L, kdim);
    for (int t = 0; t < L; t++) {
        const float *qt = q + t * sk, *egc = w->egc + (long)t * kdim;
        float *acc = w->row;
        for (int j = 0; j < vdim; j++) acc[j] = 0.0f;
        for (int i = 0; i < kdim; i++) axpy(acc, qt[i] * egc[i], h + (long)i * vdim, vdim);
        for (int s = 0; s <= t; s++) axpy(acc, w->A[(long)t * L + s], v + s * sv, vdim);
        float *ot = o + t * sv;
        for (int j = 0; j < vdim; j++) ot[j] = scale * acc[j];
    }
    chunk_state_update(w, h, k, v, sk, sv, L, kdim, vdim);
}

// One chunk backward. h is the state entering the chunk, h_out the state leaving it, dh the
// gradient of h_out on entry and of h on return. Accumulates into dq, dk, dv, dg.
static void chunk_backward(ChunkWork *w, float *dq, float *dk, float *dv, float *dg, float *dh,
                           const float *dout, const float *h, const float *h_out, const float *q,
                           const float *k, const float *v, const float *g, float scale, long sk,
                           long sv, int L, int kdim, int vdim) {
    chunk_gates(w, g, sk, L, kdim);
    chunk_scores(w, q, k, sk, L, kdim);
    // dA[t, s] = scale * do_t . v_s for s <= t.
    memset(w->dA, 0, (size_t)L * L * sizeof(float));
    for (int t = 0; t < L; t++) {
        for (int s = 0; s <= t; s++)
            w->dA[(long)t * L + s] = scale * dot(dout + t * sv, v + s * sv, vdim);
    }
    // dq from the incoming state: scale * exp(gc_t) * (h do_t^T).
    for (int t = 0; t < L; t++) {
        const float *egc = w->egc + (long)t * kdim;
        for (int i = 0; i < kdim; i++) {
            float hd = dot(h + (long)i * vdim, dout + t * sv, vdim);
            w->dq[(long)t * kdim + i] = scale * egc[i] * hd;
        }
    }
    memset(w->dk, 0, (size_t)L * kdim * sizeof(float));
    memset(w->tq, 0, (size_t)L * kdim * sizeof(float));
    // Intra-chunk dq and dk, by the same sub-chunk split as the forward scores.
    for (int p = 0; p < L; p += SUB) {
        int pe = min_int(L, p + SUB);
        // Earlier keys: dq_t gets eq_t * sum_s dA[t,s] kf_s (tq, scaled by eq below) and
        // dk_s gets f_s * sum_t dA[t,s] qg_t.
        for (int s = 0; s < p; s++) {
            chunk_key_decay(w, k + s * sk, p, s, kdim);
            for (int i = 0; i < kdim; i++) w->qsum[i] = 0.0f;
            for (int t = p; t < pe; t++) {
                float d = w->dA[(long)t * L + s];
                axpy(w->tq + (long)t * kdim, d, w->kf, kdim);
                axpy(w->qsum, d, w->qg + (long)t * kdim, kdim);
            }
            float *dks = w->dk + (long)s * kdim;
            for (int i = 0; i < kdim; i++) dks[i] += w->f[i] * w->qsum[i];
        }
        // The diagonal sub-chunk, with the same running decay as the forward scores.
        for (int s = p; s < pe; s++) {
            const float *ks = k + s * sk;
            float *dks = w->dk + (long)s * kdim;
            for (int t = s; t < pe; t++) {
                const float *qt = q + t * sk;
                float *dqt = w->dq + (long)t * kdim;
                float d = w->dA[(long)t * L + s];
                chunk_step_decay(w, t, s, kdim);
#pragma omp simd
                for (int i = 0; i < kdim; i++) {
                    float de = d * w->e[i];
                    dqt[i] += de * ks[i];
                    dks[i] += de * qt[i];
                }
            }
        }
    }
    for (long n = 0; n < (long)L * kdim; n++) w->dq[n] += w->eq[n] * w->tq[n];
    // dk and dv from the outgoing state gradient, and dv from the intra-chunk scores.
    for (int s = 0; s < L; s++) {
        const float *ks = k + s * sk, *egl = w->egl + (long)s * kdim;
        float *dks = w->dk + (long)s * kdim, *dvs = w->dv + (long)s * vdim;
        for (int j = 0; j < vdim; j++) dvs[j] = 0.0f;
        for (int i = 0; i < kdim; i++) {
            float e = egl[i];
            dks[i] += e * dot(dh + (long)i * vdim, v + s * sv, vdim);
            axpy(dvs, ks[i] * e, dh + (long)i * vdim, vdim);
        }
        for (int t = s; t < L; t++) axpy(dvs, scale * w->A[(long)t * L + s], dout + t * sv, vdim);
    }
    // Gate gradient: reverse cumsum of q*dq - k*dk, plus the outgoing-state term.
    for (int i = 0; i < kdim; i++)
        w->gsum[i] = dot(dh + (long)i * vdim, h_out + (long)i * vdim, vdim);
    for (int t = L - 1; t >= 0; t--) {
        const float *qt = q + t * sk, *kt = k + t * sk;
        const float *dqt = w->dq + (long)t * kdim, *dkt = w->dk + (long)t * kdim;
        float *dgt = dg + t * sk;
        for (int i = 0; i < kdim; i++) {
            w->gsum[i] += qt[i] * dqt[i] - kt[i] * dkt[i];
            dgt[i] += w->gsum[i];
        }
    }
    // dh <- diag(exp(gc_last)) dh + scale * sum_t (q_t * exp(gc_t))^T do_t.
    const float *decay = w->egc + (long)(L - 1) * kdim;
    for (int i = 0; i < kdim; i++) {
        for (int j = 0; j < vdim; j++) dh[(long)i * vdim + j] *= decay[i];
    }
    for (int t = 0; t < L; t++) {
        const float *qt = q + t * sk, *egc = w->egc + (long)t * kdim;
        for (int i = 0; i < kdim; i++)
            axpy(dh + (long)i * vdim, scale * qt[i] * egc[i], dout + t * sv, vdim);
    }
    for (int t = 0; t < L; t++) {
        float *dqt = dq + t * sk, *dkt = dk + t * sk, *dvt = dv + t * sv;
        for (int i = 0; i < kdim; i++) dqt[i] += w->dq[(long)t * kdim + i];
        for (int i = 0; i < kdim; i++) dkt[i] += w->dk[(long)t * kdim + i];
        for (int j = 0; j < vdim; j++) dvt[j] += w->dv[(long)t * vdim + j];
    }
}

// Chunked forward: the chunks of each (batch, head) in order, carrying the state.
void gla_forward(float *o, float *state_out, const float *q, const float *k, const float *v,
                 const float *g, const float *state_in, float scale, int B, int T, int H, int kdim,
                 int vdim, int chunk) {
    check_gla_shapes("gla_forward", B, T, H, kdim, vdim);
    check(chunk > 0, "kernels/gla.c: gla_forward: chunk size must be positive, got %d", chunk);
    int C = min_int(chunk, T);
    long sk = (long)H * kdim, sv = (long)H * vdim, state_size = (long)kdim * vdim;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            long head = (long)b * H + h;
            long k_off = (long)b * T * sk + (long)h * kdim,
                 v_off = (long)b * T * sv + (long)h * vdim;
            ChunkWork w = chunk_work_alloc(C, kdim, vdim);
            float *S = xcalloc((size_t)state_size, sizeof(float));
            if (state_in) memcpy(S, state_in + head * state_size, state_size * sizeof(float));
            for (int t0 = 0; t0 < T; t0 += C) {
                int L = min_int(C, T - t0);
                long ko = k_off + t0 * sk, vo = v_off + t0 * sv;
                chunk_forward(&w, o + vo, S, q + ko, k + ko, v + vo, g + ko, scale, sk, sv, L, kdim,
                              vdim);
            }
            if (state_out) memcpy(state_out + head * state_size, S, state_size * sizeof(float));
            free(S);
            chunk_work_free(&w);
        }
    }
}

// Chunked backward: recompute the state entering every chunk (forward sweep), then walk
// the chunks in reverse carrying the state gradient.
void gla_backward(float *dq, float *dk, float *dv, float *dg, float *dstate_in, const float *dout,
                  const float *dstate_out, const float *q, const float *k, const float *v,
                  const float *g, const float *state_in, float scale, int B, int T, int H, int kdim,
                  int vdim, int chunk) {
    check_gla_shapes("gla_backward", B, T, H, kdim, vdim);
    check(chunk > 0, "kernels/gla.c: gla_backward: chunk size must be positive, got %d", chunk);
    int C = min_int(chunk, T), chunks = (T + C - 1) / C;
    long sk = (long)H * kdim, sv = (long)H * vdim, state_size = (long)kdim * vdim;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            long head = (long)b * H + h;
            long k_off = (long)b * T * sk + (long)h * kdim;
            long v_off = (long)b * T * sv + (long)h * vdim;
            ChunkWork w = chunk_work_alloc(C, kdim, vdim);
            // states[c] enters chunk c; states[chunks] is the final state.
            float *states = xcalloc((size_t)(chunks + 1) * state_size, sizeof(float));
            float *dS = xcalloc((size_t)state_size, sizeof(float));
            if (state_in) memcpy(states, state_in + head * state_size, state_size * sizeof(float));
            for (int c = 0; c < chunks; c++) {
                int t0 = c * C, L = min_int(C, T - t0);
                long ko = k_off + t0 * sk, vo = v_off + t0 * sv;
                float *next = states + (c + 1) * state_size;
                memcpy(next, next - state_size, state_size * sizeof(float));
                chunk_gates(&w, g + ko, sk, L, kdim);
                chunk_state_update(&w, next, k + ko, v + vo, sk, sv, L, kdim, vdim);
            }
            if (dstate_out) memcpy(dS, dstate_out + head * state_size, state_size * sizeof(float));
            for (int c = chunks - 1; c >= 0; c--) {
                int t0 = c * C, L = min_int(C, T - t0);
                long ko = k_off + t0 * sk, vo = v_off + t0 * sv;
                chunk_backward(&w, dq + ko, dk + ko, dv + vo, dg + ko, dS, dout + vo,
                               states + c * state_size, states + (c + 1) * state_size, q + ko,
                               k + ko, v + vo, g + ko, scale, sk, sv, L, kdim, vdim);
            }
            if (dstate_in) {
                float *dst = dstate_in + head * state_size;
                for (long n = 0; n < state_size; n++) dst[n] += dS[n];
            }
            free(states);
            free(dS);
            chunk_work_free(&w);
        }
    }
}
