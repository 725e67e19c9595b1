// kernels/gla_bwd.cuh: GLA's backward chunk kernel on CUDA (gla_bwd_chunk_kernel) and the
// intra-chunk gradients through the scores it adds to dq and dk; the chunk form, the shared
// pieces and the forward are in gla_chunk.cuh, the state walks in gla_states.cuh.
#pragma once
#include "gla_chunk.cuh"
#include "mma.cuh"

namespace {

// One lane's 8 values of a staged factor row for intra_grads: x (k for dq, q for dk) at
// channels i .. i + 7 of row `row`, times exp2 of its gates' distance to the reference
// row's gr (exponent <= 0 on both sides), into the warp's staging tile at (r, c).
template <int K>
__device__ void stage_gated(bf16 *xb, int r, int c, const bf16 *x, const float *gc, int row, int i,
                            const float (&gr)[8], bool is_k) {
    constexpr int LDX = K + 8, LDF = K + 8;
    float gx[8], xv[8];
    load8f(gx, gc + row * LDF + i);
    load_bf16<8>(xv, x + row * LDX + i);
    for (int j = 0; j < 8; j++) xv[j] *= fast_exp2(is_k ? gx[j] - gr[j] : gr[j] - gx[j]);
    store_bf16<8>(xb + r * SLD + c, xv);
}

// Two accumulator values (columns col, col + 1 of output row `row`) gated into dq or dk by
// exp2 of the row's distance to the reference row's gates gref there (exponent <= 0).
template <int K>
__device__ void add_gated(float *out, const float *gc, float2 gref, int row, int col, float a0,
                          float a1, bool is_k) {
    constexpr int LDF = K + 8;
    const float2 gv = *reinterpret_cast<const float2 *>(gc + row * LDF + col);
    float2 *po = reinterpret_cast<float2 *>(out + row * LDF + col);
    float2 o2 = *po;
    o2.x += a0 * fast_exp2(is_k ? gref.x - gv.x : gv.x - gref.x);
    o2.y += a1 * fast_exp2(is_k ? gref.y - gv.y : gv.y - gref.y);
    *po = o2;
}

// Adds the intra-chunk gradients through the scores to dq and dk (fp32, rows K + 8 apart),
// given dA (fp32, masked, scaled) and its bf16 copy dAb:
//   dq_t += sum_{s<=t} dA[t][s] k_s exp2(gc_t - gc_s),  dk_s += sum_{t>=s} dA[t][s] q_t ...
// Off-diagonal blocks on tensor cores, one warp per (sub-chunk, 16 channels) item, through
// a reference row between the sub-chunks (the first row of the query sub-chunk for dq, the
// last row of the key sub-chunk for dk), so every exponent is <= 0; the lower-left quarters
// of the diagonal blocks the same way through their row 8; the 8-row triangles left
// elementwise in fp32. All threads call; ends synced.
template <int K, int NTH>
__device__ void intra_grads(float *dq, float *dk, const float *dA, const bf16 *dAb, const bf16 *q,
                            const bf16 *k, const float *gc, bf16 *wb) {
    constexpr int LDX = K + 8, LDF = K + 8, NCB = K / SUB, ITEMS = 2 * (NSUB - 1) * NCB;
    constexpr int NWARP = NTH / 32;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bf16 *xb = wb + warp * WBUF;
    for (int item = warp; item < ITEMS; item += NWARP) {
        const bool is_k = item >= (NSUB - 1) * NCB;
        const int it = is_k ? item - (NSUB - 1) * NCB : item, n = it % NCB;
        const int blk = is_k ? it / NCB : it / NCB + 1; // the output sub-chunk
        const int ref = is_k ? blk * SUB + SUB - 1 : blk * SUB;
        const bf16 *x = is_k ? q : k;
        float acc[2][4] = {};
        const int lo = is_k ? blk + 1 : 0, hi = is_k ? NSUB : blk;
        const int r = lane / 2, c = lane % 2 * 8, i = n * SUB + c; // the lane's 8 values
        float gr[8];
        load8f(gr, gc + ref * LDF + i);
        for (int o = lo; o < hi; o++) {
            stage_gated<K>(xb, r, c, x, gc, o * SUB + r, i, gr, is_k);
            __syncwarp();
            uint32_t fa[4], fb[4];
            load_b(fb, xb, SLD, 0, 0);
            if (is_k) // dA[o block rows][blk block cols] transposed
                load_a_trans(fa, dAb, LDAB, o * SUB, blk * SUB);
            else
                load_a(fa, dAb, LDAB, blk * SUB, o * SUB);
            mma_tile(acc, fa, fb);
            __syncwarp();
        }
        // Gated into dq or dk straight from the fragment: rows g, g + 8, columns 2t, 2t + 1
        // of each 8-column half.
        float *out = is_k ? dk : dq;
        const int g = lane / 4, t = lane % 4;
        for (int h = 0; h < 2; h++) {
            const int col = n * SUB + 8 * h + 2 * t;
            const float2 gref = *reinterpret_cast<const float2 *>(gc + ref * LDF + col);
            for (int v = 0; v < 2; v++)
                add_gated<K>(out, gc, gref, blk * SUB + g + 8 * v, col, acc[h][2 * v],
                             acc[h][2 * v + 1], is_k);
        }
    }
    __syncthreads();
    // The lower-left 8 x 8 quarters of the diagonal blocks (query rows 8-15, key rows 0-7),
    // factored through the block's row 8: an item is one kind, two blocks (b0, b0 + 1) and
    // 16 channels, one mma whose A operand is block-diagonal (b0's dA quarter in rows and
    // columns 0-7, b1's in 8-15, zero elsewhere) and whose B rows r are block b0 + r / 8's.
    for (int item = warp; item < 4 * NCB; item += NWARP) {
        const bool is_k = item >= 2 * NCB;
        const int it = is_k ? item - 2 * NCB : item, n = it % NCB, b0 = it / NCB * 2;
        const int r = lane / 2, c = lane % 2 * 8, i = n * SUB + c, rb = b0 + r / 8;
        const int ref = rb * SUB + 8, row = is_k ? ref + r % 8 : rb * SUB + r % 8;
        float gr[8];
        load8f(gr, gc + ref * LDF + i);
        stage_gated<K>(xb, r, c, is_k ? q : k, gc, row, i, gr, is_k);
        __syncwarp();
        const int g = lane / 4, t = lane % 4;
        uint32_t fa[4] = {0, 0, 0, 0}, fb[4];
        for (int h = 0; h < 2; h++) { // a[0]: b0's quarter, a[3]: b1's
            const bf16 *d = dAb + (b0 + h) * SUB * (LDAB + 1);
            uint32_t v;
            if (!is_k) { // A[t][s] = dA[8 + t][s]
                v = *reinterpret_cast<const uint32_t *>(d + (8 + g) * LDAB + 2 * t);
            } else { // A[s][t] = dA[8 + t][s]
                const __nv_bfloat162 p2 =
                    __halves2bfloat162(d[(8 + 2 * t) * LDAB + g], d[(9 + 2 * t) * LDAB + g]);
                memcpy(&v, &p2, sizeof v);
            }
            fa[h * 3] = v;
        }
        load_b(fb, xb, SLD, 0, 0);
        float acc[2][4] = {};
        mma_tile(acc, fa, fb);
        __syncwarp();
        float *out = is_k ? dk : dq;
        for (int h = 0; h < 2; h++) {
            const int col = n * SUB + 8 * h + 2 * t;
            for (int v = 0; v < 2; v++) { // fragment rows g + 8 v: block b0 + v
                const int rf = (b0 + v) * SUB + 8, orow = is_k ? rf - 8 + g : rf + g;
                const float2 gref = *reinterpret_cast<const float2 *>(gc + rf * LDF + col);
                add_gated<K>(out, gc, gref, orow, col, acc[h][2 * v], acc[h][2 * v + 1], is_k);
            }
        }
    }
    __syncthreads();
    // The rest: the pairs of the 8-row triangles, elementwise.
    for (int e = threadIdx.x; e < CH * K / 8; e += NTH) { // eight channels a thread
        const int t = e / (K / 8), i = (e - t * (K / 8)) * 8, b0 = t / 8 * 8;
        float gt[8], aq[8], ak[8], x[8], gx[8];
        load8f(gt, gc + t * LDF + i);
        load8f(aq, dq + t * LDF + i);
        load8f(ak, dk + t * LDF + i);
        float sq[8] = {}, sk[8] = {};
        for (int s = b0; s <= t; s++) {
            const float d = dA[t * LDA + s];
            load_bf16<8>(x, k + s * LDX + i);
            load8f(gx, gc + s * LDF + i);
            for (int j = 0; j < 8; j++) sq[j] += d * x[j] * fast_exp2(gt[j] - gx[j]);
        }
        for (int u = t; u < b0 + 8; u++) {
            const float d = dA[u * LDA + t];
            load_bf16<8>(x, q + u * LDX + i);
            load8f(gx, gc + u * LDF + i);
            for (int j = 0; j < 8; j++) sk[j] += d * x[j] * fast_exp2(gx[j] - gt[j]);
        }
        for (int j = 0; j < 8; j++) aq[j] += sq[j], ak[j] += sk[j];
        store8f(dq + t * LDF + i, aq);
        store8f(dk + t * LDF + i, ak);
    }
    __syncthreads();
}

// Lower-triangle tile tau (0..9) of a 4x4 tile grid: row block rb, column block cb <= rb.
__device__ __forceinline__ void tri_tile(int tau, int &rb, int &cb) {
    rb = tau < 1 ? 0 : tau < 3 ? 1 : tau < 6 ? 2 : 3;
    cb = tau - rb * (rb + 1) / 2;
}

// Backward of one (chunk, head): dq, dk, dv and dg (see gla_chunk.cuh's file comment); h and dh
// come from the two state sweeps.
template <int K, int BV>
__global__ void __launch_bounds__(chunk_threads(K)) gla_bwd_chunk_kernel(const GlaArgs a) {
    constexpr int NTH = chunk_threads(K), NWARP = NTH / 32;
    typedef Lay<K, BV, NTH> L;
    constexpr int LDX = L::LDX, LDY = L::LDY, LDF = L::LDF, KB = K / SUB, VB = BV / SUB;
    constexpr int NQ = (NSUB * KB + NWARP - 1) / NWARP; // dq (and dk) tiles per warp
    extern __shared__ __align__(128) unsigned char smem[];
    const int c = blockIdx.x, hh = blockIdx.y, seq = a.seq0 + blockIdx.z, H = a.H, V = a.V;
    const ChunkPos cp = chunk_pos(a, seq, c);
    if (cp.L <= 0) return;
    bf16 *sq = (bf16 *)smem, *sk = (bf16 *)(smem + L::bw_k), *Ab = (bf16 *)(smem + L::bw_ab);
    bf16 *skd = (bf16 *)(smem + L::bw_kd), *sv = (bf16 *)(smem + L::bw_v);
    bf16 *sdo = (bf16 *)(smem + L::bw_do), *sh = (bf16 *)(smem + L::bw_h);
    bf16 *sdh = (bf16 *)(smem + L::bw_dh), *wb = (bf16 *)(smem + L::bw_wb);
    float *gc = (float *)(smem + L::bw_g), *A = (float *)(smem + L::bw_a);
    float *dqf = (float *)(smem + L::bw_dq), *dkf = (float *)(smem + L::bw_dk);
    float *tot = (float *)(smem + L::bw_tot);
    float *red = (float *)(smem + L::bw_red), *st = (float *)(smem + L::bw_st);
    const int warp = threadIdx.x / 32;
    const long HK = (long)H * K, HV = (long)H * V, qoff = cp.row0 * a.ld + (long)hh * K;
    chunk_prologue<K, NTH>(a, cp, hh, sq, sk, gc, Ab, wb, tot);
    const float *gl = gc + (CH - 1) * LDF;
    for (int e = threadIdx.x; e < CH * K / 8; e += NTH) { // kd = k exp2(gl - gc)
        const int t = e / (K / 8), i = (e - t * (K / 8)) * 8;
        float x[8], g[8], l[8];
        load_bf16<8>(x, sk + t * LDX + i);
        load8f(g, gc + t * LDF + i);
        load8f(l, gl + i);
        for (int j = 0; j < 8; j++) x[j] *= fast_exp2(l[j] - g[j]);
        store_bf16<8>(skd + t * LDX + i, x);
    }
    // Over value tiles: dA = do v^T (lower tiles), dq = do h^T, dk = v dh^T in fragments;
    // dv written per tile; rowsum(h .* dh) per thread.
    float fdA[2][2][4] = {}, fdq[NQ][2][4] = {}, fdk[NQ][2][4] = {};
    constexpr int P = NTH / K < BV ? NTH / K : BV, SEGJ = BV / P; // threads >= P K idle
    const int hi = threadIdx.x % K, hpart = threadIdx.x / K;
    float hdh = 0.0f;
    const long hoff = (cp.slot * H + hh) * (long)K * V;
    for (int j0 = 0; j0 < V; j0 += BV) {
        load_tile<NTH>(sv, LDY, a.v + cp.row0 * a.ld + (long)hh * V + j0, a.ld, cp.L, CH, BV);
        load_tile<NTH>(sdo, LDY, a.dout + cp.row0 * HV + (long)hh * V + j0, HV, cp.L, CH, BV);
        load_tile<NTH>(sh, LDY, a.h + hoff + j0, V, K, K, BV);
        load_tile<NTH>(sdh, LDY, a.dh + hoff + j0, V, K, K, BV);
        tile_loads_wait();
        __syncthreads();
        uint32_t fa[4], fb[4];
#pragma unroll
        for (int m = 0; m < 2; m++) {
            const int tau = warp + m * NWARP;
            if (tau >= NSUB * (NSUB + 1) / 2) continue;
            int rb, cb;
            tri_tile(tau, rb, cb);
#pragma unroll
            for (int js = 0; js < VB; js++) {
                load_a(fa, sdo, LDY, rb * SUB, js * SUB);
                load_b_trans(fb, sv, LDY, cb * SUB, js * SUB);
                mma_tile(fdA[m], fa, fb);
            }
        }
#pragma unroll
        for (int m = 0; m < NQ; m++) {
            const int tau = warp + m * NWARP;
            if (tau >= NSUB * KB) continue;
            const int rb = tau / KB, cb = tau % KB;
#pragma unroll
            for (int js = 0; js < VB; js++) {
                load_a(fa, sdo, LDY, rb * SUB, js * SUB);
                load_b_trans(fb, sh, LDY, cb * SUB, js * SUB);
                mma_tile(fdq[m], fa, fb);
                load_a(fa, sv, LDY, rb * SUB, js * SUB);
                load_b_trans(fb, sdh, LDY, cb * SUB, js * SUB);
                mma_tile(fdk[m], fa, fb);
            }
        }
        if (a.dv) { // tiles dealt out as the forward's (OutTiles)
            constexpr int TPW = OutTiles<BV, NWARP>::TPW, RS = OutTiles<BV, NWARP>::RS;
            const int cb = warp % VB, rb0 = warp / VB;
            if (rb0 < NSUB) {
                float acc[TPW][2][4] = {};
#pragma unroll
                for (int ts = 0; ts < NSUB; ts++) { // (scale A)^T do
                    load_b(fb, sdo, LDY, ts * SUB, cb * SUB);
#pragma unroll
                    for (int m = 0; m < TPW; m++) {
                        if (ts < rb0 + m * RS) continue;
                        load_a_trans(fa, Ab, LDAB, ts * SUB, (rb0 + m * RS) * SUB);
                        mma_tile(acc[m], fa, fb);
                    }
                }
#pragma unroll
                for (int is = 0; is < KB; is++) { // + kd dh
                    load_b(fb, sdh, LDY, is * SUB, cb * SUB);
#pragma unroll
                    for (int m = 0; m < TPW; m++) {
                        load_a(fa, skd, LDX, (rb0 + m * RS) * SUB, is * SUB);
                        mma_tile(acc[m], fa, fb);
                    }
                }
#pragma unroll
                for (int m = 0; m < TPW; m++) {
                    const int rb = rb0 + m * RS;
                    bf16 *dst = a.dv + (cp.row0 + rb * SUB) * a.ld + (long)hh * V + j0 + cb * SUB;
                    store_warp_tile(dst, a.ld, acc[m], wb + warp * WBUF, cp.L - rb * SUB);
                }
            }
        }
        for (int jj = 0; hpart < P && jj < SEGJ; jj += SEGJ % 8 == 0 ? 8 : 1) {
            if constexpr (SEGJ % 8 == 0) { // 16-byte reads: the warp's 32 rows hit every bank
                float x[8], y[8];
                load_bf16<8>(x, sh + hi * LDY + hpart * SEGJ + jj);
                load_bf16<8>(y, sdh + hi * LDY + hpart * SEGJ + jj);
                for (int e = 0; e < 8; e++) hdh += x[e] * y[e];
            } else {
                const int j = hpart * SEGJ + ((jj + hi) & (SEGJ - 1));
                hdh += bf(sh[hi * LDY + j]) * bf(sdh[hi * LDY + j]);
            }
        }
        __syncthreads();
    }
    // Fragments to shared memory (dA over A, dq and dk over the value tiles).
#pragma unroll
    for (int m = 0; m < 2; m++) {
        const int tau = warp + m * NWARP;
        if (tau >= NSUB * (NSUB + 1) / 2) continue;
        int rb, cb;
        tri_tile(tau, rb, cb);
        store_acc(A + rb * SUB * LDA + cb * SUB, LDA, fdA[m]);
    }
#pragma unroll
    for (int m = 0; m < NQ; m++) {
        const int tau = warp + m * NWARP;
        if (tau >= NSUB * KB) continue;
        const int rb = tau / KB, cb = tau % KB;
        store_acc(dqf + rb * SUB * LDF + cb * SUB, LDF, fdq[m]);
        store_acc(dkf + rb * SUB * LDF + cb * SUB, LDF, fdk[m]);
    }
    if (hpart < P) red[hpart * K + hi] = hdh;
    __syncthreads();
    // dA masked and scaled (fp32 and bf16); the state parts of dq and dk gated.
    for (int e = threadIdx.x; e < CH * CH; e += NTH) {
        const int t = e / CH, s = e - t * CH;
        const float d = s <= t ? a.scale * A[t * LDA + s] : 0.0f;
        A[t * LDA + s] = d;
        Ab[t * LDAB + s] = __float2bfloat16(d);
    }
    for (int e = threadIdx.x; e < CH * K / 8; e += NTH) {
        const int t = e / (K / 8), i = (e - t * (K / 8)) * 8;
        float x[8], y[8], g[8], l[8];
        load8f(x, dqf + t * LDF + i);
        load8f(y, dkf + t * LDF + i);
        load8f(g, gc + t * LDF + i);
        load8f(l, gl + i);
        for (int j = 0; j < 8; j++) {
            x[j] *= a.scale * fast_exp2(g[j]);
            y[j] *= fast_exp2(l[j] - g[j]);
        }
        store8f(dqf + t * LDF + i, x);
        store8f(dkf + t * LDF + i, y);
    }
    __syncthreads();
    // The state term of the gate gradient: rowsum(dh .* h_out), by way of h_in.
    if (threadIdx.x < K) {
        const int i = threadIdx.x;
        float s = 0.0f;
        for (int p = 0; p < P; p++) s += red[p * K + i];
        s *= fast_exp2(gl[i]);
        for (int t = 0; t < CH; t++) s += bf(sk[t * LDX + i]) * dkf[t * LDF + i];
        st[i] = s;
    }
    __syncthreads();
    intra_grads<K, NTH>(dqf, dkf, A, Ab, sq, sk, gc, wb);
    if (a.dq) store_tile<NTH>(a.dq + qoff, a.ld, dqf, LDF, cp.L, K, NULL);
    if (a.dk) store_tile<NTH>(a.dk + qoff, a.ld, dkf, LDF, cp.L, K, NULL);
    if (!a.dg) return;
    __syncthreads();
    for (int e = threadIdx.x; e < CH * K / 8; e += NTH) {
        const int t = e / (K / 8), i = (e - t * (K / 8)) * 8;
        float x[8], y[8], dx[8], dy[8];
        load_bf16<8>(x, sq + t * LDX + i);
        load_bf16<8>(y, sk + t * LDX + i);
        load8f(dx, dqf + t * LDF + i);
        load8f(dy, dkf + t * LDF + i);
        for (int j = 0; j < 8; j++) dx[j] = x[j] * dx[j] - y[j] * dy[j];
        store8f(dqf + t * LDF + i, dx);
    }
    __syncthreads();
    scan_columns<K, NTH>(dqf, LDF, tot, true, 1.0f);
    store_tile<NTH>(a.dg + cp.row0 * HK + (long)hh * K, HK, dqf, LDF, cp.L, K, st);
}

} // namespace
