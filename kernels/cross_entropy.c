// kernels/cross_entropy.c: the fused LM head + cross-entropy loss, forward and backward.
//
// Rows of h are processed in blocks: the block's logits [rows, V] go to one scratch buffer, are
// turned into losses (and, for the backward pass, into dlogits in place), then dh and dW take the
// block's contribution through the matmul kernels. The full [N, V] matrix never exists. dW is
// accumulated block by block in row order and the matmul kernels are thread-count independent, so
// the result is too.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "kernels.h"
#include "vec_math.h"

// Rows per block: as many as fit a scratch of CE_SCRATCH floats, within [CE_MIN_ROWS,
// CE_MAX_ROWS]. Many rows amortise packing the [V, D] weight (once per block and product:
// about as costly as the products themselves at 64 rows); the block size depends on V
// only, never on the thread count.
enum { CE_SCRATCH = 1 << 22, CE_MIN_ROWS = 64, CE_MAX_ROWS = 1024 };

// One row of logits -> its loss; with `grad`, the row is overwritten by
// grad_scale * (softmax - onehot(target)) (all zero for an ignored row).
static float row_loss(float *logits, int V, int target, int grad, float grad_scale) {
    if (target < 0) {
        if (grad) memset(logits, 0, (size_t)V * sizeof(float));
        return 0.0f;
    }
    float max = logits[0];
#pragma omp simd reduction(max : max)
    for (int j = 0; j < V; j++) max = logits[j] > max ? logits[j] : max;
    float target_logit = logits[target];
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) {
        float e = exp_nonpositive(logits[j] - max);
        logits[j] = e;
        sum += e;
    }
    if (grad) {
        float scale = grad_scale / sum;
#pragma omp simd
        for (int j = 0; j < V; j++) logits[j] *= scale;
        logits[target] -= grad_scale;
    }
    return (float)(log((double)sum) + ((double)max - (double)target_logit));
}

// losses[n] = logsumexp(h[n] W^T) - (h[n] W^T)[targets[n]], 0 where targets[n] < 0.
// With dh / dW, accumulates the gradient of grad_scale * sum(losses). Returns the number of
// rows with a target >= 0. A target >= V dies.
int lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h, const float *W,
                          const int *targets, int N, int D, int V, float grad_scale) {
    check(V > 0, "cross_entropy: empty vocabulary");
    int counted = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] >= V) {
            die("cross_entropy: target %d at row %d is outside the vocabulary [0, %d)", targets[n],
                n, V);
        }
        if (targets[n] >= 0) counted++;
    }
    int grad = dh != NULL || dW != NULL;
    int block_rows = CE_SCRATCH / V;
    if (block_rows < CE_MIN_ROWS) block_rows = CE_MIN_ROWS;
    if (block_rows > CE_MAX_ROWS) block_rows = CE_MAX_ROWS;
    if (block_rows > N) block_rows = N;
    float *logits = xmalloc((size_t)block_rows * V * sizeof(float));
    for (int r0 = 0; r0 < N; r0 += block_rows) {
        int rows = N - r0 < block_rows ? N - r0 : block_rows;
        const float *hb = h + (long)r0 * D;
        const int *tb = targets + r0;
        int block_counted = 0;
        for (int r = 0; r < rows; r++) block_counted += tb[r] >= 0;
        if (block_counted == 0) {
            for (int r = 0; r < rows; r++) losses[r0 + r] = 0.0f;
            continue;
        }
        matmul_forward(logits, hb, W, NULL, rows, D, V);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            losses[r0 + r] = row_loss(logits + (long)r * V, V, tb[r], grad, grad_scale);
        }
        if (grad) {
            // dlogits [rows, V]: dh_block += dlogits @ W, dW += dlogits^T @ h_block
            matmul_backward(dh ? dh + (long)r0 * D : NULL, dW, NULL, logits, hb, W, rows, D, V);
        }
    }
    free(logits);
    return counted;
}
