// kernels/activation.cu: elementwise ops on CUDA: the gates and logsigmoid, fwd and bwd.
//
// fp32 arithmetic on bf16 values, the formulas of kernels/activation.c (sigmoid from
// e^-|x|, so nothing overflows); gradients are written, not accumulated.
#include "cuda_common.cuh"

enum { ACT_THREADS = 256, ACT_MAX_BLOCKS = 1 << 16 };

// Blocks for a grid-stride loop over n elements.
static unsigned act_blocks(long n) {
    long blocks = (n + ACT_THREADS - 1) / ACT_THREADS;
    if (blocks > (long)ACT_MAX_BLOCKS) blocks = ACT_MAX_BLOCKS;
    return (unsigned)blocks;
}

// 1 / (1 + e^-x) from e = e^-|x| <= 1.
static __device__ float sigmoid_f32(float x) {
    float e = expf(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

// out[n, f] = act(a[n, f]) * b[n, f] with act = identity (GATE_MUL) or silu (GATE_SWISH).
static __global__ void gate_forward_kernel(bf16 *out, const bf16 *a, int lda, const bf16 *b,
                                           int ldb, int N, int F, GateKind kind) {
    long total = (long)N * F;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        long n = i / F;
        int f = (int)(i - n * F);
        float av = __bfloat162float(a[n * lda + f]);
        float bv = __bfloat162float(b[n * ldb + f]);
        float y = kind == GATE_SWISH ? av * sigmoid_f32(av) * bv : av * bv;
        out[i] = __float2bfloat16(y);
    }
}

// GATE_MUL:   da = dout * b, db = dout * a
// GATE_SWISH: da = dout * b * s (1 + a (1 - s)), db = dout * a * s   (s = sigmoid(a))
// da (rows ldda apart) and db (lddb apart) are written where non-NULL.
static __global__ void gate_backward_kernel(bf16 *da, int ldda, bf16 *db, int lddb,
                                            const bf16 *dout, const bf16 *a, int lda, const bf16 *b,
                                            int ldb, int N, int F, GateKind kind) {
    long total = (long)N * F;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        long n = i / F;
        int f = (int)(i - n * F);
        float g = __bfloat162float(dout[i]);
        float av = __bfloat162float(a[n * lda + f]);
        float bv = __bfloat162float(b[n * ldb + f]);
        if (kind == GATE_SWISH) {
            float s = sigmoid_f32(av);
            if (da) da[n * ldda + f] = __float2bfloat16(g * bv * s * (1.0f + av * (1.0f - s)));
            if (db) db[n * lddb + f] = __float2bfloat16(g * av * s);
        } else {
            if (da) da[n * ldda + f] = __float2bfloat16(g * bv);
            if (db) db[n * lddb + f] = __float2bfloat16(g * av);
        }
    }
}

// out[N, F] = act(a) * b; a's rows lda apart, b's ldb apart, out contiguous.
static void cuda_gate_forward(Backend *be, Act *out, const Act *a, int lda, const Act *b, int ldb,
                              int N, int F, GateKind kind) {
    long total = (long)N * F;
    if (total <= 0) return;
    gate_forward_kernel<<<act_blocks(total), ACT_THREADS, 0, cuda_ctx(be)->stream>>>(
        as_bf16(out), as_bf16c(a), lda, as_bf16c(b), ldb, N, F, kind);
    CUDA_CHECK_LAUNCH();
}

// da and db written (either may be NULL); dout contiguous [N, F].
static void cuda_gate_backward(Backend *be, Act *da, int ldda, Act *db, int lddb, const Act *dout,
                               const Act *a, int lda, const Act *b, int ldb, int N, int F,
                               GateKind kind) {
    long total = (long)N * F;
    if (total <= 0 || (!da && !db)) return;
    gate_backward_kernel<<<act_blocks(total), ACT_THREADS, 0, cuda_ctx(be)->stream>>>(
        as_bf16(da), ldda, as_bf16(db), lddb, as_bf16c(dout), as_bf16c(a), lda, as_bf16c(b), ldb, N,
        F, kind);
    CUDA_CHECK_LAUNCH();
}

// out = scale * logsigmoid(x) = scale * (min(x, 0) - log1p(e^-|x|)).
static __global__ void logsigmoid_forward_kernel(bf16 *out, const bf16 *x, float scale, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float xv = __bfloat162float(x[i]);
        out[i] = __float2bfloat16(scale * (fminf(xv, 0.0f) - log1pf(expf(-fabsf(xv)))));
    }
}

// dx = scale * dout * sigmoid(-x) (written).
static __global__ void logsigmoid_backward_kernel(bf16 *dx, const bf16 *dout, const bf16 *x,
                                                  float scale, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float xv = __bfloat162float(x[i]);
        dx[i] = __float2bfloat16(scale * __bfloat162float(dout[i]) * sigmoid_f32(-xv));
    }
}

static void cuda_logsigmoid_forward(Backend *be, Act *out, const Act *x, float scale, long n) {
    if (n <= 0) return;
    logsigmoid_forward_kernel<<<act_blocks(n), ACT_THREADS, 0, cuda_ctx(be)->stream>>>(
        as_bf16(out), as_bf16c(x), scale, n);
    CUDA_CHECK_LAUNCH();
}

static void cuda_logsigmoid_backward(Backend *be, Act *dx, const Act *dout, const Act *x,
                                     float scale, long n) {
    if (n <= 0) return;
    logsigmoid_backward_kernel<<<act_blocks(n), ACT_THREADS, 0, cuda_ctx(be)->stream>>>(
        as_bf16(dx), as_bf16c(dout), as_bf16c(x), scale, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_register_activation(Ops *ops) {
    ops->gate_forward = cuda_gate_forward;
    ops->gate_backward = cuda_gate_backward;
    ops->logsigmoid_forward = cuda_logsigmoid_forward;
    ops->logsigmoid_backward = cuda_logsigmoid_backward;
}
