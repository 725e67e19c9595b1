// kernels/cross_entropy.cu: the fused LM head + cross-entropy on CUDA, chunked over rows.
//
// Per chunk of rows (as many as fit CE_BUDGET bytes of scratch, at most CE_MAX_ROWS; a
// function of V only, so every step chunks alike):
//   1. logits[rows, V] = h_chunk W^T, fp32 output of a bf16 cuBLASLt matmul (rows ldv
//      apart, ldv = V rounded up to 8 so every row starts 32-byte aligned; the padding
//      columns are never read);
//   2. one block per row: an online max and sum of exp in one pass, loss = log(sum) +
//      max - logit[target] (0 for target < 0); with gradients, in a second pass,
//      dlogits = grad_scale (softmax - onehot) as bf16 into a second buffer (zero rows
//      for ignored targets). Rows of up to REG_COLS logits stay in registers between the
//      passes (ce_rows_reg_kernel: the row is read from memory once); with a gradient
//      pass, rows that fit an SM's shared memory stay there (ce_rows_smem_kernel: up to
//      about 58K logits on Hopper's 227 KB, GPT-2's 50257); the others, and loss-only
//      calls of rows longer than REG_COLS, read the row twice or once (ce_rows_kernel, whose
//      sums run in another order: a validation loss can differ from the training loss
//      of the same rows in the last bits);
//   3. dh_chunk = dlogits W (written), dW += dlogits^T h_chunk (fp32, chunk by chunk in
//      row order).
// Every reduction has a fixed order and each matmul shape a fixed algorithm, so the
// result is deterministic. No host synchronisation: chunks whose rows are all ignored
// still run (their losses and gradients come out zero).
#include <math.h>

#include "cuda_common.cuh"

static const size_t CE_BUDGET = (size_t)512 << 20; // scratch bytes for one chunk
enum { CE_MAX_ROWS = 4096, CE_THREADS = 512, CE_WARPS = CE_THREADS / 32 };
enum { REG_THREADS = 1024, REG_MAX_R = 8, REG_COLS = 4 * REG_MAX_R * REG_THREADS };

// max over the block of W warps (every thread gets the same value; fixed order).
template <int W = CE_WARPS> static __device__ float block_max(float v, float *shared) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); // `shared` may still be read from the previous reduction
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float m = shared[0];
    for (int w = 1; w < W; w++) m = fmaxf(m, shared[w]);
    return m;
}

// sum over the block of W warps (every thread gets the same value: the warp sums added in
// order).
template <int W = CE_WARPS> static __device__ float block_sum(float v, float *shared) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float s = 0.0f;
    for (int w = 0; w < W; w++) s += shared[w];
    return s;
}

// This thread's running (max, sum of exp(x - max)) after one more logit x: one pass
// instead of a max pass and a sum pass over the row.
static __device__ void online_add(float *m, float *s, float x) {
    if (x > *m) {
        *s = *s * expf(*m - x) + 1.0f; // exp(-inf) = 0 for the first value
        *m = x;
    } else {
        *s += expf(x - *m);
    }
}

// online_add over a group of four logits, in column order.
static __device__ void online_add4(float *m, float *s, float4 x) {
    online_add(m, s, x.x);
    online_add(m, s, x.y);
    online_add(m, s, x.z);
    online_add(m, s, x.w);
}

// A row whose target is out of range (< 0: ignored, >= V: bad) gets loss 0 or NaN and a
// zero gradient, from the block's NTH threads; returns whether the row was such.
static __device__ bool skip_row(float *losses, bf16 *dlogits, long off, int target, int V,
                                int nth) {
    if (target >= 0 && target < V) return false;
    if (threadIdx.x == 0) losses[blockIdx.x] = target < 0 ? 0.0f : NAN;
    if (dlogits)
        for (int j = threadIdx.x; j < V; j += nth) dlogits[off + j] = __float2bfloat16(0.0f);
    return true;
}

// The gradient of group j (columns 4j .. 4j + 3) of a row, logits x: scale exp(x - max),
// less grad_scale at the target, as two bf16 pairs into d2.
static __device__ void store_grad4(__nv_bfloat162 *d2, int j, float4 x, float row_max, float scale,
                                   int target, float grad_scale) {
    float p[4] = {expf(x.x - row_max) * scale, expf(x.y - row_max) * scale,
                  expf(x.z - row_max) * scale, expf(x.w - row_max) * scale};
    if (target / 4 == j) p[target % 4] -= grad_scale;
    d2[2 * j] = __floats2bfloat162_rn(p[0], p[1]);
    d2[2 * j + 1] = __floats2bfloat162_rn(p[2], p[3]);
}

// The gradient of column j of a row, logit x, as bf16 into d (the row's start).
static __device__ void store_grad1(bf16 *d, int j, float x, float row_max, float scale, int target,
                                   float grad_scale) {
    float p = expf(x - row_max) * scale;
    if (j == target) p -= grad_scale;
    d[j] = __float2bfloat16(p);
}

// The row's max (into *row_max) and sum of exp(x - max) over a block of W warps, from each
// thread's running (m, s); thread 0 writes the row's loss. Returns the sum.
template <int W = CE_WARPS>
static __device__ float row_loss(float m, float s, float *shared, float *losses, const float *lr,
                                 int target, float *row_max) {
    *row_max = block_max<W>(m, shared);
    s = block_sum<W>(s > 0.0f ? s * expf(m - *row_max) : 0.0f, shared);
    if (threadIdx.x == 0)
        losses[blockIdx.x] = (float)(log((double)s) + ((double)*row_max - (double)lr[target]));
    return s;
}

// One block per row r of the chunk: losses[r] and, if dlogits, the row's gradient
// grad_scale * (softmax - onehot(target)) as bf16. A target < 0 gives loss 0 and a zero
// gradient; a target >= V (the caller checks targets; it cannot die here) gives a NaN
// loss, so the step is flagged, and a zero gradient. Two passes over the fp32 row, in
// 16-byte loads (rows start 32-byte aligned; the last V % 4 columns one by one): an online
// max and sum, then the gradient.
static __global__ void __launch_bounds__(CE_THREADS)
    ce_rows_kernel(float *losses, bf16 *dlogits, const float *logits, int ldv, const int *targets,
                   int V, float grad_scale) {
    __shared__ float shared[CE_WARPS];
    long off = (long)blockIdx.x * ldv;
    const float *lr = logits + off;
    const float4 *lr4 = (const float4 *)lr;
    int target = targets[blockIdx.x], V4 = V / 4;
    if (skip_row(losses, dlogits, off, target, V, CE_THREADS)) return;
    float m = -INFINITY, s = 0.0f;
    for (int j = threadIdx.x; j < V4; j += CE_THREADS) online_add4(&m, &s, lr4[j]);
    for (int j = 4 * V4 + threadIdx.x; j < V; j += CE_THREADS) online_add(&m, &s, lr[j]);
    float row_max;
    s = row_loss(m, s, shared, losses, lr, target, &row_max);
    if (!dlogits) return;
    float scale = grad_scale / s;
    __nv_bfloat162 *d2 = (__nv_bfloat162 *)(dlogits + off);
    for (int j = threadIdx.x; j < V4; j += CE_THREADS)
        store_grad4(d2, j, lr4[j], row_max, scale, target, grad_scale);
    for (int j = 4 * V4 + threadIdx.x; j < V; j += CE_THREADS)
        store_grad1(dlogits + off, j, lr[j], row_max, scale, target, grad_scale);
}

// ce_rows_kernel for rows of at most 4 R REG_THREADS logits: each thread keeps its R groups
// of four (and one of the last V % 4) in registers from the max-and-sum pass to the
// gradient pass, so the fp32 row is read from memory once instead of twice.
template <int R>
static __global__ void __launch_bounds__(REG_THREADS)
    ce_rows_reg_kernel(float *losses, bf16 *dlogits, const float *logits, int ldv,
                       const int *targets, int V, float grad_scale) {
    constexpr int W = REG_THREADS / 32;
    __shared__ float shared[W];
    const long off = (long)blockIdx.x * ldv;
    const float *lr = logits + off;
    const float4 *lr4 = (const float4 *)lr;
    const int target = targets[blockIdx.x], V4 = V / 4, tail = 4 * V4 + threadIdx.x;
    if (skip_row(losses, dlogits, off, target, V, REG_THREADS)) return;
    float4 x[R];
    float xt = 0.0f;
#pragma unroll
    for (int r = 0; r < R; r++) { // every load issued before the first is used
        const int j = threadIdx.x + r * REG_THREADS;
        if (j < V4) x[r] = lr4[j];
    }
    if (tail < V) xt = lr[tail];
    float m = -INFINITY, s = 0.0f;
#pragma unroll
    for (int r = 0; r < R; r++) {
        if (threadIdx.x + r * REG_THREADS >= V4) break;
        online_add4(&m, &s, x[r]);
    }
    if (tail < V) online_add(&m, &s, xt);
    float row_max;
    s = row_loss<W>(m, s, shared, losses, lr, target, &row_max);
    if (!dlogits) return;
    const float scale = grad_scale / s;
    __nv_bfloat162 *d2 = (__nv_bfloat162 *)(dlogits + off);
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int j = threadIdx.x + r * REG_THREADS;
        if (j >= V4) break;
        store_grad4(d2, j, x[r], row_max, scale, target, grad_scale);
    }
    if (tail < V) store_grad1(dlogits + off, tail, xt, row_max, scale, target, grad_scale);
}

// ce_rows_kernel for rows too long for registers but short enough for shared memory (the
// caller checks V / 4 groups of four fit): each thread keeps its groups in shared memory
// (and one of the last V % 4 in a register) from the max-and-sum pass to the gradient
// pass, so the fp32 row is read from memory once, as in ce_rows_reg_kernel. A thread reads
// back only the groups it wrote, so the passes need no barrier of their own. Loads go four
// groups at a time, all issued before the first is used.
static __global__ void __launch_bounds__(REG_THREADS)
    ce_rows_smem_kernel(float *losses, bf16 *dlogits, const float *logits, int ldv,
                        const int *targets, int V, float grad_scale) {
    constexpr int W = REG_THREADS / 32, B = 4;
    __shared__ float shared[W];
    extern __shared__ float4 row[]; // [V / 4]
    const long off = (long)blockIdx.x * ldv;
    const float *lr = logits + off;
    const float4 *lr4 = (const float4 *)lr;
    const int target = targets[blockIdx.x], V4 = V / 4, tail = 4 * V4 + threadIdx.x;
    if (skip_row(losses, dlogits, off, target, V, REG_THREADS)) return;
    float m = -INFINITY, s = 0.0f;
    for (int j0 = threadIdx.x; j0 < V4; j0 += B * REG_THREADS) {
        float4 x[B];
#pragma unroll
        for (int b = 0; b < B; b++)
            if (j0 + b * REG_THREADS < V4) x[b] = lr4[j0 + b * REG_THREADS];
#pragma unroll
        for (int b = 0; b < B; b++) {
            if (j0 + b * REG_THREADS >= V4) break;
            row[j0 + b * REG_THREADS] = x[b];
            online_add4(&m, &s, x[b]);
        }
    }
    const float xt = tail < V ? lr[tail] : 0.0f;
    if (tail < V) online_add(&m, &s, xt);
    float row_max;
    s = row_loss<W>(m, s, shared, losses, lr, target, &row_max);
    if (!dlogits) return;
    const float scale = grad_scale / s;
    __nv_bfloat162 *d2 = (__nv_bfloat162 *)(dlogits + off);
    for (int j = threadIdx.x; j < V4; j += REG_THREADS)
        store_grad4(d2, j, row[j], row_max, scale, target, grad_scale);
    if (tail < V) store_grad1(dlogits + off, tail, xt, row_max, scale, target, grad_scale);
}

// The row kernel for V: ce_rows_reg_kernel<R> with the fewest groups of four a thread that
// hold the row; else, with a gradient pass and a row that fits the shared memory of an SM,
// ce_rows_smem_kernel; else ce_rows_kernel (a loss-only call reads the row once anyway).
static void launch_rows(Backend *be, int rows, float *losses, bf16 *dlogits, const float *logits,
                        int ldv, const int *targets, int V, float grad_scale) {
    cudaStream_t stream = cuda_ctx(be)->stream;
    const int per = (V / 4 + REG_THREADS - 1) / REG_THREADS; // groups of four a thread
    const int smem = V / 4 * (int)sizeof(float4);
    const int smem_static = REG_THREADS / 32 * (int)sizeof(float); // block_max's, block_sum's
    if (V > REG_COLS && dlogits && smem + smem_static <= cuda_ctx(be)->smem_optin) {
        CUDA_CHECK(cudaFuncSetAttribute(ce_rows_smem_kernel,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        ce_rows_smem_kernel<<<rows, REG_THREADS, smem, stream>>>(losses, dlogits, logits, ldv,
                                                                 targets, V, grad_scale);
    } else if (V > REG_COLS)
        ce_rows_kernel<<<rows, CE_THREADS, 0, stream>>>(losses, dlogits, logits, ldv, targets, V,
                                                        grad_scale);
    else if (per <= 1)
        ce_rows_reg_kernel<1><<<rows, REG_THREADS, 0, stream>>>(losses, dlogits, logits, ldv,
                                                                targets, V, grad_scale);
    else if (per <= 2)
        ce_rows_reg_kernel<2><<<rows, REG_THREADS, 0, stream>>>(losses, dlogits, logits, ldv,
                                                                targets, V, grad_scale);
    else if (per <= 4)
        ce_rows_reg_kernel<4><<<rows, REG_THREADS, 0, stream>>>(losses, dlogits, logits, ldv,
                                                                targets, V, grad_scale);
    else
        ce_rows_reg_kernel<REG_MAX_R><<<rows, REG_THREADS, 0, stream>>>(
            losses, dlogits, logits, ldv, targets, V, grad_scale);
    CUDA_CHECK_LAUNCH();
}

// losses[n] = -log softmax(h W^T)[n, targets[n]] (0 where targets[n] < 0); with dh,
// dh = grad_scale * d(sum losses)/dh (written) and dW += grad_scale * d(sum losses)/dW.
static void cuda_lm_head_cross_entropy(Backend *be, float *losses, Act *dh, float *dW, const Act *h,
                                       const Act *W, const int *targets, int N, int D, int V,
                                       float grad_scale) {
    check(V > 0, "cross_entropy: empty vocabulary");
    if (N <= 0) return;
    bool grad = dh != NULL || dW != NULL;
    int ldv = (V + 7) / 8 * 8;
    size_t row_bytes = (size_t)ldv * (sizeof(float) + (grad ? sizeof(bf16) : 0));
    long chunk = (long)(CE_BUDGET / row_bytes);
    if (chunk > CE_MAX_ROWS) chunk = CE_MAX_ROWS;
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    size_t logits_bytes = ((size_t)chunk * ldv * sizeof(float) + 255) / 256 * 256;
    size_t dlogits_bytes = grad ? (size_t)chunk * ldv * sizeof(bf16) : 0;
    char *scratch = (char *)cuda_scratch(be, logits_bytes + dlogits_bytes);
    float *logits = (float *)scratch;
    bf16 *dlogits = grad ? (bf16 *)(scratch + logits_bytes) : NULL;
    const bf16 *w = as_bf16c(W);
    for (int r0 = 0; r0 < N; r0 += (int)chunk) {
        int rows = N - r0 < chunk ? N - r0 : (int)chunk;
        const bf16 *hc = as_bf16c(h) + (long)r0 * D;
        // logits^T[V, rows] = W h_chunk^T (column-major terms; see kernels/matmul.cu)
        cuda_gemm(be, true, false, V, rows, D, w, D, hc, D, logits, CUDA_R_32F, ldv, 1.0f, 0.0f,
                  NULL);
        launch_rows(be, rows, losses + r0, dlogits, logits, ldv, targets + r0, V, grad_scale);
        if (dh) {
            // dh_chunk^T[D, rows] = W^T[D, V] dlogits^T[V, rows]
            cuda_gemm(be, false, false, D, rows, V, w, D, dlogits, ldv, as_bf16(dh) + (long)r0 * D,
                      CUDA_R_16BF, D, 1.0f, 0.0f, NULL);
        }
        if (dW) {
            // dW^T[D, V] += h_chunk^T[D, rows] dlogits[rows, V]
            cuda_gemm(be, false, true, D, V, rows, hc, D, dlogits, ldv, dW, CUDA_R_32F, D, 1.0f,
                      1.0f, NULL);
        }
    }
}

extern "C" void cuda_register_cross_entropy(Ops *ops) {
    ops->lm_head_cross_entropy = cuda_lm_head_cross_entropy;
}
