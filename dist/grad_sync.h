// dist/grad_sync.h: data-parallel gradient averaging. Hooked into the model's
// "gradients of these tensors are ready" call (ModelHooks.grads_ready), it all-reduces
// each layer's gradients as soon as the last micro-batch's backward has produced them,
// adjacent layers merged into buckets of at least `bucket` floats, so on NCCL the
// all-reduce of late layers runs on the communicator's stream while early layers are
// still in backward (comm_all_reduce_sum_async; grad_sync_finish waits for them). The model
// never sees the communicator. Gradients must already carry the 1/dp factor (train.c
// folds it into grad_scale), so the sum over ranks is the average.
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "../model/model.h"
#include "comm.h"

typedef struct GradSync {
    Model *model;
    Comm *comm;
    size_t bucket;  // all-reduce once the pending range holds this many floats
    bool armed;     // this micro-batch is the step's last: all-reduce as gradients appear
    size_t lo, hi;  // the pending range of Model.grads (lo == hi: none)
    size_t reduced; // floats all-reduced in this step
} GradSync;

// Install the hook on m (m->hooks.grads_ready); bucket_floats 0: every group on its own.
void grad_sync_init(GradSync *g, Model *m, Comm *c, size_t bucket_floats);
// Before each micro-batch's forward/backward: `last` arms the hook for the step's last
// one (earlier micro-batches only accumulate locally).
void grad_sync_micro_batch(GradSync *g, bool last);
// After the last micro-batch: all-reduce what is still pending (checking that every
// gradient was covered) and the loss sum in m->stats[0]. The squared norm
// (model_grad_norm_squared) is then that of the averaged gradients.
void grad_sync_finish(GradSync *g);
