// kernels/activation.c: elementwise ops: add, SiLU, SwiGLU, SGLU (product), logsigmoid.
#include <math.h>

#include "kernels.h"
#include "vec_math.h"

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

// The gates on rows of F values inside wider matrices (the op table's gate_forward and
// gate_backward, where a and b are column blocks of one projection): out[N, F] (contiguous)
// = act(a) * b with a's rows lda apart and b's ldb apart. Row by row, the same element
// arithmetic as swiglu_forward (GATE_SWISH) and mul_forward (GATE_MUL), so results match
// them bit for bit without gathering the rows first.
void gate_rows_forward(float *out, const float *a, long lda, const float *b, long ldb, int N, int F,
                       GateKind kind) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *ar = a + n * lda, *br = b + n * ldb;
        float *o = out + (long)n * F;
        if (kind == GATE_SWISH) {
#pragma omp simd
            for (int i = 0; i < F; i++) o[i] = ar[i] * sigmoid(ar[i]) * br[i];
        } else {
#pragma omp simd
            for (int i = 0; i < F; i++) o[i] = ar[i] * br[i];
        }
    }
}

// The gates' gradients WRITTEN (=) on strided rows: da (rows ldda apart) and db (lddb
// apart), either NULL. The element arithmetic of swiglu_backward / mul_backward.
void gate_rows_backward(float *da, long ldda, float *db, long lddb, const float *dout,
                        const float *a, long lda, const float *b, long ldb, int N, int F,
                        GateKind kind) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *ar = a + n * lda, *br = b + n * ldb, *dr = dout + (long)n * F;
        float *dar = da ? da + n * ldda : NULL, *dbr = db ? db + n * lddb : NULL;
        if (kind == GATE_SWISH) {
            if (dar) {
#pragma omp simd
                for (int i = 0; i < F; i++) {
                    float g = ar[i];
                    float s = sigmoid(g);
                    dar[i] = dr[i] * br[i] * s * (1.0f + g * (1.0f - s));
                }
            }
            if (dbr) {
#pragma omp simd
                for (int i = 0; i < F; i++) dbr[i] = dr[i] * ar[i] * sigmoid(ar[i]);
            }
        } else {
            if (dar) {
#pragma omp simd
                for (int i = 0; i < F; i++) dar[i] = dr[i] * br[i];
            }
            if (dbr) {
#pragma omp simd
                for (int i = 0; i < F; i++) dbr[i] = dr[i] * ar[i];
            }
        }
    }
}
