// kernels/lightning_chunk.cuh: Lightning Attention (constant decay per head) on CUDA, the
// block algorithm of Lightning Attention-2 (SPEC sec. 3) with bf16 inputs, fp32
// accumulation and fp32 states. The contract is ops.h's lightning_attn_forward/backward.
//
// This file holds the recurrent path, where one kernel template does all the work, and
// the pieces the chunk-parallel path (lightning_parallel.cuh, the default) shares with it:
// the loads, chunk_output, chunk_state and the segment scan. The recurrent kernel walks
// the chunks (BT = 64 rows) of one segment of one sequence for one head and one tile of
// "v-role" columns, and per chunk computes
//   out = ((X Y^T) .* M) Z + Lambda (X S),   S <- lambda^L S + Y^T (w .* Z)
// with mma.sync bf16 products and fp32 accumulators (kernels/mma.cuh). Forward (REV =
// false): M[a][b] = lambda^(a-b) for b <= a, Lambda = lambda^(a+1), w_b = lambda^(L-1-b),
// chunks in order. Reverse (REV = true): M[a][b] = lambda^(b-a) for b >= a, Lambda =
// lambda^(L-1-a), w_a = lambda^(a+1), chunks backwards. Every exponent is <= 0. The roles
// (X, Y, Z) are:
//   forward o:   (q, k, v)      S = state              (forward sweep)
//   backward dq: (do, v, k)     S = state^T            (forward sweep)
//   backward dk: (v, do, q)     S = dstate^T           (reverse sweep)
//   backward dv: (k, q, do)     S = dstate, ends as dstate_in (reverse sweep)
// The block's warps split the chunk two ways at once. Output warps (one per 16-row strip)
// keep their rows of X S and of the scores in registers: the scores are masked and
// decayed there and feed the product with Z as A fragments, so neither ever touches
// shared memory. State warps keep the fp32 state in registers (16x16 tiles dealt out
// among them), update it from the chunk's Y and w .* Z, and write its bf16 copy into the
// other of two shared buffers, the one the output warps read for the next chunk: two
// barriers per chunk. Long sequences are cut into segments so that enough blocks run at
// once: a state-only walk (from a zero state) gives each segment's own contribution, a
// scan over segments turns them into each segment's starting state, and the main pass
// starts each segment from it. TNL's SiLU on q and k is one elementwise pass into scratch
// before the chunk passes, which then read the activated copies; the backward's silu'(q),
// silu'(k) factors are one more pass over dq and dk after them. `block` (the hint) is not
// used: BT is fixed at 64. Each chunk's global loads are issued into registers during the
// previous chunk's products. Tuning knobs: BT, NT, MAX_VT / choose_vt, and plan_segments'
// cost model.
#pragma once
#include "mma.cuh"

namespace {

constexpr int BT = 64;       // rows per chunk
constexpr int NT = 256;      // threads per block
constexpr int NW = NT / 32;  // warps per block
constexpr int OW = BT / 16;  // output warps (one 16-row strip each)
constexpr int SW = NW - OW;  // state warps
constexpr int MAX_DIM = 256; // largest kdim / vdim (shared memory)
constexpr int MAX_SEG = 32;  // most segments per sequence (the scan keeps them in registers)

// Register groups (eight bf16 each) per thread of a [BT, cols] tile.
constexpr int groups_per_thread(int cols) {
    return BT * cols / 8 / NT > 0 ? BT * cols / 8 / NT : 1;
}
// 16x16 state tiles per state warp for a [KP, VT] state dealt out among nsw warps.
constexpr int state_tiles(int KP, int VT, int nsw = SW) {
    return ((KP / 16) * (VT / 16) + nsw - 1) / nsw;
}

// One bf16 input: rows ld apart, head h's columns start at h * (its head dim).
struct Operand {
    const bf16 *p;
    long ld;
};

// Everything one launch of the chunk kernel needs (passed by value).
struct ChunkArgs {
    Operand x, y, z; // X, Y [rows, H*KR]; Z [rows, H*VC]
    bf16 *out;       // [rows, H*VC] rows ld_out apart (unused when state_only)
    long ld_out;
    const float *init; // starting states [n, H, kdim, vdim] (NULL: zero)
    float *fin;        // final states, same layout (NULL: not wanted; needs !trans)
    float *seg;        // per-segment states [n, nseg, H, kdim, vdim] (NULL: one segment)
    const int *cu;     // sequence offsets [n + 1]
    const float *log_decay;
    int nseg, seg_len; // segments per sequence, rows per segment (multiple of BT)
    int H, KR, VC;     // heads, Y/X width (state rows), Z width (state columns)
    int KP, VT;        // KR rounded up to 32, 64, 128 or 256; Z columns per block (32 or 64)
    int trans;         // stored states are [VC, KR] (the kernel's S is their transpose)
    int state_only;    // only run the state: write the segment's own contribution to seg
    int vec;           // 16-byte global loads and stores are aligned
    bf16 *hs;          // chunk-parallel path: the state before each chunk, bf16
                       // [n, maxch, H, KR, VC] (lightning_parallel.cuh); NULL otherwise
    int maxch;         // chunks per sequence in hs
};

// Byte offsets of the shared-memory buffers, each 128-byte aligned. Rows padded by 8 bf16
// keep ldmatrix off a single bank.
struct Layout {
    int xs, ys, zs, zws, sb, sb2, ws, pw, bytes;
};

// Reserve `bytes` at *off (128-byte aligned) and return its offset.
__host__ __device__ inline int take(int *off, int bytes) {
    int o = *off;
    *off += (bytes + 127) & ~127;
    return o;
}

// The shared-memory layout for a [KP, VT] state; the state-only pass needs only Y, w .* Z
// and the decay powers.
__host__ __device__ inline Layout la_layout(int KP, int VT, int state_only) {
    Layout l = {};
    int off = 0;
    l.ys = take(&off, BT * (KP + 8) * 2);
    l.zws = take(&off, BT * (VT + 8) * 2);
    l.pw = take(&off, (BT + 1) * 4);
    if (!state_only) {
        l.xs = take(&off, BT * (KP + 8) * 2);
        l.zs = take(&off, BT * (VT + 8) * 2);
        l.sb = take(&off, KP * (VT + 8) * 2);
        l.sb2 = take(&off, KP * (VT + 8) * 2);
    }
    l.bytes = off;
    return l;
}

// Rows [s0, s1) of a sequence of len rows that segment sg covers (the last segment takes
// everything that is left, so a max_len that is too small loses no rows).
__device__ inline void seg_range(int len, int sg, int nseg, int seg_len, int *s0, int *s1) {
    long a = (long)sg * seg_len;
    *s0 = a < len ? (int)a : len;
    long b = sg == nseg - 1 ? len : a + seg_len;
    *s1 = b < len ? (int)b : len;
}

// x sigmoid(x), with the fast divide (a huge denominator gives 0, the limit here).
__device__ inline float silu(float x) {
    return __fdividef(x, 1.0f + __expf(-x));
}

// d silu(x) / dx = s (1 + x (1 - s)) with s = sigmoid(x).
__device__ inline float dsilu(float x) {
    float s = __fdividef(1.0f, 1.0f + __expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

// Fetch this thread's G groups of eight bf16 of an operand tile into registers (issued
// together, ahead of use, so their latency overlaps the previous chunk's products). The
// tile is [BT, cols] in groups of 8, group i = threadIdx.x + j * NT; rows >= L and columns
// >= w (valid columns at src, rows ld apart) are zero.
template <int G>
__device__ inline void fetch(uint4 (&raw)[G], const bf16 *src, long ld, int L, int w, int cols,
                             int vec) {
    const int groups = cols / 8;
#pragma unroll
    for (int j = 0; j < G; j++) {
        int i = threadIdx.x + j * NT, r = i / groups, c = (i % groups) * 8;
        uint4 u = {0u, 0u, 0u, 0u};
        if (r < L && c < w) {
            const bf16 *p = src + (long)r * ld + c;
            if (vec && w - c >= 8) {
                u = __ldg((const uint4 *)p);
            } else {
                union {
                    uint4 u;
                    bf16 b[8];
                } t;
                for (int e = 0; e < 8; e++) t.b[e] = e < w - c ? p[e] : __float2bfloat16(0.0f);
                u = t.u;
            }
        }
        raw[j] = u;
    }
}

// Eight bf16 of row r of a chunk of L rows times the row's state weight (forward
// lambda^(L-1-r), reverse lambda^(r+1); rows >= L get 0), rounded back to bf16.
__device__ inline uint4 weigh8(uint4 raw, int r, int L, const float *pw, bool rev) {
    float v[8];
    unpack8(v, raw);
    float wt = r < L ? pw[rev ? r + 1 : L - 1 - r] : 0.0f;
    for (int e = 0; e < 8; e++) v[e] *= wt;
    return pack8(v);
}

// Store fetched groups into the shared [BT, cols] bf16 tile dst (row stride ldd); dstw (if
// set) gets each row r < L scaled by the state weight (forward lambda^(L-1-r), reverse
// lambda^(r+1)). Either destination may be NULL.
template <int G>
__device__ inline void stash(const uint4 (&raw)[G], bf16 *dst, bf16 *dstw, int ldd, int L, int cols,
                             const float *pw, bool rev) {
    const int groups = cols / 8;
#pragma unroll
    for (int j = 0; j < G; j++) {
        int i = threadIdx.x + j * NT, r = i / groups, c = (i % groups) * 8;
        if (r >= BT) break;
        if (dst) *(uint4 *)(dst + r * ldd + c) = raw[j];
        if (dstw) *(uint4 *)(dstw + r * ldd + c) = weigh8(raw[j], r, L, pw, rev);
    }
}

// Row range of the it-th chunk a block visits in its segment [s0, s1) of nch chunks
// (reverse: last chunk first): rows [*t0, *t0 + *L).
__device__ inline void chunk_at(bool rev, int it, int nch, int s0, int s1, int *t0, int *L) {
    int ci = rev ? nch - 1 - it : it;
    *t0 = s0 + ci * BT;
    *L = min(BT, s1 - *t0);
}

// Zero the accumulators of n 16x8 tiles.
template <int N> __device__ inline void zero_acc(float (&c)[N][4]) {
#pragma unroll
    for (int j = 0; j < N; j++)
        for (int e = 0; e < 4; e++) c[j][e] = 0.0f;
}

// An output warp's 16 rows (strip w of the chunk) of
//   out = ((X Y^T) .* M) Z + Lambda (X S)
// in registers: X S and the scores X Y^T share each A fragment of X, the scores are
// masked and decayed in registers and become the A operand of the product with Z. Key
// blocks that the mask removes are skipped. acc[j] is columns 8j .. 8j + 7 of the strip.
// Z and S rows are LDV apart (VT + 8 unless the tiles are wider than the strip's columns);
// with ST, Sb holds S transposed ([VT, KP], rows KP + 8 apart).
template <bool REV, int KP, int VT, int LDV = VT + 8, bool ST = false>
__device__ inline void chunk_output(float (&acc)[VT / 8][4], int w, int L, const bf16 *Xs,
                                    const bf16 *Ys, const bf16 *Zs, const bf16 *Sb,
                                    const float *pw) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    constexpr int ldk = KP + 8, ldv = LDV;
    float sc[BT / 8][4];
    zero_acc(acc);
    zero_acc(sc);
#pragma unroll
    for (int k = 0; k < KP / 16; k++) {
        uint32_t a[4];
        ldsm_x4(a, Xs + (w * 16 + lane % 16) * ldk + k * 16 + (lane / 16) * 8);
#pragma unroll
        for (int jp = 0; jp < VT / 16; jp++) { // X S
            uint32_t b[4];
            if (ST)
                ldsm_x4(b, Sb + (jp * 16 + lane % 8 + (lane / 16) * 8) * ldk + k * 16 +
                               ((lane / 8) % 2) * 8);
            else
                ldsm_x4_t(b, Sb + (k * 16 + lane % 8 + ((lane / 8) % 2) * 8) * ldv + jp * 16 +
                                 (lane / 16) * 8);
            mma_bf16(acc[2 * jp], a, b[0], b[1]);
            mma_bf16(acc[2 * jp + 1], a, b[2], b[3]);
        }
#pragma unroll
        for (int kb = 0; kb < BT / 16; kb++) { // X Y^T, the blocks the mask keeps
            if (REV ? kb < w : kb > w) continue;
            uint32_t b[4];
            ldsm_x4(b, Ys + (kb * 16 + lane % 8 + (lane / 16) * 8) * ldk + k * 16 +
                           ((lane / 8) % 2) * 8);
            mma_bf16(sc[2 * kb], a, b[0], b[1]);
            mma_bf16(sc[2 * kb + 1], a, b[2], b[3]);
        }
    }
    // Lambda on the rows of X S (zero past the chunk's L rows), M on the scores.
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int r = w * 16 + g + half * 8;
        float lam = r < L ? pw[REV ? L - 1 - r : r + 1] : 0.0f;
#pragma unroll
        for (int j = 0; j < VT / 8; j++) {
            acc[j][2 * half] *= lam;
            acc[j][2 * half + 1] *= lam;
        }
#pragma unroll
        for (int j = 0; j < BT / 8; j++)
            for (int e = 0; e < 2; e++) {
                int c = j * 8 + 2 * t + e, d = REV ? c - r : r - c;
                float &v = sc[j][2 * half + e];
                v = d >= 0 ? v * pw[d] : 0.0f;
            }
    }
#pragma unroll
    for (int kb = 0; kb < BT / 16; kb++) { // += (masked scores) Z
        if (REV ? kb < w : kb > w) continue;
        uint32_t a[4] = {pack_bf16(sc[2 * kb][0], sc[2 * kb][1]),
                         pack_bf16(sc[2 * kb][2], sc[2 * kb][3]),
                         pack_bf16(sc[2 * kb + 1][0], sc[2 * kb + 1][1]),
                         pack_bf16(sc[2 * kb + 1][2], sc[2 * kb + 1][3])};
#pragma unroll
        for (int jp = 0; jp < VT / 16; jp++) {
            uint32_t b[4];
            ldsm_x4_t(b, Zs + (kb * 16 + lane % 8 + ((lane / 8) % 2) * 8) * ldv + jp * 16 +
                             (lane / 16) * 8);
            mma_bf16(acc[2 * jp], a, b[0], b[1]);
            mma_bf16(acc[2 * jp + 1], a, b[2], b[3]);
        }
    }
}

// Write an output warp's strip (rows w * 16 .., L valid, vc_valid valid columns) as bf16
// to dst (rows ld apart).
template <int VT>
__device__ inline void store_output(bf16 *dst, long ld, const float (&acc)[VT / 8][4], int w, int L,
                                    int vc_valid, int vec) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int j = 0; j < VT / 8; j++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int r = w * 16 + g + half * 8, c = j * 8 + 2 * t;
            if (r >= L || c >= vc_valid) continue;
            float v0 = acc[j][2 * half], v1 = acc[j][2 * half + 1];
            bool pair = c + 1 < vc_valid;
            bf16 *p = dst + (long)r * ld + c;
            if (pair && vec) {
                *(__nv_bfloat162 *)p = __floats2bfloat162_rn(v0, v1);
            } else {
                p[0] = __float2bfloat16(v0);
                if (pair) p[1] = __float2bfloat16(v1);
            }
        }
    }
}

// The state tiles of state warp sw of NSW: 16 x 16 tiles m = 0 .. state_tiles - 1, tile
// number sw + m * NSW (row block tile / (VT / 16), column block tile % (VT / 16)) while
// below (KP / 16) * (VT / 16). Fragment acc[m][n] holds columns 8n .. 8n + 7 of tile m.
template <int KP, int VT, int NSW = SW>
__device__ inline bool state_tile(int sw, int m, int *r0, int *c0) {
    int tile = sw + m * NSW, nvb = VT / 16;
    if (tile >= (KP / 16) * nvb) return false;
    *r0 = tile / nvb * 16;
    *c0 = tile % nvb * 16;
    return true;
}

// The bf16 copy of one 16x16 state tile (rows r0 .., columns c0 ..) into the shared state
// Sb (rows ldv apart).
__device__ inline void store_tile_bf16(const float (&tile)[2][4], bf16 *Sb, int ldv, int r0,
                                       int c0) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (int n = 0; n < 2; n++)
        for (int half = 0; half < 2; half++) {
            int r = r0 + g + half * 8, c = c0 + n * 8 + 2 * t;
            *(uint32_t *)(Sb + r * ldv + c) = pack_bf16(tile[n][2 * half], tile[n][2 * half + 1]);
        }
}

// The bf16 copy of state warp sw's tiles into the shared state Sb (rows ldv apart).
template <int KP, int VT, int NSW = SW>
__device__ inline void put_state_smem(const float (&st)[state_tiles(KP, VT, NSW)][2][4], int sw,
                                      bf16 *Sb, int ldv) {
#pragma unroll
    for (int m = 0; m < state_tiles(KP, VT, NSW); m++) {
        int r0, c0;
        if (!state_tile<KP, VT, NSW>(sw, m, &r0, &c0)) break;
        store_tile_bf16(st[m], Sb, ldv, r0, c0);
    }
}

// S <- lambda^L S + Y^T (w .* Z) on a state warp's tiles, then their bf16 copy into Sb
// (the next chunk's X S reads it; NULL in the state-only pass, which has no output).
template <int KP, int VT, int NSW = SW>
__device__ inline void chunk_state(float (&st)[state_tiles(KP, VT, NSW)][2][4], int sw, float dec,
                                   const bf16 *Ys, const bf16 *Zws, bf16 *Sb) {
    constexpr int ldk = KP + 8, ldv = VT + 8;
#pragma unroll
    for (int m = 0; m < state_tiles(KP, VT, NSW); m++) {
        int r0, c0;
        if (!state_tile<KP, VT, NSW>(sw, m, &r0, &c0)) break;
        for (int n = 0; n < 2; n++)
            for (int e = 0; e < 4; e++) st[m][n][e] *= dec;
        mma_at_b<BT>(st[m], Ys, ldk, r0, Zws, ldv, c0);
        if (Sb) store_tile_bf16(st[m], Sb, ldv, r0, c0);
    }
}

// The state a block starts from: the segment's after the scan, else the sequence's
// (init), else NULL (zero). The state-only pass always starts from zero.
__device__ inline const float *start_state(const ChunkArgs &a, int seq, int sg, int h,
                                           bool has_rows) {
    const long sd = (long)a.KR * a.VC;
    if (a.state_only) return NULL;
    if (a.seg && has_rows) return a.seg + (((long)seq * a.nseg + sg) * a.H + h) * sd;
    if (a.init) return a.init + ((long)seq * a.H + h) * sd;
    return NULL;
}

// Where a block's state goes when its walk ends: the segment's contribution (state-only
// pass), or the sequence's final state from the block that ends the sweep (forward: the
// last segment, reverse: the first); NULL when nowhere.
__device__ inline float *end_state(const ChunkArgs &a, bool rev, int seq, int sg, int h,
                                   bool ends_seq) {
    const long sd = (long)a.KR * a.VC;
    if (a.state_only) return a.seg + (((long)seq * a.nseg + sg) * a.H + h) * sd;
    if (a.fin && (rev ? sg == 0 : ends_seq)) return a.fin + ((long)seq * a.H + h) * sd;
    return NULL;
}

// State warp sw's tiles (of NSW; sw < 0: not a state warp, zeros) of the fp32 state at src
// (NULL: zero; [KR, VC], or [VC, KR] when a.trans) for state columns c0 ...
template <int KP, int VT, int NSW = SW>
__device__ inline void load_state(float (&st)[state_tiles(KP, VT, NSW)][2][4], const float *src,
                                  const ChunkArgs &a, int sw, int c0, int vc_valid) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
#pragma unroll
    for (int m = 0; m < state_tiles(KP, VT, NSW); m++) {
        int r0 = 0, cb = 0;
        bool mine = sw >= 0 && state_tile<KP, VT, NSW>(sw, m, &r0, &cb);
        for (int n = 0; n < 2; n++)
            for (int e = 0; e < 4; e++) {
                int r = r0 + g + (e / 2) * 8, c = cb + n * 8 + 2 * t + e % 2;
                float v = 0.0f;
                if (mine && src && r < a.KR && c < vc_valid)
                    v = a.trans ? src[(long)(c0 + c) * a.KR + r] : src[(long)r * a.VC + c0 + c];
                st[m][n][e] = v;
            }
    }
}

// Write state warp sw's tiles to the fp32 [KR, VC] state at dst (NULL: nothing).
template <int KP, int VT, int NSW = SW>
__device__ inline void store_state(const float (&st)[state_tiles(KP, VT, NSW)][2][4], float *dst,
                                   int sw, int c0, int KR, int VC, int vc_valid) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    if (!dst) return;
#pragma unroll
    for (int m = 0; m < state_tiles(KP, VT, NSW); m++) {
        int r0, cb;
        if (!state_tile<KP, VT, NSW>(sw, m, &r0, &cb)) break;
        for (int n = 0; n < 2; n++)
            for (int e = 0; e < 4; e++) {
                int r = r0 + g + (e / 2) * 8, c = cb + n * 8 + 2 * t + e % 2;
                if (r < KR && c < vc_valid) dst[(long)r * VC + c0 + c] = st[m][n][e];
            }
    }
}

// The chunk kernel (see the top of the file). Grid: x = sequence * nseg + segment,
// y = head, z = tile of VT state columns; NT threads: warps 0 .. OW - 1 compute the
// output strips, warps OW .. NW - 1 own the state in registers. KP and VT (a.KP, a.VT) are
// compile-time so that every product loop unrolls.
template <bool REV, int KP, int VT>
__global__ void __launch_bounds__(NT, 1) la_chunk_kernel(ChunkArgs a) {
    constexpr int GX = groups_per_thread(KP), GZ = groups_per_thread(VT);
    constexpr int NST = state_tiles(KP, VT);
    extern __shared__ __align__(128) unsigned char smem[];
    const int seq = blockIdx.x / a.nseg, sg = blockIdx.x % a.nseg, h = blockIdx.y;
    const int c0 = blockIdx.z * a.VT;
    const int beg = a.cu[seq], len = a.cu[seq + 1] - beg;
    int s0, s1;
    seg_range(len, sg, a.nseg, a.seg_len, &s0, &s1);
    const bool has_rows = s1 > s0;
    // Segment 0 of an empty sequence still passes its state through (T = 0).
    if (!has_rows && (sg > 0 || a.state_only)) return;

    const int KR = a.KR, VC = a.VC;
    constexpr int ldk = KP + 8, ldv = VT + 8;
    const Layout lay = la_layout(KP, VT, a.state_only);
    bf16 *Ys = (bf16 *)(smem + lay.ys), *Zws = (bf16 *)(smem + lay.zws);
    bf16 *Sb0 = (bf16 *)(smem + lay.sb), *Sb1 = (bf16 *)(smem + lay.sb2);
    float *pw = (float *)(smem + lay.pw);
    bf16 *Xs = (bf16 *)(smem + lay.xs), *Zs = (bf16 *)(smem + lay.zs);
    const int tid = threadIdx.x, warp = tid / 32;
    const bool state_warp = warp >= OW;
    const int sw = warp - OW;
    const int vc_valid = min(VT, VC - c0);
    const float ldec = a.log_decay[h];

    // pw[n] = lambda^n, n = 0..BT.
    for (int n = tid; n <= BT; n += NT) pw[n] = expf(ldec * (float)n);

    // The starting state into the state warps' registers and its bf16 copy Sb0.
    float st[NST][2][4];
    load_state<KP, VT>(st, start_state(a, seq, sg, h, has_rows), a, state_warp ? sw : -1, c0,
                       vc_valid);
    if (state_warp && !a.state_only) put_state_smem<KP, VT>(st, sw, Sb0, ldv);
    __syncthreads(); // pw and Sb0 before the first chunk

    const bf16 *xh = a.x.p + (long)h * KR, *yh = a.y.p + (long)h * KR;
    const bf16 *zh = a.z.p + (long)h * VC + c0;
    const int nch = (s1 - s0 + BT - 1) / BT;
    const bool do_out = !a.state_only && a.out;
    uint4 rx[GX], ry[GX], rz[GZ]; // the next chunk's X, Y, Z
    int t0, L;
    if (nch > 0) { // the first chunk's inputs
        chunk_at(REV, 0, nch, s0, s1, &t0, &L);
        const long row0 = (long)beg + t0;
        if (do_out) fetch(rx, xh + row0 * a.x.ld, a.x.ld, L, KR, KP, a.vec);
        fetch(ry, yh + row0 * a.y.ld, a.y.ld, L, KR, KP, a.vec);
        fetch(rz, zh + row0 * a.z.ld, a.z.ld, L, vc_valid, VT, a.vec);
    }
    for (int it = 0; it < nch; it++) {
        chunk_at(REV, it, nch, s0, s1, &t0, &L);
        const long row0 = (long)beg + t0;
        bf16 *Sb = it % 2 ? Sb1 : Sb0, *Sb_next = it % 2 ? Sb0 : Sb1;
        if (do_out) stash(rx, Xs, NULL, ldk, L, KP, pw, REV);
        stash(ry, Ys, NULL, ldk, L, KP, pw, REV);
        stash(rz, do_out ? Zs : NULL, Zws, ldv, L, VT, pw, REV);
        __syncthreads();
        if (it + 1 < nch) { // the next chunk's loads, in flight during this chunk's products
            int t1, L1;
            chunk_at(REV, it + 1, nch, s0, s1, &t1, &L1);
            const long row1 = (long)beg + t1;
            if (do_out) fetch(rx, xh + row1 * a.x.ld, a.x.ld, L1, KR, KP, a.vec);
            fetch(ry, yh + row1 * a.y.ld, a.y.ld, L1, KR, KP, a.vec);
            fetch(rz, zh + row1 * a.z.ld, a.z.ld, L1, vc_valid, VT, a.vec);
        }
        if (state_warp) {
            chunk_state<KP, VT>(st, sw, pw[L], Ys, Zws, a.state_only ? NULL : Sb_next);
        } else if (do_out && warp * 16 < L) {
            float acc[VT / 8][4];
            chunk_output<REV, KP, VT>(acc, warp, L, Xs, Ys, Zs, Sb, pw);
            store_output<VT>(a.out + row0 * a.ld_out + (long)h * VC + c0, a.ld_out, acc, warp, L,
                             vc_valid, a.vec);
        }
        __syncthreads();
    }

    if (state_warp)
        store_state<KP, VT>(st, end_state(a, REV, seq, sg, h, s1 == len), sw, c0, KR, VC, vc_valid);
}

// The scan over segments, one thread per (sequence, head, state element): each segment's
// contribution in seg[] is replaced by the state at the segment's start (forward) or end
// (reverse, the state gradient), starting from init (NULL: zero). nseg <= MAX_SEG: the
// contributions are all loaded first (in flight together), then rewritten in order.
__global__ void la_scan_kernel(float *seg, const float *init, const int *cu, const float *log_decay,
                               int nseq, int nseg, int seg_len, int H, long sd, int rev) {
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)nseq * H * sd) return;
    long e = idx % sd, p = idx / sd;
    int h = (int)(p % H), seq = (int)(p / H);
    int len = cu[seq + 1] - cu[seq];
    int used = min(nseg, (len + seg_len - 1) / seg_len);  // the segments with rows: a prefix
    float *b = seg + ((long)seq * nseg * H + h) * sd + e; // segment j at b[j * H * sd]
    const long js = (long)H * sd;
    float d[MAX_SEG], dec[MAX_SEG];
#pragma unroll
    for (int j = 0; j < MAX_SEG; j++) {
        if (j >= used) break;
        int s0, s1;
        seg_range(len, j, nseg, seg_len, &s0, &s1);
        d[j] = b[j * js];
        dec[j] = expf(log_decay[h] * (float)(s1 - s0));
    }
    float s = init ? init[p * sd + e] : 0.0f;
    if (rev) {
#pragma unroll
        for (int j = MAX_SEG - 1; j >= 0; j--) {
            if (j >= used) continue;
            b[j * js] = s;
            s = dec[j] * s + d[j];
        }
    } else {
#pragma unroll
        for (int j = 0; j < MAX_SEG; j++) {
            if (j >= used) break;
            b[j * js] = s;
            s = dec[j] * s + d[j];
        }
    }
}

// The elementwise SiLU passes around the chunk kernels, on [rows, W] bf16 tensors (dst rows
// ld_dst apart, src ld_src apart), eight columns a thread when vec (W and both strides
// multiples of 8, 16-byte aligned). Forward (grad 0): dst = SiLU(src), TNL's q and k
// activated once per call instead of on every load of the several passes that read them.
// Backward (grad 1): dst *= silu'(src), the gradient of the pre-activation input. Blocks
// stride over rows (y) and columns (x), so no index is divided per element.
__global__ void silu_rows_kernel(bf16 *dst, long ld_dst, const bf16 *src, long ld_src, long rows,
                                 int W, int vec, int grad) {
    const int per = vec ? 8 : 1, units = W / per;
    for (long r = blockIdx.y; r < rows; r += gridDim.y) {
        const bf16 *in = src + r * ld_src;
        bf16 *out = dst + r * ld_dst;
        for (int u = blockIdx.x * blockDim.x + threadIdx.x; u < units;
             u += gridDim.x * blockDim.x) {
            if (vec) {
                float x[8], y[8];
                unpack8(x, __ldg((const uint4 *)(in + u * 8)));
                uint4 *o = (uint4 *)(out + u * 8);
                if (grad) unpack8(y, *o);
                for (int e = 0; e < 8; e++) y[e] = grad ? y[e] * dsilu(x[e]) : silu(x[e]);
                *o = pack8(y);
            } else {
                float x = __bfloat162float(in[u]);
                out[u] = __float2bfloat16(grad ? __bfloat162float(out[u]) * dsilu(x) : silu(x));
            }
        }
    }
}

} // namespace
