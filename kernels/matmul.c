// kernels/matmul.c: fp32 matrix multiply, forward and backward, on the CPU.
//
// All three products (out = inp W^T, dinp += dout W, dweight += dout^T inp) go through one
// cache-blocked routine, gemm_accumulate, in the style of BLIS: both operands are packed
// into panels (MR rows of the left, NR columns of the right, contiguous along k), and a
// register-tiled micro-kernel computes an MR x NR tile of the result with loops the compiler
// vectorises (`omp simd` over the NR columns).
//
// Determinism: every result element is summed by one thread, over k in a fixed order
// (k-blocks of KC in order, each block summed from zero in the micro-kernel and then added
// to the result). The row blocking (MC) may follow the thread count because it does not
// change that order, so results are bit-identical for any number of threads.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// The micro-tile MR x NR sized so its accumulators fill about half the vector registers:
// 8 x 32 in 16 of the 32 AVX-512 registers, 6 x 16 in 12 of the 16 AVX2 registers (both
// measured best of the shapes tried). KC is the k-block; the packed left block, at most
// MC_MAX x KC floats, stays in L2.
#ifdef __AVX512F__
enum { MR = 8, NR = 32 };
#else
enum { MR = 6, NR = 16 };
#endif
enum { KC = 256, MC_MAX = 16 * MR };

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// The register tile: c[i, j] += sum_k a[k, i] b[k, j] for i < mr, j < nr, where `a` and
// `b` are packed panels [kc][MR] and [kc][NR]. The full MR x NR tile is always computed
// (padding is zero), so every element sees the same arithmetic. fmaf is explicit because
// -std=c11 turns off contracting a * b + c, and every x86-64 CPU with AVX2 has FMA.
static inline void micro_kernel(int kc, const float *restrict a, const float *restrict b,
                                float *restrict c, long ldc, int mr, int nr) {
    float acc[MR][NR] = {{0}};
    for (int k = 0; k < kc; k++) {
        const float *restrict bk = b + k * NR;
        const float *restrict ak = a + k * MR;
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            float ai = ak[i];
#pragma omp simd
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(ai, bk[j], acc[i][j]);
        }
    }
    if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; i++) {
#pragma omp simd
            for (int j = 0; j < NR; j++) c[i * ldc + j] += acc[i][j];
        }
    } else {
        for (int i = 0; i < mr; i++) {
            for (int j = 0; j < nr; j++) c[i * ldc + j] += acc[i][j];
        }
    }
}

// Pack rows [i0, i0 + m) and columns [k0, k0 + kc) of A(i, k) = a[i * a_rs + k * a_cs]
// into panels of MR rows: dst[t][k][r] = A(i0 + t * MR + r, k0 + k), zero past row m.
// The loops run along whichever of A's dimensions is contiguous.
static void pack_left(float *dst, const float *a, long a_rs, long a_cs, int i0, int m, int k0,
                      int kc) {
    for (int t = 0; t * MR < m; t++) {
        float *panel = dst + (long)t * kc * MR;
        int rows = m - t * MR < MR ? m - t * MR : MR;
        const float *src = a + (long)(i0 + t * MR) * a_rs + (long)k0 * a_cs;
        if (rows < MR) memset(panel, 0, (size_t)kc * MR * sizeof(float));
        if (a_rs < a_cs) {
            for (int k = 0; k < kc; k++) {
                for (int r = 0; r < rows; r++) panel[k * MR + r] = src[k * a_cs + r * a_rs];
            }
        } else {
            for (int r = 0; r < rows; r++) {
                for (int k = 0; k < kc; k++) panel[k * MR + r] = src[k * a_cs + r * a_rs];
            }
        }
    }
}

// Pack columns [j0, j0 + n) (n <= NR) and rows [k0, k0 + kc) of B(k, j) = b[k * b_rs +
// j * b_cs] into one panel dst[k][NR], zero past column n.
static void pack_right(float *dst, const float *b, long b_rs, long b_cs, int j0, int n, int k0,
                       int kc) {
    const float *src = b + (long)k0 * b_rs + (long)j0 * b_cs;
    if (n < NR) memset(dst, 0, (size_t)kc * NR * sizeof(float));
    if (b_cs < b_rs) {
        for (int k = 0; k < kc; k++) {
            for (int j = 0; j < n; j++) dst[k * NR + j] = src[k * b_rs + j * b_cs];
        }
    } else {
        for (int j = 0; j < n; j++) {
            for (int k = 0; k < kc; k++) dst[k * NR + j] = src[k * b_rs + j * b_cs];
        }
    }
}

// c[i * ldc + j] += sum_k A(i, k) B(k, j) for i < M, j < N, k < K, with A(i, k) =
// a[i * a_rs + k * a_cs] and B(k, j) = b[k * b_rs + j * b_cs]. B is packed once, whole,
// into column panels (bpack[p][k][NR]); each thread packs its own row blocks of A.
static void gemm_accumulate(float *c, long ldc, const float *a, long a_rs, long a_cs,
                            const float *b, long b_rs, long b_cs, int M, int N, int K) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    int n_panels = (N + NR - 1) / NR;
    float *bpack = xmalloc((size_t)n_panels * K * NR * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n_panels; p++) {
        int n = N - p * NR < NR ? N - p * NR : NR;
        pack_right(bpack + (long)p * K * NR, b, b_rs, b_cs, p * NR, n, 0, K);
    }
    // Row blocks: small enough that every thread gets several, at most MC_MAX rows.
    int mc = (M + 4 * max_threads() - 1) / (4 * max_threads());
    mc = (mc + MR - 1) / MR * MR;
    if (mc > MC_MAX) mc = MC_MAX;
    int m_blocks = (M + mc - 1) / mc;
#pragma omp parallel
    {
        float *apack = xmalloc((size_t)mc * KC * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int mb = 0; mb < m_blocks; mb++) {
            int i0 = mb * mc;
            int m = M - i0 < mc ? M - i0 : mc;
            for (int k0 = 0; k0 < K; k0 += KC) {
                int kc = K - k0 < KC ? K - k0 : KC;
                pack_left(apack, a, a_rs, a_cs, i0, m, k0, kc);
                for (int p = 0; p < n_panels; p++) {
                    int n = N - p * NR < NR ? N - p * NR : NR;
                    const float *bp = bpack + (long)p * K * NR + (long)k0 * NR;
                    for (int t = 0; t * MR < m; t++) {
                        int mr = m - t * MR < MR ? m - t * MR : MR;
                        float *ct = c + (long)(i0 + t * MR) * ldc + (long)p * NR;
                        micro_kernel(kc, apack + (long)t * kc * MR, bp, ct, ldc, mr, n);
                    }
                }
            }
        }
        free(apack);
    }
    free(bpack);
}

// out[N, OC] = inp[N, C] @ weight[OC, C]^T (+ bias): start from the bias (or zero) and
// accumulate the product, B(k, j) = weight[j * C + k].
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int C, int OC) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = out + (long)n * OC;
        if (bias) {
            memcpy(row, bias, (size_t)OC * sizeof(float));
        } else {
            memset(row, 0, (size_t)OC * sizeof(float));
        }
    }
    gemm_accumulate(out, OC, inp, C, 1, weight, 1, C, N, OC, C);
}

// dinp += dout @ weight (B(k, j) = weight[k * C + j]), dweight += dout^T @ inp (A(o, n) =
// dout[n * OC + o], summed over all N rows in order), dbias += column sums of dout.
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    if (dinp) gemm_accumulate(dinp, C, dout, OC, 1, weight, C, 1, N, C, OC);
    if (dweight) gemm_accumulate(dweight, C, dout, 1, OC, inp, C, 1, OC, C, N);
    if (dbias) {
        // column sums in blocks of 64 columns, each summed over n in order by one thread
        int blocks = (OC + 63) / 64;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < blocks; blk++) {
            int o0 = blk * 64;
            int width = OC - o0 < 64 ? OC - o0 : 64;
            float sum[64] = {0};
            for (int n = 0; n < N; n++) {
                const float *row = dout + (long)n * OC + o0;
                if (width == 64) {
#pragma omp simd
                    for (int j = 0; j < 64; j++) sum[j] += row[j];
                } else {
                    for (int j = 0; j < width; j++) sum[j] += row[j];
                }
            }
            for (int j = 0; j < width; j++) dbias[o0 + j] += sum[j];
        }
    }
}
