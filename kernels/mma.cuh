// kernels/mma.cuh: the warp-level tensor-core building blocks that the attention kernels
// share: shared-memory addresses, cp.async, ldmatrix and mma.sync.m16n8k16 (bf16 in, fp32
// accumulate), as thin PTX wrappers, and the copy of a shared bf16 tile to global memory.
//
// Fragment layout of m16n8k16 (g = lane / 4, t = lane % 4):
//   A [16 x 16] row-major: a0 (row g, cols 2t, 2t+1), a1 (row g+8, same cols),
//                          a2 (row g, cols 2t+8, 2t+9), a3 (row g+8, cols 2t+8, 2t+9);
//   B [16 x 8]:            b0 (rows 2t, 2t+1, col g), b1 (rows 2t+8, 2t+9, col g);
//   C [16 x 8] fp32:       c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same cols).
// So an accumulator pair of two 8-column tiles, packed to bf16, is the A operand of the
// next product: scores never leave registers.
#pragma once
#include <stdint.h>
#include <string.h>

#include "cuda_common.cuh"

static __device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16-byte async copy global -> shared; zero-fills the destination when !valid.
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}

// 4-byte async copy (one fp32 row statistic); zero-fills when !valid.
static __device__ __forceinline__ void cp_async4(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 4 : 0));
}

static __device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int N> static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 bf16 matrices from shared memory; lane l gives the address of row l % 8 of
// matrix l / 8, and register j receives matrix j (row lane / 4, columns 2 (lane % 4) + 0, 1).
static __device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// The same, each matrix transposed (lane gets rows 2 (lane % 4) + 0, 1 of column lane / 4).
static __device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// c[16x8] += a[16x16] b[16x8], bf16 inputs, fp32 accumulators.
static __device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a bf16 pair, lo in the low half (the lower column of a fragment).
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

// Fragments of 16 x 16 bf16 operand tiles from shared memory (rows ld elements apart, each
// row 16-byte aligned). An A operand [m][k] whose first element is X[m0][k0] (load_a), or the
// transpose of X[k][m] (load_a_trans); a B operand [k][n] at Y[k0][n0] (load_b), or the
// transpose of Y[n][k] (load_b_trans). A B fragment holds two 16 x 8 halves: b[0], b[1] for
// columns 0-7, b[2], b[3] for columns 8-15.
static __device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16 *X, int ld, int m0,
                                              int k0) {
    const int lane = threadIdx.x % 32;
    ldsm_x4(a, X + (m0 + lane % 8 + (lane / 8) % 2 * 8) * ld + k0 + lane / 16 * 8);
}
static __device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const bf16 *X, int ld, int k0,
                                                    int m0) {
    const int lane = threadIdx.x % 32;
    ldsm_x4_t(a, X + (k0 + lane % 8 + lane / 16 * 8) * ld + m0 + (lane / 8) % 2 * 8);
}
static __device__ __forceinline__ void load_b(uint32_t (&b)[4], const bf16 *Y, int ld, int k0,
                                              int n0) {
    const int lane = threadIdx.x % 32;
    ldsm_x4_t(b, Y + (k0 + lane % 8 + (lane / 8) % 2 * 8) * ld + n0 + lane / 16 * 8);
}
static __device__ __forceinline__ void load_b_trans(uint32_t (&b)[4], const bf16 *Y, int ld, int n0,
                                                    int k0) {
    const int lane = threadIdx.x % 32;
    ldsm_x4(b, Y + (n0 + lane % 8 + lane / 16 * 8) * ld + k0 + (lane / 8) % 2 * 8);
}

// c[16 x 16] += a b: the tile as two m16n8 accumulators (c[n]: columns 8n ..).
static __device__ __forceinline__ void mma_tile(float (&c)[2][4], const uint32_t (&a)[4],
                                                const uint32_t (&b)[4]) {
    mma_bf16(c[0], a, b[0], b[1]);
    mma_bf16(c[1], a, b[2], b[3]);
}

// A 16 x 16 accumulator tile into fp32 shared memory at D (rows ld apart; ld = 8 mod 32
// makes the stores conflict-free).
static __device__ __forceinline__ void store_acc(float *D, int ld, const float (&c)[2][4]) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int n = 0; n < 2; n++) {
        *reinterpret_cast<float2 *>(D + g * ld + 8 * n + 2 * t) = make_float2(c[n][0], c[n][1]);
        *reinterpret_cast<float2 *>(D + (g + 8) * ld + 8 * n + 2 * t) =
            make_float2(c[n][2], c[n][3]);
    }
}

// The same tile times scale as bf16 (rows ld apart; ld = 8 mod 64 keeps it conflict-free).
static __device__ __forceinline__ void store_acc_bf16(bf16 *D, int ld, const float (&c)[2][4],
                                                      float scale) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int n = 0; n < 2; n++) {
        *reinterpret_cast<uint32_t *>(D + g * ld + 8 * n + 2 * t) =
            pack_bf16(scale * c[n][0], scale * c[n][1]);
        *reinterpret_cast<uint32_t *>(D + (g + 8) * ld + 8 * n + 2 * t) =
            pack_bf16(scale * c[n][2], scale * c[n][3]);
    }
}

// True when 16-byte vector access works for rows `ld` elements apart starting at p.
static __device__ __forceinline__ bool vec_ok(const void *p, long ld) {
    return ((reinterpret_cast<uintptr_t>(p) | (uintptr_t)(ld * 2)) & 15) == 0;
}

// Rows < rows and columns < cols of the shared [ROWS, COLS] bf16 tile src (rows lds apart)
// to dst (rows ld apart): 16-byte stores of eight columns when vec, else one value at a
// time. Threads first, first + step, ... share the tile's groups of eight in row order, so
// a block (threadIdx.x, its size) or one warp (its lane, 32) can call it. Staged so, a
// tile leaves in whole rows, where mma fragments would store 4-byte pairs.
template <int ROWS, int COLS>
static __device__ __forceinline__ void copy_tile_out(bf16 *dst, long ld, const bf16 *src, int lds,
                                                     int rows, int cols, bool vec, int first,
                                                     int step) {
    constexpr int groups = COLS / 8;
    for (int i = first; i < ROWS * groups; i += step) {
        const int r = i / groups, c = (i % groups) * 8;
        if (r >= rows || c >= cols) continue;
        const bf16 *s = src + r * lds + c;
        bf16 *d = dst + r * ld + c;
        if (vec && cols - c >= 8) {
            *reinterpret_cast<uint4 *>(d) = *reinterpret_cast<const uint4 *>(s);
        } else {
            for (int e = 0; e < 8 && c + e < cols; e++) d[e] = s[e];
        }
    }
}

// tile += A^T B over ROWS rows (a multiple of 16) for one 16 x 16 tile. A and B are row-major
// bf16 in shared memory, rows lda and ldb apart; the tile's rows are A's columns a0 .., its
// columns B's columns b0 ... The state update S += Y^T Z of the linear-attention walks.
template <int ROWS>
static __device__ __forceinline__ void mma_at_b(float (&tile)[2][4], const bf16 *A, int lda, int a0,
                                                const bf16 *B, int ldb, int b0) {
#pragma unroll
    for (int kb = 0; kb < ROWS / 16; kb++) {
        uint32_t a[4], b[4];
        load_a_trans(a, A, lda, kb * 16, a0);
        load_b(b, B, ldb, kb * 16, b0);
        mma_tile(tile, a, b);
    }
}
