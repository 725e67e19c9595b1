// kernels/rope.c: rotary position embedding in Hugging Face's rotate_half form.
#include <math.h>
#include <stdlib.h>

#include "../core/util.h"
#include "kernels.h"

// One position's row of the tables: cos and sin of pos * inv_freq_i for i < hd/2.
static void rope_table_row(float *cos_r, float *sin_r, int pos, int hd, float theta) {
    for (int i = 0; i < hd / 2; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        float angle = (float)pos * inv_freq;
        cos_r[i] = cosf(angle);
        sin_r[i] = sinf(angle);
    }
}

// cos/sin tables [T][hd/2] for positions pos0 .. pos0+T-1, computed in fp32 the way HF does
// (inv_freq = 1 / theta^(2i/hd), angle = position * inv_freq), so outputs match it.
static void rope_tables(float *cos_t, float *sin_t, int T, int hd, float theta, int pos0) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
        rope_table_row(cos_t + (long)t * half, sin_t + (long)t * half, pos0 + t, hd, theta);
}

// Rotate each pair (x[i], x[i + hd/2]) of every head of x [B, T, H, hd] by its position's
// angle times `sign` (+1 or -1), with sn = sign * sin:
// y[i] = x[i] cos - x[i + hd/2] sn, y[i + hd/2] = x[i + hd/2] cos + x[i] sn,
// written to out, or added to it with `accumulate`. sign = -1 rotates back by the same
// angle; negating sin is exact, so it matches the formula with flipped signs bit for bit.
// Both values of a pair are read before either is written, so out may alias x.
static void rope_rotate(float *out, const float *x, int B, int T, int H, int hd, float theta,
                        int pos0, float sign, bool accumulate) {
    check(hd % 2 == 0, "rope: head size %d is odd", hd);
    int half = hd / 2;
    float *cos_t = xmalloc((size_t)T * half * sizeof(float));
    float *sin_t = xmalloc((size_t)T * half * sizeof(float));
    rope_tables(cos_t, sin_t, T, hd, theta, pos0);
#pragma omp parallel for schedule(static)
    for (long row = 0; row < (long)B * T; row++) {
        int t = (int)(row % T);
        const float *c = cos_t + (long)t * half, *s = sin_t + (long)t * half;
        for (int h = 0; h < H; h++) {
            const float *xh = x + (row * H + h) * hd;
            float *oh = out + (row * H + h) * hd;
            for (int i = 0; i < half; i++) {
                float a = xh[i], b = xh[i + half], sn = sign * s[i];
                float lo = a * c[i] - b * sn, hi = b * c[i] + a * sn;
                if (accumulate) {
                    oh[i] += lo;
                    oh[i + half] += hi;
                } else {
                    oh[i] = lo;
                    oh[i + half] = hi;
                }
            }
        }
    }
    free(cos_t);
    free(sin_t);
}

// Rotate each pair (x[i], x[i + hd/2]) of every head by its angle:
// out[i] = x[i] cos - x[i + hd/2] sin, out[i + hd/2] = x[i + hd/2] cos + x[i] sin.
// out may alias x.
void rope_forward(float *out, const float *x, int B, int T, int H, int hd, float theta, int pos0) {
    rope_rotate(out, x, B, T, H, hd, theta, pos0, 1.0f, false);
}

// The rotation is orthogonal, so the gradient is dout rotated back by the same angle:
// dx[i] += dout[i] cos + dout[i + hd/2] sin, dx[i + hd/2] += dout[i + hd/2] cos - dout[i] sin.
void rope_backward(float *dx, const float *dout, int B, int T, int H, int hd, float theta,
                   int pos0) {
    rope_rotate(dx, dout, B, T, H, hd, theta, pos0, -1.0f, true);
}

// RoPE in place on rows of x [N, H, hd] that are ld floats apart, row n at position pos[n]
// (the op table's rope_forward / rope_backward: q and k inside a wider projection, packed
// sequences whose positions restart). `sign` +1 rotates forward, -1 back (the gradient).
// The tables are built by rope_table_row, as rope_forward's, and each pair is rotated with
// the same arithmetic, so results equal rope_forward / rope_backward (into zeros) bit for
// bit. One table row per position in [min, max] when that range is no longer than N (the
// usual case: positions 0..L-1 repeating), else one per row.
void rope_rows(float *x, long ld, const int *pos, int N, int H, int hd, float theta, float sign) {
    check(hd % 2 == 0, "rope: head size %d is odd", hd);
    if (N <= 0) return;
    int half = hd / 2, lo = pos[0], hi = pos[0];
    for (int n = 1; n < N; n++) {
        lo = pos[n] < lo ? pos[n] : lo;
        hi = pos[n] > hi ? pos[n] : hi;
    }
    bool by_position = (long)hi - lo + 1 <= N;
    long rows = by_position ? (long)hi - lo + 1 : N;
    float *cos_t = xmalloc((size_t)rows * half * sizeof(float));
    float *sin_t = xmalloc((size_t)rows * half * sizeof(float));
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++)
        rope_table_row(cos_t + r * half, sin_t + r * half, by_position ? lo + (int)r : pos[r], hd,
                       theta);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        long t = by_position ? pos[n] - lo : n;
        const float *c = cos_t + t * half, *s = sin_t + t * half;
        for (int h = 0; h < H; h++) {
            float *xh = x + n * ld + (long)h * hd;
            for (int i = 0; i < half; i++) {
                float a = xh[i], b = xh[i + half], sn = sign * s[i];
                xh[i] = a * c[i] - b * sn;
                xh[i + half] = b * c[i] + a * sn;
            }
        }
    }
    free(cos_t);
    free(sin_t);
}
