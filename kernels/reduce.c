// kernels/reduce.c: the global-norm helpers: a sum of squares and an in-place scale.
#include <stdlib.h>

#include "../core/util.h"
#include "kernels.h"

// Values per partial sum. Fixed, so the chunking (and the result) does not depend on the
// number of threads.
enum { SUM_CHUNK = 1 << 16 };

// Sum of x[i]^2 in double: each fixed chunk is summed on its own, then the partial sums are
// added in chunk order.
double sum_squares(const float *x, long n) {
    if (n <= 0) return 0.0;
    long chunks = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double *partial = xmalloc((size_t)chunks * sizeof(double));
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++) {
        long start = c * SUM_CHUNK;
        long end = start + SUM_CHUNK < n ? start + SUM_CHUNK : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (long i = start; i < end; i++) s += (double)x[i] * (double)x[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (long c = 0; c < chunks; c++) total += partial[c];
    free(partial);
    return total;
}

// x *= s (gradient clipping).
void scale_inplace(float *x, float s, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) x[i] *= s;
}
