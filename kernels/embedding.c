// kernels/embedding.c: token embedding lookup (scaled), forward and backward.
#include <string.h>

#include "../core/util.h"
#include "kernels.h"

// Columns per work item in the backward pass: each thread owns whole column strips.
enum { EMBED_STRIP = 32 };

// out[n] = scale * table[tokens[n]]. Every token is checked first, so a bad id dies with
// a clear message instead of reading past the table.
void embedding_forward(float *out, const int *tokens, const float *table, int N, int D, int V,
                       float scale) {
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= V) {
            die("embedding: token id %d at position %d is outside the vocabulary [0, %d)",
                tokens[n], n, V);
        }
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *row = table + (long)tokens[n] * D;
        float *dst = out + (long)n * D;
#pragma omp simd
        for (int d = 0; d < D; d++) dst[d] = scale * row[d];
    }
}

// dtable[tokens[n]] += scale * dout[n]. Repeated tokens add into the same row, so the work
// is split by column strips instead of rows: each strip walks n in order on one thread,
// which keeps every sum in a fixed order whatever the thread count.
void embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int D,
                        float scale) {
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0) die("embedding: negative token id %d at position %d", tokens[n], n);
    }
    int strips = (D + EMBED_STRIP - 1) / EMBED_STRIP;
#pragma omp parallel for schedule(static)
    for (int s = 0; s < strips; s++) {
        int d0 = s * EMBED_STRIP;
        int width = D - d0 < EMBED_STRIP ? D - d0 : EMBED_STRIP;
        for (int n = 0; n < N; n++) {
            float *dst = dtable + (long)tokens[n] * D + d0;
            const float *src = dout + (long)n * D + d0;
            for (int d = 0; d < width; d++) dst[d] += scale * src[d];
        }
    }
}
