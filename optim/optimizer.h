// optim/optimizer.h: AdamW over the model's parameter table: fp32 moments, decoupled
// weight decay except on norms and biases, frozen tensors skipped, global-norm clipping
// folded into the update (no pass over the gradients). An optimizer may own only a range
// of the flat parameter buffer (ZeRO-1: each data-parallel rank updates its shard).
#pragma once
#include "../model/model.h"

enum { MAX_PARAM_GROUPS = MAX_PARAMS };

// A run of adjacent tensors updated by one AdamW call (same decay, all trainable). Its
// learning rate is the step's lr x lr_scale (1 for the groups optimizer_create builds;
// distillation builds its own with per-group rates).
typedef struct ParamGroup {
    size_t offset, count;
    float weight_decay;
    float lr_scale;
} ParamGroup;

typedef struct Optimizer {
    size_t lo, hi; // the floats [lo, hi) of the flat buffers this optimizer updates
    float *m, *v;  // [hi - lo] first and second moments of them, backend memory
    float beta1, beta2, eps, weight_decay;
    ParamGroup groups[MAX_PARAM_GROUPS];
    int n_groups;
} Optimizer;

void optimizer_create(Optimizer *o, const Model *model, float beta1, float beta2, float eps,
                      float weight_decay);
// The same for the floats [lo, hi) of the flat buffers only (hi <= n_weights): groups are
// cut to the range and the moments hold hi - lo floats.
void optimizer_create_range(Optimizer *o, const Model *model, float beta1, float beta2, float eps,
                            float weight_decay, size_t lo, size_t hi);
void optimizer_free(Optimizer *o, const Model *model);
// The factor clipping applies to the gradients: max_norm / norm when max_norm > 0 and
// norm exceeds it, else 1.
float clip_scale(double norm, float max_norm);
// One AdamW step at learning rate lr on grads * grad_scale; `step` counts from 1. Writes
// the master weights and their compute copy.
void optimizer_step(Optimizer *o, Model *model, float lr, float grad_scale, int step);
