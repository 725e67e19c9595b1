// kernels/cuda_common.cuh: what every CUDA file of the backend shares: the backend's
// context (one stream, one cuBLASLt handle and its workspace), the checked-call helper
// for CUDA and cuBLAS results, bf16 conversions and packing, and the functions by which each .cu
// file puts its ops into the CUDA op table.
#pragma once
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string.h>
#include <type_traits>

#include "../core/util.h"
#include "ops.h"

// The compute type of activations and compute weights on CUDA.
typedef __nv_bfloat16 bf16;

// Which Lightning Attention kernels run (BOLT_LIGHTNING): the plan's choice, or one path
// always (kernels/lightning_attn.cu; for comparing the two).
enum { LIGHTNING_AUTO = 0, LIGHTNING_RECURRENT = 1, LIGHTNING_PARALLEL = 2 };

// Everything the CUDA backend holds (Backend.impl).
typedef struct CudaContext {
    cudaStream_t stream; // every op is enqueued here, in order
    cublasLtHandle_t lt; // matmuls
    void *workspace;     // cuBLASLt workspace, workspace_bytes
    size_t workspace_bytes;
    void *scratch; // grown on demand by cuda_scratch (LM head chunks, partial sums)
    size_t scratch_bytes;
    int device;
    int sm_count;
    int smem_optin;      // the most dynamic shared memory a block may opt in to (bytes)
    void *matmul_cache;  // kernels/matmul.cu: cuBLASLt descriptors and algorithms per shape
    void *alloc_sizes;   // kernels/ops_cuda.cu: the size of each live allocation (ops->alloc)
    size_t bytes_in_use; // ops->alloc's live bytes + workspace + scratch (memory_in_use)
    int lightning_path;  // LIGHTNING_AUTO, _RECURRENT or _PARALLEL
} CudaContext;

static inline CudaContext *cuda_ctx(Backend *be) {
    return (CudaContext *)be->impl;
}

// The checked-call helper: a failed CUDA or cuBLAS call dies naming the call and where.
static inline void cuda_check_at(cudaError_t err, const char *what, const char *file, int line) {
    if (err != cudaSuccess)
        die("CUDA error at %s:%d: %s (%s)", file, line, cudaGetErrorString(err), what);
}
static inline void cublas_check_at(cublasStatus_t st, const char *what, const char *file,
                                   int line) {
    if (st != CUBLAS_STATUS_SUCCESS)
        die("cuBLAS error at %s:%d: status %d (%s)", file, line, (int)st, what);
}
#define CUDA_CHECK(call) cuda_check_at((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) cublas_check_at((call), #call, __FILE__, __LINE__)
// After a kernel launch: a bad launch configuration dies here, not at the next sync.
#define CUDA_CHECK_LAUNCH() cuda_check_at(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// Backend memory as bf16.
static inline bf16 *as_bf16(Act *p) {
    return (bf16 *)p;
}
static inline const bf16 *as_bf16c(const Act *p) {
    return (const bf16 *)p;
}

// Eight floats as eight bf16 in one 16-byte word (16-byte vector loads and stores). Built
// from four 32-bit words: a union with bf16 pairs made the compiler split some stores of the
// word into four.
__device__ inline uint4 pack8(const float *v) {
    uint32_t w[4];
    for (int e = 0; e < 4; e++) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * e], v[2 * e + 1]);
        memcpy(&w[e], &h, sizeof w[e]);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// Eight bf16 of one 16-byte word as floats.
__device__ inline void unpack8(float *v, uint4 u) {
    union {
        uint4 u;
        bf16 b[8];
    } r;
    r.u = u;
    for (int e = 0; e < 8; e++) v[e] = __bfloat162float(r.b[e]);
}

// V consecutive bf16 (V = 8: one 16-byte word, p 16-byte aligned; V = 1: one value) as
// floats, and back. The elementwise kernels are templates on V: 8 where every row start
// is 16-byte aligned, 1 otherwise.
template <int V> __device__ inline void load_bf16(float *v, const bf16 *p) {
    if constexpr (V == 8)
        unpack8(v, *(const uint4 *)p);
    else
        v[0] = __bfloat162float(*p);
}
template <int V> __device__ inline void store_bf16(bf16 *p, const float *v) {
    if constexpr (V == 8)
        *(uint4 *)p = pack8(v);
    else
        *p = __float2bfloat16(v[0]);
}

// 2^x by the hardware approximation, subnormal results flushed to zero (2^-inf = 0): one
// instruction, where exp2f adds a range check and two multiplies around it.
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// True if p is 16-byte aligned (NULL counts as aligned: an absent operand).
static inline bool aligned16(const void *p) {
    return ((uintptr_t)p & 15) == 0;
}

// The caller's chunk_states of a linear-attention op (ops.h) when they hold every one of
// the seqs.n sequences' max_chunks chunks of 64 rows, on a 16-byte boundary; else NULL, and
// the op keeps its chunk states in scratch (and its backward walks them again).
static inline bf16 *kept_chunk_states(const Act *chunk_states, Seqs seqs, int max_chunks) {
    bf16 *p = (bf16 *)as_bf16c(chunk_states);
    return p && max_chunks > 0 && (long)seqs.n * max_chunks * 64 <= seqs.rows && aligned16(p)
               ? p
               : NULL;
}

// True if groups of 8 bf16 tile every row of `cols` columns of each of the n operands:
// cols and every row stride (lds; NULL: rows are cols apart) multiples of 8, every base
// 16-byte aligned. The elementwise kernels take their 16-byte path then.
static inline bool rows_vec8(int cols, const int *lds, const void *const *ptrs, int n) {
    bool ok = cols % 8 == 0;
    for (int i = 0; i < n; i++) ok = ok && (!lds || lds[i] % 8 == 0) && aligned16(ptrs[i]);
    return ok;
}

// Calls f with V = 8 (vec) or 1 as a compile-time constant (std::integral_constant), so
// one launch line serves both instantiations of an elementwise kernel template.
template <typename F> static void with_vec(bool vec, F &&f) {
    if (vec)
        f(std::integral_constant<int, 8>{});
    else
        f(std::integral_constant<int, 1>{});
}

// A device scratch buffer of at least `bytes`, owned by the context and valid until the
// next call of cuda_scratch (ops use it within one call; the stream orders the reuse).
void *cuda_scratch(Backend *be, size_t bytes);

// One cuBLASLt matmul in cuBLAS's column-major terms, on the context's stream and
// workspace (kernels/matmul.cu): D[m, n] = alpha op(A) op(B) + beta D (+ bias[m] broadcast
// over the columns, if bias is non-NULL; only with a bf16 D). op(A) is [m, k]: A is stored
// [k, m] (lda >= k) when transa, else [m, k] (lda >= m); likewise op(B) is [k, n]. A and B
// are bf16; D is bf16 or fp32 (CUDA_R_16BF, CUDA_R_32F); fp32 accumulation.
void cuda_gemm(Backend *be, bool transa, bool transb, int m, int n, int k, const bf16 *A, int lda,
               const bf16 *B, int ldb, void *D, cudaDataType_t d_type, int ldd, float alpha,
               float beta, const bf16 *bias);
// Frees the context's cached cuBLASLt descriptors (kernels/matmul.cu; backend teardown).
void cuda_matmul_cache_free(CudaContext *ctx);

// Deterministic device sums in two stages of a fixed shape (kernels/adamw.cu): stage 1 runs
// sum_blocks(n) blocks of RED_THREADS threads, each summing a fixed grid-stride subset in
// fp64 and a fixed tree order (block_tree_sum) into one partial; stage 2
// (cuda_sum_partials) adds the partials in a fixed tree order. The shape is a function of
// n only, so the result is the same run to run. No atomics, no host synchronisation.
enum { RED_THREADS = 256, RED_BLOCKS = 1024 };

// Blocks of stage 1 for n values: one per RED_THREADS values, at most RED_BLOCKS.
static inline int sum_blocks(long n) {
    long blocks = (n + RED_THREADS - 1) / RED_THREADS;
    if (blocks > RED_BLOCKS) blocks = RED_BLOCKS;
    return blocks > 0 ? (int)blocks : 1;
}

// The block's sum of `v` by a fixed tree (blockDim.x == RED_THREADS); every thread gets it.
// At most once per kernel: a second call's writes could meet a slow thread's read of sh[0].
static inline __device__ double block_tree_sum(double v) {
    __shared__ double sh[RED_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = RED_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

// Stage 2, enqueued on the stream: acc[0] += scale * (partial[0] + ... + partial[blocks-1]).
void cuda_sum_partials(Backend *be, float *acc, const double *partial, int blocks, double scale);

// Each CUDA file fills its entries of the op table (ops_cuda.cu calls them all once).
extern "C" {
void cuda_register_memory(Ops *ops);        // kernels/ops_cuda.cu: memory, conversions, sync
void cuda_register_matmul(Ops *ops);        // kernels/matmul.cu
void cuda_register_embedding(Ops *ops);     // kernels/embedding.cu
void cuda_register_norm(Ops *ops);          // kernels/norm.cu
void cuda_register_activation(Ops *ops);    // kernels/activation.cu: gate, logsigmoid
void cuda_register_rope(Ops *ops);          // kernels/rope.cu
void cuda_register_lightning(Ops *ops);     // kernels/lightning_attn.cu
void cuda_register_gla(Ops *ops);           // kernels/gla.cu
void cuda_register_softmax_attn(Ops *ops);  // kernels/softmax_attn.cu
void cuda_register_cross_entropy(Ops *ops); // kernels/cross_entropy.cu
void cuda_register_optimizer(Ops *ops);     // kernels/adamw.cu: adamw, sum_into, sum_squares_into
void cuda_register_distill(Ops *ops);       // kernels/distill_loss.cu: mse_loss, kd_loss
// kernels/ops_cuda.cu: the backend (NULL with a message in *why if no GPU is usable).
Backend *cuda_backend_create(char *why, size_t why_cap);
void cuda_backend_free(Backend *be);
// True if the CUDA runtime sees a GPU; cheap, never dies (no driver or no GPU: false).
bool cuda_device_visible(void);
}
