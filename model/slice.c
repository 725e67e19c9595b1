// model/slice.c: sequence parallelism on the model's side (Model.slice, model/mixer.h).
// A linear mixer on a slice runs its attention op twice in each direction (LASP-2):
// forward once from a zero state (each row's final state is this slice's contribution),
// then, after the state_exchange hook gave each row the state entering the slice, again
// from that state; backward once without an incoming state gradient (giving the gradient
// of the initial state through this slice's outputs), then, after the hook gave each row
// the gradient of its final state, again with it. The second backward sees the true
// initial state and the true final-state gradient, so its dq, dk, dv and (GLA) dg are
// exactly those of the whole sequence, the decay of the slice's gates included. The
// collectives live in dist/seq_parallel.c; here only buffers and copies.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "mixer.h"

bool slice_active(const Model *m) {
    return m->slice.count > 1;
}

// The largest per-sequence state of any layer (floats).
static size_t max_state_floats(const ModelConfig *c) {
    size_t most = 0;
    for (int l = 0; l < c->n_layers; l++) {
        size_t s = layer_state_floats(c, l);
        if (s > most) most = s;
    }
    return most;
}

// Free the backend buffers of sb (not the host ones).
static void free_states(Backend *be, SliceBufs *sb, int n_layers) {
    for (int l = 0; l < n_layers; l++) {
        if (sb->layer[l].state_in) be->ops->free(be, sb->layer[l].state_in);
        sb->layer[l].state_in = NULL;
    }
    if (sb->scratch) be->ops->free(be, sb->scratch);
    if (sb->key_cu) be->ops->free(be, sb->key_cu);
    sb->scratch = NULL;
    sb->key_cu = NULL;
    free(sb->key_cu_host);
    sb->key_cu_host = NULL;
}

// Free the per-row buffers (host tables and the device carry), sized by rows_cap.
static void free_rows(Backend *be, SliceBufs *sb) {
    free(sb->first_seq);
    free(sb->last_seq);
    free(sb->carries_in);
    free(sb->passes);
    free(sb->log_pass);
    free(sb->key_from);
    free(sb->key_row);
    if (sb->carry) be->ops->free(be, sb->carry);
    sb->carry = NULL;
}

SliceBufs *slice_reserve(Model *m, int rows, int tokens, int n_seqs) {
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    SliceBufs *sb = m->sliced;
    if (!sb) sb = m->sliced = xcalloc(1, sizeof *sb);
    size_t smax = max_state_floats(c);
    if (rows > sb->rows_cap) {
        free_rows(be, sb);
        sb->key_from = xcalloc((size_t)rows, sizeof(int));
        sb->key_row = xcalloc((size_t)rows, sizeof(int));
        sb->first_seq = xcalloc((size_t)rows, sizeof(int));
        sb->last_seq = xcalloc((size_t)rows, sizeof(int));
        sb->carries_in = xcalloc((size_t)rows, sizeof(bool));
        sb->passes = xcalloc((size_t)rows, sizeof(bool));
        sb->log_pass = xcalloc((size_t)rows * smax, sizeof(float));
        sb->carry = be->ops->alloc(be, (size_t)rows * smax * sizeof(float));
        sb->rows_cap = rows;
    }
    if (n_seqs > sb->seq_cap) {
        free_states(be, sb, c->n_layers);
        for (int l = 0; l < c->n_layers; l++) {
            size_t s = layer_state_floats(c, l);
            if (s) sb->layer[l].state_in = be->ops->alloc(be, (size_t)n_seqs * s * sizeof(float));
        }
        sb->scratch = be->ops->alloc(be, (size_t)n_seqs * smax * sizeof(float));
        sb->key_cu = be->ops->alloc(be, ((size_t)n_seqs + 1) * sizeof(int));
        sb->key_cu_host = xcalloc((size_t)n_seqs + 1, sizeof(int));
        sb->seq_cap = n_seqs;
    }
    sb->rows = rows;
    sb->tokens = tokens;
    return sb;
}

void slice_free(Model *m) {
    SliceBufs *sb = m->sliced;
    if (!sb) return;
    free_states(m->be, sb, m->cfg.n_layers);
    free_rows(m->be, sb);
    slice_free_kv(m->be, sb);
    free(sb);
    m->sliced = NULL;
}

float *slice_scratch(const Model *m) {
    return m->sliced->scratch;
}

const float *slice_log_pass_decay(const MixerCall *mc, int K) {
    const Model *m = mc->m;
    SliceBufs *sb = m->sliced;
    int H = m->cfg.n_heads;
    float *decay = xcalloc((size_t)H, sizeof(float));
    lightning_log_decays(&m->cfg, mc->layer, decay);
    for (int b = 0; b < sb->rows; b++) {
        for (int h = 0; h < H; h++) {
            float v = sb->passes[b] ? decay[h] * (float)sb->tokens : -INFINITY;
            for (int k = 0; k < K; k++) sb->log_pass[((size_t)b * H + h) * K + k] = v;
        }
    }
    free(decay);
    return sb->log_pass;
}

// n activations from backend memory to host floats.
static void download_acts(Backend *be, float *host, const Act *src, size_t n) {
    if (be->act_size == sizeof(float)) {
        be->ops->download(be, host, src, n * sizeof(float));
        return;
    }
    float *tmp = be->ops->alloc(be, n * sizeof(float));
    be->ops->act_to_float(be, tmp, src, (long)n);
    be->ops->download(be, host, tmp, n * sizeof(float));
    be->ops->free(be, tmp);
}

const float *slice_log_pass_gates(const MixerCall *mc, const Act *g, int K) {
    const Model *m = mc->m;
    SliceBufs *sb = m->sliced;
    size_t HK = (size_t)m->cfg.n_heads * K, T = (size_t)sb->tokens;
    float *gates = xmalloc((size_t)mc->N * HK * sizeof(float));
    download_acts(m->be, gates, g, (size_t)mc->N * HK);
    for (int b = 0; b < sb->rows; b++) {
        float *out = sb->log_pass + (size_t)b * HK;
        for (size_t ch = 0; ch < HK; ch++) {
            if (!sb->passes[b]) {
                out[ch] = -INFINITY;
                continue;
            }
            double sum = 0;
            for (size_t t = 0; t < T; t++) sum += gates[((size_t)b * T + t) * HK + ch];
            out[ch] = (float)sum;
        }
    }
    free(gates);
    return sb->log_pass;
}

// The state_exchange hook, which sequence parallelism cannot do without.
static void call_hook(const MixerCall *mc, bool backward, const float *log_pass, int K, int V) {
    const Model *m = mc->m;
    check(m->hooks.state_exchange != NULL,
          "layer %d: a sliced sequence (sp > 1) needs the state_exchange hook "
          "(dist/seq_parallel.h)",
          mc->layer);
    m->hooks.state_exchange(m->hooks.state_ctx, mc->layer, backward, m->sliced->carry, log_pass,
                            m->sliced->rows, m->cfg.n_heads, K, V);
}

void slice_exchange_forward(const MixerCall *mc, const float *log_pass, int K, int V) {
    const Model *m = mc->m;
    Backend *be = m->be;
    SliceBufs *sb = m->sliced;
    size_t bytes = layer_state_floats(&m->cfg, mc->layer) * sizeof(float);
    char *scratch = (char *)sb->scratch, *carry = (char *)sb->carry;
    char *state_in = (char *)mc->st->state_in;
    for (int b = 0; b < sb->rows; b++)
        be->ops->copy(be, carry + b * bytes, scratch + sb->last_seq[b] * bytes, bytes);
    call_hook(mc, false, log_pass, K, V);
    be->ops->zero(be, state_in, (size_t)m->seqs.n * bytes);
    for (int b = 0; b < sb->rows; b++) {
        if (sb->carries_in[b])
            be->ops->copy(be, state_in + sb->first_seq[b] * bytes, carry + b * bytes, bytes);
    }
}

void slice_exchange_backward(const MixerCall *mc, const float *log_pass, int K, int V) {
    const Model *m = mc->m;
    Backend *be = m->be;
    SliceBufs *sb = m->sliced;
    size_t bytes = layer_state_floats(&m->cfg, mc->layer) * sizeof(float);
    char *scratch = (char *)sb->scratch, *carry = (char *)sb->carry;
    for (int b = 0; b < sb->rows; b++) {
        if (sb->carries_in[b])
            be->ops->copy(be, carry + b * bytes, scratch + sb->first_seq[b] * bytes, bytes);
        else
            be->ops->zero(be, carry + b * bytes, bytes);
    }
    call_hook(mc, true, log_pass, K, V);
    be->ops->zero(be, scratch, (size_t)m->seqs.n * bytes);
    for (int b = 0; b < sb->rows; b++)
        be->ops->copy(be, scratch + sb->last_seq[b] * bytes, carry + b * bytes, bytes);
}
