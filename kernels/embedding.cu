// kernels/embedding.cu: token embedding on CUDA, forward and a deterministic backward.
//
// The backward pass is deterministic without atomics: the (token, row) pairs are sorted
// by token with a stable radix sort (CUB), so each vocabulary row's occurrences form one
// run in row order; the first position of each run sums its rows' gradients in that
// order and adds the sum to the table row once. Repeated runs give bit-identical results.
#include <cub/cub.cuh>

#include "cuda_common.cuh"

enum { EMBED_THREADS = 256, EMBED_MAX_BLOCKS = 1 << 16, RUN_THREADS = 128 };

// out[n, d] = bf16(scale * table[tokens[n], d]), a grid-stride loop over N * D.
static __global__ void embedding_forward_kernel(bf16 *out, const int *tokens, const bf16 *table,
                                                long total, int D, float scale) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        long n = i / D;
        int d = (int)(i - n * D);
        out[i] = __float2bfloat16(scale * __bfloat162float(table[(long)tokens[n] * D + d]));
    }
}

// out[N, D] = scale * table[tokens[n]] (token ids already checked against V on the host).
static void cuda_embedding_forward(Backend *be, Act *out, const int *tokens, const Act *table,
                                   int N, int D, int V, float scale) {
    long total = (long)N * D;
    if (total <= 0) return;
    long blocks = (total + EMBED_THREADS - 1) / EMBED_THREADS;
    if (blocks > EMBED_MAX_BLOCKS) blocks = EMBED_MAX_BLOCKS;
    embedding_forward_kernel<<<(unsigned)blocks, EMBED_THREADS, 0, cuda_ctx(be)->stream>>>(
        as_bf16(out), tokens, as_bf16c(table), total, D, scale);
    CUDA_CHECK_LAUNCH();
}

// rows[i] = i: the values sorted along with the tokens.
static __global__ void iota_kernel(int *rows, int N) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) rows[i] = i;
}

// Block (i, c): if sorted position i starts a run of one token, columns
// [c * RUN_THREADS, (c + 1) * RUN_THREADS) of that token's table row get
// scale * dout[row] added for each row of the run, summed in row order (the sort is
// stable, so the run lists rows in increasing order). Negative tokens are skipped.
static __global__ void embedding_runs_kernel(float *dtable, const bf16 *dout, const int *tok_sorted,
                                             const int *row_sorted, int N, int D, float scale) {
    __shared__ int run_end;
    int i = blockIdx.x;
    int tok = tok_sorted[i];
    if (tok < 0 || (i > 0 && tok_sorted[i - 1] == tok)) return; // not a run start
    if (threadIdx.x == 0) {
        int j = i + 1;
        while (j < N && tok_sorted[j] == tok) j++;
        run_end = j;
    }
    __syncthreads();
    int d = blockIdx.y * RUN_THREADS + threadIdx.x;
    if (d >= D) return;
    int end = run_end;
    float acc = 0.0f;
#pragma unroll 4
    for (int j = i; j < end; j++)
        acc += scale * __bfloat162float(dout[(long)row_sorted[j] * D + d]);
    float *dst = dtable + (long)tok * D + d;
    *dst += acc;
}

// dtable[tokens[n]] += scale * dout[n], deterministic (see the top of the file). Scratch
// holds the sorted tokens and rows and CUB's temporary storage.
static void cuda_embedding_backward(Backend *be, float *dtable, const Act *dout, const int *tokens,
                                    int N, int D, float scale) {
    if (N <= 0 || D <= 0) return;
    cudaStream_t stream = cuda_ctx(be)->stream;
    size_t sort_bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, sort_bytes, (const int *)NULL, (int *)NULL,
                                               (const int *)NULL, (int *)NULL, N, 0,
                                               (int)(8 * sizeof(int)), stream));
    size_t vec_bytes = ((size_t)N * sizeof(int) + 255) / 256 * 256;
    char *scratch = (char *)cuda_scratch(be, 3 * vec_bytes + sort_bytes);
    int *rows = (int *)scratch;
    int *tok_sorted = (int *)(scratch + vec_bytes);
    int *row_sorted = (int *)(scratch + 2 * vec_bytes);
    void *sort_tmp = scratch + 3 * vec_bytes;

    iota_kernel<<<(N + 255) / 256, 256, 0, stream>>>(rows, N);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_tmp, sort_bytes, tokens, tok_sorted, rows,
                                               row_sorted, N, 0, (int)(8 * sizeof(int)), stream));
    dim3 grid(N, (D + RUN_THREADS - 1) / RUN_THREADS);
    embedding_runs_kernel<<<grid, RUN_THREADS, 0, stream>>>(dtable, as_bf16c(dout), tok_sorted,
                                                            row_sorted, N, D, scale);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cuda_register_embedding(Ops *ops) {
    ops->embedding_forward = cuda_embedding_forward;
    ops->embedding_backward = cuda_embedding_backward;
}
