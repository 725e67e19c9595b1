// kernels/distill_loss.cu: the two distillation losses on CUDA (CPU reference:
// kernels/distill_loss.c): attention transfer's MSE on bf16 activations and the
// temperature-scaled KL between the teacher's and the student's fp32 logits.
//
// mse_loss: the two-stage sum of cuda_common.cuh over (x - target)^2 (fp64 partials of a
// shape fixed by n, added in a fixed order on the device), dx written in the same pass.
//
// kd_loss: one block per row n, two passes over its V logits:
//   1. each thread keeps an online log-sum-exp of its strided share of the row (the
//      running max of the raw logits, fp64 sums rescaled when it grows): the student at T
//      and at 1, the teacher at T (the max of x serves x / T too, as T > 0); the threads'
//      parts are merged in a fixed order (a warp butterfly, then the warps in turn);
//   2. p = softmax(teacher / T), q = softmax(student / T), the KL sum (fp64 per thread, a
//      fixed tree over the block) and dlogits = grad_scale * T * (q - p) as bf16.
//   CE comes from pass 1's sums at T = 1 (0 for target < 0, NaN for target >= V: the
//   caller checks targets, and a NaN flags the step).
// Reading the row twice (16 bytes per logit) instead of three times keeps the kernel
// close to memory speed. Every reduction has a fixed order and shape, so the results are
// the same run to run. No host synchronisation.
#include <float.h>
#include <math.h>

#include "cuda_common.cuh"

enum { KD_THREADS = RED_THREADS, KD_WARPS = KD_THREADS / 32 }; // block_tree_sum's block

// A running log-sum-exp of part of a row: the max m of the raw logits, sum_t = sum of
// exp((x - m) / T) and sum_1 = sum of exp(x - m). The sums are fp64: the KL's row
// constant (below) is a difference of their logs, and fp32 sums of 10^5 terms would
// limit a small KL (close teacher and student) to a few digits.
typedef struct Lse {
    float m;
    double sum_t, sum_1;
} Lse;

// Nothing seen yet. -FLT_MAX rather than -INFINITY, so exp(x - m) of an empty part or a
// -inf logit is exp(-inf) = 0, never exp(NaN).
static __device__ Lse lse_empty(void) {
    Lse a = {-FLT_MAX, 0.0, 0.0};
    return a;
}

// Adds logit x (with_1: the T = 1 sum too; the teacher needs only T).
static __device__ void lse_add(Lse *a, float x, float inv_t, bool with_1) {
    if (x > a->m) { // a new max: rescale what was summed against the old one
        float e = a->m - x;
        a->sum_t *= (double)expf(e * inv_t);
        if (with_1) a->sum_1 *= (double)expf(e);
        a->m = x;
    }
    float e = x - a->m;
    a->sum_t += (double)expf(e * inv_t);
    if (with_1) a->sum_1 += (double)expf(e);
}

// The log-sum-exp of a's part and b's part together.
static __device__ Lse lse_merge(Lse a, Lse b, float inv_t) {
    Lse r;
    r.m = fmaxf(a.m, b.m);
    float ea = a.m - r.m, eb = b.m - r.m;
    r.sum_t = a.sum_t * (double)expf(ea * inv_t) + b.sum_t * (double)expf(eb * inv_t);
    r.sum_1 = a.sum_1 * (double)expf(ea) + b.sum_1 * (double)expf(eb);
    return r;
}

// Every thread's part merged over the block (every thread gets the result; a fixed order:
// the butterfly within each warp, then warp 0, 1, ... in turn).
static __device__ Lse block_lse(Lse a, float inv_t, Lse *shared) {
    for (int off = 16; off > 0; off >>= 1) {
        Lse b;
        b.m = __shfl_xor_sync(0xffffffffu, a.m, off);
        b.sum_t = __shfl_xor_sync(0xffffffffu, a.sum_t, off);
        b.sum_1 = __shfl_xor_sync(0xffffffffu, a.sum_1, off);
        a = lse_merge(a, b, inv_t);
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); // `shared` may still be read from the previous merge
    if (lane == 0) shared[warp] = a;
    __syncthreads();
    Lse r = shared[0];
    for (int w = 1; w < KD_WARPS; w++) r = lse_merge(r, shared[w], inv_t);
    return r;
}

// One block per row: kl[row], ce[row] and the row of dlogits (see the top of the file).
// log p_v - log q_v = (t_v - s_v) / T + c with the row constant c in double, so the KL
// keeps its precision when teacher and student are close (their difference is small).
static __global__ void __launch_bounds__(KD_THREADS)
    kd_rows_kernel(float *kl, float *ce, bf16 *dlogits, const float *student, const float *teacher,
                   const int *targets, int V, float T, float grad_scale) {
    __shared__ Lse shared[KD_WARPS];
    size_t off = (size_t)blockIdx.x * V;
    const float *s = student + off, *t = teacher + off;
    float inv_t = 1.0f / T;
    Lse ls = lse_empty(), lt = lse_empty();
    for (int v = threadIdx.x; v < V; v += KD_THREADS) {
        lse_add(&ls, s[v], inv_t, true);
        lse_add(&lt, t[v], inv_t, false);
    }
    ls = block_lse(ls, inv_t, shared);
    lt = block_lse(lt, inv_t, shared);

    double log_zs = log(ls.sum_t), log_zt = log(lt.sum_t);
    float c = (float)(((double)ls.m - (double)lt.m) / (double)T + log_zs - log_zt);
    float lzs = (float)log_zs, lzt = (float)log_zt, g = grad_scale * T;
    double sum = 0.0;
    for (int v = threadIdx.x; v < V; v += KD_THREADS) {
        float sv = s[v], tv = t[v];
        float q = expf((sv - ls.m) * inv_t - lzs);
        float p = expf((tv - lt.m) * inv_t - lzt);
        sum += (double)(p * ((tv - sv) * inv_t + c));
        dlogits[off + v] = __float2bfloat16(g * (q - p));
    }
    sum = block_tree_sum(sum);
    if (threadIdx.x == 0) {
        kl[blockIdx.x] = (float)sum;
        int target = targets[blockIdx.x];
        float loss = NAN;
        if (target < 0) loss = 0.0f;
        if (target >= 0 && target < V)
            loss = (float)(log(ls.sum_1) + ((double)ls.m - (double)s[target]));
        ce[blockIdx.x] = loss;
    }
}

// Stage 1 of the MSE: dx[i] = two_scale * (x[i] - target[i]) and partial[b] = the sum of
// (x[i] - target[i])^2 over block b's grid-stride subset (fp64, fixed tree).
static __global__ void mse_partial_kernel(double *partial, bf16 *dx, const bf16 *x,
                                          const bf16 *target, long n, float two_scale) {
    double sum = 0.0;
    for (long i = blockIdx.x * (long)RED_THREADS + threadIdx.x; i < n;
         i += (long)gridDim.x * RED_THREADS) {
        float d = __bfloat162float(x[i]) - __bfloat162float(target[i]);
        dx[i] = __float2bfloat16(two_scale * d);
        sum += (double)d * d;
    }
    sum = block_tree_sum(sum);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// acc[0] += scale * sum((x - target)^2) (fixed order) and dx = 2 * scale * (x - target),
// both on the stream.
static void cuda_mse_loss(Backend *be, float *acc, Act *dx, const Act *x, const Act *target, long n,
                          float scale) {
    if (n <= 0) return;
    int blocks = sum_blocks(n);
    double *partial = (double *)cuda_scratch(be, (size_t)blocks * sizeof(double));
    mse_partial_kernel<<<(unsigned)blocks, RED_THREADS, 0, cuda_ctx(be)->stream>>>(
        partial, as_bf16(dx), as_bf16c(x), as_bf16c(target), n, 2.0f * scale);
    CUDA_CHECK_LAUNCH();
    cuda_sum_partials(be, acc, partial, blocks, (double)scale);
}

// Logit distillation on fp32 logits [N, V] at temperature T (ops.h): kl, ce and dlogits
// written for every row.
static void cuda_kd_loss(Backend *be, float *kl, float *ce, Act *dlogits, const float *student,
                         const float *teacher, const int *targets, int N, int V, float T,
                         float grad_scale) {
    check(V > 0, "kd_loss: empty vocabulary");
    check(T > 0, "kd_loss: temperature %g must be > 0", (double)T);
    if (N <= 0) return;
    kd_rows_kernel<<<(unsigned)N, KD_THREADS, 0, cuda_ctx(be)->stream>>>(
        kl, ce, as_bf16(dlogits), student, teacher, targets, V, T, grad_scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_register_distill(Ops *ops) {
    ops->mse_loss = cuda_mse_loss;
    ops->kd_loss = cuda_kd_loss;
}
