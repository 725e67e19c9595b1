// model/model.c: allocation, the block loop (norm -> mixer -> residual -> norm -> MLP ->
// residual) forward and backward for every family, the loss, and recurrent decoding.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "layers.h"

static NormKind family_norm(const ModelConfig *c) {
    return c->family == FAMILY_TNL ? NORM_SRMS : NORM_RMS;
}

// TNL scales the embedding by sqrt(D); GLA and Llama do not.
static float embed_scale(const ModelConfig *c) {
    return c->family == FAMILY_TNL ? sqrtf((float)c->dim) : 1.0f;
}

// A weight pointer, or NULL where the family has no such tensor (SRMSNorm).
static const float *weight_at(const Model *m, size_t off) {
    return off == NO_TENSOR ? NULL : m->weights + off;
}
static float *grad_at(const Model *m, size_t off) {
    return off == NO_TENSOR ? NULL : m->grads + off;
}

void model_create(Model *m, const ModelConfig *cfg, const Ops *ops) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ops = ops;
    model_build_params(m);
    m->weights = ops->alloc(m->n_weights * sizeof(float));
    m->grads = ops->alloc(m->n_weights * sizeof(float));
    int L = cfg->n_layers, H = cfg->n_heads;
    float *decay = xcalloc((size_t)L * H, sizeof(float));
    for (int l = 0; l < L; l++) lightning_log_decays(cfg, l, decay + (size_t)l * H);
    m->log_decay = ops->alloc((size_t)L * H * sizeof(float));
    ops->upload(m->log_decay, decay, (size_t)L * H * sizeof(float));
    free(decay);
}

// Free every activation buffer (all pointers in LayerActs and the model's own).
static void free_acts(Model *m) {
    const Ops *ops = m->ops;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            float **slot = (float **)&m->layers[l];
            for (size_t i = 0; i < sizeof(LayerActs) / sizeof(float *); i++) {
                if (slot[i]) ops->free(slot[i]);
            }
        }
        free(m->layers);
        m->layers = NULL;
    }
    float **own[] = {&m->final_in, &m->final_ln, &m->final_rstd, &m->losses, &m->d_resid, &m->d_ln};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        if (*own[i]) ops->free(*own[i]);
        *own[i] = NULL;
    }
    for (int i = 0; i < N_SCRATCH; i++) {
        if (m->tmp[i]) ops->free(m->tmp[i]);
        m->tmp[i] = NULL;
    }
    free(m->spans);
    m->spans = NULL;
    if (m->tokens) ops->free(m->tokens);
    if (m->targets) ops->free(m->targets);
    m->tokens = m->targets = NULL;
    m->act_tokens = 0;
}

void model_free(Model *m) {
    free_acts(m);
    m->ops->free(m->weights);
    m->ops->free(m->grads);
    m->ops->free(m->log_decay);
}

// Width of backward scratch buffer i: the mixers use up to N_SCRATCH buffers as wide as
// D or the query heads; the MLP uses the first three, as wide as its hidden layer.
static size_t scratch_width(const ModelConfig *c, int i) {
    size_t q = (size_t)c->n_heads * c->head_dim;
    size_t w = (size_t)c->dim > q ? (size_t)c->dim : q;
    return i < 3 && (size_t)c->mlp_dim > w ? (size_t)c->mlp_dim : w;
}

// Allocate activations for B x T tokens (kept for any batch of at most as many tokens).
static void ensure_acts(Model *m, int B, int T) {
    if ((size_t)B * T <= m->act_tokens) return;
    free_acts(m);
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)B * T, D = c->dim, F = c->mlp_dim, f = sizeof(float);
    size_t Dq = (size_t)c->n_heads * c->head_dim, Dkv = (size_t)c->n_kv_heads * c->head_dim;
    m->layers = xcalloc((size_t)c->n_layers, sizeof(LayerActs));
    for (int l = 0; l < c->n_layers; l++) {
        LayerActs *a = &m->layers[l];
        a->resid_in = ops->alloc(N * D * f);
        a->ln1 = ops->alloc(N * D * f);
        a->rstd1 = ops->alloc(N * f);
        a->resid_mid = ops->alloc(N * D * f);
        a->ln2 = ops->alloc(N * D * f);
        a->rstd2 = ops->alloc(N * f);
        a->mlp_a = ops->alloc(N * F * f);
        a->mlp_b = ops->alloc(N * F * f);
        a->mlp_h = ops->alloc(N * F * f);
        if (c->mixer[l] == MIXER_LIGHTNING) {
            a->q = ops->alloc(N * D * f);
            a->k = ops->alloc(N * D * f);
            a->v = ops->alloc(N * D * f);
            a->u = ops->alloc(N * D * f);
            a->qa = ops->alloc(N * D * f);
            a->ka = ops->alloc(N * D * f);
            a->o = ops->alloc(N * D * f);
            a->onorm = ops->alloc(N * D * f);
            a->orstd = ops->alloc(N * f);
            a->gated = ops->alloc(N * D * f);
        } else if (c->mixer[l] == MIXER_GLA) {
            size_t Dk = D / 2, r = c->gate_low_rank;
            a->q = ops->alloc(N * Dk * f);
            a->k = ops->alloc(N * Dk * f);
            a->v = ops->alloc(N * D * f);
            a->u = ops->alloc(N * D * f);
            a->gk_low = ops->alloc(N * r * f);
            a->gk_pre = ops->alloc(N * Dk * f);
            a->gk = ops->alloc(N * Dk * f);
            a->o = ops->alloc(N * D * f);
            a->onorm = ops->alloc(N * D * f);
            a->orstd = ops->alloc(N * c->n_heads * f);
            a->gated = ops->alloc(N * D * f);
        } else {
            a->q = ops->alloc(N * Dq * f);
            a->k = ops->alloc(N * Dkv * f);
            a->v = ops->alloc(N * Dkv * f);
            a->qa = ops->alloc(N * Dq * f);
            a->ka = ops->alloc(N * Dkv * f);
            a->o = ops->alloc(N * Dq * f);
            a->lse = ops->alloc(N * c->n_heads * f);
        }
    }
    m->final_in = ops->alloc(N * D * f);
    m->final_ln = ops->alloc(N * D * f);
    m->final_rstd = ops->alloc(N * f);
    m->losses = ops->alloc(N * f);
    m->d_resid = ops->alloc(N * D * f);
    m->d_ln = ops->alloc(N * D * f);
    for (int i = 0; i < N_SCRATCH; i++) m->tmp[i] = ops->alloc(N * scratch_width(c, i) * f);
    m->tokens = ops->alloc(N * sizeof(int));
    m->targets = ops->alloc(N * sizeof(int));
    m->spans = xmalloc(N * sizeof(Span));
    m->act_tokens = N;
}

static void mixer_forward(Model *m, int l, int B, int T, float *out, MixerState *st) {
    LayerActs *a = &m->layers[l];
    switch (m->cfg.mixer[l]) {
    case MIXER_LIGHTNING:
        lightning_mixer_forward(m, l, a, B, T, out, st);
        break;
    case MIXER_GLA:
        gla_mixer_forward(m, l, a, B, T, out, st);
        break;
    case MIXER_SOFTMAX:
        softmax_mixer_forward(m, l, a, B, T, out, st);
        break;
    }
}

static void mixer_backward(Model *m, int l, int B, int T, const float *dout, float *dln) {
    LayerActs *a = &m->layers[l];
    switch (m->cfg.mixer[l]) {
    case MIXER_LIGHTNING:
        lightning_mixer_backward(m, l, a, B, T, dout, dln);
        break;
    case MIXER_GLA:
        gla_mixer_backward(m, l, a, B, T, dout, dln);
        break;
    case MIXER_SOFTMAX:
        softmax_mixer_backward(m, l, a, B, T, dout, dln);
        break;
    }
}

// The MLP of layer l on a->ln2, result in out [N, D]: SGLU (TNL, no activation) or SwiGLU.
static void mlp_forward(Model *m, int l, int N, float *out) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    LayerActs *a = &m->layers[l];
    int D = c->dim, F = c->mlp_dim;
    ops->matmul_forward(a->mlp_a, a->ln2, m->weights + m->layer_offsets[l].mlp_in0, NULL, N, D, F);
    ops->matmul_forward(a->mlp_b, a->ln2, m->weights + m->layer_offsets[l].mlp_in1, NULL, N, D, F);
    if (c->family == FAMILY_TNL)
        ops->mul_forward(a->mlp_h, a->mlp_a, a->mlp_b, (long)N * F);
    else
        ops->swiglu_forward(a->mlp_h, a->mlp_a, a->mlp_b, (long)N * F);
    ops->matmul_forward(out, a->mlp_h, m->weights + m->layer_offsets[l].mlp_out, NULL, N, F, D);
}

static void mlp_backward(Model *m, int l, int N, const float *dout, float *dln) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    LayerActs *a = &m->layers[l];
    int D = c->dim, F = c->mlp_dim;
    float *d_h = m->tmp[0], *d_a = m->tmp[1], *d_b = m->tmp[2];
    for (int i = 0; i < 3; i++) ops->zero(m->tmp[i], (size_t)N * F * sizeof(float));
    size_t off_out = m->layer_offsets[l].mlp_out;
    size_t off_a = m->layer_offsets[l].mlp_in0, off_b = m->layer_offsets[l].mlp_in1;
    ops->matmul_backward(d_h, m->grads + off_out, NULL, dout, a->mlp_h, m->weights + off_out, N, F,
                         D);
    if (c->family == FAMILY_TNL)
        ops->mul_backward(d_a, d_b, d_h, a->mlp_a, a->mlp_b, (long)N * F);
    else
        ops->swiglu_backward(d_a, d_b, d_h, a->mlp_a, a->mlp_b, (long)N * F);
    ops->matmul_backward(dln, m->grads + off_a, NULL, d_a, a->ln2, m->weights + off_a, N, D, F);
    ops->matmul_backward(dln, m->grads + off_b, NULL, d_b, a->ln2, m->weights + off_b, N, D, F);
}

// Embedding and every block; leaves the last residual stream in m->final_in and its norm
// in m->final_ln. states: per-layer decoding state, or NULL in training.
static void forward_blocks(Model *m, int B, int T, MixerState *states) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int N = B * T, D = c->dim;
    NormKind nk = family_norm(c);
    float *x = m->layers[0].resid_in;
    ops->embedding_forward(x, m->tokens, m->weights + m->embed, N, D, c->vocab_size,
                           embed_scale(c));
    for (int l = 0; l < c->n_layers; l++) {
        LayerActs *a = &m->layers[l];
        float *next = l + 1 < c->n_layers ? m->layers[l + 1].resid_in : m->final_in;
        ops->norm_forward(a->ln1, a->rstd1, a->resid_in,
                          weight_at(m, m->layer_offsets[l].attn_norm), N, D, c->norm_eps, nk);
        mixer_forward(m, l, B, T, next, states ? &states[l] : NULL);
        ops->add_forward(a->resid_mid, a->resid_in, next, (long)N * D);
        ops->norm_forward(a->ln2, a->rstd2, a->resid_mid,
                          weight_at(m, m->layer_offsets[l].mlp_norm), N, D, c->norm_eps, nk);
        mlp_forward(m, l, N, next);
        ops->add_forward(next, a->resid_mid, next, (long)N * D);
    }
    ops->norm_forward(m->final_ln, m->final_rstd, m->final_in, weight_at(m, m->final_norm), N, D,
                      c->norm_eps, nk);
}

// The spans the mixers run over: the whole batch, or with doc_reset one span per document
// (a document starts at each EOT, as prep writes an EOT before every document).
static void find_spans(Model *m, const int *tokens, int B, int T) {
    m->n_spans = 0;
    if (!m->cfg.doc_reset) {
        m->spans[m->n_spans++] = (Span){0, B, T};
        return;
    }
    for (int b = 0; b < B; b++) {
        int start = 0;
        for (int t = 1; t <= T; t++) {
            if (t == T || tokens[(size_t)b * T + t] == m->cfg.eot_token) {
                m->spans[m->n_spans++] = (Span){(size_t)b * T + start, 1, t - start};
                start = t;
            }
        }
    }
}

// Copy a host batch to the device; returns the number of counted targets (>= 0).
static int load_batch(Model *m, const int *tokens, const int *targets, int B, int T) {
    ensure_acts(m, B, T);
    find_spans(m, tokens, B, T);
    size_t N = (size_t)B * T;
    m->ops->upload(m->tokens, tokens, N * sizeof(int));
    m->ops->upload(m->targets, targets, N * sizeof(int));
    int counted = 0;
    for (size_t i = 0; i < N; i++) counted += targets[i] >= 0;
    check(counted > 0, "batch has no targets to predict");
    return counted;
}

// Mean of the per-token losses over counted targets.
static float mean_loss(Model *m, int N, int counted) {
    float *host = xmalloc((size_t)N * sizeof(float));
    m->ops->download(host, m->losses, (size_t)N * sizeof(float));
    double sum = 0;
    for (int i = 0; i < N; i++) sum += host[i];
    free(host);
    return (float)(sum / counted);
}

float model_loss(Model *m, const int *tokens, const int *targets, int B, int T) {
    int counted = load_batch(m, tokens, targets, B, T);
    forward_blocks(m, B, T, NULL);
    const ModelConfig *c = &m->cfg;
    m->ops->lm_head_cross_entropy(m->losses, NULL, NULL, m->final_ln, m->weights + m->lm_head,
                                  m->targets, B * T, c->dim, c->vocab_size, 0.0f);
    return mean_loss(m, B * T, counted);
}

float model_forward_backward(Model *m, const int *tokens, const int *targets, int B, int T,
                             float grad_scale) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int counted = load_batch(m, tokens, targets, B, T);
    int N = B * T, D = c->dim;
    size_t act_bytes = (size_t)N * D * sizeof(float);
    NormKind nk = family_norm(c);
    forward_blocks(m, B, T, NULL);

    // The fused LM head + cross-entropy gives the gradient of the final norm's output.
    ops->zero(m->d_ln, act_bytes);
    size_t head = m->lm_head;
    ops->lm_head_cross_entropy(m->losses, m->d_ln, m->grads + head, m->final_ln, m->weights + head,
                               m->targets, N, D, c->vocab_size, grad_scale / (float)counted);
    ops->zero(m->d_resid, act_bytes);
    size_t fn = m->final_norm;
    ops->norm_backward(m->d_resid, grad_at(m, fn), m->d_ln, m->final_in, weight_at(m, fn),
                       m->final_rstd, N, D, c->norm_eps, nk);

    // d_resid holds d(loss)/d(block output); each norm backward adds its branch into it,
    // so after a block it holds the gradient of the block's input (residual identity).
    for (int l = c->n_layers - 1; l >= 0; l--) {
        LayerActs *a = &m->layers[l];
        ops->zero(m->d_ln, act_bytes);
        mlp_backward(m, l, N, m->d_resid, m->d_ln);
        size_t off = m->layer_offsets[l].mlp_norm;
        ops->norm_backward(m->d_resid, grad_at(m, off), m->d_ln, a->resid_mid, weight_at(m, off),
                           a->rstd2, N, D, c->norm_eps, nk);
        ops->zero(m->d_ln, act_bytes);
        mixer_backward(m, l, B, T, m->d_resid, m->d_ln);
        off = m->layer_offsets[l].attn_norm;
        ops->norm_backward(m->d_resid, grad_at(m, off), m->d_ln, a->resid_in, weight_at(m, off),
                           a->rstd1, N, D, c->norm_eps, nk);
    }
    ops->embedding_backward(m->grads + m->embed, m->d_resid, m->tokens, N, D, embed_scale(c));
    return mean_loss(m, N, counted);
}

void model_zero_grad(Model *m) {
    m->ops->zero(m->grads, m->n_weights * sizeof(float));
}

// ---- recurrent decoding ---------------------------------------------------------------

struct DecodeState {
    const Ops *ops; // the backend that owns the buffers
    int n_layers;
    MixerState *layers;
    float *logits; // [vocab_size], device
};

DecodeState *decode_state_new(const Model *m, int max_len) {
    const ModelConfig *c = &m->cfg;
    const Ops *ops = m->ops;
    DecodeState *s = xcalloc(1, sizeof *s);
    s->ops = ops;
    s->n_layers = c->n_layers;
    s->logits = ops->alloc((size_t)c->vocab_size * sizeof(float));
    s->layers = xcalloc((size_t)c->n_layers, sizeof(MixerState));
    for (int l = 0; l < c->n_layers; l++) {
        MixerState *st = &s->layers[l];
        st->max_len = max_len;
        size_t H = c->n_heads, state = 0;
        if (c->mixer[l] == MIXER_LIGHTNING) state = H * (c->dim / H) * (c->dim / H);
        if (c->mixer[l] == MIXER_GLA) state = H * (c->dim / 2 / H) * (c->dim / H);
        if (state) {
            st->state_bytes = state * sizeof(float);
            st->state_in = ops->alloc(state * sizeof(float));
            st->state_out = ops->alloc(state * sizeof(float));
        } else {
            size_t kv = (size_t)max_len * c->n_kv_heads * c->head_dim * sizeof(float);
            st->k_cache = ops->alloc(kv);
            st->v_cache = ops->alloc(kv);
        }
    }
    return s;
}

void decode_state_free(DecodeState *s) {
    for (int l = 0; l < s->n_layers; l++) {
        float *bufs[4] = {s->layers[l].state_in, s->layers[l].state_out, s->layers[l].k_cache,
                          s->layers[l].v_cache};
        for (int i = 0; i < 4; i++) {
            if (bufs[i]) s->ops->free(bufs[i]);
        }
    }
    s->ops->free(s->logits);
    free(s->layers);
    free(s);
}

// Forget everything decoded so far (a new document starts).
static void decode_state_reset(DecodeState *s) {
    for (int l = 0; l < s->n_layers; l++) {
        MixerState *st = &s->layers[l];
        if (st->state_in) s->ops->zero(st->state_in, st->state_bytes);
        st->pos = 0;
    }
}

void model_decode_step(Model *m, DecodeState *s, int token, float *logits) {
    const ModelConfig *c = &m->cfg;
    ensure_acts(m, 1, 1);
    m->spans[0] = (Span){0, 1, 1};
    m->n_spans = 1;
    if (c->doc_reset && token == c->eot_token) decode_state_reset(s);
    m->ops->upload(m->tokens, &token, sizeof(int));
    forward_blocks(m, 1, 1, s->layers);
    for (int l = 0; l < c->n_layers; l++) {
        MixerState *st = &s->layers[l];
        float *t = st->state_in; // the new state becomes the next step's input
        st->state_in = st->state_out;
        st->state_out = t;
        st->pos++;
    }
    m->ops->matmul_forward(s->logits, m->final_ln, m->weights + m->lm_head, NULL, 1, c->dim,
                           c->vocab_size);
    m->ops->download(logits, s->logits, (size_t)c->vocab_size * sizeof(float));
}
