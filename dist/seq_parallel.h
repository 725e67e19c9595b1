// dist/seq_parallel.h: sequence parallelism (LASP-2, SPEC sec. 6). Every sequence of a
// micro-batch is cut into sp equal slices, one per rank of a sequence-parallel group
// (consecutive world ranks); each rank runs the whole model on its slice. A linear layer
// needs the state entering its slice: each rank's state at the end of its slice from a
// zero state (its contribution C_j) and the decay of its slice (P_j, per key channel;
// 0 where a document starts inside it) are all-gathered in one collective per layer, and
// the prefix combine S_r = sum_{j<r} P_{j+1} ... P_{r-1} C_j gives rank r its initial
// state. Backward mirrors it: the gradients dS_j of the initial states are all-gathered
// and the suffix combine G_r = sum_{j>r} P_{r+1} ... P_{j-1} dS_j gives the gradient of
// rank r's final state. A softmax layer all-gathers every slice's keys and values (after
// RoPE) so rank r's queries attend to slices 0..r; backward reduce-scatters the gradients
// of the gathered keys and values back to their slices. The model only calls the hooks
// (ModelHooks.state_exchange, ModelHooks.kv_exchange).
#pragma once
#include <stddef.h>

#include "../model/model.h"
#include "comm.h"

typedef struct SeqParallel {
    Comm *group;    // the ranks of this sequence-parallel group
    int rank, size; // this rank's slice, and the number of slices
    Backend *be;
    float *gathered; // backend memory: size shards of [rows * H*K*V states, rows * H*K decays]
    size_t capacity; // floats of gathered
    float *host;     // its host copy (the combine runs on the host)
    float *combined; // host [rows, H, K, V]: the combine's result
    size_t host_capacity;
} SeqParallel;

// Slice the model's sequences over `group` (this rank is slice group_rank of group_size)
// and install the state_exchange and kv_exchange hooks on m (group may be NULL when
// group_size is 1: whole sequences, nothing installed).
void seq_parallel_init(SeqParallel *s, Model *m, Comm *group, int group_rank, int group_size);
void seq_parallel_free(SeqParallel *s);

// The combines, on host memory. Rank j's states [rows, HK, V] are at states + j * stride
// and its log decays [rows, HK] at log_pass + j * stride (-INFINITY: nothing passes).
// out [rows, HK, V] = sum_{j < rank} exp(sum_{j < i < rank} log_pass_i) * states_j.
void seq_parallel_prefix_combine(float *out, const float *states, const float *log_pass,
                                 size_t stride, int rank, int rows, int HK, int V);
// out [rows, HK, V] = sum_{rank < j < ranks} exp(sum_{rank < i < j} log_pass_i) * states_j.
void seq_parallel_suffix_combine(float *out, const float *states, const float *log_pass,
                                 size_t stride, int rank, int ranks, int rows, int HK, int V);
