// tools/cuda/lightning_attn_check.cu: a standalone check and benchmark of the CUDA
// Lightning Attention kernels (kernels/lightning_attn.cu), outside the library build.
// It compares forward (o, state_out) and backward (dq, dk, dv, dstate_in) with an fp64
// token-by-token recurrence on the same bf16-rounded inputs, over head dims 16..256,
// rectangular heads, packed sequences of uneven lengths (including empty ones), states
// in and out, SiLU on q and k, row strides wider than a row, and segment-split sequences;
// each case on both paths (recurrent and chunk-parallel), which must also agree bit for
// bit (but for dk); then times both paths on the target shape (H=16, d=128, N=32768).
//
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a \
//       tools/cuda/lightning_attn_check.cu -o /tmp/la_check && /tmp/la_check [--no-bench |
//       --bench-only]
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "../../kernels/lightning_attn.cu"

// The library's error path, for this standalone program.
extern "C" void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bolt: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *g_scratch = NULL;
static size_t g_scratch_bytes = 0;

// The backend's scratch buffer (kernels/ops_cuda.cu has the real one).
void *cuda_scratch(Backend *be, size_t bytes) {
    if (bytes <= g_scratch_bytes) return g_scratch;
    CUDA_CHECK(cudaStreamSynchronize(cuda_ctx(be)->stream));
    if (g_scratch) CUDA_CHECK(cudaFree(g_scratch));
    CUDA_CHECK(cudaMalloc(&g_scratch, bytes));
    g_scratch_bytes = bytes;
    return g_scratch;
}

static unsigned long long g_rng = 88172645463325252ULL;

// Uniform in [-1, 1).
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

// Random bf16 values (host copy as the rounded floats).
static std::vector<float> rand_bf16(size_t n, float scale) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = __bfloat162float(__float2bfloat16(frand() * scale));
    return v;
}

static bf16 *to_dev_bf16(const std::vector<float> &h) {
    std::vector<bf16> b(h.size());
    for (size_t i = 0; i < h.size(); i++) b[i] = __float2bfloat16(h[i]);
    bf16 *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, b.size() * sizeof(bf16) + 16));
    CUDA_CHECK(cudaMemcpy(d, b.data(), b.size() * sizeof(bf16), cudaMemcpyHostToDevice));
    return d;
}

static float *to_dev_f32(const std::vector<float> &h) {
    float *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, h.size() * sizeof(float) + 16));
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

static std::vector<float> from_dev_bf16(const bf16 *d, size_t n) {
    std::vector<bf16> b(n);
    CUDA_CHECK(cudaMemcpy(b.data(), d, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++) h[i] = __bfloat162float(b[i]);
    return h;
}

static std::vector<float> from_dev_f32(const float *d, size_t n) {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

static double silu_d(double x) {
    return x / (1.0 + exp(-x));
}
static double dsilu_d(double x) {
    double s = 1.0 / (1.0 + exp(-x));
    return s * (1.0 + x * (1.0 - s));
}

struct Case {
    const char *name;
    std::vector<int> lens;
    int H, kdim, vdim, ld_extra, silu, states;
    int sm_count; // the segment plan's SM count (large: sequences cut into segments)
};

// The fp64 reference: the recurrence per sequence and head, forward then backward.
// Tensors as in ops.h (q, k, v rows ld apart; o, dout contiguous).
static void reference(const Case &c, int ld, const std::vector<int> &cu, const float *q,
                      const float *k, const float *v, const float *dout, const float *s_in,
                      const float *ds_out, const float *log_decay, std::vector<double> &o,
                      std::vector<double> &s_out, std::vector<double> &dq, std::vector<double> &dk,
                      std::vector<double> &dv, std::vector<double> &ds_in) {
    int H = c.H, K = c.kdim, V = c.vdim, n = (int)c.lens.size();
    long N = cu[n], sd = (long)K * V, lo = (long)H * V;
    o.assign(N * lo, 0);
    dq.assign(N * ld, 0);
    dk.assign(N * ld, 0);
    dv.assign(N * ld, 0);
    s_out.assign(n * H * sd, 0);
    ds_in.assign(n * H * sd, 0);
    std::vector<double> S(sd), G(sd), qa(K), ka(K);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            double lam = exp((double)log_decay[h]);
            long p = (long)i * H + h;
            auto act = [&](const float *x, long row, std::vector<double> &out) {
                for (int e = 0; e < K; e++) {
                    double z = x[row * ld + h * K + e];
                    out[e] = c.silu ? silu_d(z) : z;
                }
            };
            for (long e = 0; e < sd; e++) S[e] = s_in ? s_in[p * sd + e] : 0;
            std::vector<std::vector<double>> states;
            states.push_back(S);
            for (long t = cu[i]; t < cu[i + 1]; t++) {
                act(q, t, qa);
                act(k, t, ka);
                for (int a = 0; a < K; a++)
                    for (int b = 0; b < V; b++)
                        S[a * V + b] = lam * S[a * V + b] + ka[a] * v[t * ld + h * V + b];
                for (int b = 0; b < V; b++) {
                    double acc = 0;
                    for (int a = 0; a < K; a++) acc += qa[a] * S[a * V + b];
                    o[t * lo + h * V + b] = acc;
                }
                states.push_back(S);
            }
            for (long e = 0; e < sd; e++) s_out[p * sd + e] = S[e];
            for (long e = 0; e < sd; e++) G[e] = ds_out ? ds_out[p * sd + e] : 0;
            for (long t = cu[i + 1] - 1; t >= cu[i]; t--) {
                const std::vector<double> &St = states[t - cu[i] + 1];
                act(q, t, qa);
                act(k, t, ka);
                const float *g = dout + t * lo + h * V;
                for (int a = 0; a < K; a++) {
                    double acc = 0;
                    for (int b = 0; b < V; b++) acc += g[b] * St[a * V + b];
                    double x = q[t * ld + h * K + a];
                    dq[t * ld + h * K + a] = c.silu ? acc * dsilu_d(x) : acc;
                }
                for (int a = 0; a < K; a++)
                    for (int b = 0; b < V; b++) G[a * V + b] += qa[a] * g[b];
                for (int a = 0; a < K; a++) {
                    double acc = 0;
                    for (int b = 0; b < V; b++) acc += G[a * V + b] * v[t * ld + h * V + b];
                    double x = k[t * ld + h * K + a];
                    dk[t * ld + h * K + a] = c.silu ? acc * dsilu_d(x) : acc;
                }
                for (int b = 0; b < V; b++) {
                    double acc = 0;
                    for (int a = 0; a < K; a++) acc += ka[a] * G[a * V + b];
                    dv[t * ld + h * V + b] = acc;
                }
                for (long e = 0; e < sd; e++) G[e] *= lam;
            }
            for (long e = 0; e < sd; e++) ds_in[p * sd + e] = G[e];
        }
}

// Relative L2 error of got against ref over the elements `use` selects; prints a line and
// returns whether it is within tol.
static bool compare(const char *what, const std::vector<float> &got, const std::vector<double> &ref,
                    const std::vector<char> &use, double tol) {
    double num = 0, den = 0, maxerr = 0, maxref = 0;
    bool finite = true;
    for (size_t i = 0; i < ref.size(); i++) {
        if (!use.empty() && !use[i]) continue;
        if (!isfinite(got[i])) finite = false;
        double d = got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        maxerr = fmax(maxerr, fabs(d));
        maxref = fmax(maxref, fabs(ref[i]));
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    bool ok = finite && rel <= tol;
    printf("    %-20s rel_l2 %.2e  max_abs_err %.2e (max |ref| %.2e)%s\n", what, rel, maxerr,
           maxref, ok ? "" : "   <-- FAIL");
    return ok;
}

// Run one case through the op table and compare every output; true if all pass.
static bool run_case(const Case &c, Backend *be, const Ops *ops) {
    int H = c.H, K = c.kdim, V = c.vdim, n = (int)c.lens.size();
    int d = K > V ? K : V, ld = H * d + c.ld_extra;
    std::vector<int> cu(n + 1, 0);
    int max_len = 0;
    for (int i = 0; i < n; i++) {
        cu[i + 1] = cu[i] + c.lens[i];
        if (c.lens[i] > max_len) max_len = c.lens[i];
    }
    long N = cu[n], sd = (long)K * V;
    cuda_ctx(be)->sm_count = c.sm_count;
    std::vector<float> q = rand_bf16(N * ld, 1.0f), k = rand_bf16(N * ld, 1.0f);
    std::vector<float> v = rand_bf16(N * ld, 1.0f), dout = rand_bf16(N * H * V, 1.0f);
    std::vector<float> s_in = rand_bf16(n * H * sd, 0.5f), ds_out = rand_bf16(n * H * sd, 0.5f);
    std::vector<float> log_decay(H);
    const float decays[] = {-0.01f, -0.3f, -0.002f, -1.5f, -0.05f, 0.0f};
    for (int h = 0; h < H; h++) log_decay[h] = decays[h % 6];

    bf16 *dq_ = to_dev_bf16(q), *dk_ = to_dev_bf16(k), *dv_ = to_dev_bf16(v);
    bf16 *ddo = to_dev_bf16(dout);
    float *dsin = c.states ? to_dev_f32(s_in) : NULL,
          *ddsout = c.states ? to_dev_f32(ds_out) : NULL;
    float *dlog = to_dev_f32(log_decay);
    int *dcu = NULL;
    CUDA_CHECK(cudaMalloc(&dcu, (n + 1) * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(dcu, cu.data(), (n + 1) * sizeof(int), cudaMemcpyHostToDevice));
    // Outputs start as NaN-ish garbage (0xFF bytes), so unwritten elements show.
    bf16 *o_, *gq, *gk, *gv;
    float *sout, *dsin_out;
    size_t nb_ld = (size_t)(N > 0 ? N : 1) * ld * sizeof(bf16);
    CUDA_CHECK(cudaMalloc(&o_, (size_t)(N > 0 ? N : 1) * H * V * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc(&gq, nb_ld));
    CUDA_CHECK(cudaMalloc(&gk, nb_ld));
    CUDA_CHECK(cudaMalloc(&gv, nb_ld));
    CUDA_CHECK(cudaMalloc(&sout, n * H * sd * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dsin_out, n * H * sd * sizeof(float)));
    Seqs seqs = {dcu, n, max_len, (int)N};

    std::vector<double> ro, rs, rdq, rdk, rdv, rds;
    reference(c, ld, cu, q.data(), k.data(), v.data(), dout.data(), c.states ? s_in.data() : NULL,
              c.states ? ds_out.data() : NULL, log_decay.data(), ro, rs, rdq, rdk, rdv, rds);
    // Only the head columns of dq, dk, dv are written.
    std::vector<char> useK(N * ld, 0), useV(N * ld, 0);
    for (long t = 0; t < N; t++) {
        for (int e = 0; e < H * K; e++) useK[t * ld + e] = 1;
        for (int e = 0; e < H * V; e++) useV[t * ld + e] = 1;
    }
    printf("  %s: n=%d N=%ld H=%d kdim=%d vdim=%d ld=%d silu=%d states=%d\n", c.name, n, N, H, K, V,
           ld, c.silu, c.states);
    const double tol = 1e-2;
    bool ok = true;
    std::vector<float> first[6];
    for (int path : {LIGHTNING_RECURRENT, LIGHTNING_PARALLEL}) {
        cuda_ctx(be)->lightning_path = path;
        printf("   %s path\n", path == LIGHTNING_RECURRENT ? "recurrent" : "chunk-parallel");
        CUDA_CHECK(cudaMemset(o_, 0xff, (size_t)(N > 0 ? N : 1) * H * V * sizeof(bf16)));
        CUDA_CHECK(cudaMemset(gq, 0xff, nb_ld));
        CUDA_CHECK(cudaMemset(gk, 0xff, nb_ld));
        CUDA_CHECK(cudaMemset(gv, 0xff, nb_ld));
        CUDA_CHECK(cudaMemset(sout, 0xff, n * H * sd * sizeof(float)));
        CUDA_CHECK(cudaMemset(dsin_out, 0xff, n * H * sd * sizeof(float)));
        ops->lightning_attn_forward(be, (Act *)o_, sout, (const Act *)dq_, (const Act *)dk_,
                                    (const Act *)dv_, ld, dsin, dlog, seqs, H, K, V, c.silu != 0,
                                    64, NULL);
        ops->lightning_attn_backward(be, (Act *)gq, (Act *)gk, (Act *)gv, dsin_out,
                                     (const Act *)ddo, ddsout, (const Act *)dq_, (const Act *)dk_,
                                     (const Act *)dv_, ld, dsin, dlog, seqs, H, K, V, c.silu != 0,
                                     64, NULL);
        CUDA_CHECK(cudaStreamSynchronize(cuda_ctx(be)->stream));
        std::vector<float> got[6] = {
            from_dev_bf16(o_, N * H * V), from_dev_f32(sout, n * H * sd),
            from_dev_bf16(gq, N * ld),    from_dev_bf16(gk, N * ld),
            from_dev_bf16(gv, N * ld),    from_dev_f32(dsin_out, n * H * sd)};
        std::vector<char> all;
        const char *names[6] = {"o", "state_out", "dq", "dk", "dv", "dstate_in"};
        const std::vector<double> *refs[6] = {&ro, &rs, &rdq, &rdk, &rdv, &rds};
        const std::vector<char> *use[6] = {&all, &all, &useK, &useK, &useV, &all};
        for (int i = 0; i < 6; i++) ok &= compare(names[i], got[i], *refs[i], *use[i], tol);
        // The two paths run the same products in the same order: the same bits (in the
        // elements the op writes; NaN garbage elsewhere compares unequal to itself). Not dk:
        // the chunk-parallel path takes its state gradient from the dv walk (see
        // lightning_parallel.cuh), rounded differently; it is held to the fp64 reference.
        if (path == LIGHTNING_RECURRENT) {
            for (int i = 0; i < 6; i++) first[i] = got[i];
        } else {
            long diff = 0;
            for (int i = 0; i < 6; i++)
                if (i != 3)
                    for (size_t e = 0; e < got[i].size(); e++)
                        if ((use[i]->empty() || (*use[i])[e]) &&
                            memcmp(&got[i][e], &first[i][e], 4))
                            diff++;
            printf("    %-20s %ld elements differ from the recurrent path%s\n", "bitwise (not dk)",
                   diff, diff ? "   <-- FAIL" : "");
            ok &= diff == 0;
        }
        // dstate_in alone (no dq, dk, dv), and the forward in place (state_out = state_in).
        CUDA_CHECK(cudaMemset(dsin_out, 0xff, n * H * sd * sizeof(float)));
        ops->lightning_attn_backward(be, NULL, NULL, NULL, dsin_out, (const Act *)ddo, ddsout,
                                     (const Act *)dq_, (const Act *)dk_, (const Act *)dv_, ld, dsin,
                                     dlog, seqs, H, K, V, c.silu != 0, 64, NULL);
        ok &= compare("dstate_in (alone)", from_dev_f32(dsin_out, n * H * sd), rds, all, tol);
        if (dsin) {
            float *s_copy = to_dev_f32(s_in);
            ops->lightning_attn_forward(be, (Act *)o_, s_copy, (const Act *)dq_, (const Act *)dk_,
                                        (const Act *)dv_, ld, s_copy, dlog, seqs, H, K, V,
                                        c.silu != 0, 64, NULL);
            ok &= compare("state_out (in place)", from_dev_f32(s_copy, n * H * sd), rs, all, tol);
            CUDA_CHECK(cudaFree(s_copy));
        }
    }
    void *ptrs[] = {dq_, dk_, dv_, ddo, dsin, ddsout, dlog, dcu, o_, gq, gk, gv, sout, dsin_out};
    for (void *p : ptrs)
        if (p) CUDA_CHECK(cudaFree(p));
    return ok;
}

// Time forward and backward on the target shape: H=16, d=128, N=32768 rows as N/T
// sequences of T rows.
static void bench(Backend *be, const Ops *ops, int T, int d, int path) {
    cuda_ctx(be)->lightning_path = path;
    int H = 16, N = 32768, n = N / T, ld = 3 * H * d;
    std::vector<int> cu(n + 1);
    for (int i = 0; i <= n; i++) cu[i] = i * T;
    bf16 *qkv, *o, *dout, *g;
    float *logd;
    int *dcu;
    CUDA_CHECK(cudaMalloc(&qkv, (size_t)N * ld * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc(&g, (size_t)N * ld * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc(&o, (size_t)N * H * d * sizeof(bf16)));
    CUDA_CHECK(cudaMalloc(&dout, (size_t)N * H * d * sizeof(bf16)));
    CUDA_CHECK(cudaMemset(qkv, 0, (size_t)N * ld * sizeof(bf16)));
    CUDA_CHECK(cudaMemset(dout, 0, (size_t)N * H * d * sizeof(bf16)));
    std::vector<float> ldh(H, -0.05f);
    logd = to_dev_f32(ldh);
    CUDA_CHECK(cudaMalloc(&dcu, (n + 1) * sizeof(int)));
    CUDA_CHECK(cudaMemcpy(dcu, cu.data(), (n + 1) * sizeof(int), cudaMemcpyHostToDevice));
    Seqs seqs = {dcu, n, T, (int)N};
    const Act *q = (const Act *)qkv, *k = (const Act *)(qkv + H * d),
              *v = (const Act *)(qkv + 2 * H * d);
    cudaStream_t st = cuda_ctx(be)->stream;
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float ms_f = 0, ms_b = 0;
    const int iters = 20;
    for (int pass = 0; pass < 2; pass++) { // pass 0 warms up (and grows the scratch)
        CUDA_CHECK(cudaEventRecord(e0, st));
        for (int it = 0; it < iters; it++)
            ops->lightning_attn_forward(be, (Act *)o, NULL, q, k, v, ld, NULL, logd, seqs, H, d, d,
                                        true, 64, NULL);
        CUDA_CHECK(cudaEventRecord(e1, st));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&ms_f, e0, e1));
        CUDA_CHECK(cudaEventRecord(e0, st));
        for (int it = 0; it < iters; it++)
            ops->lightning_attn_backward(be, (Act *)g, (Act *)(g + H * d), (Act *)(g + 2 * H * d),
                                         NULL, (const Act *)dout, NULL, q, k, v, ld, NULL, logd,
                                         seqs, H, d, d, true, 64, NULL);
        CUDA_CHECK(cudaEventRecord(e1, st));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&ms_b, e0, e1));
    }
    double fwd_bytes = 4.0 * N * H * d * 2, bwd_bytes = 8.0 * N * H * d * 2;
    printf("  bench %-9s H=%d d=%d N=%d T=%d: forward %.3f ms (%.0f GB/s), backward %.3f ms "
           "(%.0f GB/s)\n",
           path == LIGHTNING_RECURRENT ? "recurrent" : "parallel", H, d, N, T, ms_f / iters,
           fwd_bytes / (ms_f / iters * 1e6), ms_b / iters, bwd_bytes / (ms_b / iters * 1e6));
    void *ptrs[] = {qkv, g, o, dout, logd, dcu};
    for (void *p : ptrs) CUDA_CHECK(cudaFree(p));
}

int main(int argc, char **argv) {
    bool do_bench = !(argc > 1 && strcmp(argv[1], "--no-bench") == 0);
    bool bench_only = argc > 1 && strcmp(argv[1], "--bench-only") == 0;
    CudaContext ctx = {};
    CUDA_CHECK(cudaGetDevice(&ctx.device));
    CUDA_CHECK(cudaStreamCreate(&ctx.stream));
    int sms = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ctx.device));
    CUDA_CHECK(cudaDeviceGetAttribute(&ctx.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                      ctx.device));
    Backend be = {};
    be.name = "cuda";
    be.act_size = 2;
    be.impl = &ctx;
    Ops ops = {};
    cuda_register_lightning(&ops);
    be.ops = &ops;

    std::vector<Case> cases = {
        {"d16 one seq", {100}, 2, 16, 16, 0, 0, 0, 1},
        {"d16 silu states", {100}, 2, 16, 16, 0, 1, 1, 1},
        {"d32 varlen", {0, 1, 70, 130, 64}, 3, 32, 32, 0, 1, 1, 1},
        {"d64 varlen wide ld", {200, 64, 65}, 2, 64, 64, 64, 1, 1, 1},
        {"d128", {300, 17}, 2, 128, 128, 0, 1, 1, 1},
        {"k32 v64", {150, 90}, 2, 32, 64, 0, 1, 1, 1},
        {"k64 v16", {150, 90}, 2, 64, 16, 0, 0, 1, 1},
        {"d96", {130}, 1, 96, 96, 0, 1, 1, 1},
        {"d20 scalar", {77, 5}, 2, 20, 20, 4, 1, 1, 1},
        {"d32 segments", {1100, 300, 0, 700}, 2, 32, 32, 0, 1, 1, 4096},
        {"d128 segments", {1000}, 1, 128, 128, 0, 1, 1, 4096},
        {"d16 six decays segments", {600, 33}, 6, 16, 16, 0, 1, 1, 4096},
        {"k16 v128 wide ld", {90}, 2, 16, 128, 8, 1, 1, 1},
        {"d256", {150}, 1, 256, 256, 0, 1, 1, 1},
        {"k64 v256", {130, 70}, 2, 64, 256, 0, 0, 1, 1},
        {"d192 segments", {700}, 1, 192, 192, 0, 1, 1, 4096},
    };
    int fails = 0;
    for (const Case &c : cases)
        if (!bench_only && !run_case(c, &be, &ops)) fails++;
    if (!bench_only)
        printf("lightning_attn check: %d of %d cases failed\n", fails, (int)cases.size());
    if (do_bench) {
        ctx.sm_count = sms;
        for (int T : {1024, 4096, 16384, 32768})
            for (int path : {LIGHTNING_RECURRENT, LIGHTNING_PARALLEL})
                bench(&be, &ops, T, 128, path);
    }
    return fails ? 1 : 0;
}
