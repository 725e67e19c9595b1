// kernels/lightning_parallel.cuh: the chunk-parallel path of Lightning Attention on CUDA,
// beside the recurrent chunk kernel of lightning_chunk.cuh and with the same passes (the
// roles X, Y, Z and the decays are described there).
//
// The recurrent kernel keeps one block on a sequence's chunks from first to last, the
// state and every chunk's output in the same block: one block per SM (240 registers a
// thread), and each chunk waits on the one before. Here a pass is split in two kernels:
//   states: walk the chunks as the recurrent kernel does, but only the state update
//           S <- lambda^L S + Y^T (w .* Z); before each chunk, write the bf16 state S_c to
//           hs (the same bf16 copy the recurrent kernel's output warps read). Every warp
//           owns state tiles and there are no output registers: two blocks per SM.
//   output: one block per chunk, all chunks at once: out = ((X Y^T) .* M) Z + Lambda X S_c
//           with S_c read back from hs, by the same chunk_output as the recurrent kernel.
// The results are the same products in the same order, so the two paths agree to the
// last bit, but for one saving: the backward's dk and dv passes walk the same state
// gradient (dk's is the transpose of dv's), so here dk reads the dv walk's states
// transposed instead of walking its own (its w weights then round with do instead of q).
// The price is hs (bf16, twice the size of q for d = 128) written once and read once. The
// states kernel also serves the segment passes (the state-only walk) of both paths. At
// head sizes in (64, 128] the backward's three output passes (dv, dk and, from the
// forward's kept states, dq) are one kernel, la_grads_kernel, that loads each input once.
#pragma once
#include "lightning_chunk.cuh"

namespace {

constexpr int OVT = 64;     // state columns per output warp
constexpr int OT = 2 * OVT; // state columns per output block: two warps per strip

// Shared memory of the output kernel: X, Y [BT, KP], Z [BT, OT], S_c [KP, OT] (or its
// transpose [OT, KP]), each warp's output strip [16, OVT], powers.
__host__ __device__ inline Layout la_output_layout(int KP) {
    Layout l = {};
    int off = 0;
    l.xs = take(&off, BT * (KP + 8) * 2);
    l.ys = take(&off, BT * (KP + 8) * 2);
    l.zs = take(&off, BT * (OT + 8) * 2);
    l.sb = take(&off, (KP * (OT + 8) > OT * (KP + 8) ? KP * (OT + 8) : OT * (KP + 8)) * 2);
    l.ws = take(&off, NW * 16 * (OVT + 8) * 2);
    l.pw = take(&off, (BT + 1) * 4);
    l.bytes = off;
    return l;
}

// Copy the [rows, cols] bf16 tile at src (rows ld apart; rows_valid x cols_valid of it
// exist) into shared dst (rows ldd apart), zeros elsewhere: 16-byte cp.async per eight
// values when vec, else one value at a time. The caller commits and waits.
__device__ inline void load_tile(bf16 *dst, int ldd, const bf16 *src, long ld, int rows, int cols,
                                 int rows_valid, int cols_valid, int vec) {
    const int groups = cols / 8;
    for (int i = threadIdx.x; i < rows * groups; i += NT) {
        int r = i / groups, c = (i % groups) * 8;
        bf16 *d = dst + r * ldd + c;
        bool in = r < rows_valid && c < cols_valid;
        if (vec && (!in || cols_valid - c >= 8)) {
            cp_async16(d, in ? src + (long)r * ld + c : src, in);
        } else {
            for (int e = 0; e < 8; e++)
                d[e] =
                    in && c + e < cols_valid ? src[(long)r * ld + c + e] : __float2bfloat16(0.0f);
        }
    }
}

// Chunks a states walk keeps in flight: its Y and Z stages in shared memory, the one in use
// and the next NS - 1 loading (cp.async). Two blocks an SM still fit: 108 KB at KP 128 with
// three stages, 104 KB at KP 256 with two.
__host__ __device__ constexpr int walk_stages(int KP) {
    return KP <= 128 ? 3 : 2;
}

// Shared memory of the states kernel: walk_stages(KP) stages of Y [BT, KP] (at ys) and Z
// [BT, VT] (at zs), w .* Z [BT, VT], the bf16 state [KP, VT], powers.
__host__ __device__ inline Layout la_walk_layout(int KP, int VT) {
    Layout l = {};
    int off = 0;
    l.ys = take(&off, walk_stages(KP) * BT * (KP + 8) * 2);
    l.zs = take(&off, walk_stages(KP) * BT * (VT + 8) * 2);
    l.zws = take(&off, BT * (VT + 8) * 2);
    l.sb = take(&off, KP * (VT + 8) * 2);
    l.pw = take(&off, (BT + 1) * 4);
    l.bytes = off;
    return l;
}

// Start the loads of a walk's chunk `it` (of nch) into its stage it % NS: Y at Ys, Z at Zs
// (rows past the chunk and columns past the head zero). Past the last chunk it only
// commits an empty group, so that every iteration commits one and the waits stay in step.
template <bool REV, int KP, int VT, int NS>
__device__ inline void walk_issue(const ChunkArgs &a, int it, int nch, int s0, int s1,
                                  const bf16 *yh, const bf16 *zh, bf16 *Ys, bf16 *Zs,
                                  int vc_valid) {
    if (it < nch) {
        int t0, L;
        chunk_at(REV, it, nch, s0, s1, &t0, &L);
        const int stage = it % NS;
        load_tile(Ys + stage * BT * (KP + 8), KP + 8, yh + t0 * a.y.ld, a.y.ld, BT, KP, L, a.KR,
                  a.vec);
        load_tile(Zs + stage * BT * (VT + 8), VT + 8, zh + t0 * a.z.ld, a.z.ld, BT, VT, L, vc_valid,
                  a.vec);
    }
    cp_async_commit();
}

// Zws = the [BT, cols] tile Z, each row times its state weight (weigh8, as stash).
__device__ inline void weigh_rows(const bf16 *Z, bf16 *Zws, int ld, int L, int cols,
                                  const float *pw, bool rev) {
    const int groups = cols / 8;
    for (int i = threadIdx.x; i < BT * groups; i += NT) {
        int r = i / groups, c = (i % groups) * 8;
        *(uint4 *)(Zws + r * ld + c) = weigh8(*(const uint4 *)(Z + r * ld + c), r, L, pw, rev);
    }
}

// store_output through the warp's own shared tile Ws [16, VT + 8]: the strip leaves as
// whole 128-byte rows of 16-byte stores (when vec), where the mma fragments store 4-byte
// pairs, 16 bytes of a row an instruction. Same values (pack_bf16 rounds as store_output).
// On an H200 the forward is 5% faster so; swapping the pairs among a quad's lanes by
// shuffles instead (64-byte runs, no shared memory) was no faster than the fragments.
template <int VT>
__device__ inline void store_output_rows(bf16 *dst, long ld, const float (&acc)[VT / 8][4], int w,
                                         int L, int vc_valid, int vec, bf16 *Ws) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    constexpr int ldw = VT + 8;
#pragma unroll
    for (int j = 0; j < VT / 8; j++)
        for (int half = 0; half < 2; half++)
            *(uint32_t *)(Ws + (g + half * 8) * ldw + j * 8 + 2 * t) =
                pack_bf16(acc[j][2 * half], acc[j][2 * half + 1]);
    __syncwarp();
    copy_tile_out<16, VT>(dst + (long)w * 16 * ld, ld, Ws, ldw, L - w * 16, vc_valid, vec, lane,
                          32);
}

// The states kernel (see the top). Grid and start as la_chunk_kernel's: x = sequence *
// nseg + segment, y = head, z = tile of VT state columns; all NW warps own state tiles.
// With a.hs it writes S_c before each chunk c; at the end it writes the segment's
// contribution (state_only) or the sequence's final state (fin), as the recurrent kernel.
// The chunks' Y and Z arrive by cp.async, NS - 1 chunks ahead of the one in use, so a
// chunk's loads wait behind the products of the chunks before it and not in front of its
// own. S_c goes out through the shared Sb, in whole rows (copy_tile_out).
template <bool REV, int KP, int VT>
__global__ void __launch_bounds__(NT, 2) la_states_kernel(ChunkArgs a) {
    constexpr int NST = state_tiles(KP, VT, NW), NS = walk_stages(KP);
    extern __shared__ __align__(128) unsigned char smem[];
    const int seq = blockIdx.x / a.nseg, sg = blockIdx.x % a.nseg, h = blockIdx.y;
    const int c0 = blockIdx.z * a.VT;
    const int beg = a.cu[seq], len = a.cu[seq + 1] - beg;
    int s0, s1;
    seg_range(len, sg, a.nseg, a.seg_len, &s0, &s1);
    const bool has_rows = s1 > s0;
    if (!has_rows && (sg > 0 || a.state_only)) return; // as in la_chunk_kernel

    const int KR = a.KR, VC = a.VC, warp = threadIdx.x / 32;
    constexpr int ldk = KP + 8, ldv = VT + 8;
    const Layout lay = la_walk_layout(KP, VT);
    bf16 *Ys = (bf16 *)(smem + lay.ys), *Zs = (bf16 *)(smem + lay.zs);
    bf16 *Zws = (bf16 *)(smem + lay.zws), *Sb = a.hs ? (bf16 *)(smem + lay.sb) : NULL;
    float *pw = (float *)(smem + lay.pw);
    const int vc_valid = min(VT, VC - c0);
    const bool hvec = vec_ok(a.hs, VC); // (every S_c starts a multiple of 8 values in)
    const long sd = (long)KR * VC;
    const bf16 *yh = a.y.p + (long)beg * a.y.ld + (long)h * KR;
    const bf16 *zh = a.z.p + (long)beg * a.z.ld + (long)h * VC + c0;
    const int nch = (s1 - s0 + BT - 1) / BT;
    for (int it = 0; it < NS - 1; it++)
        walk_issue<REV, KP, VT, NS>(a, it, nch, s0, s1, yh, zh, Ys, Zs, vc_valid);
    for (int n = threadIdx.x; n <= BT; n += NT) pw[n] = expf(a.log_decay[h] * (float)n);
    float st[NST][2][4];
    load_state<KP, VT, NW>(st, start_state(a, seq, sg, h, has_rows), a, warp, c0, vc_valid);
    if (Sb) put_state_smem<KP, VT, NW>(st, warp, Sb, ldv); // S_c of the first chunk

    for (int it = 0; it < nch; it++) {
        int t0, L;
        chunk_at(REV, it, nch, s0, s1, &t0, &L);
        const bf16 *Yc = Ys + (it % NS) * BT * ldk, *Zc = Zs + (it % NS) * BT * ldv;
        cp_async_wait<NS - 2>(); // this thread's copies of chunk it
        __syncthreads();         // everyone's, and S_c in Sb; chunk it - 1's products are done
        walk_issue<REV, KP, VT, NS>(a, it + NS - 1, nch, s0, s1, yh, zh, Ys, Zs, vc_valid);
        weigh_rows(Zc, Zws, ldv, L, VT, pw, REV);
        if (Sb && t0 / BT < a.maxch) { // (a max_len too small must not write past hs)
            bf16 *dst = a.hs + (((long)seq * a.maxch + t0 / BT) * a.H + h) * sd + c0;
            copy_tile_out<KP, VT>(dst, VC, Sb, ldv, KR, vc_valid, hvec, threadIdx.x, NT);
        }
        __syncthreads();                                       // Zws; Sb is copied out
        chunk_state<KP, VT, NW>(st, warp, pw[L], Yc, Zws, Sb); // Sb: the next chunk's S_c
    }
    store_state<KP, VT, NW>(st, end_state(a, REV, seq, sg, h, s1 == len), warp, c0, KR, VC,
                            vc_valid);
}

// The output kernel (see the top). Grid: x = sequence * maxch + chunk, y = head, z = tile of
// OT state columns. Warp w computes rows 16 (w % OW) .. of the chunk for the columns
// OVT (w / OW) .. of the tile. ST: hs holds the states transposed ([VC, KR]: the dv walk's,
// for dk), and S_c stays transposed in shared memory (chunk_output reads it so).
template <bool REV, int KP, bool ST>
__global__ void __launch_bounds__(NT, 2) la_output_kernel(ChunkArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int seq = blockIdx.x / a.maxch, ci = blockIdx.x % a.maxch, h = blockIdx.y;
    const int c0 = blockIdx.z * OT, t0 = ci * BT;
    const int beg = a.cu[seq], len = a.cu[seq + 1] - beg;
    if (t0 >= len) return;
    const int L = min(BT, len - t0), KR = a.KR, VC = a.VC, vc_valid = min(OT, VC - c0);
    const Layout lay = la_output_layout(KP);
    bf16 *Xs = (bf16 *)(smem + lay.xs), *Ys = (bf16 *)(smem + lay.ys);
    bf16 *Zs = (bf16 *)(smem + lay.zs), *Sb = (bf16 *)(smem + lay.sb);
    float *pw = (float *)(smem + lay.pw);
    const long row0 = (long)beg + t0;
    const bf16 *hs = a.hs + (((long)seq * a.maxch + ci) * a.H + h) * (long)KR * VC;
    load_tile(Xs, KP + 8, a.x.p + row0 * a.x.ld + (long)h * KR, a.x.ld, BT, KP, L, KR, a.vec);
    load_tile(Ys, KP + 8, a.y.p + row0 * a.y.ld + (long)h * KR, a.y.ld, BT, KP, L, KR, a.vec);
    load_tile(Zs, OT + 8, a.z.p + row0 * a.z.ld + (long)h * VC + c0, a.z.ld, BT, OT, L, vc_valid,
              a.vec);
    if (ST)
        load_tile(Sb, KP + 8, hs + (long)c0 * KR, KR, OT, KP, vc_valid, KR, a.vec);
    else
        load_tile(Sb, OT + 8, hs + c0, VC, KP, OT, KR, vc_valid, a.vec);
    cp_async_commit();
    for (int n = threadIdx.x; n <= BT; n += NT) pw[n] = expf(a.log_decay[h] * (float)n);
    cp_async_wait<0>();
    __syncthreads();

    const int warp = threadIdx.x / 32, strip = warp % OW, half = warp / OW;
    const int cols = vc_valid - half * OVT;
    if (strip * 16 >= L || cols <= 0) return;
    float acc[OVT / 8][4];
    const bf16 *Sw = ST ? Sb + half * OVT * (KP + 8) : Sb + half * OVT;
    chunk_output<REV, KP, OVT, OT + 8, ST>(acc, strip, L, Xs, Ys, Zs + half * OVT, Sw, pw);
    store_output_rows<OVT>(a.out + row0 * a.ld_out + (long)h * VC + c0 + half * OVT, a.ld_out, acc,
                           strip, L, cols, a.vec, (bf16 *)(smem + lay.ws) + warp * 16 * (OVT + 8));
}

// Byte offsets of the gradients kernel's shared memory: k, q, v, do [BT, OT + 8], one
// state [OT, OT + 8] (G, then S_c), powers.
struct GradsLayout {
    int k, q, v, d, s, pw, bytes;
};

__host__ __device__ inline GradsLayout la_grads_layout() {
    GradsLayout l = {};
    int off = 0;
    l.k = take(&off, BT * (OT + 8) * 2);
    l.q = take(&off, BT * (OT + 8) * 2);
    l.v = take(&off, BT * (OT + 8) * 2);
    l.d = take(&off, BT * (OT + 8) * 2);
    l.s = take(&off, OT * (OT + 8) * 2);
    l.pw = take(&off, (BT + 1) * 4);
    l.bytes = off;
    return l;
}

// dv, dk and (with the forward's kept states) dq of one chunk in one block, for head sizes
// in (64, 128] (KP = OT = 128: one column tile). It does the work of three output kernels
//   dv: X = k,  Y = q, Z = do, S = G     (the dv walk's state gradient, in a.hs)
//   dk: X = v,  Y = do, Z = q, S = G^T
//   dq: X = do, Y = v, Z = k,  S = S_c^T  (the forward's state, in kept)
// which made twelve tile loads between them (four each); here there are six: q, k, v, do
// and one [128, 128] tile that is G for dv and, read transposed, for dk, and then S_c for
// dq (dq NULL: no dq pass). The products are those of the three kernels, in the same
// order. a: the dv pass's (KR = kdim, VC = vdim); v (rows v.ld apart), dk and dq (rows
// a.ld_out apart, as dv's) come apart. Grid as la_output_kernel's, z = 1.
__global__ void __launch_bounds__(NT, 2)
    la_grads_kernel(ChunkArgs a, Operand v, bf16 *dk, const bf16 *kept, bf16 *dq) {
    constexpr int KP = OT, LD = KP + 8;
    extern __shared__ __align__(128) unsigned char smem[];
    const int seq = blockIdx.x / a.maxch, ci = blockIdx.x % a.maxch, h = blockIdx.y;
    const int t0 = ci * BT, beg = a.cu[seq], len = a.cu[seq + 1] - beg;
    if (t0 >= len) return;
    const int L = min(BT, len - t0), KR = a.KR, VC = a.VC;
    const GradsLayout lay = la_grads_layout();
    bf16 *Ks = (bf16 *)(smem + lay.k), *Qs = (bf16 *)(smem + lay.q);
    bf16 *Vs = (bf16 *)(smem + lay.v), *Ds = (bf16 *)(smem + lay.d), *Ss = (bf16 *)(smem + lay.s);
    float *pw = (float *)(smem + lay.pw);
    const long row0 = (long)beg + t0, state = (((long)seq * a.maxch + ci) * a.H + h) * KR * VC;
    load_tile(Ks, LD, a.x.p + row0 * a.x.ld + (long)h * KR, a.x.ld, BT, KP, L, KR, a.vec);
    load_tile(Qs, LD, a.y.p + row0 * a.y.ld + (long)h * KR, a.y.ld, BT, KP, L, KR, a.vec);
    load_tile(Ds, LD, a.z.p + row0 * a.z.ld + (long)h * VC, a.z.ld, BT, KP, L, VC, a.vec);
    load_tile(Vs, LD, v.p + row0 * v.ld + (long)h * VC, v.ld, BT, KP, L, VC, a.vec);
    load_tile(Ss, LD, a.hs + state, VC, KP, KP, KR, VC, a.vec);
    cp_async_commit();
    for (int n = threadIdx.x; n <= BT; n += NT) pw[n] = expf(a.log_decay[h] * (float)n);
    cp_async_wait<0>();
    __syncthreads();

    const int warp = threadIdx.x / 32, strip = warp % OW, half = warp / OW;
    const bool rows = strip * 16 < L;
    const long out0 = row0 * a.ld_out + half * OVT;
    float acc[OVT / 8][4];
    if (rows && VC > half * OVT) { // dv = ((k q^T) .* M^T) do + Lambda k G
        chunk_output<true, KP, OVT, LD, false>(acc, strip, L, Ks, Qs, Ds + half * OVT,
                                               Ss + half * OVT, pw);
        store_output<OVT>(a.out + out0 + (long)h * VC, a.ld_out, acc, strip, L, VC - half * OVT,
                          a.vec);
    }
    if (rows && KR > half * OVT) { // dk = ((v do^T) .* M^T) q + Lambda v G^T
        chunk_output<true, KP, OVT, LD, true>(acc, strip, L, Vs, Ds, Qs + half * OVT,
                                              Ss + half * OVT * LD, pw);
        store_output<OVT>(dk + out0 + (long)h * KR, a.ld_out, acc, strip, L, KR - half * OVT,
                          a.vec);
    }
    if (!dq) return;
    __syncthreads(); // every warp is done with G
    load_tile(Ss, LD, kept + state, VC, KP, KP, KR, VC, a.vec);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (rows && KR > half * OVT) { // dq = ((do v^T) .* M) k + Lambda do S_c^T
        chunk_output<false, KP, OVT, LD, true>(acc, strip, L, Ds, Vs, Ks + half * OVT,
                                               Ss + half * OVT * LD, pw);
        store_output<OVT>(dq + out0 + (long)h * KR, a.ld_out, acc, strip, L, KR - half * OVT,
                          a.vec);
    }
}

} // namespace
