// kernels/norm.c: RMSNorm (with optional weight) and TNL's SimpleRMSNorm, per row.
//
// Row sums are fp32 `omp simd` reductions: a fixed lane-wise order (the same on every
// run and thread count), and each lane sums only D / 16 terms, so fp32 is accurate enough.
#include <math.h>
#include <stddef.h>

#include "kernels.h"

// Columns per work item when summing the weight gradient over rows.
enum { NORM_STRIP = 64 };

// mean(x^2) of one row.
static float mean_square(const float *x, int D) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int d = 0; d < D; d++) s += x[d] * x[d];
    return s / (float)D;
}

// NORM_RMS:  rstd = 1 / sqrt(mean(x^2) + eps),  y = x * rstd * weight
// NORM_SRMS: rstd = 1 / (sqrt(mean(x^2)) + eps), y = x * rstd
// (weight NULL means a weight of one; SRMS ignores the weight.)
void norm_forward(float *out, float *rstd, const float *x, const float *weight, int N, int D,
                  float eps, NormKind kind) {
    if (kind == NORM_SRMS) weight = NULL;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (long)n * D;
        float *yr = out + (long)n * D;
        float ms = mean_square(xr, D);
        float r = kind == NORM_RMS ? 1.0f / sqrtf(ms + eps) : 1.0f / (sqrtf(ms) + eps);
        rstd[n] = r;
        if (weight) {
#pragma omp simd
            for (int d = 0; d < D; d++) yr[d] = xr[d] * r * weight[d];
        } else {
#pragma omp simd
            for (int d = 0; d < D; d++) yr[d] = xr[d] * r;
        }
    }
}

// With g = dout * weight (or dout without weight), r = rstd, per row:
// NORM_RMS:  dr/dx = -r^3 x / D, so dx += r g - x r^3 dot(g, x) / D
// NORM_SRMS: r = 1 / (rms + eps), drms/dx = x / (D rms), so
//            dx += r g - x r^2 dot(g, x) / (D rms)     (rms = 0: the second term is 0)
// dweight[d] += sum_n dout[n, d] x[n, d] r[n], summed over n in order per column strip.
void norm_backward(float *dx, float *dweight, const float *dout, const float *x,
                   const float *weight, const float *rstd, int N, int D, float eps, NormKind kind) {
    if (kind == NORM_SRMS) weight = NULL;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (long)n * D;
        const float *gr = dout + (long)n * D;
        float *dxr = dx + (long)n * D;
        float r = rstd[n];
        float gx = 0.0f; // dot(g, x)
        if (weight) {
#pragma omp simd reduction(+ : gx)
            for (int d = 0; d < D; d++) gx += gr[d] * weight[d] * xr[d];
        } else {
#pragma omp simd reduction(+ : gx)
            for (int d = 0; d < D; d++) gx += gr[d] * xr[d];
        }
        float coef; // dx = r g - coef x
        if (kind == NORM_RMS) {
            coef = r * r * r * gx / (float)D;
        } else {
            float rms = sqrtf(mean_square(xr, D));
            coef = rms > 0.0f ? r * r * gx / ((float)D * rms) : 0.0f;
        }
        if (weight) {
#pragma omp simd
            for (int d = 0; d < D; d++) dxr[d] += r * gr[d] * weight[d] - coef * xr[d];
        } else {
#pragma omp simd
            for (int d = 0; d < D; d++) dxr[d] += r * gr[d] - coef * xr[d];
        }
    }
    if (!weight || !dweight) return;
    int strips = (D + NORM_STRIP - 1) / NORM_STRIP;
#pragma omp parallel for schedule(static)
    for (int s = 0; s < strips; s++) {
        int d0 = s * NORM_STRIP;
        int width = D - d0 < NORM_STRIP ? D - d0 : NORM_STRIP;
        float sum[NORM_STRIP] = {0};
        for (int n = 0; n < N; n++) {
            const float *xr = x + (long)n * D + d0;
            const float *gr = dout + (long)n * D + d0;
            float r = rstd[n];
            if (width == NORM_STRIP) {
#pragma omp simd
                for (int d = 0; d < NORM_STRIP; d++) sum[d] += gr[d] * xr[d] * r;
            } else {
                for (int d = 0; d < width; d++) sum[d] += gr[d] * xr[d] * r;
            }
        }
        for (int d = 0; d < width; d++) dweight[d0 + d] += sum[d];
    }
}
