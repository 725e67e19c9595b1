// dist/zero.h: ZeRO-1 over the data-parallel ranks. The flat fp32 buffers (master weights,
// gradients) are padded to size * shard floats; rank r owns shard r, floats
// [r*shard, (r+1)*shard), and keeps AdamW moments for it alone. A step: reduce-scatter of
// the gradients (each rank gets the sum of its shard), the squared norm from the owned
// shards summed over ranks, AdamW on the owned shard, all-gather of the updated master
// weights, then the compute copy is rebuilt. Every rank ends a step with the same weights.
#pragma once
#include "../model/model.h"
#include "../optim/optimizer.h"
#include "comm.h"

typedef struct Zero {
    Model *model;
    Comm *comm;
    int rank, size;
    size_t shard;  // floats per rank (a multiple of 64)
    Optimizer opt; // AdamW on the owned floats [opt.lo, opt.hi): shard r cut to n_weights
} Zero;

// Pad m's buffers (model_pad_buffers) and make this rank's optimizer.
void zero_init(Zero *z, Model *m, Comm *c, float beta1, float beta2, float eps, float weight_decay);
void zero_free(Zero *z);
// After the last micro-batch: reduce-scatter the gradients (already scaled by 1/dp), then
// m->stats = [loss sum, squared norm] summed over ranks.
void zero_reduce_gradients(Zero *z);
// AdamW on the owned shard (grad_scale: clipping), all-gather the master weights, and
// rebuild the compute copy.
void zero_step(Zero *z, float lr, float grad_scale, int step);
// The full moments [n_weights] into host memory on every rank (a collective: every rank
// calls it). Checkpoints store full moments, as a single process does, so they resume on
// any number of ranks.
void zero_gather_moments(Zero *z, float *adam_m, float *adam_v);
// Take this rank's shard of full host moments [n_weights] (resuming).
void zero_load_moments(Zero *z, const float *adam_m, const float *adam_v);
