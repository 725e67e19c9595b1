// dist/seq_parallel.c: the sequence-parallel state exchange (see seq_parallel.h). The
// gathered states are combined on the host: on the CPU backend that is the states' own
// memory; on CUDA it is a round trip through the host per layer (correct, not fast).
#include "seq_parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

void seq_parallel_prefix_combine(float *out, const float *states, const float *log_pass,
                                 size_t stride, int rank, int rows, int HK, int V) {
    for (size_t row_ch = 0; row_ch < (size_t)rows * HK; row_ch++) {
        float *o = out + row_ch * V;
        memset(o, 0, (size_t)V * sizeof(float));
        float log_weight = 0; // the decays of the slices between rank j and this one
        for (int j = rank - 1; j >= 0; j--) {
            float w = expf(log_weight);
            if (w == 0) break; // a document starts after rank j: nothing older reaches here
            const float *x = states + (size_t)j * stride + row_ch * V;
            for (int v = 0; v < V; v++) o[v] += w * x[v];
            log_weight += log_pass[(size_t)j * stride + row_ch];
        }
    }
}

void seq_parallel_suffix_combine(float *out, const float *states, const float *log_pass,
                                 size_t stride, int rank, int ranks, int rows, int HK, int V) {
    for (size_t row_ch = 0; row_ch < (size_t)rows * HK; row_ch++) {
        float *o = out + row_ch * V;
        memset(o, 0, (size_t)V * sizeof(float));
        float log_weight = 0; // the decays of the slices between this rank and rank j
        for (int j = rank + 1; j < ranks; j++) {
            float w = expf(log_weight);
            if (w == 0) break; // a document starts before rank j: its gradient stops there
            const float *x = states + (size_t)j * stride + row_ch * V;
            for (int v = 0; v < V; v++) o[v] += w * x[v];
            log_weight += log_pass[(size_t)j * stride + row_ch];
        }
    }
}

// Room for one exchange of `shard` floats per rank.
static void reserve(SeqParallel *s, size_t shard) {
    size_t need = shard * (size_t)s->size;
    if (need <= s->capacity) return;
    if (s->gathered) s->be->ops->free(s->be, s->gathered);
    s->gathered = s->be->ops->alloc(s->be, need * sizeof(float));
    s->capacity = need;
    free(s->host);
    free(s->combined);
    s->host = xmalloc(need * sizeof(float));
    s->combined = xmalloc(shard * sizeof(float));
    s->host_capacity = need;
}

// The hook (ModelHooks.state_exchange): this rank's states and decays into its shard, one
// all-gather over the group, the prefix (forward) or suffix (backward) combine, the
// result back into carry.
static void exchange(void *ctx, int layer, bool backward, float *carry, const float *log_pass,
                     int rows, int H, int K, int V) {
    SeqParallel *s = ctx;
    Backend *be = s->be;
    size_t HK = (size_t)H * K, states = (size_t)rows * HK * V, shard = states + (size_t)rows * HK;
    reserve(s, shard);
    float *mine = s->gathered + (size_t)s->rank * shard;
    be->ops->copy(be, mine, carry, states * sizeof(float));
    be->ops->upload(be, mine + states, log_pass, (size_t)rows * HK * sizeof(float));
    comm_all_gather(s->group, s->gathered, shard);
    be->ops->download(be, s->host, s->gathered, shard * (size_t)s->size * sizeof(float));
    if (backward)
        seq_parallel_suffix_combine(s->combined, s->host, s->host + states, shard, s->rank, s->size,
                                    rows, (int)HK, V);
    else
        seq_parallel_prefix_combine(s->combined, s->host, s->host + states, shard, s->rank, rows,
                                    (int)HK, V);
    be->ops->upload(be, carry, s->combined, states * sizeof(float));
}

// The hook (ModelHooks.kv_exchange): a softmax layer's keys and values gathered from
// every slice, or their gradients summed over the slices into each one's owner.
static void exchange_kv(void *ctx, int layer, bool reduce, float *buf, size_t shard) {
    SeqParallel *s = ctx;
    if (reduce)
        comm_reduce_scatter_sum(s->group, buf, shard);
    else
        comm_all_gather(s->group, buf, shard);
}

void seq_parallel_init(SeqParallel *s, Model *m, Comm *group, int group_rank, int group_size) {
    memset(s, 0, sizeof *s);
    s->group = group;
    s->rank = group_rank;
    s->size = group_size;
    s->be = m->be;
    m->slice = (SeqSlice){group_rank, group_size};
    if (group_size <= 1) return;
    m->hooks.state_exchange = exchange;
    m->hooks.kv_exchange = exchange_kv;
    m->hooks.state_ctx = s;
}

void seq_parallel_free(SeqParallel *s) {
    if (s->gathered) s->be->ops->free(s->be, s->gathered);
    free(s->host);
    free(s->combined);
    memset(s, 0, sizeof *s);
}
