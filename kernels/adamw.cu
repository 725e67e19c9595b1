// kernels/adamw.cu: AdamW on CUDA (fp32 master, bf16 copy) and deterministic device sums.
//
// The sums are two-stage with a fixed shape (cuda_common.cuh): sum_blocks(n) blocks each
// sum a fixed grid-stride subset in fp64 and a fixed tree order into a partial in the
// context's scratch; one block then adds the partials in a fixed tree order into acc[0]
// on the device. No atomics, no host synchronisation.
#include <math.h>

#include "cuda_common.cuh"

enum { ADAMW_THREADS = 256, ADAMW_MAX_BLOCKS = 1 << 16 };

// One AdamW step per element with g = grad * grad_scale:
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w -= lr (m / c1 / (sqrt(v / c2) + eps) + wd w), w_act = bf16(w) (if non-NULL).
static __global__ void adamw_kernel(float *w, bf16 *w_act, const float *grad, float *m, float *v,
                                    long n, float lr, float beta1, float beta2, float eps,
                                    float weight_decay, float grad_scale, float correction1,
                                    float correction2) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float g = grad[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / correction1;
        float vhat = vi / correction2;
        float wi = w[i];
        wi -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * wi);
        w[i] = wi;
        if (w_act) w_act[i] = __float2bfloat16(wi);
    }
}

// The bias corrections in double, as kernels/adamw.c computes them (step counts from 1).
static void cuda_adamw_update(Backend *be, float *w, Act *w_act, const float *grad, float *m,
                              float *v, long n, float lr, float beta1, float beta2, float eps,
                              float weight_decay, float grad_scale, int step) {
    if (n <= 0) return;
    float correction1 = (float)(1.0 - pow((double)beta1, (double)step));
    float correction2 = (float)(1.0 - pow((double)beta2, (double)step));
    long blocks = (n + ADAMW_THREADS - 1) / ADAMW_THREADS;
    if (blocks > ADAMW_MAX_BLOCKS) blocks = ADAMW_MAX_BLOCKS;
    adamw_kernel<<<(unsigned)blocks, ADAMW_THREADS, 0, cuda_ctx(be)->stream>>>(
        w, as_bf16(w_act), grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale,
        correction1, correction2);
    CUDA_CHECK_LAUNCH();
}

// Stage 1: partial[b] = sum of x[i] (squares: x[i]^2) over block b's grid-stride subset.
static __global__ void sum_partial_kernel(double *partial, const float *x, long n, int squares) {
    double s = 0.0;
    for (long i = blockIdx.x * (long)RED_THREADS + threadIdx.x; i < n;
         i += (long)gridDim.x * RED_THREADS) {
        double xi = (double)x[i];
        s += squares ? xi * xi : xi;
    }
    s = block_tree_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Stage 2 (one block): acc[0] += scale * the sum of the partials.
static __global__ void sum_finish_kernel(float *acc, const double *partial, int blocks,
                                         double scale) {
    double s = 0.0;
    for (int b = threadIdx.x; b < blocks; b += RED_THREADS) s += partial[b];
    s = block_tree_sum(s);
    if (threadIdx.x == 0) acc[0] += (float)(scale * s);
}

// Stage 2 of every two-stage sum (cuda_common.cuh), also used by kernels/distill_loss.cu.
void cuda_sum_partials(Backend *be, float *acc, const double *partial, int blocks, double scale) {
    sum_finish_kernel<<<1, RED_THREADS, 0, cuda_ctx(be)->stream>>>(acc, partial, blocks, scale);
    CUDA_CHECK_LAUNCH();
}

// acc[0] += scale * sum(x) (or sum(x^2)), both stages on the stream.
static void launch_sum(Backend *be, float *acc, const float *x, long n, double scale, int squares) {
    if (n <= 0) return;
    int blocks = sum_blocks(n);
    double *partial = (double *)cuda_scratch(be, (size_t)blocks * sizeof(double));
    sum_partial_kernel<<<(unsigned)blocks, RED_THREADS, 0, cuda_ctx(be)->stream>>>(partial, x, n,
                                                                                   squares);
    CUDA_CHECK_LAUNCH();
    cuda_sum_partials(be, acc, partial, blocks, scale);
}

// acc[0] += scale * sum(x[0..n)).
static void cuda_sum_into(Backend *be, float *acc, const float *x, long n, float scale) {
    launch_sum(be, acc, x, n, (double)scale, 0);
}

// acc[0] += sum(x[0..n)^2).
static void cuda_sum_squares_into(Backend *be, float *acc, const float *x, long n) {
    launch_sum(be, acc, x, n, 1.0, 1);
}

extern "C" void cuda_register_optimizer(Ops *ops) {
    ops->adamw_update = cuda_adamw_update;
    ops->sum_into = cuda_sum_into;
    ops->sum_squares_into = cuda_sum_squares_into;
}
