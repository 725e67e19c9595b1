// kernels/gla_chunk.cuh: gated linear attention (GLA) on CUDA, forward and backward, in the chunk
// form of SPEC sec. 3 (the CPU reference is kernels/gla.c; the contract is ops.h's
// gla_forward / gla_backward). bf16 inputs, fp32 accumulation, fp32 states.
//
// Per sequence and head, with per-channel log-gates g_t <= 0:
//   S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,   o_t = scale * q_t S_t.
// Chunks of CH = 64 rows, sub-chunks of 16 (the mma tile). Inside a chunk the gates are
// kept as local cumulative sums gc_t = log2(e) * (g_0 + ... + g_t), so every decay is an
// exp2 of a difference with exponent <= 0:
// - scores A[t][s] = sum_i q_t k_s exp2(gc_t - gc_s), s <= t: off-diagonal sub-chunk
//   blocks on tensor cores (mma.sync and ldmatrix, kernels/mma.cuh), factored through a
//   reference row between the two sub-chunks; diagonal blocks' lower-left 8 x 8 quarters
//   the same way through their row 8, their 8-row triangles elementwise in fp32;
// - o = (scale q exp2(gc)) h + (scale A) v, h the state entering the chunk;
// - h <- diag(exp2(gl)) h + (k exp2(gl - gc))^T v, gl = gc of the chunk's last row.
// Kernels (the walks 256 threads, the chunk kernels chunk_threads(K): at K = 128, 512, as
// two forward blocks of 105 KB or one backward block of 195 KB of shared memory fit an SM):
// - gla_states_kernel (gla_states.cuh): the state walks, in order (forward) or in reverse
//   (the state gradient), each storing its state, as bf16, once per chunk into a slot;
// - gla_fwd_chunk_kernel: one block per (chunk, head): scores, then o tile by tile;
// - gla_bwd_chunk_kernel (gla_bwd.cuh): one block per (chunk, head): scores, then over
//   value tiles dA = do v^T, dq += do h^T, dk += v dh^T, dv = A^T do + (k exp2(gl - gc))
//   dh, then the intra-chunk dq, dk and the gate gradient dg_r = sum_{t >= r} (q dq -
//   k dk)_t + the state term exp2(gl) rowsum(h .* dh) + sum_s k_s dk_s^state (= rowsum(dh
//   .* h_out)).
// The `chunk` hint is not used (CH is fixed at 64).
#pragma once
#include <stdint.h>

#include "cuda_common.cuh"
#include "mma.cuh"

namespace {

constexpr int CH = 64;         // rows per chunk
constexpr int SUB = 16;        // rows per sub-chunk (the mma tile)
constexpr int NSUB = CH / SUB; // sub-chunks per chunk
constexpr int NT = 256;        // threads per block of the state walks
constexpr int NW = NT / 32;    // warps per block of the state walks
// Threads per block of the chunk kernels: 512 where the shared memory of K >= 64 allows one
// backward (or two forward) blocks an SM, 256 where smaller blocks fit two or more anyway.
constexpr int chunk_threads(int K) {
    return K >= 64 ? 512 : 256;
}
constexpr int LDA = CH + 8;         // fp32 [CH][CH] rows (8 mod 32: conflict-free fragment stores)
constexpr int LDAB = CH + 8;        // bf16 [CH][CH] rows (conflict-free ldmatrix)
constexpr int SLD = SUB + 8;        // bf16 rows of a warp's 16 x 16 staging tiles
constexpr int WBUF = 2 * SUB * SLD; // bf16 staging per warp: two tiles
constexpr float LOG2E = 1.4426950408889634f;
constexpr long SLOT_BUDGET = 1L << 30; // bytes of per-chunk states per call (soft cap)

// Everything a launch needs (passed by value). States are [nseq, H, K, V] fp32; slots
// are bf16 [nseq_group * max_chunks, H, K, V]: slot (seq - seq0) * max_chunks + chunk.
struct GlaArgs {
    bf16 *o, *dq, *dk, *dv, *dg;
    const bf16 *q, *k, *v, *g, *dout;
    const float *state_in, *dstate_out;
    float *state_out, *dstate_in;
    bf16 *h, *dh; // per-chunk states: entering the chunk (h), gradient leaving it (dh)
    const int *cu;
    long ld;
    float scale;
    int seq0, H, V, max_chunks;
};

constexpr int align128(int n) {
    return (n + 127) / 128 * 128;
}
constexpr int imax(int a, int b) {
    return a > b ? a : b;
}

// Shared-memory layouts (byte offsets), one source for the kernels and the launches. The
// fp32 [CH][K] tiles (gates, dq, dk) have rows K + 8 apart: fragment stores and loads of
// rows g = 0..7 then hit distinct banks.
template <int K, int BV, int NTH> struct Lay {
    static constexpr int LDX = K + 8;  // bf16 [CH][K]: q, k and gated copies
    static constexpr int LDY = BV + 8; // bf16 [*][BV]: v, do, h, dh tiles
    static constexpr int LDF = K + 8;  // fp32 [CH][K]: gc, dq, dk
    static constexpr int X = align128(CH * LDX * 2), F = align128(CH * LDF * 4);
    static constexpr int A = align128(CH * LDA * 4), AB = align128(CH * LDAB * 2);
    static constexpr int Y = align128(CH * LDY * 2), HY = align128(K * LDY * 2);
    static constexpr int WB = NTH / 32 * WBUF * 2, TOT = NTH * 4;
    // gla_fwd_chunk_kernel: q | Ab | {k, gc} or {h, v} | wb | tot
    static constexpr int fw_ab = X, fw_u = fw_ab + AB;
    static constexpr int fw_k = fw_u, fw_g = fw_k + X, fw_h = fw_u, fw_v = fw_h + HY;
    static constexpr int fw_wb = fw_u + imax(X + F, HY + Y), fw_tot = fw_wb + WB;
    static constexpr int fw_bytes = fw_tot + TOT;
    // gla_bwd_chunk_kernel: q | k | gc | A | Ab | {kd, v, do, h, dh} or {dq, dk} | wb | tot |
    // red | st
    static constexpr int bw_k = X, bw_g = bw_k + X, bw_a = bw_g + F, bw_ab = bw_a + A;
    static constexpr int bw_u = bw_ab + AB, bw_kd = bw_u, bw_v = bw_kd + X, bw_do = bw_v + Y;
    static constexpr int bw_h = bw_do + Y, bw_dh = bw_h + HY, bw_dq = bw_u, bw_dk = bw_dq + F;
    static constexpr int bw_wb = bw_u + imax(X + 2 * Y + 2 * HY, 2 * F), bw_tot = bw_wb + WB;
    static constexpr int bw_red = bw_tot + TOT, bw_st = bw_red + TOT;
    static constexpr int bw_bytes = bw_st + align128(K * 4);
};

__device__ __forceinline__ float bf(bf16 x) {
    return __bfloat162float(x);
}

// Eight consecutive floats of shared memory (16-byte aligned) into registers, and back.
__device__ __forceinline__ void load8f(float (&v)[8], const float *p) {
    const float4 a = *reinterpret_cast<const float4 *>(p),
                 b = *reinterpret_cast<const float4 *>(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void store8f(float *p, const float (&v)[8]) {
    *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    *reinterpret_cast<float4 *>(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
}

// rows x cols bf16 from global (rows lds apart) to shared (ldd apart); rows >= valid are
// zero (the padding of a short last chunk; their zero-filling copies name row 0, so valid
// must be >= 1, as every caller's is). When aligned, by cp.async: every copy of the block
// in flight at once, complete after tile_loads_wait().
template <int NTH>
__device__ void load_tile(bf16 *dst, int ldd, const bf16 *src, long lds, int valid, int rows,
                          int cols) {
    if (vec_ok(src, lds)) {
        const int per = cols / 8;
        for (int e = threadIdx.x; e < rows * per; e += NTH) {
            const int r = e / per, c = (e - r * per) * 8;
            cp_async16(dst + r * ldd + c, src + (r < valid ? r * lds + c : 0), r < valid);
        }
        cp_async_commit();
    } else {
        for (int e = threadIdx.x; e < rows * cols; e += NTH) {
            const int r = e / cols, c = e - r * cols;
            dst[r * ldd + c] = r < valid ? src[r * lds + c] : __float2bfloat16(0.0f);
        }
    }
}

// Waits for this thread's load_tile copies; a __syncthreads() after it makes every
// thread's visible.
__device__ __forceinline__ void tile_loads_wait() {
    cp_async_wait<0>();
}

// The chunk's gates, bf16 global (rows lds apart) to fp32 shared [CH][K] (rows K + 8
// apart); rows >= valid are zero, so the cumulative gates of padding rows repeat the last
// real row's.
template <int K, int NTH>
__device__ void load_gates(float *dst, const bf16 *src, long lds, int valid) {
    constexpr int LDF = K + 8, PER = K / 8, N = (CH * PER + NTH - 1) / NTH;
    if (vec_ok(src, lds)) {
        uint4 x[N]; // all of the thread's loads issued before the first is unpacked
#pragma unroll
        for (int j = 0; j < N; j++) {
            const int e = threadIdx.x + j * NTH, r = e / PER, c = (e - r * PER) * 8;
            x[j] = make_uint4(0, 0, 0, 0);
            if (e < CH * PER && r < valid)
                x[j] = *reinterpret_cast<const uint4 *>(src + r * lds + c);
        }
#pragma unroll
        for (int j = 0; j < N; j++) {
            const int e = threadIdx.x + j * NTH, r = e / PER, c = (e - r * PER) * 8;
            if (e < CH * PER) unpack8(dst + r * LDF + c, x[j]);
        }
    } else {
        for (int e = threadIdx.x; e < CH * K; e += NTH) {
            const int r = e / K, c = e - r * K;
            dst[r * LDF + c] = r < valid ? bf(src[r * lds + c]) : 0.0f;
        }
    }
}

// Rows [0, valid) of an fp32 shared tile (rows lds apart) to bf16 global (ldd apart),
// plus add[c] on column c when add is set.
template <int NTH>
__device__ void store_tile(bf16 *dst, long ldd, const float *src, int lds, int valid, int cols,
                           const float *add) {
    if (vec_ok(dst, ldd)) {
        const int per = cols / 8;
        for (int e = threadIdx.x; e < valid * per; e += NTH) {
            const int r = e / per, c = (e - r * per) * 8;
            float f[8];
            for (int j = 0; j < 8; j++) f[j] = src[r * lds + c + j] + (add ? add[c + j] : 0.0f);
            __stwb(reinterpret_cast<uint4 *>(dst + r * ldd + c), pack8(f)); // one 16-byte store
        }
    } else {
        for (int e = threadIdx.x; e < valid * cols; e += NTH) {
            const int r = e / cols, c = e - r * cols;
            dst[r * ldd + c] = __float2bfloat16(src[r * lds + c] + (add ? add[c] : 0.0f));
        }
    }
}

// One warp: a 16 x 16 accumulator tile to bf16 global (rows ldd apart, `valid` rows
// written), staged through the warp's bf16 tile `stage` so that each row goes out as two
// 16-byte stores.
__device__ void store_warp_tile(bf16 *dst, long ldd, const float (&acc)[2][4], bf16 *stage,
                                int valid) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (int n = 0; n < 2; n++) {
        *reinterpret_cast<uint32_t *>(stage + g * SLD + 8 * n + 2 * t) =
            pack_bf16(acc[n][0], acc[n][1]);
        *reinterpret_cast<uint32_t *>(stage + (g + 8) * SLD + 8 * n + 2 * t) =
            pack_bf16(acc[n][2], acc[n][3]);
    }
    __syncwarp();
    const int r = lane / 2, c = (lane % 2) * 8;
    if (r < valid) {
        const uint4 x = *reinterpret_cast<const uint4 *>(stage + r * SLD + c);
        if (vec_ok(dst, ldd)) {
            __stwb(reinterpret_cast<uint4 *>(dst + r * ldd + c), x); // one 16-byte store
        } else {
            const bf16 *e = stage + r * SLD + c;
            for (int j = 0; j < 8; j++) dst[r * ldd + c + j] = e[j];
        }
    }
    __syncwarp();
}

// In-place inclusive scan of the NCOL columns of x[CH][ld] along the rows (from the last
// row when reverse), then times mul. NTH / NCOL threads share a column, each scanning a
// segment and adding the totals of the segments before it. The segment's rows are read
// four at a time ahead of their sums, so the serial sum waits on a quarter of the loads
// (the sums are the same, in the same order). All threads call; ends synced.
template <int NCOL, int NTH>
__device__ void scan_columns(float *x, int ld, float *tot, bool reverse, float mul) {
    constexpr int P = NTH / NCOL, SEG = CH / P, B = SEG < 4 ? SEG : 4;
    const int col = threadIdx.x % NCOL, part = threadIdx.x / NCOL;
    const int r0 = reverse ? CH - 1 - part * SEG : part * SEG, dr = reverse ? -ld : ld;
    float *p0 = x + r0 * ld + col;
    float run = 0.0f;
    for (int n = 0; n < SEG; n += B) {
        float v[B];
#pragma unroll
        for (int b = 0; b < B; b++) v[b] = p0[(n + b) * dr];
#pragma unroll
        for (int b = 0; b < B; b++) {
            run += v[b];
            p0[(n + b) * dr] = run;
        }
    }
    tot[part * NCOL + col] = run;
    __syncthreads();
    float off = 0.0f;
    for (int p = 0; p < part; p++) off += tot[p * NCOL + col];
    for (int n = 0; n < SEG; n += B) {
        float v[B];
#pragma unroll
        for (int b = 0; b < B; b++) v[b] = p0[(n + b) * dr];
#pragma unroll
        for (int b = 0; b < B; b++) p0[(n + b) * dr] = (v[b] + off) * mul;
    }
    __syncthreads();
}

// The intra-chunk scores scale A[t][s], A[t][s] = sum_i q_t k_s exp2(gc_t - gc_s) for s
// <= t, as bf16 into Ab (rows LDAB apart; zero above the diagonal inside the diagonal
// blocks, unset in the blocks above them, which no product reads), all blocks factored
// through a reference row p between query and key rows: (q_t exp2(gc_t - gc_p)) . (k_s
// exp2(gc_p - gc_s)), both exponents <= 0, the factors built 16 x 16 at a time in the warp's
// staging tiles wb, the products on tensor cores:
// - warps 0-5: the six off-diagonal 16 x 16 sub-chunk blocks, p the query block's first row;
// - warps 6, 7: the lower-left 8 x 8 quarter of two diagonal blocks each, p the block's
//   row 8 (one mma for both blocks: rows 0-7 and keys 0-7 of the 16 x 16 product are the
//   first block's, rows and keys 8-15 the second's);
// then the 8 x 36 pairs of the eight 8-row diagonal triangles elementwise in fp32 (all
// warps).
template <int K, int NTH>
__device__ void chunk_scores(bf16 *Ab, float scale, const bf16 *q, const bf16 *k, const float *gc,
                             bf16 *wb) {
    constexpr int LDX = K + 8, LDF = K + 8;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r = lane / 2, c = lane % 2 * 8; // the lane's 8 values of the 16 x 16 factors
    if (warp < 8) { // the tensor-core blocks; qrow, krow, ref: of the lane's factor row r
        int qrow, krow, ref;
        if (warp < 6) {
            const int p = warp < 1 ? 1 : warp < 3 ? 2 : 3, pk = warp - p * (p - 1) / 2;
            ref = p * SUB, qrow = ref + r, krow = pk * SUB + r;
        } else {
            const int b = (warp - 6) * 2 + r / 8; // the diagonal block of row r
            ref = b * SUB + 8, qrow = ref + r % 8, krow = b * SUB + r % 8;
        }
        bf16 *qa = wb + warp * WBUF, *kb = qa + SUB * SLD;
        float acc[2][4] = {};
        for (int n = 0; n < K / SUB; n++) {
            const int i = n * SUB + c;
            float gr[8], gq[8], gk[8], qv[8], kv[8];
            load8f(gr, gc + ref * LDF + i);
            load8f(gq, gc + qrow * LDF + i);
            load8f(gk, gc + krow * LDF + i);
            load_bf16<8>(qv, q + qrow * LDX + i);
            load_bf16<8>(kv, k + krow * LDX + i);
            for (int j = 0; j < 8; j++) {
                qv[j] *= fast_exp2(gq[j] - gr[j]);
                kv[j] *= fast_exp2(gr[j] - gk[j]);
            }
            store_bf16<8>(qa + r * SLD + c, qv);
            store_bf16<8>(kb + r * SLD + c, kv);
            __syncwarp();
            uint32_t fa[4], fb[4];
            load_a(fa, qa, SLD, 0, 0);
            load_b_trans(fb, kb, SLD, 0, 0); // B[i][s] = k-factor[s][i]
            mma_tile(acc, fa, fb);
            __syncwarp();
        }
        if (warp < 6) {
            const int p = warp < 1 ? 1 : warp < 3 ? 2 : 3, pk = warp - p * (p - 1) / 2;
            store_acc_bf16(Ab + p * SUB * LDAB + pk * SUB, LDAB, acc, scale);
        } else { // the two quarters: rows g of the first block, g + 8 of the second
            const int g = lane / 4, t = lane % 4, b0 = (warp - 6) * 2, b1 = b0 + 1;
            *reinterpret_cast<uint32_t *>(Ab + (b0 * SUB + 8 + g) * LDAB + b0 * SUB + 2 * t) =
                pack_bf16(scale * acc[0][0], scale * acc[0][1]);
            *reinterpret_cast<uint32_t *>(Ab + (b1 * SUB + 8 + g) * LDAB + b1 * SUB + 2 * t) =
                pack_bf16(scale * acc[1][2], scale * acc[1][3]);
        }
    }
    for (int e = threadIdx.x; e < NSUB * SUB * SUB; e += NTH) { // zeros above the diagonal
        const int b = e / (SUB * SUB), t = e / SUB % SUB, s = e % SUB;
        if (s > t) Ab[(b * SUB + t) * LDAB + b * SUB + s] = __float2bfloat16(0.0f);
    }
    // The triangles: each pair's channels in QP parts on QP neighbouring lanes, summed by
    // shuffles, so that the 288 pairs spread over all the block's threads.
    constexpr int TRI = 8 * 9 / 2, QP = K >= 32 ? 4 : K / 8, G = K / 8 / QP;
    constexpr int ITEMS = 2 * NSUB * TRI * QP;
    for (int e0 = 0; e0 < ITEMS; e0 += NTH) {
        const int e = e0 + threadIdx.x, pair = e / QP, part = e % QP;
        int tr = 0, sr = 0;
        float sum = 0.0f;
        if (e < ITEMS) {
            int s = pair % TRI, t = 0;
            while (s > t) s -= ++t; // pair (t, s), s <= t, of triangle pair / TRI
            tr = pair / TRI * 8 + t, sr = pair / TRI * 8 + s;
            float x[8] = {}; // eight independent sums, not one chain of adds
#pragma unroll
            for (int n = 0; n < G; n++) { // eight channels at a time, staggered: fewer conflicts
                const int i = (part * G + (n + lane / QP) % G) * 8;
                float qv[8], kv[8], gt[8], gs[8];
                load_bf16<8>(qv, q + tr * LDX + i);
                load_bf16<8>(kv, k + sr * LDX + i);
                load8f(gt, gc + tr * LDF + i);
                load8f(gs, gc + sr * LDF + i);
                for (int j = 0; j < 8; j++) x[j] += qv[j] * kv[j] * fast_exp2(gt[j] - gs[j]);
            }
            sum = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
        }
        for (int o = 1; o < QP; o *= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (e < ITEMS && part == 0) Ab[tr * LDAB + sr] = __float2bfloat16(scale * sum);
    }
}

// Where chunk c of sequence seq lies: first row, rows in it (0: past the end), its slot.
struct ChunkPos {
    long row0, slot;
    int L;
};
__device__ ChunkPos chunk_pos(const GlaArgs &a, int seq, int c) {
    const int start = a.cu[seq], len = a.cu[seq + 1] - start;
    ChunkPos p;
    p.row0 = start + (long)c * CH;
    p.L = max(0, min(CH, len - c * CH));
    p.slot = (long)(seq - a.seq0) * a.max_chunks + c;
    return p;
}

// Loads the chunk's q, k (bf16) and cumulative log2 gates gc (fp32) and computes the
// scaled scores Ab. Leaves everything synced.
template <int K, int NTH>
__device__ void chunk_prologue(const GlaArgs &a, const ChunkPos &cp, int hh, bf16 *sq, bf16 *sk,
                               float *gc, bf16 *Ab, bf16 *wb, float *tot) {
    constexpr int LDX = K + 8;
    const long qoff = cp.row0 * a.ld + (long)hh * K, HK = (long)a.H * K;
    load_tile<NTH>(sq, LDX, a.q + qoff, a.ld, cp.L, CH, K);
    load_tile<NTH>(sk, LDX, a.k + qoff, a.ld, cp.L, CH, K);
    load_gates<K, NTH>(gc, a.g + cp.row0 * HK + (long)hh * K, HK, cp.L);
    tile_loads_wait();
    __syncthreads();
    scan_columns<K, NTH>(gc, K + 8, tot, false, LOG2E);
    chunk_scores<K, NTH>(Ab, a.scale, sq, sk, gc, wb);
    __syncthreads();
}

// How the NSUB x (BV / 16) output tiles of o and dv are dealt out: warp w takes column
// block w % VB and row blocks w / VB, w / VB + RS, .. (TPW of them; none when w / VB >=
// NSUB), so that its tiles share their B fragments and their accumulator chains interleave.
template <int BV, int NWARP> struct OutTiles {
    static constexpr int VB = BV / SUB, TPW = NSUB * VB / NWARP > 0 ? NSUB *VB / NWARP : 1;
    static constexpr int RS = NWARP / VB > 0 ? NWARP / VB : 1;
};

// Forward outputs of one (chunk, head): o = (scale q exp2(gc)) h + (scale A) v, value tile
// by value tile (h from the forward state sweep).
template <int K, int BV>
__global__ void __launch_bounds__(chunk_threads(K), 2) gla_fwd_chunk_kernel(const GlaArgs a) {
    constexpr int NTH = chunk_threads(K), NWARP = NTH / 32;
    typedef Lay<K, BV, NTH> L;
    extern __shared__ __align__(128) unsigned char smem[];
    const int c = blockIdx.x, hh = blockIdx.y, seq = a.seq0 + blockIdx.z, V = a.V;
    const ChunkPos cp = chunk_pos(a, seq, c);
    if (cp.L <= 0) return;
    bf16 *sq = (bf16 *)smem, *Ab = (bf16 *)(smem + L::fw_ab), *sk = (bf16 *)(smem + L::fw_k);
    bf16 *sh = (bf16 *)(smem + L::fw_h), *sv = (bf16 *)(smem + L::fw_v);
    bf16 *wb = (bf16 *)(smem + L::fw_wb);
    float *gc = (float *)(smem + L::fw_g);
    float *tot = (float *)(smem + L::fw_tot);
    const int warp = threadIdx.x / 32;
    chunk_prologue<K, NTH>(a, cp, hh, sq, sk, gc, Ab, wb, tot);
    for (int e = threadIdx.x; e < CH * K / 8; e += NTH) { // q <- scale q exp2(gc), in place
        const int t = e / (K / 8), i = (e - t * (K / 8)) * 8;
        float x[8], g[8];
        load_bf16<8>(x, sq + t * L::LDX + i);
        load8f(g, gc + t * L::LDF + i);
        for (int j = 0; j < 8; j++) x[j] = a.scale * x[j] * fast_exp2(g[j]);
        store_bf16<8>(sq + t * L::LDX + i, x);
    }
    __syncthreads();
    const long hoff = (cp.slot * a.H + hh) * (long)K * V, HV = (long)a.H * V;
    for (int j0 = 0; j0 < V; j0 += BV) {
        load_tile<NTH>(sh, L::LDY, a.h + hoff + j0, V, K, K, BV);
        load_tile<NTH>(sv, L::LDY, a.v + cp.row0 * a.ld + (long)hh * V + j0, a.ld, cp.L, CH, BV);
        tile_loads_wait();
        __syncthreads();
        // The warp's tiles (OutTiles) at once, each B fragment loaded once for all of them.
        using T = OutTiles<BV, NWARP>;
        constexpr int VB = T::VB, TPW = T::TPW, RS = T::RS;
        const int cb = warp % VB, rb0 = warp / VB;
        if (rb0 < NSUB) {
            float acc[TPW][2][4] = {};
            uint32_t fa[4], fb[4];
#pragma unroll
            for (int is = 0; is < K / SUB; is++) {
                load_b(fb, sh, L::LDY, is * SUB, cb * SUB);
#pragma unroll
                for (int m = 0; m < TPW; m++) {
                    load_a(fa, sq, L::LDX, (rb0 + m * RS) * SUB, is * SUB);
                    mma_tile(acc[m], fa, fb);
                }
            }
#pragma unroll
            for (int ts = 0; ts < NSUB; ts++) {
                load_b(fb, sv, L::LDY, ts * SUB, cb * SUB);
#pragma unroll
                for (int m = 0; m < TPW; m++) {
                    if (ts > rb0 + m * RS) continue;
                    load_a(fa, Ab, LDAB, (rb0 + m * RS) * SUB, ts * SUB);
                    mma_tile(acc[m], fa, fb);
                }
            }
#pragma unroll
            for (int m = 0; m < TPW; m++) {
                const int rb = rb0 + m * RS;
                bf16 *dst = a.o + (cp.row0 + rb * SUB) * HV + (long)hh * V + j0 + cb * SUB;
                store_warp_tile(dst, HV, acc[m], wb + warp * WBUF, cp.L - rb * SUB);
            }
        }
        __syncthreads();
    }
}

} // namespace
