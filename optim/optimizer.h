// optim/optimizer.h: AdamW over the model's parameter table: fp32 moments, decoupled
// weight decay except on norms and biases, frozen tensors skipped, global-norm clipping.
#pragma once
#include "../model/model.h"

typedef struct Optimizer {
    float *m, *v; // [n_weights] first and second moments, device memory
    float beta1, beta2, eps, weight_decay;
} Optimizer;

void optimizer_create(Optimizer *o, const Model *model, float beta1, float beta2, float eps,
                      float weight_decay);
void optimizer_free(Optimizer *o, const Model *model);
// The global L2 norm of the gradients of trainable tensors (fp64 sum).
double grad_global_norm(const Model *model);
// If max_norm > 0 and norm > max_norm, scale the trainable tensors' gradients by
// max_norm / norm.
void clip_gradients(Model *model, double norm, float max_norm);
// One AdamW step at learning rate lr; `step` counts from 1.
void optimizer_step(Optimizer *o, Model *model, float lr, int step);
