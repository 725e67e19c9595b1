// kernels/rope.cu: rotary position embedding (HF rotate_half) on CUDA, in place.
//
// Angles as kernels/rope.c computes them, in fp32 with the accurate device functions
// (powf, and sinf/cosf with full range reduction, so large positions stay right):
// inv_freq_i = 1 / theta^(2i/hd), angle = pos * inv_freq_i.
#include "cuda_common.cuh"

enum { ROPE_THREADS = 256, ROPE_MAX_BLOCKS = 1 << 16 };

// One thread per V consecutive pairs (x[i], x[i + hd/2]), i = i0 .. i0 + V - 1, of head h
// of row n, rotated by sign * angle: lo = a cos - b sn, hi = b cos + a sn with sn = sign *
// sin (sign -1 rotates back). Both halves are read before either is written. V = 8: two
// 16-byte loads and stores per thread (every head's halves 16-byte aligned).
template <int V>
static __global__ void rope_kernel(bf16 *x, int ld, const int *pos, int N, int H, int hd,
                                   float theta, float sign) {
    int half = hd / 2, groups = half / V;
    long total = (long)N * H * groups;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total;
         idx += (long)gridDim.x * blockDim.x) {
        long t = idx / groups;
        int i0 = (int)(idx - t * groups) * V;
        long n = t / H;
        int h = (int)(t - n * H);
        bf16 *xh = x + n * ld + (long)h * hd;
        float a[V], b[V];
        load_bf16<V>(a, xh + i0);
        load_bf16<V>(b, xh + i0 + half);
        float p = (float)pos[n];
        for (int e = 0; e < V; e++) {
            float inv_freq = 1.0f / powf(theta, (float)(2 * (i0 + e)) / (float)hd);
            float sn, c;
            sincosf(p * inv_freq, &sn, &c);
            sn *= sign;
            float lo = a[e] * c - b[e] * sn, hi = b[e] * c + a[e] * sn;
            a[e] = lo;
            b[e] = hi;
        }
        store_bf16<V>(xh + i0, a);
        store_bf16<V>(xh + i0 + half, b);
    }
}

static void launch_rope(Backend *be, Act *x, int ld, const int *pos, int N, int H, int hd,
                        float theta, float sign) {
    check(hd % 2 == 0, "rope: head size %d is odd", hd);
    bool vec = (hd / 2) % 8 == 0 && ld % 8 == 0 && aligned16(x);
    long total = (long)N * H * (hd / 2) / (vec ? 8 : 1);
    if (total <= 0) return;
    long blocks = (total + ROPE_THREADS - 1) / ROPE_THREADS;
    if (blocks > ROPE_MAX_BLOCKS) blocks = ROPE_MAX_BLOCKS;
    with_vec(vec, [&](auto V) {
        rope_kernel<V><<<(unsigned)blocks, ROPE_THREADS, 0, cuda_ctx(be)->stream>>>(
            as_bf16(x), ld, pos, N, H, hd, theta, sign);
    });
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
