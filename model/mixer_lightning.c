// model/mixer_lightning.c: the TNL token mixer (SPEC sec. 2):
//   q,k,v,u = split(x W_qkvu); o = lightning_attn(SiLU(q), SiLU(k), v) with this layer's
//   fixed per-head decays; out = W_o(SRMSNorm(o) * u)
// One [N, 4D] projection; the attention op reads q, k, v from it by row stride and
// applies SiLU itself. With lightning_qk = rope, q and k are instead rotated in place by
// RoPE (as softmax layers do) and enter the attention as they are: the score of key s at
// query t is then lambda^(t-s) q_t . R(s-t) k_s, a relative position on top of the decay
// (TransNormerLLM's LRPE-d has the same form), and q, k copied from a RoPE teacher keep
// the meaning they were trained with.
#include "../core/util.h"
#include "mixer.h"

enum { P_QKVU, P_OUT };                                   // tensors
enum { S_PROJ, S_O, S_ONORM, S_ORSTD, S_GATED, S_CHUNK }; // saved buffers
enum { D_GATED, D_ONORM, D_O, D_PROJ };                   // backward scratch

static void add_params(Model *m, int l, const char *pre, LayerParams *lp) {
    int D = m->cfg.dim;
    lp->mixer[P_QKVU] =
        model_add_param(m, false, 4 * D, D, "model.layers.%d.%s.qkvu_proj.weight", l, pre);
    lp->mixer[P_OUT] =
        model_add_param(m, false, D, D, "model.layers.%d.%s.out_proj.weight", l, pre);
}

static void check_config(const ModelConfig *c) {
    check(c->dim % c->n_heads == 0, "lightning layers: dim %d not divisible by %d heads", c->dim,
          c->n_heads);
    check(c->lightning_qk != LIGHTNING_QK_ROPE || (c->dim / c->n_heads) % 2 == 0,
          "lightning layers: lightning_qk = rope needs an even head size (dim %d / %d heads)",
          c->dim, c->n_heads);
}

static int saved(const ModelConfig *c, BufSpec *out) {
    size_t D = c->dim;
    out[S_PROJ] = (BufSpec){"qkvu", 4 * D, false};
    out[S_O] = (BufSpec){"o", D, false};
    out[S_ONORM] = (BufSpec){"onorm", D, false};
    out[S_ORSTD] = (BufSpec){"orstd", 1, true};
    out[S_GATED] = (BufSpec){"gated", D, false};
    // Kept by the op's forward for its backward's dq (4 KB a token in bf16 at D 1024, H 8).
    size_t H = c->n_heads;
    out[S_CHUNK] = chunk_states_spec(c, H, D / H, D / H);
    return 6;
}

static int scratch(const ModelConfig *c, BufSpec *out) {
    size_t D = c->dim;
    out[D_GATED] = (BufSpec){"d_gated", D, false};
    out[D_ONORM] = (BufSpec){"d_onorm", D, false};
    out[D_O] = (BufSpec){"d_o", D, false};
    out[D_PROJ] = (BufSpec){"d_qkvu", 4 * D, false};
    return 4;
}

static const float *layer_decay(const Model *m, int l) {
    return m->log_decay + (size_t)l * m->cfg.n_heads;
}

// The attention op on the layer's projection, from state_in (NULL: zero) to state_out
// (NULL: not needed), writing o.
static void attn_forward(const MixerCall *mc, Act *o, float *state_out, const float *state_in) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int D = c->dim, H = c->n_heads, hd = D / H;
    Act *proj = mc->a->mixer[S_PROJ];
    be->ops->lightning_attn_forward(
        be, o, state_out, proj, act_at(be, proj, D), act_at(be, proj, 2 * D), 4 * D, state_in,
        layer_decay(m, mc->layer), m->seqs, H, hd, hd, c->lightning_qk == LIGHTNING_QK_SILU,
        c->attn_block, mc->a->mixer[S_CHUNK]);
}

// Its backward into d_proj's q, k, v columns, with the final-state gradient dstate_out
// (NULL: zero); dstate_in (NULL: not needed) gets the initial state's.
static void attn_backward(const MixerCall *mc, const Act *d_o, float *dstate_in,
                          const float *dstate_out) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int D = c->dim, H = c->n_heads, hd = D / H;
    Act *proj = mc->a->mixer[S_PROJ], *d_proj = mc->scratch[D_PROJ];
    be->ops->lightning_attn_backward(
        be, d_proj, act_at(be, d_proj, D), act_at(be, d_proj, 2 * D), dstate_in, d_o, dstate_out,
        proj, act_at(be, proj, D), act_at(be, proj, 2 * D), 4 * D, mc->st->state_in,
        layer_decay(m, mc->layer), m->seqs, H, hd, hd, c->lightning_qk == LIGHTNING_QK_SILU,
        c->attn_block, mc->a->mixer[S_CHUNK]);
}

static void forward(const MixerCall *mc, Act *out) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerParams *lp = &m->layer_params[mc->layer];
    int N = mc->N, D = c->dim, H = c->n_heads, hd = D / H;
    Act *proj = mc->a->mixer[S_PROJ], *o = mc->a->mixer[S_O], *onorm = mc->a->mixer[S_ONORM];
    Act *gated = mc->a->mixer[S_GATED];
    float *orstd = mc->a->mixer[S_ORSTD];
    linear_forward(m, proj, mc->a->ln1, lp->mixer[P_QKVU], 1, N);
    if (c->lightning_qk == LIGHTNING_QK_ROPE) // q and k side by side: one call, 2H heads
        be->ops->rope_forward(be, proj, 4 * D, mc->pos, N, 2 * H, hd, c->rope_theta);
    if (slice_active(m)) { // sequence parallel: first this slice's own contribution
        attn_forward(mc, o, slice_scratch(m), NULL);
        slice_exchange_forward(mc, slice_log_pass_decay(mc, hd), hd, hd);
    }
    attn_forward(mc, o, mc->st->state_out, mc->st->state_in);
    be->ops->norm_forward(be, onorm, orstd, o, NULL, N, D, c->norm_eps, NORM_SRMS);
    be->ops->gate_forward(be, gated, onorm, D, act_at(be, proj, 3 * D), 4 * D, N, D, GATE_MUL);
    linear_forward(m, out, gated, lp->mixer[P_OUT], 1, N);
}

static void backward(const MixerCall *mc, const Act *dout, Act *dln) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const LayerParams *lp = &m->layer_params[mc->layer];
    int N = mc->N, D = c->dim, H = c->n_heads, hd = D / H;
    Act *proj = mc->a->mixer[S_PROJ], *o = mc->a->mixer[S_O], *onorm = mc->a->mixer[S_ONORM];
    Act *gated = mc->a->mixer[S_GATED];
    float *orstd = mc->a->mixer[S_ORSTD];
    Act *d_gated = mc->scratch[D_GATED], *d_onorm = mc->scratch[D_ONORM];
    Act *d_o = mc->scratch[D_O], *d_proj = mc->scratch[D_PROJ];
    linear_backward(m, d_gated, false, dout, gated, lp->mixer[P_OUT], 1, N);
    be->ops->gate_backward(be, d_onorm, D, act_at(be, d_proj, 3 * D), 4 * D, d_gated, onorm, D,
                           act_at(be, proj, 3 * D), 4 * D, N, D, GATE_MUL);
    be->ops->norm_backward(be, d_o, NULL, NULL, d_onorm, o, NULL, orstd, N, D, c->norm_eps,
                           NORM_SRMS);
    const float *dstate_out = mc->st->dstate_out;
    if (slice_active(m)) { // sequence parallel: first the initial state's gradient
        attn_backward(mc, d_o, slice_scratch(m), NULL);
        slice_exchange_backward(mc, slice_log_pass_decay(mc, hd), hd, hd);
        dstate_out = slice_scratch(m);
    }
    attn_backward(mc, d_o, mc->st->dstate_in, dstate_out);
    if (c->lightning_qk == LIGHTNING_QK_ROPE)
        be->ops->rope_backward(be, d_proj, 4 * D, mc->pos, N, 2 * H, hd, c->rope_theta);
    linear_backward(m, dln, false, d_proj, mc->a->ln1, lp->mixer[P_QKVU], 1, N);
}

static size_t state_floats(const ModelConfig *c) {
    size_t hd = c->dim / c->n_heads;
    return c->n_heads * hd * hd;
}

static int kv_width(const ModelConfig *c) {
    return 0;
}

const Mixer mixer_lightning = {
    .name = "lightning",
    .add_params = add_params,
    .check = check_config,
    .saved = saved,
    .scratch = scratch,
    .forward = forward,
    .backward = backward,
    .state_floats = state_floats,
    .kv_width = kv_width,
};
