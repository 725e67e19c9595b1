// tests/testing.h: helpers shared by the Check suites (header-only): random tensors,
// relative errors, and a finite-difference gradient checker.
#pragma once
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

// A fresh tensor of n values drawn from N(0, std^2).
static inline float *rand_tensor(Rng *rng, long n, float std) {
    float *x = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = std * rng_normal(rng);
    return x;
}

static inline float *zeros(long n) { return xcalloc((size_t)n, sizeof(float)); }

static inline float *copy_tensor(const float *x, long n) {
    float *y = xmalloc((size_t)n * sizeof(float));
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

// ||a - b|| / max(||b||, tiny): the measure every comparison in the suites uses.
static inline double rel_error(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (isnan(num)) return INFINITY;
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

static inline double dot_double(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

// Finite-difference gradient check. `loss` recomputes a scalar from the current inputs
// (typically dot(forward output, fixed random weights)); `x` is one input tensor, and
// `analytic` its gradient from the backward pass. Perturbs `samples` random entries
// (all of them if samples >= n) by +-eps and returns the relative error
// ||numeric - analytic|| / ||numeric|| over those entries.
typedef double (*LossFn)(void *ctx);
static inline double grad_check(LossFn loss, void *ctx, float *x, const float *analytic, long n,
                                int samples, float eps, Rng *rng) {
    double num = 0, den = 0;
    int count = samples >= n ? (int)n : samples;
    for (int s = 0; s < count; s++) {
        long i = samples >= n ? s : (long)(rng_next(rng) % (uint64_t)n);
        float saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double numeric = (lp - lm) / (2.0 * eps);
        double d = numeric - analytic[i];
        num += d * d;
        den += numeric * numeric;
    }
    return sqrt(num) / fmax(sqrt(den), 1e-12);
}
