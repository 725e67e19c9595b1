// dist/grad_sync.c: bucketed all-reduce of gradients from the model's hook (see grad_sync.h).
#include "grad_sync.h"

#include "../core/util.h"

// All-reduce the pending range, if any, beside the rest of the backward (comm.h).
static void flush(GradSync *g) {
    if (g->hi > g->lo) {
        comm_all_reduce_sum_async(g->comm, g->model->grads + g->lo, g->hi - g->lo);
        g->reduced += g->hi - g->lo;
    }
    g->lo = g->hi = 0;
}

// The hook. Groups arrive from the end of the flat buffer towards its start (head, last
// layer, ..., first layer, embedding), so a group usually ends where the pending range
// begins and extends it downwards; anything else flushes first.
static void on_grads_ready(void *ctx, int first, int end, size_t offset, size_t count) {
    (void)first, (void)end;
    GradSync *g = ctx;
    if (!g->armed || count == 0) return;
    if (g->hi > g->lo && offset + count == g->lo) {
        g->lo = offset;
    } else {
        flush(g);
        g->lo = offset;
        g->hi = offset + count;
    }
    if (g->hi - g->lo >= g->bucket) flush(g);
}

void grad_sync_init(GradSync *g, Model *m, Comm *c, size_t bucket_floats) {
    *g = (GradSync){.model = m, .comm = c, .bucket = bucket_floats > 0 ? bucket_floats : 1};
    m->hooks.ctx = g;
    m->hooks.grads_ready = on_grads_ready;
}

void grad_sync_micro_batch(GradSync *g, bool last) {
    g->armed = last;
    g->lo = g->hi = 0;
    g->reduced = 0;
}

void grad_sync_finish(GradSync *g) {
    check(g->armed, "grad_sync_finish without an armed last micro-batch");
    flush(g);
    check(g->reduced == g->model->n_weights,
          "data parallel: the model reported %zu of its %zu gradient floats ready; the rest "
          "would not be averaged",
          g->reduced, g->model->n_weights);
    g->armed = false;
    comm_wait(g->comm);
    comm_all_reduce_sum(g->comm, g->model->stats, 1);
}
