// kernels/lightning_attn.cu: the CUDA backend's lightning_attn_forward / backward (ops.h)
// on the chunk kernels of lightning_chunk.cuh (recurrent) and lightning_parallel.cuh
// (chunk-parallel): the launch plan (path, segments per sequence, the kernel instance for
// the head sizes), the per-call scratch, TNL's SiLU passes and the passes of the backward.
#include "lightning_parallel.cuh"

namespace {

// State rows as the kernel runs them: KR rounded up to 32, 64, 128 or 256 (the rows past
// KR are zero; one instantiation per size keeps the loops unrolled).
int choose_kp(int KR) {
    int kp = 32;
    while (kp < KR) kp *= 2;
    return kp;
}

// Columns of Z per block: 32 when VC <= 32, else 64 (32 when the state has more than 128
// rows, for registers and shared memory); the last tile of a head may be partial.
int choose_vt(int VC, int KP) {
    return VC <= 32 || KP > 128 ? 32 : 64;
}

// Die on shapes the kernels do not take.
void check_shape(const char *fn, Seqs seqs, int H, int kdim, int vdim, int ld) {
    if (H <= 0 || kdim <= 0 || vdim <= 0 || kdim > MAX_DIM || vdim > MAX_DIM)
        die("%s (cuda): unsupported shape H=%d kdim=%d vdim=%d (need H > 0, head dims 1..%d)", fn,
            H, kdim, vdim, MAX_DIM);
    if ((long)ld < (long)H * kdim || (long)ld < (long)H * vdim)
        die("%s (cuda): ld=%d is less than a row (H=%d, kdim=%d, vdim=%d)", fn, ld, H, kdim, vdim);
    if (seqs.n < 0 || seqs.max_len < 0 || (seqs.n > 0 && seqs.rows < seqs.max_len))
        die("%s (cuda): bad Seqs (n=%d, max_len=%d, rows=%d)", fn, seqs.n, seqs.max_len, seqs.rows);
}

// Segments per sequence (1..MAX_SEG, at least 256 rows each): the count that finishes
// soonest when every SM runs per_sm blocks at a time (the kernel's occupancy), i.e. waves
// of blocks times the rows a block walks, with a cut sequence paying about half as much
// again for its state-only pass and scan. Cutting only pays when the blocks of whole
// sequences leave SMs idle: at T = 2048, B = 16, H = 8 two full waves beat six waves of
// thirds.
void plan_segments(Backend *be, Seqs seqs, int H, int tiles, int per_sm, int *nseg, int *seg_len) {
    long sms = (long)cuda_ctx(be)->sm_count * per_sm, per = (long)seqs.n * H * tiles;
    long rows = seqs.max_len > 0 ? seqs.max_len : 1;
    *nseg = 1;
    *seg_len = (int)((rows + BT - 1) / BT * BT);
    double best = (double)((per + sms - 1) / sms) * rows;
    for (int n = 2; n <= MAX_SEG; n++) {
        long len = ((rows + n - 1) / n + BT - 1) / BT * BT;
        if (len < 256) break;
        if ((rows + len - 1) / len != n) continue; // rounding left a segment empty
        double cost = 1.5 * (double)((per * n + sms - 1) / sms) * len;
        if (cost < best) {
            best = cost;
            *nseg = n;
            *seg_len = (int)len;
        }
    }
}

// Chunks per sequence (max_len / BT rounded up) when the call takes the chunk-parallel path,
// else 0. Auto (BOLT_LIGHTNING unset) takes it unless the per-chunk states hs (bf16, n x
// chunks x H x kdim x vdim) would be mostly padding (sequences of very unequal lengths) or
// over 2 GiB (a million-token sequence: memory is what limits it there).
int parallel_chunks(Backend *be, Seqs seqs, int H, int kdim, int vdim) {
    int path = cuda_ctx(be)->lightning_path;
    long maxch = ((long)seqs.max_len + BT - 1) / BT, chunks = (long)seqs.n * maxch;
    long needed = ((long)seqs.rows + BT - 1) / BT + seqs.n;
    double bytes = (double)chunks * H * kdim * vdim * sizeof(bf16);
    if (path == LIGHTNING_RECURRENT || maxch == 0) return 0;
    if (path == LIGHTNING_PARALLEL) return (int)maxch;
    return chunks <= needed + needed / 4 && bytes <= 2.0 * (1 << 30) ? (int)maxch : 0;
}

typedef void (*ChunkKernel)(ChunkArgs);

// The kernel families, each an instance per (REV, KP, VT).
struct RecurrentKernel {
    template <bool REV, int KP, int VT> static ChunkKernel get() {
        return la_chunk_kernel<REV, KP, VT>;
    }
};
struct StatesKernel {
    template <bool REV, int KP, int VT> static ChunkKernel get() {
        return la_states_kernel<REV, KP, VT>;
    }
};

// Family F's instance for (REV, KP, VT): KP in 32, 64, 128, 256 and VT in 32, 64 (32 only
// for KP 256), as choose_kp and choose_vt give them.
template <class F, bool REV> ChunkKernel pick_kp(int KP, int VT) {
    switch (KP) {
    case 32:
        return VT == 32 ? F::template get<REV, 32, 32>() : F::template get<REV, 32, 64>();
    case 64:
        return VT == 32 ? F::template get<REV, 64, 32>() : F::template get<REV, 64, 64>();
    case 128:
        return VT == 32 ? F::template get<REV, 128, 32>() : F::template get<REV, 128, 64>();
    default:
        return F::template get<REV, 256, 32>();
    }
}

// Family F's instance for a walk's direction and a.KP, a.VT.
template <class F> ChunkKernel pick(bool rev, const ChunkArgs &a) {
    return rev ? pick_kp<F, true>(a.KP, a.VT) : pick_kp<F, false>(a.KP, a.VT);
}

// Launch kernel on grid with `bytes` of dynamic shared memory (dies if the GPU has less).
void launch_kernel(Backend *be, ChunkKernel kernel, dim3 grid, int bytes, const ChunkArgs &a) {
    CudaContext *ctx = cuda_ctx(be);
    if (bytes > ctx->smem_optin)
        die("lightning_attn (cuda): head dims %d x %d need %d bytes of shared memory, the GPU "
            "has %d",
            a.KR, a.VC, bytes, ctx->smem_optin);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    kernel<<<grid, NT, bytes, ctx->stream>>>(a);
    CUDA_CHECK_LAUNCH();
}

// The grid of a walk over n sequences' segments (state tiles over VC, VT columns each).
dim3 walk_grid(const ChunkArgs &a, int nseq) {
    return dim3((unsigned)(nseq * a.nseg), (unsigned)a.H, (unsigned)((a.VC + a.VT - 1) / a.VT));
}

// The output kernel's instance for (REV, KP, ST): transposed states only in reverse (dk).
template <bool REV, bool ST> ChunkKernel output_kp(int KP) {
    switch (KP) {
    case 32:
        return la_output_kernel<REV, 32, ST>;
    case 64:
        return la_output_kernel<REV, 64, ST>;
    case 128:
        return la_output_kernel<REV, 128, ST>;
    default:
        return la_output_kernel<REV, 256, ST>;
    }
}

// Every chunk's output at once (the chunk-parallel path), from the states in a.hs (with
// trans, each state transposed: dk's, read from the dv walk, and dq's, read from the
// forward's kept chunk states).
void launch_outputs(Backend *be, bool rev, const ChunkArgs &a, int nseq, bool trans = false) {
    ChunkKernel k = trans ? (rev ? output_kp<true, true>(a.KP) : output_kp<false, true>(a.KP))
                    : rev ? output_kp<true, false>(a.KP)
                          : output_kp<false, false>(a.KP);
    dim3 grid((unsigned)(nseq * a.maxch), (unsigned)a.H, (unsigned)((a.VC + OT - 1) / OT));
    launch_kernel(be, k, grid, la_output_layout(a.KP).bytes, a);
}

// dv, dk and (with kept) dq of every chunk at once (la_grads_kernel) from the dv walk's
// states in a.hs and the forward's in kept; a is the dv pass's.
void launch_grads(Backend *be, const ChunkArgs &a, Operand v, bf16 *dk, const bf16 *kept, bf16 *dq,
                  int nseq) {
    CudaContext *ctx = cuda_ctx(be);
    const int bytes = la_grads_layout().bytes;
    CUDA_CHECK(
        cudaFuncSetAttribute(la_grads_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    la_grads_kernel<<<dim3((unsigned)(nseq * a.maxch), (unsigned)a.H), NT, bytes, ctx->stream>>>(
        a, v, dk, kept, dq);
    CUDA_CHECK_LAUNCH();
}

// The states walk over n sequences (la_states_kernel): every chunk's starting state into
// a.hs when set, the final state or the segment's contribution at the end.
void launch_states(Backend *be, bool rev, const ChunkArgs &a, int nseq) {
    launch_kernel(be, pick<StatesKernel>(rev, a), walk_grid(a, nseq),
                  la_walk_layout(a.KP, a.VT).bytes, a);
}

// One pass of the chunk kernels over n sequences: out from X, Y, Z and the state from
// init (or the segment states), fin at the end. With hs set (the chunk-parallel path) the
// states walk writes every chunk's starting state there and the output kernel, if there is
// an output, runs all chunks at once; without hs the recurrent kernel does both, or the
// states walk alone gives fin when there is no output.
void run_pass(Backend *be, bool rev, const ChunkArgs &a, int nseq) {
    if (a.out && !a.hs) {
        launch_kernel(be, pick<RecurrentKernel>(rev, a), walk_grid(a, nseq),
                      la_layout(a.KP, a.VT, a.state_only).bytes, a);
        return;
    }
    launch_states(be, rev, a, nseq);
    if (a.out) launch_outputs(be, rev, a, nseq);
}

// Per-segment states into seg (a state-only pass of Y, Z), then the scan from init.
void segment_states(Backend *be, bool rev, ChunkArgs a, Operand y, Operand z, float *seg,
                    const float *init, int nseq) {
    a.x = y;
    a.y = y;
    a.z = z;
    a.out = NULL;
    a.init = NULL;
    a.fin = NULL;
    a.seg = seg;
    a.trans = 0;
    a.state_only = 1;
    a.hs = NULL;
    launch_states(be, rev, a, nseq);
    long sd = (long)a.KR * a.VC, total = (long)nseq * a.H * sd;
    unsigned blocks = (unsigned)((total + 255) / 256);
    la_scan_kernel<<<blocks, 256, 0, cuda_ctx(be)->stream>>>(
        seg, init, a.cu, a.log_decay, nseq, a.nseg, a.seg_len, a.H, sd, rev ? 1 : 0);
    CUDA_CHECK_LAUNCH();
}

// The path and the segments of a call's walks (a's dims set): the states kernel runs two
// blocks per SM, the recurrent kernel one.
void plan_walks(Backend *be, Seqs seqs, ChunkArgs *a) {
    a->maxch = parallel_chunks(be, seqs, a->H, a->KR, a->VC);
    plan_segments(be, seqs, a->H, (a->VC + a->VT - 1) / a->VT, a->maxch ? 2 : 1, &a->nseg,
                  &a->seg_len);
}

// The fields every launch of one call shares.
ChunkArgs base_args(Seqs seqs, const float *log_decay, int H, int nseg, int seg_len, int vec) {
    ChunkArgs a = {};
    a.cu = seqs.cu;
    a.log_decay = log_decay;
    a.H = H;
    a.nseg = nseg;
    a.seg_len = seg_len;
    a.vec = vec;
    return a;
}

// Sets the state shape (KR rows, VC columns) of a.
void set_dims(ChunkArgs *a, int KR, int VC) {
    a->KR = KR;
    a->VC = VC;
    a->KP = choose_kp(KR);
    a->VT = choose_vt(VC, a->KP);
}

// Scratch for one call: the activated q and k (when silu_qk; [rows, H*kdim] each), nstates
// fp32 segment states and nhs bf16 per-chunk states (the chunk-parallel path), carved from
// the backend's scratch buffer.
struct CallScratch {
    bf16 *q, *k;
    float *states;
    bf16 *hs;
};

CallScratch call_scratch(Backend *be, Seqs seqs, int H, int kdim, bool silu_qk, size_t nstates,
                         size_t nhs) {
    size_t act = silu_qk ? ((size_t)seqs.rows * H * kdim * sizeof(bf16) + 255) / 256 * 256 : 0;
    size_t st = (nstates * sizeof(float) + 255) / 256 * 256;
    char *p = (char *)cuda_scratch(be, 2 * act + st + nhs * sizeof(bf16));
    CallScratch cs = {};
    if (silu_qk) {
        cs.q = (bf16 *)p;
        cs.k = (bf16 *)(p + act);
    }
    if (nstates) cs.states = (float *)(p + 2 * act);
    if (nhs) cs.hs = (bf16 *)(p + 2 * act + st);
    return cs;
}

// One silu_rows_kernel pass over rows x W (see there): up to 256 threads across a row (no
// more than it has units, so narrow rows leave no thread idle), and enough rows at once
// to fill the GPU several times over.
void silu_pass(Backend *be, bf16 *dst, long ld_dst, const bf16 *src, long ld_src, Seqs seqs, int W,
               int vec, int grad) {
    int units = vec ? W / 8 : W, threads = units < 256 ? (units + 31) / 32 * 32 : 256;
    int gx = (units + threads - 1) / threads;
    long gy = 16L * cuda_ctx(be)->sm_count * (256 / threads) / gx;
    if (gy > seqs.rows) gy = seqs.rows;
    if (gy > 65535) gy = 65535;
    if (gy < 1) gy = 1;
    silu_rows_kernel<<<dim3((unsigned)gx, (unsigned)gy), threads, 0, cuda_ctx(be)->stream>>>(
        dst, ld_dst, src, ld_src, seqs.rows, W, vec, grad);
    CUDA_CHECK_LAUNCH();
}

// SiLU of q's and k's head columns into cs (contiguous rows of H * kdim), as operands.
void activate_qk(Backend *be, const CallScratch &cs, const bf16 *q, const bf16 *k, int ld,
                 Seqs seqs, int W, int vec, Operand *Q, Operand *K) {
    silu_pass(be, cs.q, W, q, ld, seqs, W, vec, 0);
    silu_pass(be, cs.k, W, k, ld, seqs, W, vec, 0);
    *Q = Operand{cs.q, W};
    *K = Operand{cs.k, W};
}

// ops->lightning_attn_forward: o (and state_out) from q, k, v (and state_in).
void la_forward(Backend *be, Act *o, float *state_out, const Act *q, const Act *k, const Act *v,
                int ld, const float *state_in, const float *log_decay, Seqs seqs, int H, int kdim,
                int vdim, bool silu_qk, int block, Act *chunk_states) {
    (void)block;
    check_shape("lightning_attn_forward", seqs, H, kdim, vdim, ld);
    if (seqs.n == 0) return;
    const bf16 *qb = as_bf16c(q), *kb = as_bf16c(k), *vb = as_bf16c(v);
    int vec = kdim % 8 == 0 && vdim % 8 == 0 && ld % 8 == 0 && aligned16(qb) && aligned16(kb) &&
              aligned16(vb) && aligned16(o);
    ChunkArgs a = base_args(seqs, log_decay, H, 1, 0, vec);
    set_dims(&a, kdim, vdim);
    plan_walks(be, seqs, &a);
    size_t nstates = a.nseg > 1 ? (size_t)seqs.n * a.nseg * H * kdim * vdim : 0;
    static_assert(BT == 64, "kept_chunk_states counts chunks of 64 rows");
    bf16 *kept = kept_chunk_states(chunk_states, seqs, a.maxch); // (chunk-parallel path only)
    size_t nhs = kept ? 0 : (size_t)seqs.n * a.maxch * H * kdim * vdim;
    CallScratch cs = call_scratch(be, seqs, H, kdim, silu_qk, nstates, nhs);
    a.hs = kept ? kept : cs.hs;
    Operand Q = {qb, ld}, K = {kb, ld}, V = {vb, ld};
    if (silu_qk) activate_qk(be, cs, qb, kb, ld, seqs, H * kdim, vec, &Q, &K);
    if (a.nseg > 1) segment_states(be, false, a, K, V, cs.states, state_in, seqs.n);
    a.x = Q;
    a.y = K;
    a.z = V;
    a.out = as_bf16(o);
    a.ld_out = (long)H * vdim;
    a.init = state_in;
    a.fin = state_out;
    a.seg = cs.states;
    run_pass(be, false, a, seqs.n);
}

// ops->lightning_attn_backward: dq, dk, dv, dstate_in from dout and dstate_out. Three
// passes of the chunk kernels (dq forward, dv and dk reverse, sharing one walk on the
// chunk-parallel path; there, at head sizes in (64, 128], one output kernel gives dv, dk
// and, when the forward kept its states, dq), after the segment states of S (forward)
// and of its gradient (reverse) when sequences are cut into segments.
void la_backward(Backend *be, Act *dq, Act *dk, Act *dv, float *dstate_in, const Act *dout,
                 const float *dstate_out, const Act *q, const Act *k, const Act *v, int ld,
                 const float *state_in, const float *log_decay, Seqs seqs, int H, int kdim,
                 int vdim, bool silu_qk, int block, const Act *chunk_states) {
    (void)block;
    check_shape("lightning_attn_backward", seqs, H, kdim, vdim, ld);
    if (seqs.n == 0) return;
    const bf16 *qb = as_bf16c(q), *kb = as_bf16c(k), *vb = as_bf16c(v), *gb = as_bf16c(dout);
    int vec = kdim % 8 == 0 && vdim % 8 == 0 && ld % 8 == 0 && aligned16(qb) && aligned16(kb) &&
              aligned16(vb) && aligned16(gb) && aligned16(dq) && aligned16(dk) && aligned16(dv);
    long ldo = (long)H * vdim;
    ChunkArgs base = base_args(seqs, log_decay, H, 1, 0, vec);
    set_dims(&base, kdim, vdim); // the [kdim, vdim] orientation (segment passes, dv)
    plan_walks(be, seqs, &base);
    size_t n = base.nseg > 1 ? (size_t)seqs.n * base.nseg * H * kdim * vdim : 0;
    size_t nhs = (size_t)seqs.n * base.maxch * H * kdim * vdim; // one buffer, pass after pass
    CallScratch cs = call_scratch(be, seqs, H, kdim, silu_qk, 2 * n, nhs);
    base.hs = cs.hs;
    Operand Q = {qb, ld}, K = {kb, ld}, V = {vb, ld}, dO = {gb, ldo};
    if (silu_qk) activate_qk(be, cs, qb, kb, ld, seqs, H * kdim, vec, &Q, &K);
    float *segS = NULL, *segG = NULL;
    // The forward's chunk states, when it kept them: then dq reads them, transposed, as dk
    // reads the dv walk's, and needs neither a walk nor segment states of its own.
    bf16 *kept = kept_chunk_states(chunk_states, seqs, base.maxch);
    if (base.nseg > 1) {
        segS = cs.states;
        segG = segS + n;
        if (dq && !kept) segment_states(be, false, base, K, V, segS, state_in, seqs.n);
        if (dk || dv || dstate_in) segment_states(be, true, base, Q, dO, segG, dstate_out, seqs.n);
    }
    // dv = ((k q^T) .* M^T) do + (w k) G, G ending as dstate_in; dk = ((v do^T) .* M^T) q +
    // (w v) G^T. On the chunk-parallel path dk reads the dv walk's G transposed, and at head
    // sizes in (64, 128] one kernel gives dv, dk and (from the kept states) dq after the walk.
    const bool shared = base.hs && dk;
    const bool fused = shared && dv && choose_kp(kdim) == OT && choose_kp(vdim) == OT &&
                       la_grads_layout().bytes <= cuda_ctx(be)->smem_optin;
    if (dq && !(fused && kept)) { // dq = ((do v^T) .* M) k + Lambda do S^T
        ChunkArgs a = base;
        set_dims(&a, vdim, kdim);
        a.x = dO;
        a.y = V;
        a.z = K;
        a.out = as_bf16(dq);
        a.ld_out = ld;
        a.init = state_in;
        a.seg = segS;
        a.trans = 1;
        if (kept) {
            a.hs = kept; // S entering each chunk as [kdim, vdim]: this pass's S^T
            launch_outputs(be, false, a, seqs.n, true);
        } else {
            run_pass(be, false, a, seqs.n);
        }
    }
    if (dv || dstate_in || shared) {
        ChunkArgs a = base;
        a.x = K;
        a.y = Q;
        a.z = dO;
        a.init = dstate_out;
        a.fin = dstate_in;
        a.seg = segG;
        a.out = dv ? as_bf16(dv) : NULL;
        a.ld_out = ld;
        if (!dv && !shared) a.hs = NULL; // the walk for dstate_in alone keeps no states
        if (fused) {
            launch_states(be, true, a, seqs.n);
            launch_grads(be, a, V, as_bf16(dk), kept, dq && kept ? as_bf16(dq) : NULL, seqs.n);
        } else {
            run_pass(be, true, a, seqs.n);
        }
    }
    if (dk && !fused) {
        ChunkArgs a = base;
        set_dims(&a, vdim, kdim);
        a.x = V;
        a.y = dO;
        a.z = Q;
        a.out = as_bf16(dk);
        a.ld_out = ld;
        a.init = dstate_out;
        a.seg = segG;
        a.trans = 1;
        if (shared) {
            launch_outputs(be, true, a, seqs.n, true);
        } else {
            run_pass(be, true, a, seqs.n);
        }
    }
    if (silu_qk) { // the passes gave the gradients of SiLU(q), SiLU(k)
        if (dq) silu_pass(be, as_bf16(dq), ld, qb, ld, seqs, H * kdim, vec, 1);
        if (dk) silu_pass(be, as_bf16(dk), ld, kb, ld, seqs, H * kdim, vec, 1);
    }
}

} // namespace

extern "C" void cuda_register_lightning(Ops *ops) {
    ops->lightning_attn_forward = la_forward;
    ops->lightning_attn_backward = la_backward;
}
