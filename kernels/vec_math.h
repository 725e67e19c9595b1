// kernels/vec_math.h: small float helpers that several kernel files share (internal to
// kernels/, not part of the kernel API in kernels.h). All are static inline, so each
// kernel file compiles them into its own loops exactly as if they were written there.
#pragma once
#include <stdint.h>
#include <string.h>

// e^x for x <= 0, within 2 ulp (0 below -87, where e^x leaves the normal floats), in plain
// arithmetic the compiler vectorises (libm's expf is not, and made the softmax and SiLU
// cost as much as the matmuls around them): x = n ln2 + r with |r| <= ln2 / 2 (ln2 split
// in two parts so n ln2 is exact), e^r by its degree-7 Taylor polynomial, 2^n built in the
// exponent bits.
static inline float exp_nonpositive(float x) {
    const float round_magic = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
    float n = (x * 1.44269504f + round_magic) - round_magic;
    float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // Unsigned: below about -88 the exponent is negative, and that result is discarded.
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : p * two_n;
}

// sum_i a[i] b[i] in eight interleaved partial sums, added in a fixed order at the end. The
// order is written out in the source, so the compiler may vectorise the lanes but not
// reorder them: the result does not depend on pointer alignment or thread count.
static inline float dot(const float *a, const float *b, int n) {
    float lanes[8] = {0.0f};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++) lanes[l] += a[i + l] * b[i + l];
    }
    float acc = 0.0f;
    for (; i < n; i++) acc += a[i] * b[i];
    for (int l = 0; l < 8; l++) acc += lanes[l];
    return acc;
}

// y += a * x (elementwise, so vectorising cannot change the result).
static inline void axpy(float *y, float a, const float *x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

// dst[0..n) = src[0..n), or zeros where src is NULL (an optional state or its gradient).
static inline void load_or_zero(float *dst, const float *src, long n) {
    if (src)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        memset(dst, 0, (size_t)n * sizeof(float));
}
