// dist/zero.c: ZeRO-1 optimizer sharding (see zero.h).
#include "zero.h"

#include "../core/util.h"

void zero_init(Zero *z, Model *m, Comm *c, float beta1, float beta2, float eps,
               float weight_decay) {
    z->model = m;
    z->comm = c;
    z->rank = comm_rank(c);
    z->size = comm_size(c);
    size_t n = m->n_weights, per = (n + (size_t)z->size - 1) / (size_t)z->size;
    z->shard = (per + 63) / 64 * 64; // 256-byte aligned shards
    model_pad_buffers(m, z->shard * (size_t)z->size);
    size_t lo = (size_t)z->rank * z->shard, hi = lo + z->shard;
    lo = lo < n ? lo : n;
    hi = hi < n ? hi : n;
    optimizer_create_range(&z->opt, m, beta1, beta2, eps, weight_decay, lo, hi);
}

void zero_free(Zero *z) {
    optimizer_free(&z->opt, z->model);
}

void zero_reduce_gradients(Zero *z) {
    Model *m = z->model;
    Backend *be = m->be;
    comm_reduce_scatter_sum(z->comm, m->grads, z->shard);
    // The owned shard's padding is zero (every rank's padding is), so it adds nothing.
    be->ops->sum_squares_into(be, m->stats + 1, m->grads + (size_t)z->rank * z->shard,
                              (long)z->shard);
    comm_all_reduce_sum(z->comm, m->stats, 2);
}

void zero_step(Zero *z, float lr, float grad_scale, int step) {
    optimizer_step(&z->opt, z->model, lr, grad_scale, step);
    comm_all_gather(z->comm, z->model->weights, z->shard);
    model_refresh_compute_weights(z->model);
}

void zero_gather_moments(Zero *z, float *adam_m, float *adam_v) {
    Model *m = z->model;
    Backend *be = m->be;
    size_t total = z->shard * (size_t)z->size, own = z->opt.hi - z->opt.lo;
    float *full = be->ops->alloc(be, total * sizeof(float));
    const float *src[2] = {z->opt.m, z->opt.v};
    float *dst[2] = {adam_m, adam_v};
    for (int i = 0; i < 2; i++) {
        be->ops->zero(be, full, total * sizeof(float));
        if (own) be->ops->copy(be, full + z->opt.lo, src[i], own * sizeof(float));
        comm_all_gather(z->comm, full, z->shard);
        be->ops->download(be, dst[i], full, m->n_weights * sizeof(float));
    }
    be->ops->free(be, full);
}

void zero_load_moments(Zero *z, const float *adam_m, const float *adam_v) {
    Backend *be = z->model->be;
    size_t own = z->opt.hi - z->opt.lo;
    if (!own) return;
    be->ops->upload(be, z->opt.m, adam_m + z->opt.lo, own * sizeof(float));
    be->ops->upload(be, z->opt.v, adam_v + z->opt.lo, own * sizeof(float));
}
