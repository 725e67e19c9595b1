// model/mixer_gla.c: the GLA token mixer (SPEC sec. 2, fla's GatedLinearAttention):
//   q = x W_q, k = x W_k [Dk = D/2], v = x W_v, g = x W_g [Dv = D]
//   gk = logsigmoid(W_gk1 (W_gk0 x) + b) / gate_normalizer
//   o = gla(q / sqrt(dk), k, v, gk);  out = W_o(RMSNorm_head(o) * swish(g))
// q, k, v and g come from one [N, 2Dk + 2Dv] projection (their tensors are adjacent).
#include <math.h>

#include "../core/util.h"
#include "mixer.h"

enum { P_Q, P_K, P_V, P_G, P_GK0, P_GK1, P_GK1_BIAS, P_GNORM, P_O }; // tensors
enum { S_PROJ, S_GK_LOW, S_GK_PRE, S_GK, S_O, S_ONORM, S_ORSTD, S_GATED, S_CHUNK };
enum { D_GATED, D_ONORM, D_O, D_PROJ, D_GK, D_GK_PRE, D_GK_LOW };

static void add_params(Model *m, int l, const char *pre, LayerParams *lp) {
    const ModelConfig *c = &m->cfg;
    int D = c->dim, Dk = D / 2, Dv = D, hv = Dv / c->n_heads, r = c->gate_low_rank;
    int *t = lp->mixer;
    t[P_Q] = model_add_param(m, false, Dk, D, "model.layers.%d.%s.q_proj.weight", l, pre);
    t[P_K] = model_add_param(m, false, Dk, D, "model.layers.%d.%s.k_proj.weight", l, pre);
    t[P_V] = model_add_param(m, false, Dv, D, "model.layers.%d.%s.v_proj.weight", l, pre);
    t[P_G] = model_add_param(m, false, Dv, D, "model.layers.%d.%s.g_proj.weight", l, pre);
    t[P_GK0] = model_add_param(m, false, r, D, "model.layers.%d.%s.gk_proj.0.weight", l, pre);
    t[P_GK1] = model_add_param(m, false, Dk, r, "model.layers.%d.%s.gk_proj.1.weight", l, pre);
    t[P_GK1_BIAS] = model_add_param(m, true, Dk, 0, "model.layers.%d.%s.gk_proj.1.bias", l, pre);
    t[P_GNORM] =
        model_add_param(m, true, hv, 0, "model.layers.%d.%s.g_norm_swish_gate.weight", l, pre);
    t[P_O] = model_add_param(m, false, D, Dv, "model.layers.%d.%s.o_proj.weight", l, pre);
}

static void check_config(const ModelConfig *c) {
    check(c->dim % (2 * c->n_heads) == 0, "gla layers: dim/2 = %d not divisible by %d heads",
          c->dim / 2, c->n_heads);
}

// Width of the fused projection: q, k (Dk each), v, g (Dv each).
static size_t proj_width(const ModelConfig *c) {
    return (size_t)c->dim / 2 * 2 + (size_t)c->dim * 2;
}

static int saved(const ModelConfig *c, BufSpec *out) {
    size_t D = c->dim, Dk = D / 2;
    out[S_PROJ] = (BufSpec){"qkvg", proj_width(c), false};
    out[S_GK_LOW] = (BufSpec){"gk_low", (size_t)c->gate_low_rank, false};
    out[S_GK_PRE] = (BufSpec){"gk_pre", Dk, false};
    out[S_GK] = (BufSpec){"gk", Dk, false};
    out[S_O] = (BufSpec){"o", D, false};
    out[S_ONORM] = (BufSpec){"onorm", D, false};
    out[S_ORSTD] = (BufSpec){"orstd", (size_t)c->n_heads, true};
    out[S_GATED] = (BufSpec){"gated", D, false};
    // Kept by the op's forward for its backward (4 KB a token in bf16 at D 1024, H 4).
    size_t H = c->n_heads;
    out[S_CHUNK] = chunk_states_spec(c, H, Dk / H, D / H);
    return 9;
}

static int scratch(const ModelConfig *c, BufSpec *out) {
    size_t D = c->dim, Dk = D / 2;
    out[D_GATED] = (BufSpec){"d_gated", D, false};
    out[D_ONORM] = (BufSpec){"d_onorm", D, false};
    out[D_O] = (BufSpec){"d_o", D, false};
    out[D_PROJ] = (BufSpec){"d_qkvg", proj_width(c), false};
    out[D_GK] = (BufSpec){"d_gk", Dk, false};
    out[D_GK_PRE] = (BufSpec){"d_gk_pre", Dk, false};
    out[D_GK_LOW] = (BufSpec){"d_gk_low", (size_t)c->gate_low_rank, false};
    return 7;
}

// The GLA op on the layer's projection and gates, from state_in (NULL: zero) to
// state_out (NULL: not needed), writing o.
static void attn_forward(const MixerCall *mc, Act *o, float *state_out, const float *state_in) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int H = c->n_heads, Dk = c->dim / 2, hk = Dk / H, hv = c->dim / H, W = (int)proj_width(c);
    Act *proj = mc->a->mixer[S_PROJ];
    be->ops->gla_forward(be, o, state_out, proj, act_at(be, proj, Dk), act_at(be, proj, 2 * Dk), W,
                         mc->a->mixer[S_GK], state_in, 1.0f / sqrtf((float)hk), m->seqs, H, hk, hv,
                         c->attn_block, mc->a->mixer[S_CHUNK]);
}

// Its backward into d_proj's q, k, v columns and d_gk, with the final-state gradient
// dstate_out (NULL: zero); dstate_in (NULL: not needed) gets the initial state's.
static void attn_backward(const MixerCall *mc, const Act *d_o, float *dstate_in,
                          const float *dstate_out) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    int H = c->n_heads, Dk = c->dim / 2, hk = Dk / H, hv = c->dim / H, W = (int)proj_width(c);
    Act *proj = mc->a->mixer[S_PROJ], *d_proj = mc->scratch[D_PROJ];
    be->ops->gla_backward(be, d_proj, act_at(be, d_proj, Dk), act_at(be, d_proj, 2 * Dk),
                          mc->scratch[D_GK], dstate_in, d_o, dstate_out, proj, act_at(be, proj, Dk),
                          act_at(be, proj, 2 * Dk), W, mc->a->mixer[S_GK], mc->st->state_in,
                          1.0f / sqrtf((float)hk), m->seqs, H, hk, hv, c->attn_block,
                          mc->a->mixer[S_CHUNK]);
}

static void forward(const MixerCall *mc, Act *out) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const int *t = m->layer_params[mc->layer].mixer;
    int N = mc->N, D = c->dim, H = c->n_heads, Dk = D / 2, Dv = D, r = c->gate_low_rank;
    int hk = Dk / H, hv = Dv / H, W = (int)proj_width(c);
    void **s = mc->a->mixer;
    Act *proj = s[S_PROJ], *gk_low = s[S_GK_LOW], *gk_pre = s[S_GK_PRE], *gk = s[S_GK];
    Act *o = s[S_O], *onorm = s[S_ONORM], *gated = s[S_GATED];
    Act *g = act_at(be, proj, 2 * Dk + Dv);
    linear_forward(m, proj, mc->a->ln1, t[P_Q], 4, N);
    linear_forward(m, gk_low, mc->a->ln1, t[P_GK0], 1, N);
    be->ops->matmul_forward(be, gk_pre, gk_low, param_weight(m, t[P_GK1]),
                            param_weight(m, t[P_GK1_BIAS]), N, r, Dk);
    be->ops->logsigmoid_forward(be, gk, gk_pre, 1.0f / c->gate_normalizer, (long)N * Dk);
    if (slice_active(m)) { // sequence parallel: first this slice's own contribution
        attn_forward(mc, o, slice_scratch(m), NULL);
        slice_exchange_forward(mc, slice_log_pass_gates(mc, gk, hk), hk, hv);
    }
    attn_forward(mc, o, mc->st->state_out, mc->st->state_in);
    be->ops->norm_forward(be, onorm, s[S_ORSTD], o, param_weight(m, t[P_GNORM]), N * H, hv,
                          c->norm_eps, NORM_RMS);
    be->ops->gate_forward(be, gated, g, W, onorm, Dv, N, Dv, GATE_SWISH);
    linear_forward(m, out, gated, t[P_O], 1, N);
}

static void backward(const MixerCall *mc, const Act *dout, Act *dln) {
    Model *m = mc->m;
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const int *t = m->layer_params[mc->layer].mixer;
    int N = mc->N, D = c->dim, H = c->n_heads, Dk = D / 2, Dv = D, r = c->gate_low_rank;
    int hk = Dk / H, hv = Dv / H, W = (int)proj_width(c);
    void **s = mc->a->mixer, **d = mc->scratch;
    Act *proj = s[S_PROJ], *gk_low = s[S_GK_LOW], *gk_pre = s[S_GK_PRE], *gk = s[S_GK];
    Act *o = s[S_O], *onorm = s[S_ONORM], *gated = s[S_GATED];
    Act *g = act_at(be, proj, 2 * Dk + Dv);
    Act *d_gated = d[D_GATED], *d_onorm = d[D_ONORM], *d_o = d[D_O], *d_proj = d[D_PROJ];
    Act *d_gk = d[D_GK], *d_gk_pre = d[D_GK_PRE], *d_gk_low = d[D_GK_LOW];

    linear_backward(m, d_gated, false, dout, gated, t[P_O], 1, N);
    be->ops->gate_backward(be, act_at(be, d_proj, 2 * Dk + Dv), W, d_onorm, Dv, d_gated, g, W,
                           onorm, Dv, N, Dv, GATE_SWISH);
    be->ops->norm_backward(be, d_o, param_grad(m, t[P_GNORM]), NULL, d_onorm, o,
                           param_weight(m, t[P_GNORM]), s[S_ORSTD], N * H, hv, c->norm_eps,
                           NORM_RMS);
    const float *dstate_out = mc->st->dstate_out;
    if (slice_active(m)) { // sequence parallel: first the initial state's gradient
        attn_backward(mc, d_o, slice_scratch(m), NULL);
        slice_exchange_backward(mc, slice_log_pass_gates(mc, gk, hk), hk, hv);
        dstate_out = slice_scratch(m);
    }
    attn_backward(mc, d_o, mc->st->dstate_in, dstate_out);
    be->ops->logsigmoid_backward(be, d_gk_pre, d_gk, gk_pre, 1.0f / c->gate_normalizer,
                                 (long)N * Dk);
    be->ops->matmul_backward(be, d_gk_low, param_grad(m, t[P_GK1]), param_grad(m, t[P_GK1_BIAS]),
                             d_gk_pre, Dk, gk_low, param_weight(m, t[P_GK1]), N, r, Dk, false);
    linear_backward(m, dln, false, d_proj, mc->a->ln1, t[P_Q], 4, N);
    linear_backward(m, dln, true, d_gk_low, mc->a->ln1, t[P_GK0], 1, N);
}

static size_t state_floats(const ModelConfig *c) {
    size_t hk = c->dim / 2 / c->n_heads, hv = c->dim / c->n_heads;
    return c->n_heads * hk * hv;
}

static int kv_width(const ModelConfig *c) {
    return 0;
}

const Mixer mixer_gla = {
    .name = "gla",
    .add_params = add_params,
    .check = check_config,
    .saved = saved,
    .scratch = scratch,
    .forward = forward,
    .backward = backward,
    .state_floats = state_floats,
    .kv_width = kv_width,
};
