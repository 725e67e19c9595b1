// kernels/ops.h: the backend seam. The model calls every op through a backend's `Ops`
// table with the backend's context first, so the CUDA backend (bf16 activations, a
// stream, a cuBLASLt handle and workspace) fills the same table as the CPU reference
// (fp32, kernels/ops_cpu.c) and no model code changes between them.
//
// Conventions (every op):
// - Pointers are memory of the backend that runs the op ("device" memory).
// - Activations are `Act *`: an opaque element of the backend's compute type (fp32 on
//   the CPU, bf16 on CUDA). Offsets go through act_at, never through `float *`
//   arithmetic. Master weights, AdamW moments, weight gradients, norm rstd, softmax lse,
//   per-token losses and linear-attention states are fp32 (`float *`).
// - Matrices are row-major; `ld` is the distance between rows in elements, so an op can
//   read or write a column block of a wider matrix (q, k and v inside one [N, 4D]
//   projection). A tensor without an ld is contiguous.
// - Activation gradients are WRITTEN (=), unless the op says it accumulates; weight
//   gradients ACCUMULATE (+=). A NULL gradient pointer means "not needed" (a frozen
//   tensor gets no weight-gradient work).
// - Ops are enqueued in order on the backend's one stream; upload and download are the
//   only ops that wait for the device (the CPU backend runs everything at once).
#pragma once
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Act Act; // an activation element of the backend's compute type (opaque)

typedef enum NormKind {
    NORM_RMS,  // y = x / sqrt(mean(x^2) + eps) * weight           (Llama, GLA)
    NORM_SRMS, // y = x / (sqrt(mean(x^2)) + eps), no weight       (TNL SimpleRMSNorm)
} NormKind;

typedef enum GateKind {
    GATE_MUL,   // out = a * b            (TNL SGLU and output gate)
    GATE_SWISH, // out = silu(a) * b      (SwiGLU, GLA's swish output gate)
} GateKind;

// Packed sequences: n sequences laid end to end over the rows of a tensor; sequence i
// is rows [cu[i], cu[i+1]) (cu has n + 1 entries, cu[0] = 0, in backend memory).
// max_len is the longest sequence and rows = cu[n] the rows of all of them (launch and
// scratch sizes; host values).
typedef struct Seqs {
    const int *cu;
    int n;
    int max_len;
    int rows;
} Seqs;

typedef struct Backend Backend;

typedef struct Ops {
    // ---- memory -----------------------------------------------------------------------
    void *(*alloc)(Backend *be, size_t bytes); // zeroed; dies when out of memory
    void (*free)(Backend *be, void *p);
    void (*zero)(Backend *be, void *p, size_t bytes);
    void (*upload)(Backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(Backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);
    // rows x width bytes from src (rows src_pitch bytes apart) to dst (dst_pitch apart).
    void (*copy_2d)(Backend *be, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                    size_t width, size_t rows);
    // Conversions between fp32 and the compute type (weights' compute copies, logits).
    void (*float_to_act)(Backend *be, Act *dst, const float *src, long n);
    void (*act_to_float)(Backend *be, float *dst, const Act *src, long n);
    void (*sync)(Backend *be);            // wait until every enqueued op is done
    size_t (*memory_in_use)(Backend *be); // bytes this backend has allocated

    // ---- dense ------------------------------------------------------------------------
    // out[N, OC] = inp[N, C] @ weight[OC, C]^T (+ bias[OC] if non-NULL).
    void (*matmul_forward)(Backend *be, Act *out, const Act *inp, const Act *weight,
                           const Act *bias, int N, int C, int OC);
    // dinp = dout @ weight (+= if accumulate); dweight += dout^T @ inp; dbias +=
    // colsum(dout). dout's rows are ld_dout apart (>= OC: a column block of a wider
    // gradient). Any of dinp, dweight, dbias may be NULL.
    void (*matmul_backward)(Backend *be, Act *dinp, float *dweight, float *dbias, const Act *dout,
                            int ld_dout, const Act *inp, const Act *weight, int N, int C, int OC,
                            bool accumulate);
    // logits[N, V] = h[N, D] @ W[V, D]^T as fp32 (fp32 accumulation, never rounded to the
    // compute type): the LM head of a decoding step.
    void (*logits_forward)(Backend *be, float *logits, const Act *h, const Act *W, int N, int D,
                           int V);
    // out[N, D] = scale * table[tokens[n]] (token ids already checked against V).
    void (*embedding_forward)(Backend *be, Act *out, const int *tokens, const Act *table, int N,
                              int D, int V, float scale);
    // dtable[tokens[n]] += scale * dout[n].
    void (*embedding_backward)(Backend *be, float *dtable, const Act *dout, const int *tokens,
                               int N, int D, float scale);

    // ---- norms and gates ----------------------------------------------------------------
    // out = norm(x) [* weight] over rows of D; rstd[N] saved for backward. weight may be
    // NULL (no weight).
    void (*norm_forward)(Backend *be, Act *out, float *rstd, const Act *x, const Act *weight, int N,
                         int D, float eps, NormKind kind);
    // The fused residual: resid = a + b, out = norm(resid) [* weight].
    void (*residual_norm_forward)(Backend *be, Act *resid, Act *out, float *rstd, const Act *a,
                                  const Act *b, const Act *weight, int N, int D, float eps,
                                  NormKind kind);
    // dx = dresid + (d norm / dx)^T dout: the gradient through a norm plus the residual
    // gradient passing by it (dresid may be NULL, and may alias dx). dweight += ... (may
    // be NULL). Serves norm_forward and residual_norm_forward alike.
    void (*norm_backward)(Backend *be, Act *dx, float *dweight, const Act *dresid, const Act *dout,
                          const Act *x, const Act *weight, const float *rstd, int N, int D,
                          float eps, NormKind kind);
    // out[N, F] = act(a) * b elementwise, a's rows lda apart and b's ldb apart.
    void (*gate_forward)(Backend *be, Act *out, const Act *a, int lda, const Act *b, int ldb, int N,
                         int F, GateKind kind);
    // da (rows ldda apart) and db (lddb apart) written; either may be NULL.
    void (*gate_backward)(Backend *be, Act *da, int ldda, Act *db, int lddb, const Act *dout,
                          const Act *a, int lda, const Act *b, int ldb, int N, int F,
                          GateKind kind);
    // GLA's gate: out = logsigmoid(x) * scale, contiguous [n]; backward writes dx.
    void (*logsigmoid_forward)(Backend *be, Act *out, const Act *x, float scale, long n);
    void (*logsigmoid_backward)(Backend *be, Act *dx, const Act *dout, const Act *x, float scale,
                                long n);
    // RoPE (Hugging Face rotate_half, inv_freq_i = theta^(-2i/hd)) in place on x[N, H, hd]
    // with rows ld apart; row n sits at position pos[n]. Backward rotates a gradient back
    // in place.
    void (*rope_forward)(Backend *be, Act *x, int ld, const int *pos, int N, int H, int hd,
                         float theta);
    void (*rope_backward)(Backend *be, Act *dx, int ld, const int *pos, int N, int H, int hd,
                          float theta);

    // ---- token mixing -------------------------------------------------------------------
    // Lightning attention (SPEC sec. 3), per sequence and head h:
    //   S_t = lambda_h S_{t-1} + k_t^T v_t, o_t = q_t S_t, S_{-1} = state_in (or 0),
    // log_decay[H] = log(lambda_h) <= 0. q, k [N, H*kdim] and v [N, H*vdim] have rows ld
    // apart; o is contiguous [N, H*vdim]. With silu_qk, q and k pass through SiLU first
    // (TNL). States are fp32 [seqs.n, H, kdim, vdim]; state_in / state_out may be NULL.
    // `block` is a hint for the block size (the CPU form takes it as given).
    // chunk_states: NULL, or room for seqs.rows * H * kdim * vdim / 64 values, where the
    // forward may leave the state entering each 64-row chunk for the backward of the same
    // inputs (a backend may ignore it; CUDA uses it on its chunk-parallel path when every
    // sequence's chunks fit, which equal lengths that are multiples of 64 always do).
    void (*lightning_attn_forward)(Backend *be, Act *o, float *state_out, const Act *q,
                                   const Act *k, const Act *v, int ld, const float *state_in,
                                   const float *log_decay, Seqs seqs, int H, int kdim, int vdim,
                                   bool silu_qk, int block, Act *chunk_states);
    // dq, dk, dv written with the same ld as q, k, v (with silu_qk: gradients of the
    // inputs before SiLU); dstate_in written (may be NULL); dstate_out is the incoming
    // gradient of state_out (NULL: zero). chunk_states: NULL, or what the forward of these
    // q, k, v, state_in and seqs left there (then dq is computed from them, not from a
    // walk of its own).
    void (*lightning_attn_backward)(Backend *be, Act *dq, Act *dk, Act *dv, float *dstate_in,
                                    const Act *dout, const float *dstate_out, const Act *q,
                                    const Act *k, const Act *v, int ld, const float *state_in,
                                    const float *log_decay, Seqs seqs, int H, int kdim, int vdim,
                                    bool silu_qk, int block, const Act *chunk_states);
    // Gated linear attention: S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t.
    // q, k [N, H*kdim], v [N, H*vdim] rows ld apart; g [N, H*kdim] contiguous log-gates
    // (natural log, <= 0); o contiguous. States as for lightning. `chunk`: chunk size hint.
    // chunk_states: NULL, or room for seqs.rows * H * kdim * vdim / 64 values, where the
    // forward may leave the state entering each chunk for the backward of the same inputs
    // (a backend may ignore it; CUDA uses it when every sequence's chunks fit, which equal
    // lengths that are multiples of 64 always do).
    void (*gla_forward)(Backend *be, Act *o, float *state_out, const Act *q, const Act *k,
                        const Act *v, int ld, const Act *g, const float *state_in, float scale,
                        Seqs seqs, int H, int kdim, int vdim, int chunk, Act *chunk_states);
    // dq, dk, dv (ld as q), dg (contiguous) and dstate_in written. chunk_states: NULL, or
    // what the forward of these q, k, v, g, state_in and seqs left there (then the backward
    // does not recompute the chunk states).
    void (*gla_backward)(Backend *be, Act *dq, Act *dk, Act *dv, Act *dg, float *dstate_in,
                         const Act *dout, const float *dstate_out, const Act *q, const Act *k,
                         const Act *v, int ld, const Act *g, const float *state_in, float scale,
                         Seqs seqs, int H, int kdim, int vdim, int chunk, const Act *chunk_states);
    // Causal softmax attention with GQA (H query heads, Hkv key/value heads), scale
    // 1/sqrt(hd). Sequence i's queries are rows [sq.cu[i], sq.cu[i+1]) of q (rows ld_q
    // apart) and attend to its keys, rows [sk.cu[i], sk.cu[i+1]) of k and v (rows ld_kv
    // apart); with Lq queries and Lk keys, query t sits at position Lk - Lq + t (Lq = 1:
    // one decoding step against a KV cache). o contiguous [Nq, H*hd]. lse holds Nq*H
    // floats in a layout of the backend's own, for its backward.
    void (*softmax_attn_forward)(Backend *be, Act *o, float *lse, const Act *q, int ld_q,
                                 const Act *k, const Act *v, int ld_kv, Seqs sq, Seqs sk, int H,
                                 int Hkv, int hd);
    // dq (rows ld_q apart), dk and dv (ld_kv apart) written.
    void (*softmax_attn_backward)(Backend *be, Act *dq, Act *dk, Act *dv, const Act *dout,
                                  const Act *o, const float *lse, const Act *q, int ld_q,
                                  const Act *k, const Act *v, int ld_kv, Seqs sq, Seqs sk, int H,
                                  int Hkv, int hd);

    // ---- loss, reductions, optimizer ----------------------------------------------------
    // Fused LM head + cross-entropy, chunked so the [N, V] logits are never stored:
    // losses[n] = -log softmax(h W^T)[n, targets[n]] (0 where targets[n] < 0). If dh is
    // non-NULL it is written with grad_scale * d(sum losses)/dh, and dW (may be NULL)
    // accumulates grad_scale * d(sum losses)/dW.
    void (*lm_head_cross_entropy)(Backend *be, float *losses, Act *dh, float *dW, const Act *h,
                                  const Act *W, const int *targets, int N, int D, int V,
                                  float grad_scale);
    // Distillation (train/distill_loss.c). Attention transfer on n activations: acc[0] +=
    // scale * sum((x - target)^2) (fixed-order sum) and dx (written) = 2 * scale * (x -
    // target).
    void (*mse_loss)(Backend *be, float *acc, Act *dx, const Act *x, const Act *target, long n,
                     float scale);
    // Logit distillation on fp32 logits [N, V] at temperature T: p = softmax(teacher / T),
    // q = softmax(student / T); kl[n] = sum_v p (log p - log q), ce[n] = -log
    // softmax(student)[targets[n]] (0 where targets[n] < 0), dlogits (written, compute type)
    // = grad_scale * T * (q - p): the gradient of grad_scale * T^2 * kl.
    void (*kd_loss)(Backend *be, float *kl, float *ce, Act *dlogits, const float *student,
                    const float *teacher, const int *targets, int N, int V, float T,
                    float grad_scale);
    // acc[0] += scale * sum(x[0..n)).
    void (*sum_into)(Backend *be, float *acc, const float *x, long n, float scale);
    // acc[0] += sum(x[0..n)^2) (the global gradient norm, squared).
    void (*sum_squares_into)(Backend *be, float *acc, const float *x, long n);
    // One AdamW step (decoupled weight decay) on n fp32 master weights w, with their
    // compute copy w_act rewritten from the result (the same memory on the CPU). The
    // gradient is grad * grad_scale (clipping); `step` counts from 1.
    void (*adamw_update)(Backend *be, float *w, Act *w_act, const float *grad, float *m, float *v,
                         long n, float lr, float beta1, float beta2, float eps, float weight_decay,
                         float grad_scale, int step);
} Ops;

// A backend: its op table and its context. Model code holds a `Backend *` and calls
// `be->ops->op(be, ...)`.
struct Backend {
    const Ops *ops;
    const char *name;     // "cpu" or "cuda"
    size_t act_size;      // bytes of one activation element (4 on the CPU, 2 on CUDA)
    char device_name[96]; // "CPU" or the GPU's name
    double peak_flops;    // dense bf16 peak for MFU (0: unknown, no MFU printed)
    void *impl;           // the backend's own state (CUDA: stream, cuBLASLt, workspace)
};

// The activation n elements past p.
static inline Act *act_at(const Backend *be, const Act *p, size_t n) {
    return (Act *)((char *)p + n * be->act_size);
}

// "cpu", "cuda" or "auto" (cuda if this build has it and a GPU is visible, else cpu).
// Dies with a clear message if the backend is not available in this build.
Backend *backend_create(const char *device);
void backend_free(Backend *be);
// True if this build includes the CUDA backend and a GPU is visible.
bool cuda_available(void);

#ifdef __cplusplus
}
#endif
