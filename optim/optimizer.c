// optim/optimizer.c: AdamW over the parameter table (see optimizer.h).
#include <math.h>

#include "optimizer.h"

void optimizer_create(Optimizer *o, const Model *model, float beta1, float beta2, float eps,
                      float weight_decay) {
    o->m = model->ops->alloc(model->n_weights * sizeof(float));
    o->v = model->ops->alloc(model->n_weights * sizeof(float));
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
}

void optimizer_free(Optimizer *o, const Model *model) {
    model->ops->free(o->m);
    model->ops->free(o->v);
}

double grad_global_norm(const Model *model) {
    double sum = 0;
    for (int i = 0; i < model->n_params; i++) {
        const ParamInfo *p = &model->params[i];
        if (p->trainable) sum += model->ops->sum_squares(model->grads + p->offset, (long)p->numel);
    }
    return sqrt(sum);
}

void clip_gradients(Model *model, double norm, float max_norm) {
    if (max_norm <= 0 || !(norm > max_norm)) return;
    for (int i = 0; i < model->n_params; i++) {
        const ParamInfo *p = &model->params[i];
        if (p->trainable)
            model->ops->scale_inplace(model->grads + p->offset, (float)(max_norm / norm),
                                      (long)p->numel);
    }
}

void optimizer_step(Optimizer *o, Model *model, float lr, int step) {
    for (int i = 0; i < model->n_params; i++) {
        const ParamInfo *p = &model->params[i];
        if (!p->trainable) continue;
        float wd = p->no_decay ? 0.0f : o->weight_decay;
        model->ops->adamw_update(model->weights + p->offset, model->grads + p->offset,
                                 o->m + p->offset, o->v + p->offset, (long)p->numel, lr, o->beta1,
                                 o->beta2, o->eps, wd, step);
    }
}
