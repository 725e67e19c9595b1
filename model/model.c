// model/model.c: allocation, the activation arena, the block loop (norm -> mixer ->
// residual + norm -> MLP -> residual + norm) forward and backward for every family,
// activation recomputation, the loss, and recurrent decoding. Mixers come from the mixer
// table (model/mixer.h); every op goes through the backend (kernels/ops.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "mixer.h"

// All activations of a batch of up to `tokens` tokens, carved out of one allocation.
struct Arena {
    char *base;
    size_t bytes, capacity;       // capacity: tokens the buffers hold
    bool shared;                  // recompute layout: one set of layer internals
    bool chunk_states;            // linear layers keep their chunk states (not recompute_states)
    LayerBufs layers[MAX_LAYERS]; // each layer's buffers (internals shared when `shared`)
    Act *final_in, *final_ln;     // [N, D] residual after the last block and its norm
    float *final_rstd, *losses;   // [N]
    Act *branch;                  // [N, D] a mixer's or MLP's output before the residual add
    Act *d_resid, *d_ln;          // [N, D] gradients of the residual stream / a norm's output
    Act *d_mlp_h, *d_mlp_ab;      // [N, F], [N, 2F] (overlapping the mixers' scratch)
    void *scratch[N_MIXER_KINDS][MAX_BUFS]; // each mixer's backward scratch (overlapping)
    // The batch's inputs, one block uploaded at once: for a batch of N tokens, tokens,
    // targets, positions [N] each, then the sequence offsets [N + 1]; `inputs` is the
    // device block (capacity 4 * capacity + 1), `host` its mirror.
    int *inputs, *host;
    int *tokens, *targets, *pos, *cu; // device views into `inputs` for the current batch
};

static NormKind family_norm(const ModelConfig *c) {
    return c->family == FAMILY_TNL ? NORM_SRMS : NORM_RMS;
}

// TNL scales the embedding by sqrt(D); GLA and Llama do not.
static float embed_scale(const ModelConfig *c) {
    return c->family == FAMILY_TNL ? sqrtf((float)c->dim) : 1.0f;
}

void model_create(Model *m, const ModelConfig *cfg, Backend *be) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    model_build_params(m);
    const Ops *ops = be->ops;
    m->weights = ops->alloc(be, m->n_weights * sizeof(float));
    // On the CPU the compute type is fp32: the compute copy is the master itself.
    m->weights_act = be->act_size == sizeof(float) ? (Act *)m->weights
                                                   : ops->alloc(be, m->n_weights * be->act_size);
    m->grads = ops->alloc(be, m->n_weights * sizeof(float));
    m->stats = ops->alloc(be, 4 * sizeof(float));
    int L = cfg->n_layers, H = cfg->n_heads;
    float *decay = xcalloc((size_t)L * H, sizeof(float));
    for (int l = 0; l < L; l++) lightning_log_decays(cfg, l, decay + (size_t)l * H);
    m->log_decay = ops->alloc(be, (size_t)L * H * sizeof(float));
    ops->upload(be, m->log_decay, decay, (size_t)L * H * sizeof(float));
    free(decay);
}

static void free_arena(Model *m) {
    Arena *a = m->arena;
    if (!a) return;
    m->be->ops->free(m->be, a->base);
    free(a->host);
    free(a);
    m->arena = NULL;
}

void model_free(Model *m) {
    Backend *be = m->be;
    free_arena(m);
    slice_free(m);
    if ((void *)m->weights_act != (void *)m->weights) be->ops->free(be, m->weights_act);
    be->ops->free(be, m->weights);
    be->ops->free(be, m->grads);
    be->ops->free(be, m->stats);
    be->ops->free(be, m->log_decay);
}

void model_upload_weights(Model *m, const float *host) {
    m->be->ops->upload(m->be, m->weights, host, m->n_weights * sizeof(float));
    model_refresh_compute_weights(m);
}

void model_download_weights(const Model *m, float *host) {
    m->be->ops->download(m->be, host, m->weights, m->n_weights * sizeof(float));
}

void model_refresh_compute_weights(Model *m) {
    if ((void *)m->weights_act != (void *)m->weights)
        m->be->ops->float_to_act(m->be, m->weights_act, m->weights, (long)m->n_weights);
}

void model_pad_buffers(Model *m, size_t n) {
    check(n >= m->n_weights, "model_pad_buffers: %zu floats is less than the %zu weights", n,
          m->n_weights);
    Backend *be = m->be;
    size_t bytes = m->n_weights * sizeof(float);
    float *w = be->ops->alloc(be, n * sizeof(float));
    float *g = be->ops->alloc(be, n * sizeof(float));
    be->ops->copy(be, w, m->weights, bytes);
    be->ops->copy(be, g, m->grads, bytes);
    if ((void *)m->weights_act == (void *)m->weights) m->weights_act = (Act *)w;
    be->ops->free(be, m->weights);
    be->ops->free(be, m->grads);
    m->weights = w;
    m->grads = g;
}

// ---- the arena ------------------------------------------------------------------------

// Reserve count elements of elem bytes at *at (256-byte aligned); with base NULL only
// measure. Returns the buffer (NULL when measuring).
static void *take(char *base, size_t *at, size_t count, size_t elem) {
    size_t off = (*at + 255) & ~(size_t)255;
    *at = off + count * elem;
    return base ? base + off : NULL;
}

// A layer's internals (everything but resid_in): the block's own buffers first, at the
// same offsets for every mixer, then the mixer's saved list.
static void lay_out_internals(const Model *m, int l, size_t N, char *base, size_t *at,
                              LayerBufs *lb) {
    const ModelConfig *c = &m->cfg;
    size_t act = m->be->act_size, D = c->dim, F = c->mlp_dim;
    lb->ln1 = take(base, at, N * D, act);
    lb->rstd1 = take(base, at, N, sizeof(float));
    lb->resid_mid = take(base, at, N * D, act);
    lb->ln2 = take(base, at, N * D, act);
    lb->rstd2 = take(base, at, N, sizeof(float));
    lb->mlp_ab = take(base, at, N * 2 * F, act);
    lb->mlp_h = take(base, at, N * F, act);
    BufSpec spec[MAX_BUFS];
    int n = mixer_table[c->mixer[l]]->saved(c, spec);
    for (int i = 0; i < n; i++) // width 0: the buffer is not kept (NULL to the ops)
        lb->mixer[i] = spec[i].width
                           ? take(base, at, N * spec[i].width, spec[i].f32 ? sizeof(float) : act)
                           : NULL;
}

// Place every buffer for N tokens from base (NULL: measure); returns the bytes needed.
// With `shared`, each layer keeps only its input and all layers' internals overlap.
static size_t lay_out(const Model *m, Arena *a, size_t N, char *base, bool shared) {
    const ModelConfig *c = &m->cfg;
    size_t act = m->be->act_size, D = c->dim, F = c->mlp_dim, at = 0;
    for (int l = 0; l < c->n_layers; l++) {
        a->layers[l].resid_in = take(base, &at, N * D, act);
        if (!shared) lay_out_internals(m, l, N, base, &at, &a->layers[l]);
    }
    if (shared) {
        size_t start = at, end = at;
        for (int l = 0; l < c->n_layers; l++) {
            size_t here = start;
            lay_out_internals(m, l, N, base, &here, &a->layers[l]);
            if (here > end) end = here;
        }
        at = end;
    }
    a->final_in = take(base, &at, N * D, act);
    a->final_ln = take(base, &at, N * D, act);
    a->final_rstd = take(base, &at, N, sizeof(float));
    a->losses = take(base, &at, N, sizeof(float));
    a->branch = take(base, &at, N * D, act);
    a->d_resid = take(base, &at, N * D, act);
    a->d_ln = take(base, &at, N * D, act);
    // Backward scratch: one region, the MLP's gradients and each mixer kind's scratch all
    // laid out from its start (a layer's MLP backward is done before its mixer's starts).
    size_t start = at, end = at;
    a->d_mlp_h = take(base, &end, N * F, act);
    a->d_mlp_ab = take(base, &end, N * 2 * F, act);
    for (int k = 0; k < N_MIXER_KINDS; k++) {
        BufSpec spec[MAX_BUFS];
        int n = mixer_table[k]->scratch(c, spec);
        size_t here = start;
        for (int i = 0; i < n; i++)
            a->scratch[k][i] =
                take(base, &here, N * spec[i].width, spec[i].f32 ? sizeof(float) : act);
        if (here > end) end = here;
    }
    at = end;
    a->inputs = take(base, &at, 4 * N + 1, sizeof(int));
    return at;
}

// Make the arena hold a batch of N tokens (grown, never shrunk, so decoding one token
// mid-training does not reallocate the training buffers).
static Arena *ensure_arena(Model *m, size_t N) {
    Arena *a = m->arena;
    bool keep = !m->cfg.recompute_states;
    if (a && N <= a->capacity && a->shared == m->cfg.recompute && a->chunk_states == keep) return a;
    if (a && N < a->capacity) N = a->capacity;
    free_arena(m);
    a = xcalloc(1, sizeof *a);
    a->shared = m->cfg.recompute;
    a->chunk_states = keep;
    a->capacity = N;
    a->bytes = lay_out(m, a, N, NULL, a->shared);
    a->base = m->be->ops->alloc(m->be, a->bytes);
    lay_out(m, a, N, a->base, a->shared);
    a->host = xcalloc(4 * N + 1, sizeof(int));
    m->arena = a;
    return a;
}

// Where the document holding token `off` of a row starts: the last EOT at or before it
// (prep writes an EOT before every document), or the row's start. Only with doc_reset
// and a slice that does not start the row; otherwise 0.
static int doc_start(const Model *m, const int *row, int off) {
    if (!m->cfg.doc_reset) return 0;
    for (int t = off; t >= 1; t--) {
        if (row[t] == m->cfg.eot_token) return t;
    }
    return 0;
}

// Fill the input block and upload it in one copy: the tokens, the targets (NULL: none),
// the sequences the mixers run over (one per batch row, or with doc_reset one per
// document: a document starts at each EOT, as prep writes an EOT before every document)
// and each token's position in its sequence, counted from pos0. With sequence
// parallelism only this process's slice of each row is loaded (positions stay those of
// the whole row) and the slice's row layout is recorded. *n_tokens gets the tokens
// loaded; returns how many targets count in the whole rows (the loss is a mean over all
// slices).
static int load_batch(Model *m, const int *tokens, const int *targets, int B, int T, int pos0,
                      int *n_tokens) {
    int count = slice_active(m) ? m->slice.count : 1;
    check(T % count == 0, "seq_len %d does not split into %d equal slices (sp)", T, count);
    int Tl = T / count, off = count > 1 ? m->slice.index * Tl : 0;
    size_t N = (size_t)B * Tl;
    Arena *a = ensure_arena(m, N);
    int *h_tokens = a->host, *h_targets = a->host + N, *h_pos = a->host + 2 * N;
    int *h_cu = a->host + 3 * N;
    a->tokens = a->inputs;
    a->targets = a->inputs + N;
    a->pos = a->inputs + 2 * N;
    a->cu = a->inputs + 3 * N;
    for (int b = 0; b < B; b++)
        memcpy(h_tokens + (size_t)b * Tl, tokens + (size_t)b * T + off, (size_t)Tl * sizeof(int));
    int counted = 0;
    if (targets) {
        for (int b = 0; b < B; b++)
            memcpy(h_targets + (size_t)b * Tl, targets + (size_t)b * T + off,
                   (size_t)Tl * sizeof(int));
        for (size_t i = 0; i < (size_t)B * T; i++) counted += targets[i] >= 0;
        check(counted > 0, "batch has no targets to predict");
    }
    SliceBufs *sb = count > 1 ? slice_reserve(m, B, Tl, 0) : NULL;
    int n = 0, max_len = 0;
    h_cu[0] = 0;
    for (int b = 0; b < B; b++) {
        const int *row = tokens + (size_t)b * T;
        int first_pos = off - doc_start(m, row, off); // the slice's first token in its document
        int start = 0;
        if (sb) {
            sb->first_seq[b] = n;
            sb->carries_in[b] = first_pos > 0;
            sb->key_from[b] = off - first_pos;
        }
        for (int t = 1; t <= Tl; t++) {
            bool boundary = t == Tl || (m->cfg.doc_reset && row[off + t] == m->cfg.eot_token);
            if (!boundary) continue;
            int p0 = pos0 + (start == 0 ? first_pos : 0);
            for (int i = start; i < t; i++) h_pos[(size_t)b * Tl + i] = p0 + i - start;
            h_cu[++n] = b * Tl + t;
            if (t - start > max_len) max_len = t - start;
            start = t;
        }
        if (sb) {
            sb->last_seq[b] = n - 1;
            sb->passes[b] = sb->carries_in[b] && sb->first_seq[b] == n - 1;
        }
    }
    if (sb) {
        slice_reserve(m, B, Tl, n);
        slice_set_keys(m, h_cu);
    }
    m->be->ops->upload(m->be, a->inputs, a->host, (4 * N + 1) * sizeof(int));
    m->seqs = (Seqs){a->cu, n, max_len, (int)N};
    *n_tokens = (int)N;
    return counted;
}

// ---- forward --------------------------------------------------------------------------

// The MLP of layer l on a->ln2, result in out [N, D] (with out NULL it stops at what its
// backward reads, a->mlp_ab and a->mlp_h): SGLU (TNL, no activation) or SwiGLU.
static void mlp_forward(Model *m, int l, LayerBufs *a, int N, Act *out) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int F = c->mlp_dim;
    GateKind kind = c->family == FAMILY_TNL ? GATE_MUL : GATE_SWISH;
    linear_forward(m, a->mlp_ab, a->ln2, m->layer_params[l].mlp_in, 2, N);
    be->ops->gate_forward(be, a->mlp_h, a->mlp_ab, 2 * F, act_at(be, a->mlp_ab, F), 2 * F, N, F,
                          kind);
    if (out) linear_forward(m, out, a->mlp_h, m->layer_params[l].mlp_out, 1, N);
}

// The weight of the norm that opens layer l + 1 (the final norm after the last layer).
static int next_norm(const Model *m, int l) {
    return l + 1 < m->cfg.n_layers ? m->layer_params[l + 1].attn_norm : m->final_norm;
}

// Layer l from its a->ln1 on: mixer, residual + norm, MLP, and (with write_next) the
// residual + norm that gives layer l+1's input and ln1 (or the final norm). Without
// write_next (recomputing the internals for the backward) the MLP stops at its hidden
// state: the backward does not read the MLP's output, and its last matmul is a fifth of
// a TNL layer's forward. `fn`, when non-NULL, sees the hidden states after the mixer.
static void layer_forward(Model *m, int l, MixerCall *mc, bool write_next, LayerFn fn, void *ctx) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    Arena *ar = m->arena;
    LayerBufs *a = &ar->layers[l];
    int N = mc->N, D = c->dim;
    NormKind nk = family_norm(c);
    mixer_table[c->mixer[l]]->forward(mc, ar->branch);
    if (fn) fn(ctx, l, a->resid_in, a->ln1, ar->branch, N);
    be->ops->residual_norm_forward(be, a->resid_mid, a->ln2, a->rstd2, a->resid_in, ar->branch,
                                   param_weight(m, m->layer_params[l].mlp_norm), N, D, c->norm_eps,
                                   nk);
    mlp_forward(m, l, a, N, write_next ? ar->branch : NULL);
    if (!write_next) return;
    bool last = l + 1 == c->n_layers;
    LayerBufs *next = last ? NULL : &ar->layers[l + 1];
    be->ops->residual_norm_forward(be, last ? ar->final_in : next->resid_in,
                                   last ? ar->final_ln : next->ln1,
                                   last ? ar->final_rstd : next->rstd1, a->resid_mid, ar->branch,
                                   param_weight(m, next_norm(m, l)), N, D, c->norm_eps, nk);
}

// A call of layer l's mixer over the current batch (training: the model's state I/O).
static MixerCall training_call(Model *m, int l, int N) {
    int kind = m->cfg.mixer[l];
    return (MixerCall){.m = m,
                       .layer = l,
                       .N = N,
                       .a = &m->arena->layers[l],
                       .scratch = m->arena->scratch[kind],
                       .st = slice_active(m) ? &m->sliced->layer[l] : &m->states[l],
                       .pos = m->arena->pos};
}

// Embedding and every block; leaves the final norm's output in arena->final_ln.
// `decode` (NULL in training) gives each layer's decoding state.
static void forward_blocks(Model *m, int N, LayerState *decode, int decode_pos, Seqs decode_kv,
                           LayerFn fn, void *ctx) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    Arena *ar = m->arena;
    LayerBufs *a0 = &ar->layers[0];
    be->ops->embedding_forward(be, a0->resid_in, ar->tokens, param_weight(m, m->embed), N, c->dim,
                               c->vocab_size, embed_scale(c));
    be->ops->norm_forward(be, a0->ln1, a0->rstd1, a0->resid_in,
                          param_weight(m, m->layer_params[0].attn_norm), N, c->dim, c->norm_eps,
                          family_norm(c));
    for (int l = 0; l < c->n_layers; l++) {
        MixerCall mc = training_call(m, l, N);
        if (decode) {
            mc.st = &decode[l];
            mc.decoding = true;
            mc.decode_pos = decode_pos;
            mc.decode_kv = decode_kv;
        }
        layer_forward(m, l, &mc, true, fn, ctx);
    }
}

static Seqs no_seqs(void) {
    return (Seqs){NULL, 0, 0, 0};
}

float model_loss(Model *m, const int *tokens, const int *targets, int B, int T) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int N;
    int counted = load_batch(m, tokens, targets, B, T, 0, &N);
    forward_blocks(m, N, NULL, 0, no_seqs(), NULL, NULL);
    Arena *ar = m->arena;
    be->ops->lm_head_cross_entropy(be, ar->losses, NULL, NULL, ar->final_ln,
                                   param_weight(m, m->lm_head), ar->targets, N, c->dim,
                                   c->vocab_size, 0.0f);
    be->ops->zero(be, m->stats + 2, sizeof(float));
    be->ops->sum_into(be, m->stats + 2, ar->losses, N, 1.0f / (float)counted);
    float loss;
    be->ops->download(be, &loss, m->stats + 2, sizeof(float));
    return loss;
}

void model_token_losses(Model *m, float *host, int n) {
    m->be->ops->download(m->be, host, m->arena->losses, (size_t)n * sizeof(float));
}

void model_forward_layers(Model *m, const int *tokens, int B, int T, LayerFn fn, void *ctx) {
    check(!slice_active(m), "model_forward_layers: not for a sliced sequence (sp > 1)");
    int N;
    load_batch(m, tokens, NULL, B, T, 0, &N);
    forward_blocks(m, N, NULL, 0, no_seqs(), fn, ctx);
}

void model_last_logits(Model *m, float *logits, int N) {
    m->be->ops->logits_forward(m->be, logits, m->arena->final_ln, param_weight(m, m->lm_head), N,
                               m->cfg.dim, m->cfg.vocab_size);
}

void model_load_tokens(Model *m, const int *tokens, int B, int T) {
    check(!slice_active(m), "model_load_tokens: not for a sliced sequence (sp > 1)");
    int N;
    load_batch(m, tokens, NULL, B, T, 0, &N);
}

const Act *model_mixer_forward(Model *m, int layer, const Act *inp, int N) {
    Arena *ar = m->arena;
    m->be->ops->copy(m->be, ar->layers[layer].ln1, inp, (size_t)N * m->cfg.dim * m->be->act_size);
    MixerCall mc = training_call(m, layer, N);
    mixer_table[m->cfg.mixer[layer]]->forward(&mc, ar->branch);
    return ar->branch;
}

void model_mixer_backward(Model *m, int layer, const Act *dout, int N) {
    MixerCall mc = training_call(m, layer, N);
    mixer_table[m->cfg.mixer[layer]]->backward(&mc, dout, m->arena->d_ln);
}

// ---- backward -------------------------------------------------------------------------

// d_ln = d loss / d a->ln2 from dout = d loss / d (MLP output).
static void mlp_backward(Model *m, int l, LayerBufs *a, int N, const Act *dout, Act *d_ln) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    Arena *ar = m->arena;
    int F = c->mlp_dim;
    GateKind kind = c->family == FAMILY_TNL ? GATE_MUL : GATE_SWISH;
    linear_backward(m, ar->d_mlp_h, false, dout, a->mlp_h, m->layer_params[l].mlp_out, 1, N);
    be->ops->gate_backward(be, ar->d_mlp_ab, 2 * F, act_at(be, ar->d_mlp_ab, F), 2 * F, ar->d_mlp_h,
                           a->mlp_ab, 2 * F, act_at(be, a->mlp_ab, F), 2 * F, N, F, kind);
    linear_backward(m, d_ln, false, ar->d_mlp_ab, a->ln2, m->layer_params[l].mlp_in, 2, N);
}

// Tell the hook that params [first, end) have their gradients.
static void grads_ready(Model *m, int first, int end) {
    if (!m->hooks.grads_ready || first >= end) return;
    size_t off = m->params[first].offset;
    size_t count = m->params[end - 1].offset + m->params[end - 1].numel - off;
    m->hooks.grads_ready(m->hooks.ctx, first, end, off, count);
}

void model_forward_backward(Model *m, const int *tokens, const int *targets, int B, int T,
                            float grad_scale) {
    Backend *be = m->be;
    const Ops *ops = be->ops;
    const ModelConfig *c = &m->cfg;
    int N, D = c->dim, L = c->n_layers;
    NormKind nk = family_norm(c);
    int counted = load_batch(m, tokens, targets, B, T, 0, &N);
    forward_blocks(m, N, NULL, 0, no_seqs(), NULL, NULL);
    Arena *ar = m->arena;

    // The fused LM head + cross-entropy gives the gradient of the final norm's output.
    float scale = grad_scale / (float)counted;
    ops->lm_head_cross_entropy(be, ar->losses, ar->d_ln, param_grad(m, m->lm_head), ar->final_ln,
                               param_weight(m, m->lm_head), ar->targets, N, D, c->vocab_size,
                               scale);
    ops->sum_into(be, m->stats, ar->losses, N, scale);
    if (m->hooks.head_grad)
        m->hooks.head_grad(m->hooks.ctx, ar->final_ln, ar->d_ln, ar->targets, N);
    ops->norm_backward(be, ar->d_resid, param_grad(m, m->final_norm), NULL, ar->d_ln, ar->final_in,
                       param_weight(m, m->final_norm), ar->final_rstd, N, D, c->norm_eps, nk);
    grads_ready(m, m->layer_params[L - 1].end, m->n_params);

    // d_resid holds d(loss)/d(block output); each norm backward adds its branch into it,
    // so after a block it holds the gradient of the block's input (residual identity).
    for (int l = L - 1; l >= 0; l--) {
        LayerBufs *a = &ar->layers[l];
        const LayerParams *lp = &m->layer_params[l];
        MixerCall mc = training_call(m, l, N);
        if (ar->shared && l < L - 1) {
            // Recompute the layer's internals from its saved input (the last layer's are
            // still there from the forward).
            ops->norm_forward(be, a->ln1, a->rstd1, a->resid_in, param_weight(m, lp->attn_norm), N,
                              D, c->norm_eps, nk);
            layer_forward(m, l, &mc, false, NULL, NULL);
        }
        if (m->hooks.resid_grad) m->hooks.resid_grad(m->hooks.ctx, l, ar->d_resid, N);
        mlp_backward(m, l, a, N, ar->d_resid, ar->d_ln);
        ops->norm_backward(be, ar->d_resid, param_grad(m, lp->mlp_norm), ar->d_resid, ar->d_ln,
                           a->resid_mid, param_weight(m, lp->mlp_norm), a->rstd2, N, D, c->norm_eps,
                           nk);
        mixer_table[c->mixer[l]]->backward(&mc, ar->d_resid, ar->d_ln);
        ops->norm_backward(be, ar->d_resid, param_grad(m, lp->attn_norm), ar->d_resid, ar->d_ln,
                           a->resid_in, param_weight(m, lp->attn_norm), a->rstd1, N, D, c->norm_eps,
                           nk);
        grads_ready(m, lp->first, lp->end);
    }
    float *d_embed = param_grad(m, m->embed);
    if (d_embed)
        ops->embedding_backward(be, d_embed, ar->d_resid, ar->tokens, N, D, embed_scale(c));
    grads_ready(m, m->embed, m->embed + 1);
}

void model_zero_grad(Model *m) {
    m->be->ops->zero(m->be, m->grads, m->n_weights * sizeof(float));
    m->be->ops->zero(m->be, m->stats, 2 * sizeof(float));
}

void model_grad_norm_squared(Model *m) {
    m->be->ops->sum_squares_into(m->be, m->stats + 1, m->grads, (long)m->n_weights);
}

void model_read_stats(Model *m, float *loss, float *grad_norm) {
    float host[2];
    m->be->ops->download(m->be, host, m->stats, sizeof host);
    *loss = host[0];
    *grad_norm = sqrtf(host[1]);
}

// ---- recurrent decoding ---------------------------------------------------------------

struct DecodeState {
    Backend *be; // the backend that owns the buffers
    int n_layers;
    int pos; // tokens decoded since the last reset
    LayerState layers[MAX_LAYERS];
    size_t state_bytes[MAX_LAYERS];
    float *logits; // [vocab_size] fp32
    int *cu_kv;    // [2] the KV cache's one sequence: 0, pos + 1
};

DecodeState *decode_state_new(const Model *m, int max_len) {
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    DecodeState *s = xcalloc(1, sizeof *s);
    s->be = be;
    s->n_layers = c->n_layers;
    s->logits = be->ops->alloc(be, (size_t)c->vocab_size * sizeof(float));
    s->cu_kv = be->ops->alloc(be, 2 * sizeof(int));
    for (int l = 0; l < c->n_layers; l++) {
        const Mixer *mx = mixer_table[c->mixer[l]];
        LayerState *st = &s->layers[l];
        st->max_len = max_len;
        size_t state = mx->state_floats(c);
        if (state) {
            s->state_bytes[l] = state * sizeof(float);
            st->state_in = be->ops->alloc(be, s->state_bytes[l]);
            st->state_out = be->ops->alloc(be, s->state_bytes[l]);
        } else {
            size_t kv = (size_t)max_len * 2 * mx->kv_width(c) * be->act_size;
            st->kv_cache = be->ops->alloc(be, kv);
        }
    }
    return s;
}

void decode_state_free(DecodeState *s) {
    Backend *be = s->be;
    for (int l = 0; l < s->n_layers; l++) {
        LayerState *st = &s->layers[l];
        if (st->state_in) be->ops->free(be, st->state_in);
        if (st->state_out) be->ops->free(be, st->state_out);
        if (st->kv_cache) be->ops->free(be, st->kv_cache);
    }
    be->ops->free(be, s->logits);
    be->ops->free(be, s->cu_kv);
    free(s);
}

// Forget everything decoded so far (a new document starts).
static void decode_state_reset(DecodeState *s) {
    for (int l = 0; l < s->n_layers; l++) {
        if (s->layers[l].state_in)
            s->be->ops->zero(s->be, s->layers[l].state_in, s->state_bytes[l]);
    }
    s->pos = 0;
}

void model_decode_step(Model *m, DecodeState *s, int token, float *logits) {
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    check(!slice_active(m), "decoding: not for a sliced sequence (sp > 1)");
    if (c->doc_reset && token == c->eot_token) decode_state_reset(s);
    int N;
    load_batch(m, &token, NULL, 1, 1, s->pos, &N);
    int cu_kv[2] = {0, s->pos + 1};
    be->ops->upload(be, s->cu_kv, cu_kv, sizeof cu_kv);
    forward_blocks(m, 1, s->layers, s->pos, (Seqs){s->cu_kv, 1, s->pos + 1, s->pos + 1}, NULL,
                   NULL);
    for (int l = 0; l < c->n_layers; l++) {
        LayerState *st = &s->layers[l];
        float *t = st->state_in; // the new state becomes the next step's input
        st->state_in = st->state_out;
        st->state_out = t;
    }
    s->pos++;
    // fp32 logits straight from the LM head (not rounded to the compute type)
    be->ops->logits_forward(be, s->logits, m->arena->final_ln, param_weight(m, m->lm_head), 1,
                            c->dim, c->vocab_size);
    be->ops->download(be, logits, s->logits, (size_t)c->vocab_size * sizeof(float));
}

double model_flops_per_token(const Model *m, int T) {
    const ModelConfig *c = &m->cfg;
    double matmul = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (m->params[i].ndim == 2 && i != m->embed) matmul += (double)m->params[i].numel;
    }
    // The LM head: a 2-D parameter of its own (counted above) unless tied to the embedding.
    if (c->tie_embeddings) matmul += (double)c->vocab_size * c->dim;
    double mixing = 0, D = c->dim, blk = c->attn_block;
    for (int l = 0; l < c->n_layers; l++) {
        double hd = (double)c->dim / c->n_heads;
        if (c->mixer[l] == MIXER_SOFTMAX) // causal QK^T and PV: 2 * 2 * (T/2) * Dq
            mixing += 2.0 * T * c->n_heads * c->head_dim;
        else if (c->mixer[l] == MIXER_GLA) // the state read and update, the chunk's causal part
            mixing += 2.0 * (D / 2) * hd * 2 + 2.0 * blk * (D / 2 + D) / 2;
        else
            mixing += 2.0 * D * hd * 2 + 2.0 * blk * 2 * D / 2;
    }
    return 6.0 * matmul + 3.0 * mixing;
}
