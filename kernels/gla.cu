// kernels/gla.cu: the CUDA backend's gla_forward / gla_backward (ops.h) on the kernels of
// gla_chunk.cuh and gla_states.cuh: the shape checks, the launch of each kernel instance for the
// head sizes, the per-chunk state slots in scratch (sequences in groups under a memory budget), and
// the order of the passes.
#include "gla_bwd.cuh"
#include "gla_chunk.cuh"
#include "gla_states.cuh"

namespace {

// Die on shapes the kernels do not take.
void check_shape(const char *fn, Seqs seqs, int H, int kdim, int vdim, int ld) {
    if (kdim != 16 && kdim != 32 && kdim != 64 && kdim != 128)
        die("%s (cuda): kdim=%d is not supported (16, 32, 64 or 128)", fn, kdim);
    if (vdim != 16 && vdim != 32 && vdim != 64 && vdim != 128 && vdim != 256)
        die("%s (cuda): vdim=%d is not supported (16, 32, 64, 128 or 256)", fn, vdim);
    if (H <= 0 || H > 65535) die("%s (cuda): H=%d is out of range (1..65535)", fn, H);
    if ((long)ld < (long)H * kdim || (long)ld < (long)H * vdim)
        die("%s (cuda): ld=%d is less than a row (H=%d, kdim=%d, vdim=%d)", fn, ld, H, kdim, vdim);
    if (seqs.n < 0 || seqs.max_len < 0)
        die("%s (cuda): bad Seqs (n=%d, max_len=%d)", fn, seqs.n, seqs.max_len);
}

// Sets the dynamic shared memory of a kernel (dying if the GPU has less) and launches it.
template <typename Kern>
void launch(Backend *be, Kern kern, dim3 grid, int threads, int bytes, const GlaArgs &a) {
    CudaContext *ctx = cuda_ctx(be);
    if (bytes > ctx->smem_optin)
        die("gla (cuda): these head dims need %d bytes of shared memory, the GPU has %d", bytes,
            ctx->smem_optin);
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    kern<<<grid, threads, bytes, ctx->stream>>>(a);
    CUDA_CHECK_LAUNCH();
}

// One state walk: the instance of four blocks an SM when there are more than two walks an
// SM, else the one of two, which does not spill (see gla_states_kernel's MINB).
template <int K, int BV, bool REV> void walk(Backend *be, dim3 grid, const GlaArgs &a) {
    if ((long)grid.x * grid.y * grid.z > 2L * cuda_ctx(be)->sm_count)
        launch(be, gla_states_kernel<K, BV, REV, 4>, grid, NT, 0, a);
    else
        launch(be, gla_states_kernel<K, BV, REV, 2>, grid, NT, 0, a);
}

// The launches of one group of sequences [a.seq0, a.seq0 + nseq), for fixed K and BV. The
// backward walks the forward's states again unless a.h already holds them (kept).
template <int K, int BV>
void run_group(Backend *be, const GlaArgs &a, int nseq, bool backward, bool kept) {
    typedef Lay<K, BV, chunk_threads(K)> L;
    dim3 sgrid(K / state_rows(K) * (a.V / BV), a.H, nseq), cgrid(a.max_chunks, a.H, nseq);
    if (!backward) {
        walk<K, BV, false>(be, sgrid, a);
        if (a.max_chunks > 0)
            launch(be, gla_fwd_chunk_kernel<K, BV>, cgrid, chunk_threads(K), L::fw_bytes, a);
        return;
    }
    if (!kept) {
        GlaArgs f = a; // the forward sweep only recomputes the chunk states
        f.state_out = NULL;
        walk<K, BV, false>(be, sgrid, f);
    }
    walk<K, BV, true>(be, sgrid, a);
    if (a.max_chunks > 0)
        launch(be, gla_bwd_chunk_kernel<K, BV>, cgrid, chunk_threads(K), L::bw_bytes, a);
}

// run_group for the runtime kdim and value tile (min(vdim, 64)).
void dispatch(Backend *be, const GlaArgs &a, int kdim, int nseq, bool backward, bool kept) {
    const int bv = a.V < 64 ? a.V : 64;
#define GLA_CASE(KK, BB)                                                                           \
    case KK * 1000 + BB:                                                                           \
        run_group<KK, BB>(be, a, nseq, backward, kept);                                            \
        return;
    switch (kdim * 1000 + bv) {
        // clang-format off (one case a line; clang-format reflows macro calls)
        GLA_CASE(16, 16)
        GLA_CASE(16, 32)
        GLA_CASE(16, 64)
        GLA_CASE(32, 16)
        GLA_CASE(32, 32)
        GLA_CASE(32, 64)
        GLA_CASE(64, 16)
        GLA_CASE(64, 32)
        GLA_CASE(64, 64)
        GLA_CASE(128, 16)
        GLA_CASE(128, 32)
        GLA_CASE(128, 64)
        // clang-format on
    }
#undef GLA_CASE
    die("gla (cuda): no kernel for kdim=%d vdim=%d", kdim, a.V);
}

// Runs all sequences in groups whose per-chunk state slots in scratch (h, and dh in the
// backward, max_chunks slots per sequence) fit SLOT_BUDGET; a single sequence may exceed
// it. The slot count is a bound from max_len: the op gets no host-side row total. With
// chunk_states (ops.h) that hold every sequence's slots, h lives there instead, whole: the
// forward leaves it, the backward reads it and skips its walk.
void run_all(Backend *be, GlaArgs a, Seqs seqs, int kdim, bool backward, const Act *chunk_states) {
    static_assert(CH == 64, "kept_chunk_states counts chunks of 64 rows");
    a.max_chunks = (seqs.max_len + CH - 1) / CH;
    const long slot = (long)a.H * kdim * a.V; // values of one chunk state
    bf16 *kept = kept_chunk_states(chunk_states, seqs, a.max_chunks);
    const int nbuf = (kept ? 0 : 1) + (backward ? 1 : 0); // scratch: h unless kept, dh
    const long per_seq = (long)(a.max_chunks > 0 ? a.max_chunks : 1) * slot * (long)sizeof(bf16);
    long group = nbuf > 0 ? SLOT_BUDGET / (per_seq * nbuf) : seqs.n;
    if (group < 1) group = 1;
    if (group > seqs.n) group = seqs.n;
    if (group > 65535) group = 65535;
    unsigned char *scratch =
        nbuf > 0 ? (unsigned char *)cuda_scratch(be, (size_t)(group * per_seq * nbuf)) : NULL;
    for (int s0 = 0; s0 < seqs.n; s0 += (int)group) {
        a.seq0 = s0; // slots count from the group's first sequence
        a.h = kept ? kept + (long)s0 * a.max_chunks * slot : (bf16 *)scratch;
        a.dh = backward ? (bf16 *)(scratch + (kept ? 0 : group * per_seq)) : NULL;
        const int n = seqs.n - s0 < group ? seqs.n - s0 : (int)group;
        dispatch(be, a, kdim, n, backward, backward && kept != NULL);
    }
}

// ops->gla_forward: o and state_out from q, k, v, g and state_in.
void gla_forward_cuda(Backend *be, Act *o, float *state_out, const Act *q, const Act *k,
                      const Act *v, int ld, const Act *g, const float *state_in, float scale,
                      Seqs seqs, int H, int kdim, int vdim, int chunk, Act *chunk_states) {
    (void)chunk;
    check_shape("gla_forward", seqs, H, kdim, vdim, ld);
    if (seqs.n == 0) return;
    GlaArgs a = {};
    a.o = as_bf16(o);
    a.q = as_bf16c(q);
    a.k = as_bf16c(k);
    a.v = as_bf16c(v);
    a.g = as_bf16c(g);
    a.state_in = state_in;
    a.state_out = state_out;
    a.cu = seqs.cu;
    a.ld = ld;
    a.scale = scale;
    a.H = H;
    a.V = vdim;
    run_all(be, a, seqs, kdim, false, chunk_states);
}

// ops->gla_backward: dq, dk, dv, dg and dstate_in (each may be NULL: not wanted). The
// gradients may share memory with q, k, v, g: each chunk block reads its own rows before
// writing them, and the state sweeps run before.
void gla_backward_cuda(Backend *be, Act *dq, Act *dk, Act *dv, Act *dg, float *dstate_in,
                       const Act *dout, const float *dstate_out, const Act *q, const Act *k,
                       const Act *v, int ld, const Act *g, const float *state_in, float scale,
                       Seqs seqs, int H, int kdim, int vdim, int chunk, const Act *chunk_states) {
    (void)chunk;
    check_shape("gla_backward", seqs, H, kdim, vdim, ld);
    if (seqs.n == 0) return;
    GlaArgs a = {};
    a.dq = as_bf16(dq);
    a.dk = as_bf16(dk);
    a.dv = as_bf16(dv);
    a.dg = as_bf16(dg);
    a.dstate_in = dstate_in;
    a.dout = as_bf16c(dout);
    a.dstate_out = dstate_out;
    a.q = as_bf16c(q);
    a.k = as_bf16c(k);
    a.v = as_bf16c(v);
    a.g = as_bf16c(g);
    a.state_in = state_in;
    a.cu = seqs.cu;
    a.ld = ld;
    a.scale = scale;
    a.H = H;
    a.V = vdim;
    run_all(be, a, seqs, kdim, true, chunk_states);
}

} // namespace

extern "C" void cuda_register_gla(Ops *ops) {
    ops->gla_forward = gla_forward_cuda;
    ops->gla_backward = gla_backward_cuda;
}
