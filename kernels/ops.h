// kernels/ops.h: the backend interface. The model calls every op through an `Ops`
// table, so the CUDA backend slots in beside the CPU reference without touching model
// code: it fills the same table with its own kernels and memory functions.
// Pointers are device pointers of the backend that owns the table; each entry has the
// contract of the CPU function of the same name in kernels/kernels.h.
#pragma once
#include <stddef.h>

#include "kernels.h"

typedef struct Ops {
    const char *name; // "cpu" or "cuda"

    // Memory: alloc returns zeroed memory; upload/download copy host <-> device, copy
    // device -> device.
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);

    void (*matmul_forward)(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC);
    void (*matmul_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);
    void (*embedding_forward)(float *out, const int *tokens, const float *table, int N, int D,
                              int V, float scale);
    void (*embedding_backward)(float *dtable, const float *dout, const int *tokens, int N, int D,
                               float scale);
    void (*norm_forward)(float *out, float *rstd, const float *x, const float *weight, int N, int D,
                         float eps, NormKind kind);
    void (*norm_backward)(float *dx, float *dweight, const float *dout, const float *x,
                          const float *weight, const float *rstd, int N, int D, float eps,
                          NormKind kind);
    void (*add_forward)(float *out, const float *a, const float *b, long n);
    void (*silu_forward)(float *out, const float *x, long n);
    void (*silu_backward)(float *dx, const float *dout, const float *x, long n);
    void (*swiglu_forward)(float *out, const float *gate, const float *up, long n);
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, long n);
    void (*mul_forward)(float *out, const float *a, const float *b, long n);
    void (*mul_backward)(float *da, float *db, const float *dout, const float *a, const float *b,
                         long n);
    void (*logsigmoid_forward)(float *out, const float *x, float scale, long n);
    void (*logsigmoid_backward)(float *dx, const float *dout, const float *x, float scale, long n);
    void (*rope_forward)(float *out, const float *x, int B, int T, int H, int hd, float theta,
                         int pos0);
    void (*rope_backward)(float *dx, const float *dout, int B, int T, int H, int hd, float theta,
                          int pos0);
    void (*lightning_attn_forward)(float *o, float *state_out, const float *q, const float *k,
                                   const float *v, const float *state_in, const float *log_decay,
                                   int B, int T, int H, int kdim, int vdim, int block);
    void (*lightning_attn_backward)(float *dq, float *dk, float *dv, float *dstate_in,
                                    const float *dout, const float *dstate_out, const float *q,
                                    const float *k, const float *v, const float *state_in,
                                    const float *log_decay, int B, int T, int H, int kdim, int vdim,
                                    int block);
    void (*gla_forward)(float *o, float *state_out, const float *q, const float *k, const float *v,
                        const float *g, const float *state_in, float scale, int B, int T, int H,
                        int kdim, int vdim, int chunk);
    void (*gla_backward)(float *dq, float *dk, float *dv, float *dg, float *dstate_in,
                         const float *dout, const float *dstate_out, const float *q, const float *k,
                         const float *v, const float *g, const float *state_in, float scale, int B,
                         int T, int H, int kdim, int vdim, int chunk);
    void (*softmax_attn_forward)(float *o, float *lse, const float *q, const float *k,
                                 const float *v, int B, int Tq, int Tk, int H, int Hkv, int hd);
    void (*softmax_attn_backward)(float *dq, float *dk, float *dv, const float *dout,
                                  const float *o, const float *lse, const float *q, const float *k,
                                  const float *v, int B, int Tq, int Tk, int H, int Hkv, int hd);
    int (*lm_head_cross_entropy)(float *losses, float *dh, float *dW, const float *h,
                                 const float *W, const int *targets, int N, int D, int V,
                                 float grad_scale);
    void (*adamw_update)(float *w, const float *grad, float *m, float *v, long n, float lr,
                         float beta1, float beta2, float eps, float weight_decay, int step);
    double (*sum_squares)(const float *x, long n);
    void (*scale_inplace)(float *x, float s, long n);
} Ops;

extern const Ops ops_cpu;

// The table for "cpu" or "cuda" ("auto": cuda if built in and a GPU is visible, else
// cpu). Dies with a clear message if the backend is not available in this build.
const Ops *ops_for_device(const char *device);
