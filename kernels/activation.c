// kernels/activation.c: elementwise ops: add, SiLU, SwiGLU, SGLU (product), logsigmoid.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

// e^x for x <= 0, within 2 ulp (0 below -87), in plain arithmetic the compiler vectorises
// (libm's expf is not, and made SiLU/SwiGLU cost as much as the matmuls around them):
// x = n ln2 + r, |r| <= ln2 / 2, e^r by its degree-7 Taylor polynomial, 2^n in the exponent
// bits. The same function as in cross_entropy.c.
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
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : p * two_n;
}

// 1 / (1 + e^-x), from e = e^-|x| <= 1 so nothing overflows: e / (1 + e) for x < 0.
static inline float sigmoid(float x) {
    float e = exp_nonpositive(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

// out = a + b
void add_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// out = x * sigmoid(x)
void silu_forward(float *out, const float *x, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) out[i] = x[i] * sigmoid(x[i]);
}

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x)
void silu_backward(float *dx, const float *dout, const float *x, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float s = sigmoid(x[i]);
        dx[i] += dout[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

// out = silu(gate) * up
void swiglu_forward(float *out, const float *gate, const float *up, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// dgate += dout * up * silu'(gate), dup += dout * silu(gate)
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        float s = sigmoid(g);
        dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] += dout[i] * g * s;
    }
}

// out = a * b
void mul_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) out[i] = a[i] * b[i];
}

// da += dout * b, db += dout * a
void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        da[i] += dout[i] * b[i];
        db[i] += dout[i] * a[i];
    }
}

// out = scale * log(sigmoid(x)) = scale * (min(x, 0) - log1p(e^-|x|)): no overflow and no
// log of a rounded-to-zero sigmoid for large |x|.
void logsigmoid_forward(float *out, const float *x, float scale, long n) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        float xi = x[i];
        out[i] = scale * (fminf(xi, 0.0f) - log1pf(exp_nonpositive(-fabsf(xi))));
    }
}

// d logsigmoid / dx = sigmoid(-x) = 1 - sigmoid(x).
void logsigmoid_backward(float *dx, const float *dout, const float *x, float scale, long n) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) dx[i] += scale * dout[i] * sigmoid(-x[i]);
}
