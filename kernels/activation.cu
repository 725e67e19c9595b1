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

// Index of thread-group g's first element: row n, column f (groups of V in each row).
template <int V> static __device__ void group_at(long g, int F, long *n, int *f) {
    long per_row = F / V;
    *n = g / per_row;
    *f = (int)(g - *n * per_row) * V;
}

// out[n, f] = act(a[n, f]) * b[n, f] with act = identity (GATE_MUL) or silu (GATE_SWISH),
// V elements per thread.
template <int V>
static __global__ void gate_forward_kernel(bf16 *out, const bf16 *a, int lda, const bf16 *b,
                                           int ldb, int N, int F, GateKind kind) {
    long groups = (long)N * F / V;
    for (long g = blockIdx.x * (long)blockDim.x + threadIdx.x; g < groups;
         g += (long)gridDim.x * blockDim.x) {
        long n;
        int f;
        group_at<V>(g, F, &n, &f);
        float av[V], bv[V], y[V];
        load_bf16<V>(av, a + n * lda + f);
        load_bf16<V>(bv, b + n * ldb + f);
        for (int e = 0; e < V; e++)
            y[e] = kind == GATE_SWISH ? av[e] * sigmoid_f32(av[e]) * bv[e] : av[e] * bv[e];
        store_bf16<V>(out + n * F + f, y);
    }
}

// GATE_MUL:   da = dout * b, db = dout * a
// GATE_SWISH: da = dout * b * s (1 + a (1 - s)), db = dout * a * s   (s = sigmoid(a))
// da (rows ldda apart) and db (lddb apart) are written where non-NULL; V elements per thread.
template <int V>
static __global__ void gate_backward_kernel(bf16 *da, int ldda, bf16 *db, int lddb,
                                            const bf16 *dout, const bf16 *a, int lda, const bf16 *b,
                                            int ldb, int N, int F, GateKind kind) {
    long groups = (long)N * F / V;
    for (long g = blockIdx.x * (long)blockDim.x + threadIdx.x; g < groups;
         g += (long)gridDim.x * blockDim.x) {
        long n;
        int f;
        group_at<V>(g, F, &n, &f);
        float gv[V], av[V], bv[V], dav[V], dbv[V];
        load_bf16<V>(gv, dout + n * F + f);
        load_bf16<V>(av, a + n * lda + f);
        load_bf16<V>(bv, b + n * ldb + f);
        for (int e = 0; e < V; e++) {
            if (kind == GATE_SWISH) {
                float s = sigmoid_f32(av[e]);
                dav[e] = gv[e] * bv[e] * s * (1.0f + av[e] * (1.0f - s));
                dbv[e] = gv[e] * av[e] * s;
            } else {
                dav[e] = gv[e] * bv[e];
                dbv[e] = gv[e] * av[e];
            }
        }
        if (da) store_bf16<V>(da + n * ldda + f, dav);
        if (db) store_bf16<V>(db + n * lddb + f, dbv);
    }
}

// out[N, F] = act(a) * b; a's rows lda apart, b's ldb apart, out contiguous.
static void cuda_gate_forward(Backend *be, Act *out, const Act *a, int lda, const Act *b, int ldb,
                              int N, int F, GateKind kind) {
    long total = (long)N * F;
    if (total <= 0) return;
    const int lds[] = {lda, ldb, F};
    const void *ptrs[] = {a, b, out};
    with_vec(rows_vec8(F, lds, ptrs, 3), [&](auto V) {
        gate_forward_kernel<V><<<act_blocks(total / V), ACT_THREADS, 0, cuda_ctx(be)->stream>>>(
            as_bf16(out), as_bf16c(a), lda, as_bf16c(b), ldb, N, F, kind);
    });
    CUDA_CHECK_LAUNCH();
}

// da and db written (either may be NULL); dout contiguous [N, F].
static void cuda_gate_backward(Backend *be, Act *da, int ldda, Act *db, int lddb, const Act *dout,
                               const Act *a, int lda, const Act *b, int ldb, int N, int F,
                               GateKind kind) {
    long total = (long)N * F;
    if (total <= 0 || (!da && !db)) return;
    const int lds[] = {lda, ldb, F, da ? ldda : 8, db ? lddb : 8};
    const void *ptrs[] = {a, b, dout, da, db};
    with_vec(rows_vec8(F, lds, ptrs, 5), [&](auto V) {
        gate_backward_kernel<V><<<act_blocks(total / V), ACT_THREADS, 0, cuda_ctx(be)->stream>>>(
            as_bf16(da), ldda, as_bf16(db), lddb, as_bf16c(dout), as_bf16c(a), lda, as_bf16c(b),
            ldb, N, F, kind);
    });
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
