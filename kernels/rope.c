// kernels/rope.c: rotary position embedding in Hugging Face's rotate_half form.
#include <math.h>
#include <stdlib.h>

#include "../core/util.h"
#include "kernels.h"

// cos/sin tables [T][hd/2] for positions pos0 .. pos0+T-1, computed in fp32 the way HF does
// (inv_freq = 1 / theta^(2i/hd), angle = position * inv_freq), so outputs match it.
static void rope_tables(float *cos_t, float *sin_t, int T, int hd, float theta, int pos0) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
            float angle = (float)(pos0 + t) * inv_freq;
            cos_t[(long)t * half + i] = cosf(angle);
            sin_t[(long)t * half + i] = sinf(angle);
        }
    }
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
