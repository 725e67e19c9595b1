// kernels/distill_loss.c: the two distillation losses (CPU reference): the per-layer MSE
// of attention transfer and the temperature-scaled KL between teacher and student logits.
#include <math.h>
#include <stdlib.h>

#include "../core/util.h"

#include "kernels.h"

// Values per partial sum of the MSE: fixed, so the result does not depend on threads.
enum { MSE_CHUNK = 1 << 14 };

double mse_loss(float *dx, const float *x, const float *target, long n, float grad_scale) {
    long chunks = (n + MSE_CHUNK - 1) / MSE_CHUNK;
    double *partial = xcalloc((size_t)(chunks > 0 ? chunks : 1), sizeof(double));
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++) {
        long end = (c + 1) * MSE_CHUNK < n ? (c + 1) * MSE_CHUNK : n;
        double s = 0.0;
        for (long i = c * MSE_CHUNK; i < end; i++) {
            float d = x[i] - target[i];
            dx[i] = 2.0f * grad_scale * d;
            s += (double)d * d;
        }
        partial[c] = s;
    }
    double total = 0.0;
    for (long c = 0; c < chunks; c++) total += partial[c]; // chunk order: thread-independent
    free(partial);
    return total;
}

// log-sum-exp of x[0..V) / T, in double.
static double log_sum_exp(const float *x, int V, double T) {
    double max = x[0];
    for (int v = 1; v < V; v++) max = fmax(max, x[v]);
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp(((double)x[v] - max) / T);
    return log(sum) + max / T;
}

void kd_loss(float *kl, float *ce, float *dlogits, const float *student, const float *teacher,
             const int *targets, int N, int V, float T, float grad_scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *s = student + (size_t)n * V, *t = teacher + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        double ls = log_sum_exp(s, V, T), lt = log_sum_exp(t, V, T), sum = 0.0;
        for (int v = 0; v < V; v++) {
            double log_p = t[v] / (double)T - lt, log_q = s[v] / (double)T - ls;
            double p = exp(log_p);
            sum += p * (log_p - log_q);
            d[v] = (float)((double)grad_scale * T * (exp(log_q) - p));
        }
        kl[n] = (float)sum;
        ce[n] = targets[n] < 0 ? 0.0f : (float)(log_sum_exp(s, V, 1.0) - s[targets[n]]);
    }
}
