// kernels/ops_cuda.cu: the CUDA backend: its context, the memory ops and the op table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unordered_map>

#include "cuda_common.cuh"

// The size of each live allocation, by address (CudaContext.alloc_sizes).
typedef std::unordered_map<void *, size_t> AllocSizes;

enum { CONVERT_THREADS = 256, CONVERT_MAX_BLOCKS = 1 << 16 };
static const size_t WORKSPACE_BYTES = (size_t)32 << 20; // cuBLASLt workspace
static const size_t MIB = (size_t)1 << 20;

// Blocks for a grid-stride loop over n elements.
static unsigned convert_blocks(long n) {
    long blocks = (n + CONVERT_THREADS - 1) / CONVERT_THREADS;
    if (blocks > (long)CONVERT_MAX_BLOCKS) blocks = CONVERT_MAX_BLOCKS;
    return (unsigned)(blocks > 0 ? blocks : 1);
}

// Dies naming the request and the device's memory (the failed cudaMalloc's error is
// cleared first, so the query works).
static void die_out_of_memory(size_t bytes) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    die("CUDA out of memory allocating %zu MiB (%zu MiB of %zu MiB in use on the GPU)",
        (bytes + MIB - 1) / MIB, (total_b - free_b) / MIB, total_b / MIB);
}

// cudaMalloc or die with the sizes.
static void *device_malloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) die_out_of_memory(bytes);
    return p;
}

// The context's scratch buffer, grown to at least `bytes` (rounded up to a MiB). Growing
// waits for the stream first, since queued ops may still use the old buffer; it happens
// only the first few times an op asks for more.
void *cuda_scratch(Backend *be, size_t bytes) {
    CudaContext *ctx = cuda_ctx(be);
    if (bytes <= ctx->scratch_bytes) return ctx->scratch;
    size_t want = (bytes + MIB - 1) / MIB * MIB;
    if (ctx->scratch) {
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
        CUDA_CHECK(cudaFree(ctx->scratch));
        ctx->bytes_in_use -= ctx->scratch_bytes;
        ctx->scratch = NULL;
        ctx->scratch_bytes = 0;
    }
    ctx->scratch = device_malloc(want);
    ctx->scratch_bytes = want;
    ctx->bytes_in_use += want;
    return ctx->scratch;
}

// ---- memory ops ---------------------------------------------------------------------

// Zeroed device memory (the zeroing is queued on the stream, before any later op),
// counted in memory_in_use. Zero bytes still get a distinct non-NULL pointer (NULL means
// "not needed" to the ops), as on the CPU.
static void *cuda_alloc(Backend *be, size_t bytes) {
    CudaContext *ctx = cuda_ctx(be);
    void *p = device_malloc(bytes ? bytes : 1);
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ctx->stream));
    (*(AllocSizes *)ctx->alloc_sizes)[p] = bytes;
    ctx->bytes_in_use += bytes;
    return p;
}

// cudaFree waits for the device, so nothing queued can still use p.
static void cuda_free_op(Backend *be, void *p) {
    if (!p) return;
    CudaContext *ctx = cuda_ctx(be);
    AllocSizes *sizes = (AllocSizes *)ctx->alloc_sizes;
    AllocSizes::iterator it = sizes->find(p);
    if (it != sizes->end()) {
        ctx->bytes_in_use -= it->second;
        sizes->erase(it);
    }
    CUDA_CHECK(cudaFree(p));
}

static void cuda_zero(Backend *be, void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_ctx(be)->stream));
}

// Host -> device, then wait, so the host buffer may be reused at once.
static void cuda_upload(Backend *be, void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return;
    CudaContext *ctx = cuda_ctx(be);
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

// Device -> host, after every op queued before it; returns with the data in host_dst.
static void cuda_download(Backend *be, void *host_dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CudaContext *ctx = cuda_ctx(be);
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

static void cuda_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes)
        CUDA_CHECK(
            cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_ctx(be)->stream));
}

// rows x width bytes between pitched buffers (one row: a plain copy, whatever the pitches).
static void cuda_copy_2d(Backend *be, void *dst, size_t dst_pitch, const void *src,
                         size_t src_pitch, size_t width, size_t rows) {
    if (!width || !rows) return;
    if (rows == 1) {
        cuda_copy(be, dst, src, width);
        return;
    }
    CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows,
                                 cudaMemcpyDeviceToDevice, cuda_ctx(be)->stream));
}

// dst[i] = bf16(src[i]) (round to nearest even).
static __global__ void float_to_bf16_kernel(bf16 *dst, const float *src, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(src[i]);
}

// dst[i] = float(src[i]) (exact).
static __global__ void bf16_to_float_kernel(float *dst, const bf16 *src, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

static void cuda_float_to_act(Backend *be, Act *dst, const float *src, long n) {
    if (n <= 0) return;
    float_to_bf16_kernel<<<convert_blocks(n), CONVERT_THREADS, 0, cuda_ctx(be)->stream>>>(
        as_bf16(dst), src, n);
    CUDA_CHECK_LAUNCH();
}

static void cuda_act_to_float(Backend *be, float *dst, const Act *src, long n) {
    if (n <= 0) return;
    bf16_to_float_kernel<<<convert_blocks(n), CONVERT_THREADS, 0, cuda_ctx(be)->stream>>>(
        dst, as_bf16c(src), n);
    CUDA_CHECK_LAUNCH();
}

static void cuda_sync(Backend *be) {
    CUDA_CHECK(cudaStreamSynchronize(cuda_ctx(be)->stream));
}

// Bytes this backend holds: live allocations, the cuBLASLt workspace and the scratch
// (not the CUDA context's own memory nor other processes'; die_out_of_memory reports the
// device's total use).
static size_t cuda_memory_in_use(Backend *be) {
    return cuda_ctx(be)->bytes_in_use;
}

extern "C" void cuda_register_memory(Ops *ops) {
    ops->alloc = cuda_alloc;
    ops->free = cuda_free_op;
    ops->zero = cuda_zero;
    ops->upload = cuda_upload;
    ops->download = cuda_download;
    ops->copy = cuda_copy;
    ops->copy_2d = cuda_copy_2d;
    ops->float_to_act = cuda_float_to_act;
    ops->act_to_float = cuda_act_to_float;
    ops->sync = cuda_sync;
    ops->memory_in_use = cuda_memory_in_use;
}

// ---- the backend --------------------------------------------------------------------

// The op table, filled once from every CUDA file's registration function.
static const Ops *cuda_ops_table(void) {
    static Ops ops;
    static bool ready = false;
    if (!ready) {
        memset(&ops, 0, sizeof ops);
        cuda_register_memory(&ops);
        cuda_register_matmul(&ops);
        cuda_register_embedding(&ops);
        cuda_register_norm(&ops);
        cuda_register_activation(&ops);
        cuda_register_rope(&ops);
        cuda_register_lightning(&ops);
        cuda_register_gla(&ops);
        cuda_register_softmax_attn(&ops);
        cuda_register_cross_entropy(&ops);
        cuda_register_optimizer(&ops);
        cuda_register_distill(&ops);
        ready = true;
    }
    return &ops;
}

// Dense bf16 tensor-core peak (no sparsity) by model name, for MFU; 0 when unknown.
// GH200 and H200 carry an H100 SXM's tensor cores.
static double peak_bf16_flops(const char *name) {
    if (strstr(name, "H200")) return 989e12;
    if (strstr(name, "H100")) {
        if (strstr(name, "PCIe")) return 756e12;
        if (strstr(name, "NVL")) return 835e12;
        return 989e12; // SXM ("NVIDIA H100 80GB HBM3")
    }
    if (strstr(name, "A100")) return 312e12;
    return 0.0;
}

// True if the CUDA runtime sees at least one GPU. Asked once (no driver, no GPU or a
// too-old driver: false, never a death); the runtime's error state is cleared after.
extern "C" bool cuda_device_visible(void) {
    static int visible = -1;
    if (visible < 0) {
        int count = 0;
        cudaError_t err = cudaGetDeviceCount(&count);
        (void)cudaGetLastError();
        visible = err == cudaSuccess && count > 0;
    }
    return visible == 1;
}

// BOLT_LIGHTNING (auto, recurrent or parallel): which Lightning Attention kernels run.
static int lightning_path_from_env(void) {
    const char *env = getenv("BOLT_LIGHTNING");
    if (!env || !*env || strcmp(env, "auto") == 0) return LIGHTNING_AUTO;
    if (strcmp(env, "recurrent") == 0) return LIGHTNING_RECURRENT;
    if (strcmp(env, "parallel") == 0) return LIGHTNING_PARALLEL;
    die("BOLT_LIGHTNING=%s: expected auto, recurrent or parallel", env);
    return LIGHTNING_AUTO;
}

// The backend on device BOLT_CUDA_DEVICE (an index among the visible GPUs; default 0):
// one non-blocking stream, a cuBLASLt handle and its workspace. NULL, with the reason in
// why[why_cap], when no GPU is usable; a bad BOLT_CUDA_DEVICE or BOLT_LIGHTNING dies.
extern "C" Backend *cuda_backend_create(char *why, size_t why_cap) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        if (err != cudaSuccess)
            snprintf(why, why_cap, "no usable CUDA device (%s)", cudaGetErrorString(err));
        else
            snprintf(why, why_cap, "no CUDA device visible");
        return NULL;
    }
    int device = 0;
    const char *env = getenv("BOLT_CUDA_DEVICE");
    if (env && *env) device = (int)parse_int_arg("BOLT_CUDA_DEVICE", env, 0, count - 1);
    err = cudaSetDevice(device);
    if (err == cudaSuccess) err = cudaFree(0); // creates the context now: a busy GPU fails here
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(why, why_cap, "CUDA device %d is not usable (%s)", device,
                 cudaGetErrorString(err));
        return NULL;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));

    CudaContext *ctx = (CudaContext *)xcalloc(1, sizeof(CudaContext));
    ctx->device = device;
    ctx->sm_count = prop.multiProcessorCount;
    ctx->smem_optin = (int)prop.sharedMemPerBlockOptin;
    ctx->lightning_path = lightning_path_from_env();
    CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasLtCreate(&ctx->lt));
    ctx->workspace_bytes = WORKSPACE_BYTES;
    ctx->workspace = device_malloc(ctx->workspace_bytes);
    ctx->bytes_in_use = ctx->workspace_bytes;
    ctx->alloc_sizes = new AllocSizes();

    Backend *be = (Backend *)xcalloc(1, sizeof(Backend));
    be->ops = cuda_ops_table();
    be->name = "cuda";
    be->act_size = sizeof(bf16);
    snprintf(be->device_name, sizeof be->device_name, "%.95s", prop.name);
    be->peak_flops = peak_bf16_flops(prop.name);
    be->impl = ctx;
    return be;
}

// Waits for the stream, then releases everything the context holds.
extern "C" void cuda_backend_free(Backend *be) {
    if (!be) return;
    CudaContext *ctx = cuda_ctx(be);
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    cuda_matmul_cache_free(ctx);
    if (ctx->scratch) CUDA_CHECK(cudaFree(ctx->scratch));
    CUDA_CHECK(cudaFree(ctx->workspace));
    CUBLAS_CHECK(cublasLtDestroy(ctx->lt));
    CUDA_CHECK(cudaStreamDestroy(ctx->stream));
    delete (AllocSizes *)ctx->alloc_sizes;
    free(ctx);
    free(be);
}
