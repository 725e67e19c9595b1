// optim/optimizer.c: AdamW over the parameter table (see optimizer.h).
#include "optimizer.h"

#include "../core/util.h"

// Adjacent trainable tensors with the same weight decay become one group, so a step is a
// handful of AdamW launches instead of one per tensor. Tensors are cut to [o->lo, o->hi).
static void build_groups(Optimizer *o, const Model *model) {
    o->n_groups = 0;
    for (int i = 0; i < model->n_params; i++) {
        const ParamInfo *p = &model->params[i];
        if (!p->trainable) continue;
        size_t begin = p->offset > o->lo ? p->offset : o->lo;
        size_t end = p->offset + p->numel < o->hi ? p->offset + p->numel : o->hi;
        if (begin >= end) continue;
        float wd = p->no_decay ? 0.0f : o->weight_decay;
        ParamGroup *last = o->n_groups ? &o->groups[o->n_groups - 1] : NULL;
        if (last && last->weight_decay == wd && last->offset + last->count == begin) {
            last->count += end - begin;
        } else {
            o->groups[o->n_groups++] = (ParamGroup){begin, end - begin, wd, 1.0f};
        }
    }
}

void optimizer_create(Optimizer *o, const Model *model, float beta1, float beta2, float eps,
                      float weight_decay) {
    optimizer_create_range(o, model, beta1, beta2, eps, weight_decay, 0, model->n_weights);
}

void optimizer_create_range(Optimizer *o, const Model *model, float beta1, float beta2, float eps,
                            float weight_decay, size_t lo, size_t hi) {
    check(lo <= hi && hi <= model->n_weights, "optimizer: range [%zu, %zu) outside %zu weights", lo,
          hi, model->n_weights);
    Backend *be = model->be;
    o->lo = lo;
    o->hi = hi;
    size_t bytes = (hi - lo > 0 ? hi - lo : 1) * sizeof(float);
    o->m = be->ops->alloc(be, bytes);
    o->v = be->ops->alloc(be, bytes);
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    build_groups(o, model);
}

void optimizer_free(Optimizer *o, const Model *model) {
    model->be->ops->free(model->be, o->m);
    model->be->ops->free(model->be, o->v);
}

float clip_scale(double norm, float max_norm) {
    return max_norm > 0 && norm > max_norm ? (float)(max_norm / norm) : 1.0f;
}

void optimizer_step(Optimizer *o, Model *model, float lr, float grad_scale, int step) {
    Backend *be = model->be;
    for (int i = 0; i < o->n_groups; i++) {
        const ParamGroup *g = &o->groups[i];
        be->ops->adamw_update(be, model->weights + g->offset,
                              act_at(be, model->weights_act, g->offset), model->grads + g->offset,
                              o->m + (g->offset - o->lo), o->v + (g->offset - o->lo),
                              (long)g->count, lr * g->lr_scale, o->beta1, o->beta2, o->eps,
                              g->weight_decay, grad_scale, step);
    }
}
