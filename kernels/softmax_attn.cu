// kernels/softmax_attn.cu: causal softmax attention with GQA on CUDA, FlashAttention-2
// style: bf16 in and out, fp32 accumulation and softmax statistics, tensor cores through
// mma.sync.m16n8k16 (bf16 x bf16 -> fp32), operands staged in shared memory by cp.async.
//
// Every kernel tiles one (sequence, head) pair. A warp owns MS strips of 16 rows and
// keeps its accumulators in registers in the m16n8k16 fragment layout, so scores,
// probabilities and dS never leave registers: an accumulator fragment of two 8-column
// tiles is exactly the A operand of the next product.
//
// Forward (one block per BM query rows): keys in tiles of BN (double-buffered), S = Q K^T,
// online softmax (running max and sum in the exp2 domain), O += P V. Writes o and lse.
// lse layout: [Nq, H] fp32, natural log: lse[row * H + h] = log sum_s exp(score_s).
//
// Backward, deterministic (no atomics, no scratch memory), three kernels:
//  1. D[row, h] = dO . O, stored as one fp32 in dq's own slot for (row, h) (the first two
//     bf16 of that row's head block): dq is written last, so its memory holds D until then.
//  2. dK, dV: one block per BNK keys of a kv head visits every query tile of the group's
//     query heads: S^T = K Q^T, P^T = exp(S^T - lse), dV += P^T dO, dP^T = V dO^T,
//     dS^T = P^T (dP^T - D), dK += dS^T Q. The group's sum stays in registers and is
//     written once.
//  3. dQ: one block per BM query rows over its key tiles: S = Q K^T, P, dP = dO V^T,
//     dS = P (dP - D), dQ += dS K. It reads its rows' D before it overwrites them.
//
// Head dims: any hd in 1 .. 128 runs on the instantiation for the next of 16, 32, 64, 128
// (HD): columns hd .. HD - 1 are zero-filled in shared memory and never stored, so they
// add exact zeros; the scale stays 1 / sqrt(hd). The cp.async and 16-byte vector path
// needs hd % 8 == 0 and aligned rows; anything else takes 2-byte loads and stores.
#include <type_traits>

#include "mma.cuh"

namespace {

constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;
constexpr unsigned FULL = 0xffffffffu;

// Tile shapes per head dim: NW warps per block, MS 16-row strips per warp, BN keys per
// tile (forward, dq), BMQ query rows per tile (dk/dv). Chosen so that no kernel spills
// (sm_90a, ptxas -v); more strips per warp reuse each ldmatrix of B for more mma.
template <int HD> struct Cfg {
    static constexpr int FWD_NW = 4, FWD_MS = 2, FWD_BN = HD >= 128 ? 32 : 64;
    static constexpr int KV_NW = 4, KV_MS = HD >= 64 ? 1 : 2, KV_BMQ = HD >= 128 ? 32 : 64;
    static constexpr int DQ_NW = 4, DQ_MS = HD >= 128 ? 1 : 2, DQ_BN = HD == 64 ? 32 : 64;
};

// ---- tiles and warp-level products -------------------------------------------------------

// Copies ROWS rows of hd <= HD bf16 (rows ld apart in global memory) into shared memory
// as rows of HD (HD + 8 apart: the pad makes ldmatrix conflict-free), zero-filling rows >=
// valid and columns >= hd so that padded keys, queries and head dims contribute exact
// zeros. VEC: rows 16-byte aligned and hd a multiple of 8, cp.async; else (any row stride,
// any hd) plain 2-byte loads, complete when the function returns.
template <int ROWS, int HD, int NT, bool VEC>
__device__ __forceinline__ void load_tile(bf16 *s, const bf16 *g, long ld, int valid, int hd) {
    constexpr int C = HD / 8;
    for (int i = threadIdx.x; i < ROWS * C; i += NT) {
        const int r = i / C, c = i % C;
        bf16 *d = s + r * (HD + 8) + c * 8;
        if constexpr (VEC) {
            const bool ok = r < valid && c * 8 < hd;
            cp_async16(d, ok ? g + r * ld + c * 8 : g, ok);
        } else {
            uint32_t w[4] = {0, 0, 0, 0};
            if (r < valid && c * 8 < hd) {
                const uint16_t *src = reinterpret_cast<const uint16_t *>(g + r * ld + c * 8);
                const int n = hd - c * 8; // columns of this chunk inside the head
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const uint32_t lo = 2 * e < n ? src[2 * e] : 0;
                    const uint32_t hi = 2 * e + 1 < n ? src[2 * e + 1] : 0;
                    w[e] = lo | hi << 16;
                }
            }
            *reinterpret_cast<uint4 *>(d) = make_uint4(w[0], w[1], w[2], w[3]);
        }
    }
}

// D = dO . O of one (row, head) as an fp32 kept in the first two bf16 of dq's head block
// for that row, moved as two 16-bit halves (dq's rows may be only 2-byte aligned).
__device__ __forceinline__ void put_d(bf16 *p, float d) {
    uint16_t *h = reinterpret_cast<uint16_t *>(p);
    const uint32_t u = __float_as_uint(d);
    h[0] = (uint16_t)(u & 0xffffu), h[1] = (uint16_t)(u >> 16);
}
__device__ __forceinline__ float get_d(const bf16 *p) {
    const uint16_t *h = reinterpret_cast<const uint16_t *>(p);
    return __uint_as_float(h[0] | (uint32_t)h[1] << 16);
}

// D of query row `row`, head hh (scalar path): from its slot in dq, or for hd == 1 (a head
// block of one bf16 has no room for an fp32) recomputed as dO * O, exact in fp32.
__device__ __forceinline__ float row_d(const bf16 *dslot, int ld_q, const bf16 *dout, const bf16 *o,
                                       long row, int hh, int H, int hd) {
    if (hd == 1) {
        const long i = row * H + hh;
        return __bfloat162float(dout[i]) * __bfloat162float(o[i]);
    }
    return get_d(dslot + row * ld_q + hh * hd);
}

// acc[w] += A_w B^T for the warp's MS strips: A_w is rows 16w .. 16w + 15 of sA, B is NC
// rows of sB; both row-major, HD wide, in shared memory (stride HD + 8). Used for S = Q K^T
// and dP = dO V^T, and transposed (S^T = K Q^T, dP^T = V dO^T).
template <int MS, int NC, int HD>
__device__ __forceinline__ void mma_abt(float (&acc)[MS][NC / 8][4], const bf16 *sA, const bf16 *sB,
                                        int lane) {
    constexpr int LDS = HD + 8;
    const int mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        uint32_t a[MS][4];
#pragma unroll
        for (int w = 0; w < MS; w++)
            ldsm_x4(a[w], sA + (w * 16 + (mi & 1) * 8 + r8) * LDS + ks * 16 + (mi >> 1) * 8);
#pragma unroll
        for (int np = 0; np < NC / 16; np++) {
            uint32_t b[4];
            ldsm_x4(b, sB + (np * 16 + (mi >> 1) * 8 + r8) * LDS + ks * 16 + (mi & 1) * 8);
#pragma unroll
            for (int w = 0; w < MS; w++) {
                mma_bf16(acc[w][2 * np], a[w], b[0], b[1]);
                mma_bf16(acc[w][2 * np + 1], a[w], b[2], b[3]);
            }
        }
    }
}

// acc[w] += P_w B: P_w is 16 x NK in fp32 accumulator layout (rounded to bf16 here), B is
// NK rows of sB (row-major, HD wide, stride HD + 8), read transposed by ldmatrix. Used for
// O += P V, dV += P^T dO, dK += dS^T Q and dQ += dS K.
template <int MS, int NK, int HD>
__device__ __forceinline__ void mma_pb(float (&acc)[MS][HD / 8][4], const float (&p)[MS][NK / 8][4],
                                       const bf16 *sB, int lane) {
    constexpr int LDS = HD + 8;
    const int mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int kk = 0; kk < NK / 16; kk++) {
        uint32_t a[MS][4];
#pragma unroll
        for (int w = 0; w < MS; w++) {
            a[w][0] = pack_bf16(p[w][2 * kk][0], p[w][2 * kk][1]);
            a[w][1] = pack_bf16(p[w][2 * kk][2], p[w][2 * kk][3]);
            a[w][2] = pack_bf16(p[w][2 * kk + 1][0], p[w][2 * kk + 1][1]);
            a[w][3] = pack_bf16(p[w][2 * kk + 1][2], p[w][2 * kk + 1][3]);
        }
#pragma unroll
        for (int np = 0; np < HD / 16; np++) {
            uint32_t b[4];
            ldsm_x4_t(b, sB + (kk * 16 + (mi & 1) * 8 + r8) * LDS + np * 16 + (mi >> 1) * 8);
#pragma unroll
            for (int w = 0; w < MS; w++) {
                mma_bf16(acc[w][2 * np], a[w], b[0], b[1]);
                mma_bf16(acc[w][2 * np + 1], a[w], b[2], b[3]);
            }
        }
    }
}

// Writes the warp's MS x 16 rows of acc * scale (HD wide) as bf16 to rows first .. of g
// (rows ld apart), only rows < limit and columns < hd, staging through the warp's own rows
// of sW (shared, stride HD + 8) so that global stores are 16-byte vectors (VEC) or whole
// rows.
template <int MS, int HD, bool VEC>
__device__ __forceinline__ void store_rows(bf16 *g, long ld, int first, int limit, bf16 *sW,
                                           const float (&acc)[MS][HD / 8][4],
                                           const float (&scale)[MS][2], int hd, int lane) {
    constexpr int LDS = HD + 8, C = HD / 8;
    const int gr = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int w = 0; w < MS; w++) {
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) {
            bf16 *p = sW + (w * 16 + gr) * LDS + dt * 8 + 2 * tq;
            *reinterpret_cast<uint32_t *>(p) =
                pack_bf16(acc[w][dt][0] * scale[w][0], acc[w][dt][1] * scale[w][0]);
            *reinterpret_cast<uint32_t *>(p + 8 * LDS) =
                pack_bf16(acc[w][dt][2] * scale[w][1], acc[w][dt][3] * scale[w][1]);
        }
    }
    __syncwarp();
    if constexpr (VEC) {
        for (int i = lane; i < MS * 16 * C; i += 32) {
            const int r = i / C, c = i % C;
            if (first + r < limit && c * 8 < hd)
                *reinterpret_cast<uint4 *>(g + (first + r) * ld + c * 8) =
                    *reinterpret_cast<const uint4 *>(sW + r * LDS + c * 8);
        }
    } else {
        for (int i = lane; i < MS * 16 * HD; i += 32) {
            const int r = i / HD, c = i % HD;
            if (first + r < limit && c < hd) g[(first + r) * ld + c] = sW[r * LDS + c];
        }
    }
}

// ---- forward -----------------------------------------------------------------------------

// Forward: block (query tile, head h, sequence b). Query tiles run longest first (the
// causal work grows with the tile index). Each warp skips key tiles wholly above its rows.
template <int HD, int NW, int MS, int BN, bool VEC>
__global__ void __launch_bounds__(NW * 32)
    attn_fwd_kernel(bf16 *o, float *lse, const bf16 *q, int ld_q, const bf16 *k, const bf16 *v,
                    int ld_kv, const int *cu_q, const int *cu_k, int H, int group, int hd,
                    float scale_log2) {
    constexpr int WM = 16 * MS, BM = WM * NW, LDS = HD + 8, NT = NW * 32;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem);
    bf16 *sK = sQ + BM * LDS; // [2][BN][LDS]
    bf16 *sV = sK + 2 * BN * LDS;

    const int b = blockIdx.z, h = blockIdx.y;
    const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;
    const int q0 = cu_q[b], Lq = cu_q[b + 1] - q0;
    if (m0 >= Lq) return;
    const int k0 = cu_k[b], Lk = cu_k[b + 1] - k0;
    const int off = Lk - Lq;                   // query t sits at position off + t
    const int n_keys = off + min(Lq, m0 + BM); // keys the tile's last row sees
    const int n_tiles = (n_keys + BN - 1) / BN;
    const int hk = h / group;
    const bf16 *kg = k + (long)k0 * ld_kv + hk * hd;
    const bf16 *vg = v + (long)k0 * ld_kv + hk * hd;

    load_tile<BM, HD, NT, VEC>(sQ, q + (long)(q0 + m0) * ld_q + h * hd, ld_q, Lq - m0, hd);
    load_tile<BN, HD, NT, VEC>(sK, kg, ld_kv, Lk, hd);
    load_tile<BN, HD, NT, VEC>(sV, vg, ld_kv, Lk, hd);
    cp_async_commit();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int gr = lane >> 2, tq = lane & 3;
    const int wrow = m0 + warp * WM; // the warp's first query row
    bf16 *sQw = sQ + warp * WM * LDS;
    float acc[MS][HD / 8][4] = {};
    float m_run[MS][2], l_run[MS][2];
#pragma unroll
    for (int w = 0; w < MS; w++) {
        m_run[w][0] = m_run[w][1] = -INFINITY;
        l_run[w][0] = l_run[w][1] = 0.0f;
    }

    for (int j = 0; j < n_tiles; j++) {
        if (j + 1 < n_tiles) {
            const int n1 = (j + 1) * BN, nb = (j + 1) & 1;
            load_tile<BN, HD, NT, VEC>(sK + nb * BN * LDS, kg + (long)n1 * ld_kv, ld_kv, Lk - n1,
                                       hd);
            load_tile<BN, HD, NT, VEC>(sV + nb * BN * LDS, vg + (long)n1 * ld_kv, ld_kv, Lk - n1,
                                       hd);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int n0 = j * BN;
        if (n0 <= off + wrow + WM - 1) { // some key of the tile is visible to the warp
            const bf16 *sKj = sK + (j & 1) * BN * LDS, *sVj = sV + (j & 1) * BN * LDS;
            float sc[MS][BN / 8][4] = {};
            mma_abt<MS, BN, HD>(sc, sQw, sKj, lane);
            if (n0 + BN - 1 > off + wrow || n0 + BN > Lk) {
#pragma unroll
                for (int w = 0; w < MS; w++)
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int key = n0 + nt * 8 + 2 * tq + (e & 1);
                            int t = wrow + w * 16 + gr + 8 * (e >> 1);
                            if (key > off + t || key >= Lk) sc[w][nt][e] = -INFINITY;
                        }
            }
#pragma unroll
            for (int w = 0; w < MS; w++) {
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++)
                        mx = fmaxf(mx, fmaxf(sc[w][nt][2 * i], sc[w][nt][2 * i + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, 2));
                    const float m_new = fmaxf(m_run[w][i], mx * scale_log2);
                    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
                    const float alpha = fast_exp2(m_run[w][i] - m_use);
                    m_run[w][i] = m_new;
                    float rs = 0.0f;
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                        for (int c = 0; c < 2; c++) {
                            float p = fast_exp2(fmaf(sc[w][nt][2 * i + c], scale_log2, -m_use));
                            sc[w][nt][2 * i + c] = p;
                            rs += p;
                        }
                    l_run[w][i] = l_run[w][i] * alpha + rs;
#pragma unroll
                    for (int dt = 0; dt < HD / 8; dt++) {
                        acc[w][dt][2 * i] *= alpha;
                        acc[w][dt][2 * i + 1] *= alpha;
                    }
                }
            }
            mma_pb<MS, BN, HD>(acc, sc, sVj, lane);
        }
        __syncthreads(); // the next iteration's prefetch overwrites this buffer
    }
    cp_async_wait<0>(); // nothing in flight may land in sQ once it stages the output

    float inv[MS][2];
#pragma unroll
    for (int w = 0; w < MS; w++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            float l = l_run[w][i];
            l += __shfl_xor_sync(FULL, l, 1);
            l += __shfl_xor_sync(FULL, l, 2);
            inv[w][i] = 1.0f / l;
            const int t = wrow + w * 16 + gr + 8 * i;
            if (lse && tq == 0 && t < Lq)
                lse[(long)(q0 + t) * H + h] = (m_run[w][i] + log2f(l)) * LN2;
        }
    // Each warp reads only its own rows of sQ, so it may reuse them for staging.
    store_rows<MS, HD, VEC>(o + (long)q0 * H * hd + h * hd, (long)H * hd, wrow, Lq, sQw, acc, inv,
                            hd, lane);
}

// ---- backward ----------------------------------------------------------------------------

// D[row, h] = dO[row, h] . O[row, h] (fp32), written as one float into dq at (row, h * hd):
// the backward's only intermediate, kept in dq's memory until the dq kernel overwrites it
// (hd >= 2; see row_d). Block (32 rows, sequence b); HD / 8 threads per (row, head) each
// take 8 elements (those < hd).
template <int HD, bool VEC>
__global__ void __launch_bounds__(256)
    attn_bwd_dot_kernel(bf16 *dq, int ld_q, const bf16 *dout, const bf16 *o, const int *cu_q, int H,
                        int hd) {
    constexpr int C = HD / 8, ROWS = 32, PER = 256 / C;
    const int b = blockIdx.y, m0 = blockIdx.x * ROWS;
    const int q0 = cu_q[b], Lq = cu_q[b + 1] - q0;
    if (m0 >= Lq) return;
    const long ldo = (long)H * hd;
    const int sub = threadIdx.x % C, total = ROWS * H;
    for (int base = 0; base < total; base += PER) { // uniform trip count: shuffles below
        const int pair = base + threadIdx.x / C, r = pair / H, hh = pair % H;
        const bool ok = pair < total && m0 + r < Lq;
        const long row = q0 + m0 + r;
        float d = 0.0f;
        if (ok && sub * 8 < hd) {
            const bf16 *x = dout + row * ldo + hh * hd + sub * 8,
                       *y = o + row * ldo + hh * hd + sub * 8;
            if constexpr (VEC) {
                const uint4 xv = *reinterpret_cast<const uint4 *>(x),
                            yv = *reinterpret_cast<const uint4 *>(y);
                const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w}, yw[4] = {yv.x, yv.y, yv.z, yv.w};
#pragma unroll
                for (int e = 0; e < 4; e++) { // a bf16 is the high half of an fp32
                    d = fmaf(__uint_as_float(xw[e] << 16), __uint_as_float(yw[e] << 16), d);
                    d = fmaf(__uint_as_float(xw[e] & 0xffff0000u),
                             __uint_as_float(yw[e] & 0xffff0000u), d);
                }
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++)
                    if (sub * 8 + e < hd)
                        d = fmaf(__bfloat162float(x[e]), __bfloat162float(y[e]), d);
            }
        }
#pragma unroll
        for (int s = C / 2; s > 0; s >>= 1) d += __shfl_xor_sync(FULL, d, s);
        if (ok && sub == 0) put_d(dq + row * ld_q + hh * hd, d);
    }
}

// dK, dV: block (BNK keys, kv head hk, sequence b). Each warp owns 16 MS keys and sums
// their gradients over every query tile (BMQ rows) of every query head of the group, in a
// fixed order, then writes them once. Q, dO, lse and D tiles are double-buffered. dslot is
// dq, which holds D, or o itself when hd == 1 (D recomputed, see row_d).
template <int HD, int NW, int MS, int BMQ, bool VEC>
__global__ void __launch_bounds__(NW * 32)
    attn_bwd_dkdv_kernel(bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse, const bf16 *q,
                         int ld_q, const bf16 *k, const bf16 *v, int ld_kv, const bf16 *dslot,
                         const int *cu_q, const int *cu_k, int H, int group, int hd,
                         float scale_log2, float scale) {
    constexpr int WK = 16 * MS, BNK = WK * NW, LDS = HD + 8, NT = NW * 32;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *sK = reinterpret_cast<bf16 *>(smem);
    bf16 *sV = sK + BNK * LDS;
    bf16 *sQ = sV + BNK * LDS;                                  // [2][BMQ][LDS]
    bf16 *sdO = sQ + 2 * BMQ * LDS;                             // [2][BMQ][LDS]
    float *sL = reinterpret_cast<float *>(sdO + 2 * BMQ * LDS); // [2][BMQ]
    float *sD = sL + 2 * BMQ;                                   // [2][BMQ]

    const int b = blockIdx.z, hk = blockIdx.y, n0 = blockIdx.x * BNK;
    const int k0 = cu_k[b], Lk = cu_k[b + 1] - k0;
    if (n0 >= Lk) return;
    const int q0 = cu_q[b], Lq = cu_q[b + 1] - q0;
    const int off = Lk - Lq;
    // Query t sees key n0 iff t >= n0 - off: start at the tile holding the first such t.
    const int m_first = max(0, n0 - off) / BMQ * BMQ;
    const int n_qt = Lq > m_first ? (Lq - m_first + BMQ - 1) / BMQ : 0;
    const int n_it = group * n_qt;
    const long ldo = (long)H * hd;

    load_tile<BNK, HD, NT, VEC>(sK, k + (long)(k0 + n0) * ld_kv + hk * hd, ld_kv, Lk - n0, hd);
    load_tile<BNK, HD, NT, VEC>(sV, v + (long)(k0 + n0) * ld_kv + hk * hd, ld_kv, Lk - n0, hd);
    // Iteration it: query head hk * group + it / n_qt, rows m_first + (it % n_qt) * BMQ.
    auto issue = [&](int it, int buf) {
        const int hh = hk * group + it / n_qt, m = m_first + (it % n_qt) * BMQ;
        const long row = q0 + m;
        load_tile<BMQ, HD, NT, VEC>(sQ + buf * BMQ * LDS, q + row * ld_q + hh * hd, ld_q, Lq - m,
                                    hd);
        load_tile<BMQ, HD, NT, VEC>(sdO + buf * BMQ * LDS, dout + row * ldo + hh * hd, ldo, Lq - m,
                                    hd);
        for (int i = threadIdx.x; i < BMQ; i += NT) {
            const bool ok = m + i < Lq;
            const long r = ok ? row + i : row;
            cp_async4(sL + buf * BMQ + i, lse + r * H + hh, ok);
            if constexpr (VEC)
                cp_async4(sD + buf * BMQ + i, dslot + r * ld_q + hh * hd, ok);
            else
                sD[buf * BMQ + i] = ok ? row_d(dslot, ld_q, dout, dslot, r, hh, H, hd) : 0.0f;
        }
    };
    if (n_it > 0) issue(0, 0);
    cp_async_commit();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int gr = lane >> 2, tq = lane & 3;
    const int wkey = n0 + warp * WK; // the warp's first key
    bf16 *sKw = sK + warp * WK * LDS, *sVw = sV + warp * WK * LDS;
    float dka[MS][HD / 8][4] = {}, dva[MS][HD / 8][4] = {};

    for (int it = 0; it < n_it; it++) {
        if (it + 1 < n_it) {
            issue(it + 1, (it + 1) & 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int buf = it & 1, m = m_first + (it % n_qt) * BMQ;
        if (wkey <= off + m + BMQ - 1) { // some query of the tile sees some key of the warp
            const bf16 *sQb = sQ + buf * BMQ * LDS, *sdOb = sdO + buf * BMQ * LDS;
            const float *sLb = sL + buf * BMQ, *sDb = sD + buf * BMQ;
            const bool mask = m + BMQ > Lq || wkey + WK - 1 > off + m;
            float pt[MS][BMQ / 8][4] = {};
            mma_abt<MS, BMQ, HD>(pt, sKw, sQb, lane);
#pragma unroll
            for (int w = 0; w < MS; w++)
#pragma unroll
                for (int nt = 0; nt < BMQ / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int col = nt * 8 + 2 * tq + (e & 1), t = m + col;
                        const int key = wkey + w * 16 + gr + 8 * (e >> 1);
                        float p = fast_exp2(fmaf(pt[w][nt][e], scale_log2, -sLb[col] * LOG2E));
                        if (mask && (t >= Lq || key > off + t)) p = 0.0f;
                        pt[w][nt][e] = p;
                    }
            mma_pb<MS, BMQ, HD>(dva, pt, sdOb, lane);
            float ds[MS][BMQ / 8][4] = {};
            mma_abt<MS, BMQ, HD>(ds, sVw, sdOb, lane);
#pragma unroll
            for (int w = 0; w < MS; w++)
#pragma unroll
                for (int nt = 0; nt < BMQ / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        ds[w][nt][e] =
                            pt[w][nt][e] * (ds[w][nt][e] - sDb[nt * 8 + 2 * tq + (e & 1)]);
            mma_pb<MS, BMQ, HD>(dka, ds, sQb, lane);
        }
        __syncthreads(); // the next iteration's prefetch overwrites this buffer
    }
    cp_async_wait<0>(); // with no iterations, K and V may still be in flight
    __syncthreads();

    float sk_[MS][2], one[MS][2];
#pragma unroll
    for (int w = 0; w < MS; w++) sk_[w][0] = sk_[w][1] = scale, one[w][0] = one[w][1] = 1.0f;
    // Each warp read only its own rows of sK and sV, so it may reuse them for staging.
    const long kv_base = (long)k0 * ld_kv + hk * hd;
    store_rows<MS, HD, VEC>(dk + kv_base, ld_kv, wkey, Lk, sKw, dka, sk_, hd, lane);
    store_rows<MS, HD, VEC>(dv + kv_base, ld_kv, wkey, Lk, sVw, dva, one, hd, lane);
}

// dQ: block (query tile, head h, sequence b), like the forward: for each key tile,
// S = Q K^T, P = exp(S - lse), dP = dO V^T, dS = P (dP - D), dQ += dS K. Reads its rows'
// D from dq before the block writes dq.
template <int HD, int NW, int MS, int BN, bool VEC>
__global__ void __launch_bounds__(NW * 32)
    attn_bwd_dq_kernel(bf16 *dq, int ld_q, const bf16 *dout, const bf16 *o, const float *lse,
                       const bf16 *q, const bf16 *k, const bf16 *v, int ld_kv, const int *cu_q,
                       const int *cu_k, int H, int group, int hd, float scale_log2, float scale) {
    constexpr int WM = 16 * MS, BM = WM * NW, LDS = HD + 8, NT = NW * 32;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem);
    bf16 *sdO = sQ + BM * LDS;
    bf16 *sK = sdO + BM * LDS; // [2][BN][LDS]
    bf16 *sV = sK + 2 * BN * LDS;

    const int b = blockIdx.z, h = blockIdx.y;
    const int m0 = (gridDim.x - 1 - blockIdx.x) * BM;
    const int q0 = cu_q[b], Lq = cu_q[b + 1] - q0;
    if (m0 >= Lq) return;
    const int k0 = cu_k[b], Lk = cu_k[b + 1] - k0;
    const int off = Lk - Lq;
    const int n_keys = off + min(Lq, m0 + BM);
    const int n_tiles = (n_keys + BN - 1) / BN;
    const int hk = h / group;
    const long ldo = (long)H * hd;
    const bf16 *kg = k + (long)k0 * ld_kv + hk * hd;
    const bf16 *vg = v + (long)k0 * ld_kv + hk * hd;

    load_tile<BM, HD, NT, VEC>(sQ, q + (long)(q0 + m0) * ld_q + h * hd, ld_q, Lq - m0, hd);
    load_tile<BM, HD, NT, VEC>(sdO, dout + (long)(q0 + m0) * ldo + h * hd, ldo, Lq - m0, hd);
    load_tile<BN, HD, NT, VEC>(sK, kg, ld_kv, Lk, hd);
    load_tile<BN, HD, NT, VEC>(sV, vg, ld_kv, Lk, hd);
    cp_async_commit();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int gr = lane >> 2, tq = lane & 3;
    const int wrow = m0 + warp * WM;
    bf16 *sQw = sQ + warp * WM * LDS, *sdOw = sdO + warp * WM * LDS;
    float lse2[MS][2], dd[MS][2];
#pragma unroll
    for (int w = 0; w < MS; w++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int t = wrow + w * 16 + gr + 8 * i;
            const long row = q0 + t;
            const bool ok = t < Lq;
            lse2[w][i] = ok ? lse[row * H + h] * LOG2E : 0.0f;
            dd[w][i] = ok ? row_d(dq, ld_q, dout, o, row, h, H, hd) : 0.0f;
        }
    float acc[MS][HD / 8][4] = {};

    for (int j = 0; j < n_tiles; j++) {
        if (j + 1 < n_tiles) {
            const int n1 = (j + 1) * BN, nb = (j + 1) & 1;
            load_tile<BN, HD, NT, VEC>(sK + nb * BN * LDS, kg + (long)n1 * ld_kv, ld_kv, Lk - n1,
                                       hd);
            load_tile<BN, HD, NT, VEC>(sV + nb * BN * LDS, vg + (long)n1 * ld_kv, ld_kv, Lk - n1,
                                       hd);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int n0 = j * BN;
        if (n0 <= off + wrow + WM - 1) {
            const bf16 *sKj = sK + (j & 1) * BN * LDS, *sVj = sV + (j & 1) * BN * LDS;
            const bool mask = n0 + BN - 1 > off + wrow || n0 + BN > Lk;
            float p[MS][BN / 8][4] = {};
            mma_abt<MS, BN, HD>(p, sQw, sKj, lane);
#pragma unroll
            for (int w = 0; w < MS; w++)
#pragma unroll
                for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int key = n0 + nt * 8 + 2 * tq + (e & 1);
                        const int t = wrow + w * 16 + gr + 8 * (e >> 1);
                        float x = fast_exp2(fmaf(p[w][nt][e], scale_log2, -lse2[w][e >> 1]));
                        if (mask && (key > off + t || key >= Lk)) x = 0.0f;
                        p[w][nt][e] = x;
                    }
            float ds[MS][BN / 8][4] = {};
            mma_abt<MS, BN, HD>(ds, sdOw, sVj, lane);
#pragma unroll
            for (int w = 0; w < MS; w++)
#pragma unroll
                for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        ds[w][nt][e] = p[w][nt][e] * (ds[w][nt][e] - dd[w][e >> 1]);
            mma_pb<MS, BN, HD>(acc, ds, sKj, lane);
        }
        __syncthreads();
    }
    cp_async_wait<0>();

    float sc[MS][2];
#pragma unroll
    for (int w = 0; w < MS; w++) sc[w][0] = sc[w][1] = scale;
    store_rows<MS, HD, VEC>(dq + (long)q0 * ld_q + h * hd, ld_q, wrow, Lq, sQw, acc, sc, hd, lane);
}

// ---- host side ---------------------------------------------------------------------------

// Dies on what these kernels cannot do: a head dim outside 1 .. 128, mismatched sequence
// lists, more sequences or heads than a grid dimension holds.
static void check_attn(const char *fn, Seqs sq, Seqs sk, int H, int Hkv, int hd) {
    check(hd >= 1 && hd <= 128, "kernels/softmax_attn.cu: %s: head dim %d not supported (1 to 128)",
          fn, hd);
    check(H > 0 && Hkv > 0 && H % Hkv == 0,
          "kernels/softmax_attn.cu: %s: H=%d query heads not a multiple of Hkv=%d", fn, H, Hkv);
    check(sq.n == sk.n, "kernels/softmax_attn.cu: %s: %d query sequences but %d key sequences", fn,
          sq.n, sk.n);
    check(sq.n <= 65535 && H <= 65535,
          "kernels/softmax_attn.cu: %s: %d sequences or %d heads exceed the grid (65535)", fn, sq.n,
          H);
}

// True if every row of every head of every tensor starts 16-byte aligned and hd is a multiple
// of 8 (the cp.async and vector path; otherwise the kernels use 2-byte loads and stores).
static bool heads_aligned16(int hd, int ld_q, int ld_kv, const void *const *ptrs, int n) {
    bool ok = hd % 8 == 0 && ld_q % 8 == 0 && ld_kv % 8 == 0;
    for (int i = 0; i < n; i++) ok = ok && ((uintptr_t)ptrs[i] & 15) == 0;
    return ok;
}

// Calls f(HD, VEC) with both as compile-time constants (std::integral_constant): HD is the
// smallest instantiated head dim (16, 32, 64, 128) >= hd; the kernels zero-fill columns
// hd .. HD - 1 on load and never store them.
template <typename F> static void dispatch(int hd, bool vec, F &&f) {
    auto go = [&](auto hdc) {
        if (vec)
            f(hdc, std::true_type{});
        else
            f(hdc, std::false_type{});
    };
    if (hd <= 16)
        go(std::integral_constant<int, 16>{});
    else if (hd <= 32)
        go(std::integral_constant<int, 32>{});
    else if (hd <= 64)
        go(std::integral_constant<int, 64>{});
    else
        go(std::integral_constant<int, 128>{});
}

// Opts a kernel into more than 48 KiB of dynamic shared memory (no device sync).
template <typename K> static void set_smem(K kernel, size_t bytes) {
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int HD, bool VEC>
static void fwd_launch(cudaStream_t st, bf16 *o, float *lse, const bf16 *q, int ld_q, const bf16 *k,
                       const bf16 *v, int ld_kv, Seqs sq, Seqs sk, int H, int group, int hd,
                       float scale_log2) {
    constexpr int NW = Cfg<HD>::FWD_NW, MS = Cfg<HD>::FWD_MS, BN = Cfg<HD>::FWD_BN;
    constexpr int BM = 16 * MS * NW;
    const size_t smem = (size_t)(BM + 4 * BN) * (HD + 8) * sizeof(bf16);
    auto kern = attn_fwd_kernel<HD, NW, MS, BN, VEC>;
    set_smem(kern, smem);
    dim3 grid((sq.max_len + BM - 1) / BM, H, sq.n);
    kern<<<grid, NW * 32, smem, st>>>(o, lse, q, ld_q, k, v, ld_kv, sq.cu, sk.cu, H, group, hd,
                                      scale_log2);
    CUDA_CHECK_LAUNCH();
}

template <int HD, bool VEC>
static void bwd_launch(cudaStream_t st, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout,
                       const bf16 *o, const float *lse, const bf16 *q, int ld_q, const bf16 *k,
                       const bf16 *v, int ld_kv, Seqs sq, Seqs sk, int H, int Hkv, int hd,
                       float scale_log2, float scale) {
    const int group = H / Hkv;
    if (sq.max_len > 0 && hd >= 2) { // hd == 1: the consumers recompute D (row_d)
        dim3 grid((sq.max_len + 31) / 32, sq.n);
        attn_bwd_dot_kernel<HD, VEC><<<grid, 256, 0, st>>>(dq, ld_q, dout, o, sq.cu, H, hd);
        CUDA_CHECK_LAUNCH();
    }
    if (sk.max_len > 0) { // every key's gradient is written, seen by a query or not
        constexpr int NW = Cfg<HD>::KV_NW, MS = Cfg<HD>::KV_MS, BMQ = Cfg<HD>::KV_BMQ;
        constexpr int BNK = 16 * MS * NW;
        const size_t smem =
            (size_t)(2 * BNK + 4 * BMQ) * (HD + 8) * sizeof(bf16) + 4 * BMQ * sizeof(float);
        auto kern = attn_bwd_dkdv_kernel<HD, NW, MS, BMQ, VEC>;
        set_smem(kern, smem);
        dim3 grid((sk.max_len + BNK - 1) / BNK, Hkv, sk.n);
        // dslot: dq holding D, or o for hd == 1 (D recomputed as dO * O; one pointer fewer)
        kern<<<grid, NW * 32, smem, st>>>(dk, dv, dout, lse, q, ld_q, k, v, ld_kv, hd == 1 ? o : dq,
                                          sq.cu, sk.cu, H, group, hd, scale_log2, scale);
        CUDA_CHECK_LAUNCH();
    }
    if (sq.max_len > 0) {
        constexpr int NW = Cfg<HD>::DQ_NW, MS = Cfg<HD>::DQ_MS, BN = Cfg<HD>::DQ_BN;
        constexpr int BM = 16 * MS * NW;
        const size_t smem = (size_t)(2 * BM + 4 * BN) * (HD + 8) * sizeof(bf16);
        auto kern = attn_bwd_dq_kernel<HD, NW, MS, BN, VEC>;
        set_smem(kern, smem);
        dim3 grid((sq.max_len + BM - 1) / BM, H, sq.n);
        kern<<<grid, NW * 32, smem, st>>>(dq, ld_q, dout, o, lse, q, k, v, ld_kv, sq.cu, sk.cu, H,
                                          group, hd, scale_log2, scale);
        CUDA_CHECK_LAUNCH();
    }
}

// Ops entry: causal GQA softmax attention forward (see ops.h); lse is [Nq, H], may be NULL.
static void softmax_attn_forward_cuda(Backend *be, Act *o_, float *lse, const Act *q_, int ld_q,
                                      const Act *k_, const Act *v_, int ld_kv, Seqs sq, Seqs sk,
                                      int H, int Hkv, int hd) {
    check_attn("softmax_attn_forward", sq, sk, H, Hkv, hd);
    if (sq.n == 0 || sq.max_len == 0) return;
    const void *ptrs[] = {o_, q_, k_, v_};
    const bool vec = heads_aligned16(hd, ld_q, ld_kv, ptrs, 4);
    cudaStream_t st = cuda_ctx(be)->stream;
    bf16 *o = as_bf16(o_);
    const bf16 *q = as_bf16c(q_), *k = as_bf16c(k_), *v = as_bf16c(v_);
    const float scale_log2 = LOG2E / sqrtf((float)hd);
    dispatch(hd, vec, [&](auto HDc, auto VECc) {
        fwd_launch<decltype(HDc)::value, decltype(VECc)::value>(st, o, lse, q, ld_q, k, v, ld_kv,
                                                                sq, sk, H, H / Hkv, hd, scale_log2);
    });
}

// Ops entry: the backward (see ops.h): writes dq, dk, dv from dout, o and the forward's lse.
static void softmax_attn_backward_cuda(Backend *be, Act *dq_, Act *dk_, Act *dv_, const Act *dout_,
                                       const Act *o_, const float *lse, const Act *q_, int ld_q,
                                       const Act *k_, const Act *v_, int ld_kv, Seqs sq, Seqs sk,
                                       int H, int Hkv, int hd) {
    check_attn("softmax_attn_backward", sq, sk, H, Hkv, hd);
    check(dq_ && dk_ && dv_, "kernels/softmax_attn.cu: softmax_attn_backward: dq, dk and dv "
                             "are all required (dq holds the row sums D until it is written)");
    if (sq.n == 0) return;
    const void *ptrs[] = {dq_, dk_, dv_, dout_, o_, q_, k_, v_};
    const bool vec = heads_aligned16(hd, ld_q, ld_kv, ptrs, 8);
    cudaStream_t st = cuda_ctx(be)->stream;
    bf16 *dq = as_bf16(dq_), *dk = as_bf16(dk_), *dv = as_bf16(dv_);
    const bf16 *dout = as_bf16c(dout_), *o = as_bf16c(o_);
    const bf16 *q = as_bf16c(q_), *k = as_bf16c(k_), *v = as_bf16c(v_);
    const float scale = 1.0f / sqrtf((float)hd), scale_log2 = scale * LOG2E;
    dispatch(hd, vec, [&](auto HDc, auto VECc) {
        bwd_launch<decltype(HDc)::value, decltype(VECc)::value>(st, dq, dk, dv, dout, o, lse, q,
                                                                ld_q, k, v, ld_kv, sq, sk, H, Hkv,
                                                                hd, scale_log2, scale);
    });
}

} // namespace

extern "C" void cuda_register_softmax_attn(Ops *ops) {
    ops->softmax_attn_forward = softmax_attn_forward_cuda;
    ops->softmax_attn_backward = softmax_attn_backward_cuda;
}
