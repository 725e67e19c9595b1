// kernels/norm.cu: (S)RMSNorm on CUDA, plain and fused with the residual add, fwd and bwd.
//
// One warp per row, fp32 arithmetic, rstd in fp32; the same formulas as kernels/norm.c.
// Row sums: each lane sums its strided elements in order, the lanes are combined by a
// butterfly, and lane 0's result is broadcast, so every lane uses the same value. The
// weight gradient is a two-stage column sum over fixed row slices (partials in the
// context's scratch, then summed in slice order): deterministic, no atomics.
#include "cuda_common.cuh"

enum { ROWS_PER_BLOCK = 8, WARP = 32 };
enum { COLSUM_TX = 32, COLSUM_TY = 8, COLSUM_MIN_ROWS = 64, COLSUM_MAX_SLICES = 4096 };

// The sum of v over the warp, the same value in every lane.
static __device__ float warp_sum_all(float v) {
    for (int off = WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return __shfl_sync(0xffffffffu, v, 0);
}

// rstd from the row's sum of squares, as kernels/norm.c computes it.
static __device__ float norm_rstd(float sumsq, int D, float eps, NormKind kind) {
    float ms = sumsq / (float)D;
    return kind == NORM_RMS ? 1.0f / sqrtf(ms + eps) : 1.0f / (sqrtf(ms) + eps);
}

// One warp per row n: with b non-NULL, resid[n] = bf16(a[n] + b[n]) first and the norm
// reads the rounded resid (as the add-then-norm composition would); else x = a.
// out = x * rstd (* weight), rstd[n] saved. weight is NULL for no weight (and for SRMS).
// Each lane takes V consecutive columns at a time (V = 8: 16-byte loads and stores).
template <int V>
static __global__ void norm_forward_kernel(bf16 *out, float *rstd, bf16 *resid, const bf16 *a,
                                           const bf16 *b, const bf16 *weight, int N, int D,
                                           float eps, NormKind kind) {
    int n = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (n >= N) return;
    long off = (long)n * D;
    const bf16 *x = a + off;
    float ss = 0.0f, v[V], u[V];
    if (b) {
        bf16 *rr = resid + off;
        for (int d = lane * V; d < D; d += WARP * V) {
            load_bf16<V>(v, a + off + d);
            load_bf16<V>(u, b + off + d);
            for (int e = 0; e < V; e++) // round to bf16 as stored, and use the rounded value
                v[e] = __bfloat162float(__float2bfloat16(v[e] + u[e]));
            store_bf16<V>(rr + d, v);
            for (int e = 0; e < V; e++) ss += v[e] * v[e];
        }
        x = rr; // each lane reads back only what it wrote
    } else {
        for (int d = lane * V; d < D; d += WARP * V) {
            load_bf16<V>(v, x + d);
            for (int e = 0; e < V; e++) ss += v[e] * v[e];
        }
    }
    float r = norm_rstd(warp_sum_all(ss), D, eps, kind);
    if (lane == 0) rstd[n] = r;
    bf16 *y = out + off;
    for (int d = lane * V; d < D; d += WARP * V) {
        load_bf16<V>(v, x + d);
        if (weight) load_bf16<V>(u, weight + d);
        for (int e = 0; e < V; e++) v[e] = weight ? v[e] * r * u[e] : v[e] * r;
        store_bf16<V>(y + d, v);
    }
}

static void launch_norm_forward(Backend *be, Act *out, float *rstd, Act *resid, const Act *a,
                                const Act *b, const Act *weight, int N, int D, float eps,
                                NormKind kind) {
    if (N <= 0) return;
    if (kind == NORM_SRMS) weight = NULL;
    unsigned blocks = (unsigned)((N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
    const void *ptrs[] = {out, resid, a, b, weight};
    with_vec(rows_vec8(D, NULL, ptrs, 5), [&](auto V) {
        norm_forward_kernel<V><<<blocks, ROWS_PER_BLOCK * WARP, 0, cuda_ctx(be)->stream>>>(
            as_bf16(out), rstd, as_bf16(resid), as_bf16c(a), as_bf16c(b), as_bf16c(weight), N, D,
            eps, kind);
    });
    CUDA_CHECK_LAUNCH();
}

// out = norm(x) [* weight] over rows of D; rstd[N] saved.
static void cuda_norm_forward(Backend *be, Act *out, float *rstd, const Act *x, const Act *weight,
                              int N, int D, float eps, NormKind kind) {
    launch_norm_forward(be, out, rstd, NULL, x, NULL, weight, N, D, eps, kind);
}

// resid = a + b (bf16), out = norm(resid) [* weight].
static void cuda_residual_norm_forward(Backend *be, Act *resid, Act *out, float *rstd, const Act *a,
                                       const Act *b, const Act *weight, int N, int D, float eps,
                                       NormKind kind) {
    launch_norm_forward(be, out, rstd, resid, a, b, weight, N, D, eps, kind);
}

// One warp per row, with g = dout (* weight) and r = rstd[n]:
// NORM_RMS:  dx = dresid + r g - x r^3 dot(g, x) / D
// NORM_SRMS: dx = dresid + r g - x r^2 dot(g, x) / (D rms)   (rms = 0: no second term)
// dresid may be NULL or alias dx (each element is read before the same lane writes it).
// V consecutive columns per lane at a time, as in the forward.
template <int V>
static __global__ void norm_backward_kernel(bf16 *dx, const bf16 *dresid, const bf16 *dout,
                                            const bf16 *x, const bf16 *weight, const float *rstd,
                                            int N, int D, NormKind kind) {
    int n = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (n >= N) return;
    long off = (long)n * D;
    const bf16 *xr = x + off, *gr = dout + off;
    float gx = 0.0f, ss = 0.0f, xv[V], g[V], w[V], dr[V];
    for (int d = lane * V; d < D; d += WARP * V) {
        load_bf16<V>(xv, xr + d);
        load_bf16<V>(g, gr + d);
        if (weight) load_bf16<V>(w, weight + d);
        for (int e = 0; e < V; e++) {
            float ge = weight ? g[e] * w[e] : g[e];
            gx += ge * xv[e];
            ss += xv[e] * xv[e];
        }
    }
    gx = warp_sum_all(gx);
    float r = rstd[n];
    float coef;
    if (kind == NORM_RMS) {
        coef = r * r * r * gx / (float)D;
    } else {
        float rms = sqrtf(warp_sum_all(ss) / (float)D);
        coef = rms > 0.0f ? r * r * gx / ((float)D * rms) : 0.0f;
    }
    for (int d = lane * V; d < D; d += WARP * V) {
        load_bf16<V>(xv, xr + d);
        load_bf16<V>(g, gr + d);
        if (weight) load_bf16<V>(w, weight + d);
        if (dresid) load_bf16<V>(dr, dresid + off + d);
        for (int e = 0; e < V; e++) {
            float rg = weight ? r * g[e] * w[e] : r * g[e];
            float v = rg - coef * xv[e];
            g[e] = dresid ? dr[e] + v : v;
        }
        store_bf16<V>(dx + off + d, g);
    }
}

// Stage 1 of dweight: partial[s, d] = sum over slice s's rows of dout[n, d] x[n, d] rstd[n]
// (each thread every COLSUM_TY-th row in order, then the thread sums in a fixed order).
static __global__ void dweight_partial_kernel(float *partial, const bf16 *dout, const bf16 *x,
                                              const float *rstd, int N, int D, int rows_per) {
    __shared__ float sums[COLSUM_TY][COLSUM_TX + 1];
    int d = blockIdx.x * COLSUM_TX + threadIdx.x;
    int r0 = blockIdx.y * rows_per;
    int r1 = min(r0 + rows_per, N);
    float s = 0.0f;
    if (d < D) {
        for (int n = r0 + threadIdx.y; n < r1; n += COLSUM_TY) {
            long i = (long)n * D + d;
            s += __bfloat162float(dout[i]) * __bfloat162float(x[i]) * rstd[n];
        }
    }
    sums[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && d < D) {
        float t = 0.0f;
        for (int j = 0; j < COLSUM_TY; j++) t += sums[j][threadIdx.x];
        partial[(long)blockIdx.y * D + d] = t;
    }
}

// Stage 2: dweight[d] += the slices' partials, in slice order.
static __global__ void dweight_finish_kernel(float *dweight, const float *partial, int slices,
                                             int D) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    float t = 0.0f;
    for (int s = 0; s < slices; s++) t += partial[(long)s * D + d];
    dweight[d] += t;
}

// dx = dresid + the gradient through the norm (written); dweight += (fp32, may be NULL;
// ignored without a weight and for SRMS).
static void cuda_norm_backward(Backend *be, Act *dx, float *dweight, const Act *dresid,
                               const Act *dout, const Act *x, const Act *weight, const float *rstd,
                               int N, int D, float eps, NormKind kind) {
    if (N <= 0) return;
    if (kind == NORM_SRMS) weight = NULL;
    cudaStream_t stream = cuda_ctx(be)->stream;
    // The weight gradient first, so it reads dout and x before dx is written.
    if (weight && dweight) {
        int rows_per = COLSUM_MIN_ROWS;
        if ((N + rows_per - 1) / rows_per > COLSUM_MAX_SLICES)
            rows_per = (N + COLSUM_MAX_SLICES - 1) / COLSUM_MAX_SLICES;
        int slices = (N + rows_per - 1) / rows_per;
        float *partial = (float *)cuda_scratch(be, (size_t)slices * D * sizeof(float));
        dim3 grid((D + COLSUM_TX - 1) / COLSUM_TX, slices), block(COLSUM_TX, COLSUM_TY);
        dweight_partial_kernel<<<grid, block, 0, stream>>>(partial, as_bf16c(dout), as_bf16c(x),
                                                           rstd, N, D, rows_per);
        CUDA_CHECK_LAUNCH();
        dweight_finish_kernel<<<(D + 255) / 256, 256, 0, stream>>>(dweight, partial, slices, D);
        CUDA_CHECK_LAUNCH();
    }
    unsigned blocks = (unsigned)((N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
    const void *ptrs[] = {dx, dresid, dout, x, weight};
    with_vec(rows_vec8(D, NULL, ptrs, 5), [&](auto V) {
        norm_backward_kernel<V><<<blocks, ROWS_PER_BLOCK * WARP, 0, stream>>>(
            as_bf16(dx), as_bf16c(dresid), as_bf16c(dout), as_bf16c(x), as_bf16c(weight), rstd, N,
            D, kind);
    });
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_register_norm(Ops *ops) {
    ops->norm_forward = cuda_norm_forward;
    ops->residual_norm_forward = cuda_residual_norm_forward;
    ops->norm_backward = cuda_norm_backward;
}
