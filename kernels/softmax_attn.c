// kernels/softmax_attn.c: causal softmax attention with GQA, fp32 CPU reference.
//
// q, o [B, Tq, H, hd]; k, v [B, Tk, Hkv, hd]; query head h reads kv head h / (H / Hkv).
// Query t sits at absolute position Tk - Tq + t and attends keys 0 .. Tk - Tq + t, so
// Tq = Tk is training and Tq = 1 is one decoding step against a KV cache.
// The forward pass is flash-style: keys are visited in blocks with an online softmax (running
// max and sum), so no Tq x Tk matrix exists; it saves lse = log sum_s exp(score_s) per row.
// The backward pass recomputes the probabilities from lse:
//   P = exp(score - lse),  dS = P * (do . v_s - D),  D = do . o,
//   dq += scale * sum_s dS k_s,  dk_s += scale * sum_t dS q_t,  dv_s += sum_t P do_t.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "kernels.h"
#include "vec_math.h"

enum { KEY_BLOCK = 64 }; // keys per online-softmax block

static void check_attn_shapes(const char *fn, int B, int Tq, int Tk, int H, int Hkv, int hd) {
    check(B > 0 && Tq > 0 && H > 0 && Hkv > 0 && hd > 0,
          "kernels/softmax_attn.c: %s: bad shape B=%d Tq=%d H=%d Hkv=%d hd=%d", fn, B, Tq, H, Hkv,
          hd);
    check(Tk >= Tq, "kernels/softmax_attn.c: %s: Tk=%d keys is fewer than Tq=%d queries", fn, Tk,
          Tq);
    check(H % Hkv == 0, "kernels/softmax_attn.c: %s: H=%d query heads not a multiple of Hkv=%d", fn,
          H, Hkv);
}

// Forward: each (batch, query row, head) is independent; its keys are visited in blocks of
// KEY_BLOCK, rescaling the running output and sum whenever the running max grows.
void softmax_attn_forward(float *o, float *lse, const float *q, const float *k, const float *v,
                          int B, int Tq, int Tk, int H, int Hkv, int hd) {
    check_attn_shapes("softmax_attn_forward", B, Tq, Tk, H, Hkv, hd);
    int group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *scores = xmalloc(KEY_BLOCK * sizeof(float));
        float *acc = xmalloc((size_t)hd * sizeof(float));
#pragma omp for collapse(3) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < Tq; t++) {
                for (int h = 0; h < H; h++) {
                    const float *qt = q + (((long)b * Tq + t) * H + h) * hd;
                    const float *kb = k + (long)b * Tk * Hkv * hd + (long)(h / group) * hd;
                    const float *vb = v + (long)b * Tk * Hkv * hd + (long)(h / group) * hd;
                    long stride = (long)Hkv * hd;
                    int keys = Tk - Tq + t + 1;
                    float run_max = -INFINITY, run_sum = 0.0f;
                    for (int i = 0; i < hd; i++) acc[i] = 0.0f;
                    for (int s0 = 0; s0 < keys; s0 += KEY_BLOCK) {
                        int n = keys - s0 < KEY_BLOCK ? keys - s0 : KEY_BLOCK;
                        float block_max = -INFINITY;
                        for (int s = 0; s < n; s++) {
                            scores[s] = scale * dot(qt, kb + (s0 + s) * stride, hd);
                            if (scores[s] > block_max) block_max = scores[s];
                        }
                        if (block_max > run_max) {
                            float rescale = expf(run_max - block_max); // 0 on the first block
                            run_sum *= rescale;
                            for (int i = 0; i < hd; i++) acc[i] *= rescale;
                            run_max = block_max;
                        }
                        for (int s = 0; s < n; s++) {
                            float p = expf(scores[s] - run_max);
                            run_sum += p;
                            axpy(acc, p, vb + (s0 + s) * stride, hd);
                        }
                    }
                    float *ot = o + (((long)b * Tq + t) * H + h) * hd;
                    for (int i = 0; i < hd; i++) ot[i] = acc[i] / run_sum;
                    lse[((long)b * H + h) * Tq + t] = run_max + logf(run_sum);
                }
            }
        }
        free(scores);
        free(acc);
    }
}

// Backward: one thread per (batch, kv head) walks the group's query heads and rows in order,
// summing dk and dv for its kv head in local buffers, so the sums have a fixed order.
void softmax_attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *o,
                           const float *lse, const float *q, const float *k, const float *v, int B,
                           int Tq, int Tk, int H, int Hkv, int hd) {
    check_attn_shapes("softmax_attn_backward", B, Tq, Tk, H, Hkv, hd);
    int group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
    long stride = (long)Hkv * hd;
#pragma omp parallel
    {
        float *dk_local = xmalloc((size_t)Tk * hd * sizeof(float));
        float *dv_local = xmalloc((size_t)Tk * hd * sizeof(float));
        float *dq_row = xmalloc((size_t)hd * sizeof(float));
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int hk = 0; hk < Hkv; hk++) {
                const float *kb = k + (long)b * Tk * stride + (long)hk * hd;
                const float *vb = v + (long)b * Tk * stride + (long)hk * hd;
                memset(dk_local, 0, (size_t)Tk * hd * sizeof(float));
                memset(dv_local, 0, (size_t)Tk * hd * sizeof(float));
                for (int h = hk * group; h < (hk + 1) * group; h++) {
                    for (int t = 0; t < Tq; t++) {
                        long row = ((long)b * Tq + t) * H + h;
                        const float *qt = q + row * hd, *do_t = dout + row * hd;
                        float D = dot(do_t, o + row * hd, hd);
                        float row_lse = lse[((long)b * H + h) * Tq + t];
                        int keys = Tk - Tq + t + 1;
                        for (int i = 0; i < hd; i++) dq_row[i] = 0.0f;
                        for (int s = 0; s < keys; s++) {
                            const float *ks = kb + s * stride, *vs = vb + s * stride;
                            float p = expf(scale * dot(qt, ks, hd) - row_lse);
                            float ds = p * (dot(do_t, vs, hd) - D);
                            float *dks = dk_local + (long)s * hd, *dvs = dv_local + (long)s * hd;
                            axpy(dq_row, ds, ks, hd);
                            axpy(dks, scale * ds, qt, hd);
                            axpy(dvs, p, do_t, hd);
                        }
                        float *dqt = dq + row * hd;
                        for (int i = 0; i < hd; i++) dqt[i] += scale * dq_row[i];
                    }
                }
                for (int s = 0; s < Tk; s++) {
                    float *dks = dk + (long)b * Tk * stride + s * stride + (long)hk * hd;
                    float *dvs = dv + (long)b * Tk * stride + s * stride + (long)hk * hd;
                    for (int i = 0; i < hd; i++) {
                        dks[i] += dk_local[(long)s * hd + i];
                        dvs[i] += dv_local[(long)s * hd + i];
                    }
                }
            }
        }
        free(dk_local);
        free(dv_local);
        free(dq_row);
    }
}
