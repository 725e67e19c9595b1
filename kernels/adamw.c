// kernels/adamw.c: the AdamW optimizer step on fp32 weights and moments.
#include <math.h>

#include "kernels.h"

// adamw_update with the gradient taken as grad[i] * grad_scale (gradient clipping folded
// into the step; grad itself is not modified). grad_scale = 1 gives adamw_update's results
// bit for bit (x * 1 is exact).
void adamw_update_scaled(float *w, const float *grad, float *m, float *v, long n, float lr,
                         float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                         int step) {
    float correction1 = (float)(1.0 - pow((double)beta1, (double)step));
    float correction2 = (float)(1.0 - pow((double)beta2, (double)step));
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / correction1;
        float vhat = vi / correction2;
        w[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * w[i]);
    }
}

// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; with the bias-corrected moments
// mhat = m / (1 - b1^step) and vhat = v / (1 - b2^step):
// w -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * w)   (decoupled weight decay).
void adamw_update(float *w, const float *grad, float *m, float *v, long n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step) {
    adamw_update_scaled(w, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, 1.0f, step);
}
