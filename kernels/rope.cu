// kernels/rope.cu: rotary position embedding (HF rotate_half) on CUDA, in place.
//
// Angles as kernels/rope.c computes them, in fp32 with the accurate device functions
// (powf, and sinf/cosf with full range reduction, so large positions stay right):
// inv_freq_i = 1 / theta^(2i/hd), angle = pos * inv_freq_i.
#include "cuda_common.cuh"

enum { ROPE_THREADS = 256, ROPE_MAX_BLOCKS = 1 << 16 };

// One thread per pair (x[i], x[i + hd/2]) of head h of row n, rotated by sign * angle:
// lo = a cos - b sn, hi = b cos + a sn with sn = sign * sin (sign -1 rotates back).
// Both values are read before either is written.
static __global__ void rope_kernel(bf16 *x, int ld, const int *pos, int N, int H, int hd,
                                   float theta, float sign) {
    int half = hd / 2;
    long total = (long)N * H * half;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total;
         idx += (long)gridDim.x * blockDim.x) {
        int i = (int)(idx % half);
        long t = idx / half;
        int h = (int)(t % H);
        long n = t / H;
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        float angle = (float)pos[n] * inv_freq;
        float c = cosf(angle), sn = sign * sinf(angle);
        bf16 *xh = x + n * ld + (long)h * hd;
        float a = __bfloat162float(xh[i]), b = __bfloat162float(xh[i + half]);
        xh[i] = __float2bfloat16(a * c - b * sn);
        xh[i + half] = __float2bfloat16(b * c + a * sn);
    }
}

static void launch_rope(Backend *be, Act *x, int ld, const int *pos, int N, int H, int hd,
                        float theta, float sign) {
    check(hd % 2 == 0, "rope: head size %d is odd", hd);
    long total = (long)N * H * (hd / 2);
    if (total <= 0) return;
    long blocks = (total + ROPE_THREADS - 1) / ROPE_THREADS;
    if (blocks > ROPE_MAX_BLOCKS) blocks = ROPE_MAX_BLOCKS;
    rope_kernel<<<(unsigned)blocks, ROPE_THREADS, 0, cuda_ctx(be)->stream>>>(as_bf16(x), ld, pos, N,
                                                                             H, hd, theta, sign);
    CUDA_CHECK_LAUNCH();
}

// x[N, H, hd] (rows ld apart) rotated in place, row n at position pos[n].
static void cuda_rope_forward(Backend *be, Act *x, int ld, const int *pos, int N, int H, int hd,
                              float theta) {
    launch_rope(be, x, ld, pos, N, H, hd, theta, 1.0f);
}

// The rotation is orthogonal: the gradient is rotated back by the same angle, in place.
static void cuda_rope_backward(Backend *be, Act *dx, int ld, const int *pos, int N, int H, int hd,
                               float theta) {
    launch_rope(be, dx, ld, pos, N, H, hd, theta, -1.0f);
}

extern "C" void cuda_register_rope(Ops *ops) {
    ops->rope_forward = cuda_rope_forward;
    ops->rope_backward = cuda_rope_backward;
}
