// model/mixer_softmax.c: Llama attention (SPEC sec. 2): q, k, v from one projection,
// RoPE in rotate_half form applied in place, causal softmax attention with GQA, output
// projection. Positions count from the start of each sequence (each document, with
// doc_reset). On a slice of each sequence (sequence parallelism) the queries attend to
// the keys gathered from every slice up to this one (model/slice_kv.c). In decoding, keys
// and values go to the layer's KV cache and the query attends to it.
#include "../core/util.h"
#include "mixer.h"

enum { P_Q, P_K, P_V, P_O }; // tensors
enum { S_PROJ, S_O, S_LSE }; // saved buffers
enum { D_O, D_PROJ };        // backward scratch

static void add_params(Model *m, int l, const char *pre, LayerParams *lp) {
    const ModelConfig *c = &m->cfg;
    int D = c->dim, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    int *t = lp->mixer;
    t[P_Q] = model_add_param(m, false, q, D, "model.layers.%d.%s.q_proj.weight", l, pre);
    t[P_K] = model_add_param(m, false, kv, D, "model.layers.%d.%s.k_proj.weight", l, pre);
    t[P_V] = model_add_param(m, false, kv, D, "model.layers.%d.%s.v_proj.weight", l, pre);
    t[P_O] = model_add_param(m, false, D, q, "model.layers.%d.%s.o_proj.weight", l, pre);
}

static void check_config(const ModelConfig *c) {
    check(c->head_dim % 2 == 0, "softmax layers: head_dim %d must be even (RoPE)", c->head_dim);
}

static int saved(const ModelConfig *c, BufSpec *out) {
    size_t q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    out[S_PROJ] = (BufSpec){"qkv", q + 2 * kv, false};
    out[S_O] = (BufSpec){"o", q, false};
    out[S_LSE] = (BufSpec){"lse", (size_t)c->n_heads, true};
    return 3;
}

static int scratch(const ModelConfig *c, BufSpec *out) {
    size_t q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    out[D_O] = (BufSpec){"d_o", q, false};
    out[D_PROJ] = (BufSpec){"d_qkv", q + 2 * kv, false};
    return 2;
}

static void forward(const MixerCall *mc, Act *out) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const int *t = m->layer_params[mc->layer].mixer;
    int N = mc->N, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    int Dq = H * hd, Dkv = Hkv * hd, W = Dq + 2 * Dkv;
    Act *proj = mc->a->mixer[S_PROJ], *o = mc->a->mixer[S_O];
    float *lse = mc->a->mixer[S_LSE];
    Act *k = act_at(be, proj, Dq), *v = act_at(be, proj, Dq + Dkv);
    linear_forward(m, proj, mc->a->ln1, t[P_Q], 3, N);
    be->ops->rope_forward(be, proj, W, mc->pos, N, H, hd, c->rope_theta);
    be->ops->rope_forward(be, k, W, mc->pos, N, Hkv, hd, c->rope_theta);
    if (mc->decoding) {
        LayerState *st = mc->st;
        check(N == 1 && mc->decode_pos < st->max_len, "decoding past the context of %d tokens",
              st->max_len);
        // k and v are adjacent in the projection row: one strided copy into the cache.
        size_t row = 2 * (size_t)Dkv * be->act_size;
        be->ops->copy_2d(be, act_at(be, st->kv_cache, (size_t)mc->decode_pos * 2 * Dkv), row, k,
                         (size_t)W * be->act_size, row, 1);
        be->ops->softmax_attn_forward(be, o, lse, proj, W, st->kv_cache,
                                      act_at(be, st->kv_cache, Dkv), 2 * Dkv, m->seqs,
                                      mc->decode_kv, H, Hkv, hd);
    } else if (slice_active(m)) { // sequence parallel: the keys of every slice up to this one
        Act *keys = slice_gather_kv(mc, k, W, 2 * Dkv);
        be->ops->softmax_attn_forward(be, o, lse, proj, W, keys, act_at(be, keys, Dkv), 2 * Dkv,
                                      m->seqs, m->sliced->keys, H, Hkv, hd);
    } else {
        be->ops->softmax_attn_forward(be, o, lse, proj, W, k, v, W, m->seqs, m->seqs, H, Hkv, hd);
    }
    linear_forward(m, out, o, t[P_O], 1, N);
}

static void backward(const MixerCall *mc, const Act *dout, Act *dln) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const int *t = m->layer_params[mc->layer].mixer;
    int N = mc->N, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    int Dq = H * hd, Dkv = Hkv * hd, W = Dq + 2 * Dkv;
    Act *proj = mc->a->mixer[S_PROJ], *o = mc->a->mixer[S_O];
    Act *d_o = mc->scratch[D_O], *d_proj = mc->scratch[D_PROJ];
    linear_backward(m, d_o, false, dout, o, t[P_O], 1, N);
    if (slice_active(m)) { // gather the keys again; their gradients go back to their slices
        Act *keys = slice_gather_kv(mc, act_at(be, proj, Dq), W, 2 * Dkv);
        Act *d_keys = slice_kv_grad(m);
        be->ops->softmax_attn_backward(be, d_proj, d_keys, act_at(be, d_keys, Dkv), d_o, o,
                                       mc->a->mixer[S_LSE], proj, W, keys, act_at(be, keys, Dkv),
                                       2 * Dkv, m->seqs, m->sliced->keys, H, Hkv, hd);
        slice_reduce_kv_grad(mc, act_at(be, d_proj, Dq), W, 2 * Dkv);
    } else {
        be->ops->softmax_attn_backward(be, d_proj, act_at(be, d_proj, Dq),
                                       act_at(be, d_proj, Dq + Dkv), d_o, o, mc->a->mixer[S_LSE],
                                       proj, W, act_at(be, proj, Dq), act_at(be, proj, Dq + Dkv), W,
                                       m->seqs, m->seqs, H, Hkv, hd);
    }
    be->ops->rope_backward(be, d_proj, W, mc->pos, N, H, hd, c->rope_theta);
    be->ops->rope_backward(be, act_at(be, d_proj, Dq), W, mc->pos, N, Hkv, hd, c->rope_theta);
    linear_backward(m, dln, false, d_proj, mc->a->ln1, t[P_Q], 3, N);
}

static size_t state_floats(const ModelConfig *c) {
    return 0;
}

static int kv_width(const ModelConfig *c) {
    return c->n_kv_heads * c->head_dim;
}

const Mixer mixer_softmax = {
    .name = "softmax",
    .add_params = add_params,
    .check = check_config,
    .saved = saved,
    .scratch = scratch,
    .forward = forward,
    .backward = backward,
    .state_floats = state_floats,
    .kv_width = kv_width,
};
