// kernels/gla_states.cuh: GLA's state walks on CUDA: the states h entering each chunk (the
// forward) and the state gradients dh leaving it (the backward), which the chunk kernels of
// gla_chunk.cuh read from their per-chunk slots.
//
// One block per (tile of BK state rows x BV state columns, head, sequence) walks the chunks
// of its sequence, in order (forward) or backwards (reverse), with its fp32 state tile in
// registers: mma.sync accumulators (kernels/mma.cuh), 16 x 16 tiles dealt out among the
// warps. Per chunk it writes the bf16 state into the chunk's slot, then
//   forward: S <- diag(exp2(gl)) S + (k exp2(gl - gc))^T v
//   reverse: S <- diag(exp2(gl)) S + (scale q exp2(gc))^T do
// (gc the chunk's cumulative log2 gates, gl its last row). The next chunk's rows are
// loaded into registers while this chunk is worked on, so a step waits on shared memory
// and the tensor cores rather than on DRAM; the bf16 state leaves through shared memory
// in whole rows. The walk is serial in the chunks, so it is cut along both state
// dimensions (64 x 64 tiles: 4 blocks a head at kdim = vdim = 128) and kept small (44 KiB
// of shared memory, 4 blocks an SM) for as many walks at once as
// possible; when there are no more than two walks an SM, an instance for two an SM runs
// them without register spills.
#pragma once
#include "gla_chunk.cuh"
#include "mma.cuh"

namespace {

constexpr int state_rows(int K) { // BK: the state rows of a walk
    return K < 64 ? K : 64;
}
constexpr int walk_groups(int cols) { // 8-value groups of a [CH, cols] tile per thread
    return CH * cols / 8 / NT > 0 ? CH * cols / 8 / NT : 1;
}

// This thread's groups of eight bf16 of the [CH, COLS] tile at src (rows ld apart), rows
// >= L zero: group i = threadIdx.x + j * NT. Issued together, ahead of their use.
template <int COLS, int G>
__device__ inline void fetch_rows(uint4 (&raw)[G], const bf16 *src, long ld, int L, bool vec) {
    constexpr int PER = COLS / 8;
#pragma unroll
    for (int j = 0; j < G; j++) {
        const int i = threadIdx.x + j * NT, r = i / PER, c = (i % PER) * 8;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (r < L) {
            const bf16 *p = src + r * ld + c;
            if (vec) {
                u = __ldg(reinterpret_cast<const uint4 *>(p));
            } else {
                union {
                    uint4 u;
                    bf16 b[8];
                } t;
                for (int e = 0; e < 8; e++) t.b[e] = p[e];
                u = t.u;
            }
        }
        raw[j] = u;
    }
}

// Fetched groups into the shared bf16 tile dst (rows ldd apart) or, unpacked, into the
// fp32 tile dstf (rows COLS apart).
template <int COLS, int G>
__device__ inline void stash_rows(const uint4 (&raw)[G], bf16 *dst, int ldd, float *dstf) {
    constexpr int PER = COLS / 8;
#pragma unroll
    for (int j = 0; j < G; j++) {
        const int i = threadIdx.x + j * NT, r = i / PER, c = (i % PER) * 8;
        if (r >= CH) break;
        if (dst) *reinterpret_cast<uint4 *>(dst + r * ldd + c) = raw[j];
        if (dstf) unpack8(dstf + r * COLS + c, raw[j]);
    }
}

// The bf16 copy of one 16 x 16 state tile (rows r0 .., columns c0 ..) into the shared Sb
// (rows ld apart).
__device__ inline void tile_to_smem(const float (&tile)[2][4], bf16 *Sb, int ld, int r0, int c0) {
    const int lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    for (int nn = 0; nn < 2; nn++)
        for (int hf = 0; hf < 2; hf++)
            *reinterpret_cast<uint32_t *>(Sb + (r0 + g + hf * 8) * ld + c0 + nn * 8 + 2 * t4) =
                pack_bf16(tile[nn][2 * hf], tile[nn][2 * hf + 1]);
}

// The shared [BK, BV] bf16 state Sb (rows BV + 8 apart) to dst (rows ld apart), a row's
// 16-byte stores together when vec, else one value at a time: whole lines, where the
// mma fragments would store 16 bytes of a row at a time. (mma.cuh's copy_tile_out and
// store_acc_bf16 do this and tile_to_smem's work, with bounds and a scale; in the walk's
// four-an-SM instance, at 64 registers, they raised its spills from 16 to 76 bytes.)
template <int BK, int BV>
__device__ inline void copy_state_out(const bf16 *Sb, bf16 *dst, long ld, bool vec) {
    constexpr int PER = BV / 8;
    for (int i = threadIdx.x; i < BK * PER; i += NT) {
        const int r = i / PER, c = (i % PER) * 8;
        const bf16 *s = Sb + r * (BV + 8) + c;
        bf16 *d = dst + r * ld + c;
        if (vec) {
            *reinterpret_cast<uint4 *>(d) = *reinterpret_cast<const uint4 *>(s);
        } else {
            for (int e = 0; e < 8; e++) d[e] = s[e];
        }
    }
}

// The walk (see the top). Grid: x = state row tile * (V / BV) + column tile, y = head,
// z = sequence of the group. MINB, the blocks an SM must hold, caps the registers: at 4
// (64 registers) the walk spills 40 to 60 bytes, the price of four walks an SM when there
// are that many; with at most two walks an SM (long sequences, few heads) it runs at 2,
// where 128 registers hold everything and a step waits on no local memory. st[m][n] holds columns
// 8n .. 8n + 7 of the warp's tile warp + m * NW (row block tile / (BV / 16), column block tile %
// (BV / 16)).
template <int K, int BV, bool REV, int MINB>
__global__ void __launch_bounds__(NT, MINB) gla_states_kernel(const GlaArgs a) {
    constexpr int BK = state_rows(K), LDX = BK + 8, LDY = BV + 8;
    constexpr int NVB = BV / 16, TILES = (BK / 16) * NVB, NST = (TILES + NW - 1) / NW;
    constexpr int GX = walk_groups(BK), GY = walk_groups(BV);
    __shared__ __align__(16) bf16 X[CH * LDX], Y[CH * LDY], Sb[BK * LDY];
    __shared__ __align__(16) float gc[CH * BK];
    __shared__ float tot[NT];
    const int H = a.H, V = a.V, hh = blockIdx.y, seq = a.seq0 + blockIdx.z;
    const int i0 = blockIdx.x / (V / BV) * BK, j0 = blockIdx.x % (V / BV) * BV;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
    const int start = a.cu[seq], len = a.cu[seq + 1] - start;
    const int nc = min((len + CH - 1) / CH, a.max_chunks);
    const float *init = REV ? a.dstate_out : a.state_in;
    float *fin = REV ? a.dstate_in : a.state_out;
    bf16 *slots = REV ? a.dh : a.h;
    const long HK = (long)H * K, ldy = REV ? (long)H * V : a.ld, KV = (long)K * V;
    const bf16 *xs = (REV ? a.q : a.k) + (long)start * a.ld + (long)hh * K + i0;
    const bf16 *ys = (REV ? a.dout : a.v) + (long)start * ldy + (long)hh * V + j0;
    const bf16 *gs = a.g + (long)start * HK + (long)hh * K + i0;
    const bool vx = vec_ok(xs, a.ld), vy = vec_ok(ys, ldy), vg = vec_ok(gs, HK);

    float st[NST][2][4];
    const float *src = init ? init + ((long)seq * H + hh) * KV + (long)i0 * V + j0 : NULL;
#pragma unroll
    for (int m = 0; m < NST; m++) {
        const int tile = warp + m * NW, r0 = tile / NVB * 16, c0 = tile % NVB * 16;
        for (int n = 0; n < 2; n++)
            for (int e = 0; e < 4; e++) {
                const int r = r0 + g + (e / 2) * 8, c = c0 + n * 8 + 2 * t4 + e % 2;
                st[m][n][e] = src && tile < TILES ? src[(long)r * V + c] : 0.0f;
            }
        if (tile < TILES) tile_to_smem(st[m], Sb, LDY, r0, c0);
    }
    __syncthreads();                       // Sb
    const bool vs = vec_ok(slots + j0, V); // every slot's rows alike
    uint4 rx[GX], ry[GY], rg[GX];
    if (nc > 0) {
        const int c = REV ? nc - 1 : 0, L = min(CH, len - c * CH);
        fetch_rows<BK>(rx, xs + (long)c * CH * a.ld, a.ld, L, vx);
        fetch_rows<BV>(ry, ys + (long)c * CH * ldy, ldy, L, vy);
        fetch_rows<BK>(rg, gs + (long)c * CH * HK, HK, L, vg);
    }
    for (int n = 0; n < nc; n++) {
        const int c = REV ? nc - 1 - n : n;
        stash_rows<BK>(rx, X, LDX, NULL);
        stash_rows<BV>(ry, Y, LDY, NULL);
        stash_rows<BK>(rg, NULL, 0, gc);
        // The state entering chunk c (forward) or leaving it (reverse), as bf16, to its slot.
        bf16 *dst = slots + (chunk_pos(a, seq, c).slot * H + hh) * KV + (long)i0 * V + j0;
        copy_state_out<BK, BV>(Sb, dst, V, vs);
        __syncthreads();
        if (n + 1 < nc) { // the next chunk's rows, in flight during this one
            const int c1 = REV ? c - 1 : c + 1, L1 = min(CH, len - c1 * CH);
            fetch_rows<BK>(rx, xs + (long)c1 * CH * a.ld, a.ld, L1, vx);
            fetch_rows<BV>(ry, ys + (long)c1 * CH * ldy, ldy, L1, vy);
            fetch_rows<BK>(rg, gs + (long)c1 * CH * HK, HK, L1, vg);
        }
        scan_columns<BK, NT>(gc, BK, tot, false, LOG2E);
        const float *gl = gc + (CH - 1) * BK;
        for (int e = threadIdx.x; e < CH * BK / 8; e += NT) { // eight channels a thread
            const int t = e / (BK / 8), i = (e - t * (BK / 8)) * 8;
            float x[8], gt[8], l[8];
            load_bf16<8>(x, X + t * LDX + i);
            load8f(gt, gc + t * BK + i);
            load8f(l, gl + i);
            for (int j = 0; j < 8; j++)
                x[j] *= REV ? a.scale * fast_exp2(gt[j]) : fast_exp2(l[j] - gt[j]);
            store_bf16<8>(X + t * LDX + i, x);
        }
        __syncthreads();
#pragma unroll
        for (int m = 0; m < NST; m++) {
            const int tile = warp + m * NW, r0 = tile / NVB * 16, c0 = tile % NVB * 16;
            if (tile >= TILES) break;
            const float d0 = fast_exp2(gl[r0 + g]), d1 = fast_exp2(gl[r0 + g + 8]);
            for (int nn = 0; nn < 2; nn++) {
                st[m][nn][0] *= d0;
                st[m][nn][1] *= d0;
                st[m][nn][2] *= d1;
                st[m][nn][3] *= d1;
            }
            mma_at_b<CH>(st[m], X, LDX, r0, Y, LDY, c0);
            tile_to_smem(st[m], Sb, LDY, r0, c0); // the next chunk's copy out
        }
        __syncthreads();
    }
    if (!fin) return;
    float *out = fin + ((long)seq * H + hh) * KV + (long)i0 * V + j0;
#pragma unroll
    for (int m = 0; m < NST; m++) {
        const int tile = warp + m * NW, r0 = tile / NVB * 16, c0 = tile % NVB * 16;
        if (tile >= TILES) break;
        for (int n = 0; n < 2; n++)
            for (int e = 0; e < 4; e++)
                out[(long)(r0 + g + (e / 2) * 8) * V + c0 + n * 8 + 2 * t4 + e % 2] = st[m][n][e];
    }
}

} // namespace
