// kernels/kernels.h: the CPU reference kernels, fp32, forward and backward for every op.
//
// Conventions (all kernels):
// - Tensors are row-major; activations are [B, T, H, d] (a [N, C] matrix with N = B*T
//   rows) unless the function says otherwise. Weights are stored as PyTorch stores them,
//   [out_features, in_features], so checkpoints copy straight to and from safetensors.
// - Backward functions ACCUMULATE (+=) into every gradient they write (inputs and
//   parameters); the caller zeroes gradients once per step. A gradient pointer that may
//   be NULL says so, and NULL means "not needed".
// - Every kernel is deterministic and independent of the OpenMP thread count: each
//   output element is summed by one thread in a fixed order (no atomics), so a resumed
//   run is bit-identical to an uninterrupted one.
// - Linear-attention kernels take an optional initial state and return the final state
//   (and the gradients of both): sequence parallelism and generation depend on it.
#pragma once
#include <stdint.h>

#include "ops.h"

// ---- kernels/matmul.c --------------------------------------------------------------
// out[N, OC] = inp[N, C] @ weight[OC, C]^T (+ bias[OC] if non-NULL).
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int C, int OC);
// dinp += dout @ weight; dweight += dout^T @ inp; dbias += colsum(dout). Any may be NULL.
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

// ---- kernels/embedding.c -----------------------------------------------------------
// out[N, D] = scale * table[tokens[n]]. Dies if a token id is outside [0, V).
void embedding_forward(float *out, const int *tokens, const float *table, int N, int D, int V,
                       float scale);
// dtable[tokens[n]] += scale * dout[n].
void embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int D,
                        float scale);

// ---- kernels/norm.c ----------------------------------------------------------------
// NormKind (NORM_RMS, NORM_SRMS) comes from ops.h.
// Normalise each of N rows of length D. `weight` [D] or NULL (NULL: no weight).
// rstd[N] saves the per-row inverse scale for the backward pass.
void norm_forward(float *out, float *rstd, const float *x, const float *weight, int N, int D,
                  float eps, NormKind kind);
// dx += ..., dweight += ... (dweight may be NULL; ignored when weight is NULL).
void norm_backward(float *dx, float *dweight, const float *dout, const float *x,
                   const float *weight, const float *rstd, int N, int D, float eps, NormKind kind);

// ---- kernels/activation.c ----------------------------------------------------------
void add_forward(float *out, const float *a, const float *b, long n); // out = a + b
void silu_forward(float *out, const float *x, long n);
void silu_backward(float *dx, const float *dout, const float *x, long n);
// SwiGLU / swish gate: out = silu(gate) * up.
void swiglu_forward(float *out, const float *gate, const float *up, long n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, long n);
// SGLU (no activation): out = a * b.
void mul_forward(float *out, const float *a, const float *b, long n);
void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b, long n);
// GLA gate: out = logsigmoid(x) * scale (scale = 1/16 for fla's normaliser).
void logsigmoid_forward(float *out, const float *x, float scale, long n);
void logsigmoid_backward(float *dx, const float *dout, const float *x, float scale, long n);

// Strided rows (the seam's fused boundaries): out[n, :F] = act(a[n]) * b[n] with rows lda
// / ldb apart (GATE_MUL: a * b, GATE_SWISH: silu(a) * b); backward writes da, db (either
// may be NULL). Same arithmetic as mul_* / swiglu_*, bit for bit.
void gate_rows_forward(float *out, const float *a, long lda, const float *b, long ldb, int N, int F,
                       GateKind kind);
void gate_rows_backward(float *da, long ldda, float *db, long lddb, const float *dout,
                        const float *a, long lda, const float *b, long ldb, int N, int F,
                        GateKind kind);

// ---- kernels/rope.c ----------------------------------------------------------------
// Rotary embedding in Hugging Face rotate_half form on x [B, T, H, hd] (hd even):
// inv_freq_i = theta^(-2i/hd); position of row t is pos0 + t. out may alias x.
void rope_forward(float *out, const float *x, int B, int T, int H, int hd, float theta, int pos0);
void rope_backward(float *dx, const float *dout, int B, int T, int H, int hd, float theta,
                   int pos0);

// RoPE in place on rows ld apart, row n at position pos[n]; sign +1 rotates forward, -1
// back (the backward). Bit-identical to rope_forward / rope_backward.
void rope_rows(float *x, long ld, const int *pos, int N, int H, int hd, float theta, float sign);

// ---- kernels/lightning_attn.c ------------------------------------------------------
// Lightning attention (constant decay per head), q,k [B,T,H,kdim], v,o [B,T,H,vdim]:
//   o_t = q_t S_t,  S_t = lambda_h S_{t-1} + k_t^T v_t,  S_{-1} = state_in (or 0).
// log_decay[H] = log(lambda_h) <= 0. States are [B, H, kdim, vdim], fp32; state_in and
// state_out may be NULL. `block` is the block size of the block form (SPEC sec. 3).
void lightning_attn_forward(float *o, float *state_out, const float *q, const float *k,
                            const float *v, const float *state_in, const float *log_decay, int B,
                            int T, int H, int kdim, int vdim, int block);
// dq, dk, dv += ...; dstate_in += d loss / d state_in (may be NULL); dstate_out is the
// incoming gradient of state_out (NULL: zero).
void lightning_attn_backward(float *dq, float *dk, float *dv, float *dstate_in, const float *dout,
                             const float *dstate_out, const float *q, const float *k,
                             const float *v, const float *state_in, const float *log_decay, int B,
                             int T, int H, int kdim, int vdim, int block);
// The token-by-token recurrence: same contract, the reference the block form is tested
// against, and the decoding step when T = 1.
void lightning_attn_recurrent_forward(float *o, float *state_out, const float *q, const float *k,
                                      const float *v, const float *state_in, const float *log_decay,
                                      int B, int T, int H, int kdim, int vdim);
void lightning_attn_recurrent_backward(float *dq, float *dk, float *dv, float *dstate_in,
                                       const float *dout, const float *dstate_out, const float *q,
                                       const float *k, const float *v, const float *state_in,
                                       const float *log_decay, int B, int T, int H, int kdim,
                                       int vdim);

// ---- kernels/gla.c -----------------------------------------------------------------
// Gated linear attention, q,k,g [B,T,H,kdim], v,o [B,T,H,vdim]; g is the per-channel log
// decay (natural log, <= 0):
//   S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,  o_t = scale * q_t S_t.
// States [B, H, kdim, vdim] fp32, optional in/out as for lightning. `chunk` is the chunk
// size of the chunked form (SPEC sec. 3: 64 with sub-chunks of 16; any size works).
void gla_forward(float *o, float *state_out, const float *q, const float *k, const float *v,
                 const float *g, const float *state_in, float scale, int B, int T, int H, int kdim,
                 int vdim, int chunk);
void gla_backward(float *dq, float *dk, float *dv, float *dg, float *dstate_in, const float *dout,
                  const float *dstate_out, const float *q, const float *k, const float *v,
                  const float *g, const float *state_in, float scale, int B, int T, int H, int kdim,
                  int vdim, int chunk);
void gla_recurrent_forward(float *o, float *state_out, const float *q, const float *k,
                           const float *v, const float *g, const float *state_in, float scale,
                           int B, int T, int H, int kdim, int vdim);
void gla_recurrent_backward(float *dq, float *dk, float *dv, float *dg, float *dstate_in,
                            const float *dout, const float *dstate_out, const float *q,
                            const float *k, const float *v, const float *g, const float *state_in,
                            float scale, int B, int T, int H, int kdim, int vdim);

// ---- kernels/softmax_attn.c --------------------------------------------------------
// Causal softmax attention with GQA (H query heads share Hkv = H / group key/value
// heads), scale 1/sqrt(hd). q,o [B,Tq,H,hd]; k,v [B,Tk,Hkv,hd], Tk >= Tq; query t sits at
// absolute position Tk - Tq + t (so Tq = 1 is one decoding step against a KV cache).
// lse[B,H,Tq] saves the row log-sum-exp; no Tq x Tk matrix is kept.
void softmax_attn_forward(float *o, float *lse, const float *q, const float *k, const float *v,
                          int B, int Tq, int Tk, int H, int Hkv, int hd);
void softmax_attn_backward(float *dq, float *dk, float *dv, const float *dout, const float *o,
                           const float *lse, const float *q, const float *k, const float *v, int B,
                           int Tq, int Tk, int H, int Hkv, int hd);

// ---- kernels/cross_entropy.c -------------------------------------------------------
// Fused LM head + cross-entropy: logits = h[N,D] @ W[V,D]^T row block by row block, so
// the [N, V] matrix is never stored. losses[N] gets -log p(target) (0 where target < 0,
// which means "ignore"). If dh / dW are non-NULL, also accumulates the gradient of
// grad_scale * sum(losses) into them. Returns the number of counted (target >= 0) rows.
int lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h, const float *W,
                          const int *targets, int N, int D, int V, float grad_scale);

// ---- kernels/distill_loss.c --------------------------------------------------------
// Attention transfer: returns sum((x - target)^2) over n values (fp64, fixed order) and
// writes dx = 2 * grad_scale * (x - target).
double mse_loss(float *dx, const float *x, const float *target, long n, float grad_scale);
// Logit distillation at temperature T on fp32 logits [N, V]: with p = softmax(teacher/T)
// and q = softmax(student/T), kl[n] = sum_v p (log p - log q); ce[n] = -log
// softmax(student)[targets[n]] (0 where targets[n] < 0); dlogits (written) = grad_scale *
// T * (q - p), the gradient of grad_scale * T^2 * kl. Rows are independent.
void kd_loss(float *kl, float *ce, float *dlogits, const float *student, const float *teacher,
             const int *targets, int N, int V, float T, float grad_scale);

// ---- kernels/adamw.c ---------------------------------------------------------------
// One AdamW step on n values (decoupled weight decay: w -= lr * wd * w). `step` counts
// from 1 (bias correction). m and v are the fp32 moments.
void adamw_update(float *w, const float *grad, float *m, float *v, long n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step);

// The same with the gradient scaled by grad_scale first (clipping folded in); scale 1 is
// bit-identical to adamw_update.
void adamw_update_scaled(float *w, const float *grad, float *m, float *v, long n, float lr,
                         float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                         int step);

// ---- kernels/reduce.c --------------------------------------------------------------
double sum_squares(const float *x, long n); // fp64 accumulation, fixed order
void scale_inplace(float *x, float s, long n);
