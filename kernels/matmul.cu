// kernels/matmul.cu: matmuls on CUDA through cuBLASLt (bf16 in, fp32 accumulate), fwd and bwd.
//
// Row-major and column-major. cuBLASLt is column-major: a row-major matrix X[R, C] with
// rows ld apart is, read column-major, X^T[C, R] with leading dimension ld. So every
// row-major product is written as the product of the transposes:
//
//   forward   out[N, OC] = inp[N, C] W[OC, C]^T   <=>   out^T[OC, N] = W inp^T
//             cuBLAS D[OC, N] = op_T(A) B: A = W's memory seen as W^T[C, OC] (ld C)
//             and transposed back, B = inp seen as inp^T[C, N] (ld C), D = out seen as
//             out^T[OC, N] (ld OC). The bias (length OC, the rows of D) is the BIAS
//             epilogue.
//   dinp      dinp[N, C] = dout[N, OC] W[OC, C]     <=>   dinp^T[C, N] = W^T dout^T
//             D[C, N] = A B: A = W seen as W^T[C, OC] (ld C), B = dout seen as
//             dout^T[OC, N] (ld ld_dout), D = dinp seen as dinp^T[C, N] (ld C); beta 1
//             accumulates, beta 0 overwrites.
//   dweight   dW[OC, C] += dout^T[OC, N] inp[N, C]  <=>  dW^T[C, OC] += inp^T dout
//             D[C, OC] = A op_T(B): A = inp seen as inp^T[C, N] (ld C), B = dout seen
//             as dout^T[OC, N] (ld ld_dout) and transposed back, D = dW seen as
//             dW^T[C, OC] (ld C), fp32, beta 1.
//   logits    logits[N, V] = h[N, D] W[V, D]^T: the forward's product with an fp32 D
//             (as dweight's) and beta 0, so decoding's logits are never rounded to bf16.
//
// Each distinct call shape (transposes, sizes, leading dimensions, output type, bias,
// pointer alignments) gets one plan, built on first use: the matmul descriptor, the
// three layouts and the algorithm cuBLASLt's heuristic picked. A given shape therefore
// always runs the same algorithm, so results are deterministic run to run. A shape
// cuBLASLt has no algorithm for (odd alignments, degenerate sizes) runs a plain fallback
// kernel instead (one thread per output, fp32 accumulation in order): right, not fast.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"

enum { PLAN_SLOTS = 128, FALLBACK_THREADS = 256, FALLBACK_MAX_BLOCKS = 1 << 16 };
enum {
    BIAS_THREADS = 256,
    COLSUM_TX = 32,
    COLSUM_TY = 8,
    COLSUM_MIN_ROWS = 64,
    COLSUM_MAX_SLICES = 4096
};

// What decides a plan. All ints, so memcmp compares keys (no padding).
typedef struct PlanKey {
    int transa, transb, m, n, k, lda, ldb, ldd, d_type, bias;
    int align_a, align_b, align_d, align_bias;
} PlanKey;

typedef struct Plan {
    PlanKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
    bool fallback; // cuBLASLt offered no algorithm (or rejected it): gemm_fallback_kernel
} Plan;

// The context's plans; when all slots are used the oldest is replaced (round robin).
typedef struct PlanCache {
    Plan plans[PLAN_SLOTS];
    int count, next;
} PlanCache;

// The largest power of two (at most 256) that divides the address: cuBLASLt's heuristic
// assumes 256-byte aligned pointers unless told otherwise.
static int alignment_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int align = 256;
    while (align > 1 && a % (uintptr_t)align) align >>= 1;
    return align;
}

static void destroy_plan(Plan *p) {
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->a));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->b));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->d));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->desc));
}

void cuda_matmul_cache_free(CudaContext *ctx) {
    PlanCache *cache = (PlanCache *)ctx->matmul_cache;
    if (!cache) return;
    for (int i = 0; i < cache->count; i++) destroy_plan(&cache->plans[i]);
    free(cache);
    ctx->matmul_cache = NULL;
}

// Says once per plan, for a large product only, that cuBLASLt could not run it (so a slow
// step has a visible cause); small odd shapes fall back silently.
static void warn_fallback(const PlanKey *key, int status) {
    if ((double)key->m * key->n * key->k < 1e8) return;
    fprintf(stderr,
            "bolt: warning: cuBLASLt cannot run the matmul m=%d n=%d k=%d (trans %d%d, ld %d %d "
            "%d, output type %d, bias %d, alignments %d %d %d; status %d): using the slow "
            "fallback kernel\n",
            key->m, key->n, key->k, key->transa, key->transb, key->lda, key->ldb, key->ldd,
            key->d_type, key->bias, key->align_a, key->align_b, key->align_d, status);
}

// Builds the descriptor, the layouts and the heuristic's algorithm for `key` into p.
// `bias` is the call's bias pointer (the heuristic reads its alignment from it).
static void build_plan(CudaContext *ctx, Plan *p, const PlanKey *key, const bf16 *bias) {
    p->key = *key;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    int32_t ta = key->transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    int32_t tb = key->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (key->bias) {
        uint32_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        int32_t bias_type = CUDA_R_16BF;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                    &epilogue, sizeof epilogue));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bias_type, sizeof bias_type));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    }
    // Stored shapes: op(A) is [m, k], so A is stored [k, m] when transposed; likewise B.
    int a_rows = key->transa ? key->k : key->m, a_cols = key->transa ? key->m : key->k;
    int b_rows = key->transb ? key->n : key->k, b_cols = key->transb ? key->k : key->n;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, a_rows, a_cols, key->lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, b_rows, b_cols, key->ldb));
    CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&p->d, (cudaDataType_t)key->d_type, key->m, key->n, key->ldd));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = ctx->workspace_bytes;
    uint32_t al_a = key->align_a, al_b = key->align_b, al_d = key->align_d;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
    cublasLtMatmulHeuristicResult_t result;
    memset(&result, 0, sizeof result);
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx->lt, p->desc, p->a, p->b, p->d, p->d,
                                                       pref, 1, &result, &found);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    p->algo = result.algo;
    p->fallback = st != CUBLAS_STATUS_SUCCESS || found == 0;
    if (p->fallback) warn_fallback(key, (int)st);
}

// The plan for `key`: found in the context's cache, or built (replacing the oldest).
static Plan *get_plan(CudaContext *ctx, const PlanKey *key, const bf16 *bias) {
    PlanCache *cache = (PlanCache *)ctx->matmul_cache;
    if (!cache) {
        cache = (PlanCache *)xcalloc(1, sizeof(PlanCache));
        ctx->matmul_cache = cache;
    }
    for (int i = 0; i < cache->count; i++) {
        if (memcmp(&cache->plans[i].key, key, sizeof *key) == 0) return &cache->plans[i];
    }
    Plan *p;
    if (cache->count < PLAN_SLOTS) {
        p = &cache->plans[cache->count++];
    } else {
        p = &cache->plans[cache->next];
        cache->next = (cache->next + 1) % PLAN_SLOTS;
        destroy_plan(p);
    }
    build_plan(ctx, p, key, bias);
    return p;
}

// The fallback: D[i, j] (column-major, ldd) = alpha sum_l op(A)[i, l] op(B)[l, j]
// (+ beta D[i, j], read only when beta != 0) (+ bias[i]), one thread per element (i
// fastest, so writes coalesce), fp32 accumulation over l in order. D is fp32 when d_fp32,
// else bf16.
static __global__ void gemm_fallback_kernel(int m, int n, int k, const bf16 *A, int lda, int ta,
                                            const bf16 *B, int ldb, int tb, void *D, int d_fp32,
                                            int ldd, float alpha, float beta, const bf16 *bias) {
    long total = (long)m * n;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total;
         idx += (long)gridDim.x * blockDim.x) {
        long i = idx % m, j = idx / m;
        float acc = 0.0f;
        for (long l = 0; l < k; l++) {
            float a = __bfloat162float(ta ? A[l + i * lda] : A[i + l * lda]);
            float b = __bfloat162float(tb ? B[j + l * ldb] : B[l + j * ldb]);
            acc += a * b;
        }
        float v = alpha * acc;
        long di = i + j * ldd;
        if (d_fp32) {
            float *d = (float *)D;
            if (beta != 0.0f) v += beta * d[di];
            if (bias) v += __bfloat162float(bias[i]);
            d[di] = v;
        } else {
            bf16 *d = (bf16 *)D;
            if (beta != 0.0f) v += beta * __bfloat162float(d[di]);
            if (bias) v += __bfloat162float(bias[i]);
            d[di] = __float2bfloat16(v);
        }
    }
}

void cuda_gemm(Backend *be, bool transa, bool transb, int m, int n, int k, const bf16 *A, int lda,
               const bf16 *B, int ldb, void *D, cudaDataType_t d_type, int ldd, float alpha,
               float beta, const bf16 *bias) {
    if (m <= 0 || n <= 0) return;
    check(k > 0, "cuda_gemm: empty inner dimension (m=%d n=%d k=%d)", m, n, k);
    check(!bias || d_type == CUDA_R_16BF, "cuda_gemm: a bias needs a bf16 output");
    CudaContext *ctx = cuda_ctx(be);
    PlanKey key;
    memset(&key, 0, sizeof key);
    key.transa = transa;
    key.transb = transb;
    key.m = m;
    key.n = n;
    key.k = k;
    key.lda = lda;
    key.ldb = ldb;
    key.ldd = ldd;
    key.d_type = (int)d_type;
    key.bias = bias != NULL;
    key.align_a = alignment_of(A);
    key.align_b = alignment_of(B);
    key.align_d = alignment_of(D);
    key.align_bias = bias ? alignment_of(bias) : 0;
    Plan *p = get_plan(ctx, &key, bias);
    if (bias) {
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    }
    if (!p->fallback) {
        // C is D (in place, same layout): beta 0 overwrites, beta 1 accumulates.
        cublasStatus_t st =
            cublasLtMatmul(ctx->lt, p->desc, &alpha, A, p->a, B, p->b, &beta, D, p->d, D, p->d,
                           &p->algo, ctx->workspace, ctx->workspace_bytes, ctx->stream);
        if (st == CUBLAS_STATUS_SUCCESS) return;
        // Rejected before anything ran: this shape takes the fallback from now on.
        if (st != CUBLAS_STATUS_NOT_SUPPORTED && st != CUBLAS_STATUS_INVALID_VALUE)
            CUBLAS_CHECK(st);
        p->fallback = true;
        warn_fallback(&key, (int)st);
    }
    long blocks = ((long)m * n + FALLBACK_THREADS - 1) / FALLBACK_THREADS;
    if (blocks > FALLBACK_MAX_BLOCKS) blocks = FALLBACK_MAX_BLOCKS;
    gemm_fallback_kernel<<<(unsigned)blocks, FALLBACK_THREADS, 0, ctx->stream>>>(
        m, n, k, A, lda, transa, B, ldb, transb, D, d_type == CUDA_R_32F, ldd, alpha, beta, bias);
    CUDA_CHECK_LAUNCH();
}

// out[n, o] = bf16(out[n, o] + bias[o]): the bias when it is not aligned enough for the
// cuBLASLt epilogue (16 bytes).
static __global__ void add_bias_kernel(bf16 *out, const bf16 *bias, long total, int OC) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        int o = (int)(i % OC);
        out[i] = __float2bfloat16(__bfloat162float(out[i]) + __bfloat162float(bias[o]));
    }
}

// out[N, OC] = inp[N, C] @ weight[OC, C]^T (+ bias[OC]).
static void cuda_matmul_forward(Backend *be, Act *out, const Act *inp, const Act *weight,
                                const Act *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    const bf16 *b = as_bf16c(bias);
    bool epilogue_bias = b && alignment_of(b) >= 16;
    cuda_gemm(be, true, false, OC, N, C, as_bf16c(weight), C, as_bf16c(inp), C, as_bf16(out),
              CUDA_R_16BF, OC, 1.0f, 0.0f, epilogue_bias ? b : NULL);
    if (b && !epilogue_bias) {
        long total = (long)N * OC;
        long blocks = (total + BIAS_THREADS - 1) / BIAS_THREADS;
        if (blocks > 65536) blocks = 65536;
        add_bias_kernel<<<(unsigned)blocks, BIAS_THREADS, 0, cuda_ctx(be)->stream>>>(as_bf16(out),
                                                                                     b, total, OC);
        CUDA_CHECK_LAUNCH();
    }
}

// Stage 1 of dbias: partial[s, o] = sum of dout[r, o] over slice s's rows
// [s * rows_per, (s + 1) * rows_per), each thread summing every COLSUM_TY-th row in
// order, then the COLSUM_TY thread sums added in a fixed order.
static __global__ void colsum_partial_kernel(float *partial, const bf16 *dout, int ld, int N,
                                             int OC, int rows_per) {
    __shared__ float sums[COLSUM_TY][COLSUM_TX + 1];
    int o = blockIdx.x * COLSUM_TX + threadIdx.x;
    int r0 = blockIdx.y * rows_per;
    int r1 = min(r0 + rows_per, N);
    float s = 0.0f;
    if (o < OC) {
        for (int r = r0 + threadIdx.y; r < r1; r += COLSUM_TY)
            s += __bfloat162float(dout[(long)r * ld + o]);
    }
    sums[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && o < OC) {
        float t = 0.0f;
        for (int j = 0; j < COLSUM_TY; j++) t += sums[j][threadIdx.x];
        partial[(long)blockIdx.y * OC + o] = t;
    }
}

// Stage 2: dbias[o] += the slices' partial sums, added in slice order.
static __global__ void colsum_finish_kernel(float *dbias, const float *partial, int slices,
                                            int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float t = 0.0f;
    for (int s = 0; s < slices; s++) t += partial[(long)s * OC + o];
    dbias[o] += t;
}

// dbias[o] += sum_n dout[n, o], deterministic: fixed slices (a function of N only), each
// summed in order, then the slices in order.
static void bias_backward(Backend *be, float *dbias, const bf16 *dout, int ld, int N, int OC) {
    int rows_per = COLSUM_MIN_ROWS;
    if ((N + rows_per - 1) / rows_per > COLSUM_MAX_SLICES)
        rows_per = (N + COLSUM_MAX_SLICES - 1) / COLSUM_MAX_SLICES;
    int slices = (N + rows_per - 1) / rows_per;
    float *partial = (float *)cuda_scratch(be, (size_t)slices * OC * sizeof(float));
    cudaStream_t stream = cuda_ctx(be)->stream;
    dim3 grid((OC + COLSUM_TX - 1) / COLSUM_TX, slices), block(COLSUM_TX, COLSUM_TY);
    colsum_partial_kernel<<<grid, block, 0, stream>>>(partial, dout, ld, N, OC, rows_per);
    CUDA_CHECK_LAUNCH();
    colsum_finish_kernel<<<(OC + 255) / 256, 256, 0, stream>>>(dbias, partial, slices, OC);
    CUDA_CHECK_LAUNCH();
}

// logits[N, V] = h[N, D] @ W[V, D]^T in fp32 (see the top of the file).
static void cuda_logits_forward(Backend *be, float *logits, const Act *h, const Act *W, int N,
                                int D, int V) {
    if (N <= 0 || V <= 0) return;
    cuda_gemm(be, true, false, V, N, D, as_bf16c(W), D, as_bf16c(h), D, logits, CUDA_R_32F, V, 1.0f,
              0.0f, NULL);
}

// dinp = dout @ weight (+= with accumulate), dweight += dout^T @ inp (fp32),
// dbias += colsum(dout) (fp32); dout's rows are ld_dout apart. Any gradient may be NULL.
static void cuda_matmul_backward(Backend *be, Act *dinp, float *dweight, float *dbias,
                                 const Act *dout, int ld_dout, const Act *inp, const Act *weight,
                                 int N, int C, int OC, bool accumulate) {
    if (N <= 0) return;
    const bf16 *g = as_bf16c(dout);
    if (dinp) {
        cuda_gemm(be, false, false, C, N, OC, as_bf16c(weight), C, g, ld_dout, as_bf16(dinp),
                  CUDA_R_16BF, C, 1.0f, accumulate ? 1.0f : 0.0f, NULL);
    }
    if (dweight) {
        cuda_gemm(be, false, true, C, OC, N, as_bf16c(inp), C, g, ld_dout, dweight, CUDA_R_32F, C,
                  1.0f, 1.0f, NULL);
    }
    if (dbias) bias_backward(be, dbias, g, ld_dout, N, OC);
}

extern "C" void cuda_register_matmul(Ops *ops) {
    ops->matmul_forward = cuda_matmul_forward;
    ops->matmul_backward = cuda_matmul_backward;
    ops->logits_forward = cuda_logits_forward;
}
