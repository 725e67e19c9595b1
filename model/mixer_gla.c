// model/mixer_gla.c: the GLA token mixer (SPEC sec. 2, fla's GatedLinearAttention):
//   q = x W_q, k = x W_k [Dk = D/2], v = x W_v, g = x W_g [Dv = D]
//   gk = logsigmoid(W_gk1 (W_gk0 x) + b) / gate_normalizer
//   o = gla(q / sqrt(dk), k, v, gk);  out = W_o(RMSNorm_head(o) * swish(g))
#include <math.h>

#include "../core/util.h"
#include "layers.h"

void gla_mixer_forward(Model *m, int l, LayerActs *a, int B, int T, float *out, MixerState *st) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, Dk = D / 2, Dv = D, r = c->gate_low_rank;
    int hk = Dk / H, hv = Dv / H;
    const LayerOffsets *t = &m->layer_offsets[l];
    const float *w = m->weights;
    ops->matmul_forward(a->q, a->ln1, w + t->q, NULL, N, D, Dk);
    ops->matmul_forward(a->k, a->ln1, w + t->k, NULL, N, D, Dk);
    ops->matmul_forward(a->v, a->ln1, w + t->v, NULL, N, D, Dv);
    ops->matmul_forward(a->u, a->ln1, w + t->g, NULL, N, D, Dv);
    ops->matmul_forward(a->gk_low, a->ln1, w + t->gk0, NULL, N, D, r);
    ops->matmul_forward(a->gk_pre, a->gk_low, w + t->gk1, w + t->gk1_bias, N, r, Dk);
    ops->logsigmoid_forward(a->gk, a->gk_pre, 1.0f / c->gate_normalizer, (long)N * Dk);
    for (int i = 0; i < m->n_spans; i++) {
        const Span *sp = &m->spans[i];
        size_t ak = sp->offset * Dk, av = sp->offset * Dv;
        ops->gla_forward(a->o + av, st ? st->state_out : NULL, a->q + ak, a->k + ak, a->v + av,
                         a->gk + ak, st ? st->state_in : NULL, 1.0f / sqrtf((float)hk), sp->B,
                         sp->T, H, hk, hv, c->attn_block);
    }
    ops->norm_forward(a->onorm, a->orstd, a->o, w + t->g_norm, N * H, hv, c->norm_eps, NORM_RMS);
    ops->swiglu_forward(a->gated, a->u, a->onorm, (long)N * Dv);
    ops->matmul_forward(out, a->gated, w + t->o, NULL, N, Dv, D);
}

void gla_mixer_backward(Model *m, int l, LayerActs *a, int B, int T, const float *dout,
                        float *dln) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, Dk = D / 2, Dv = D, r = c->gate_low_rank;
    int hk = Dk / H, hv = Dv / H;
    const LayerOffsets *t = &m->layer_offsets[l];
    const float *w = m->weights;
    float *g = m->grads;
    size_t bytes = (size_t)N * D * sizeof(float);
    float *d_gated = m->tmp[0], *d_onorm = m->tmp[1], *d_g = m->tmp[2], *d_o = m->tmp[3];
    float *d_q = m->tmp[4], *d_k = m->tmp[5], *d_v = m->tmp[6], *d_gk = m->tmp[7];
    float *d_gk_pre = m->tmp[8], *d_gk_low = m->tmp[9];
    for (int i = 0; i < 10; i++) ops->zero(m->tmp[i], bytes);

    size_t off = t->o;
    ops->matmul_backward(d_gated, g + off, NULL, dout, a->gated, w + off, N, Dv, D);
    ops->swiglu_backward(d_g, d_onorm, d_gated, a->u, a->onorm, (long)N * Dv);
    off = t->g_norm;
    ops->norm_backward(d_o, g + off, d_onorm, a->o, w + off, a->orstd, N * H, hv, c->norm_eps,
                       NORM_RMS);
    for (int i = 0; i < m->n_spans; i++) {
        const Span *sp = &m->spans[i];
        size_t ak = sp->offset * Dk, av = sp->offset * Dv;
        ops->gla_backward(d_q + ak, d_k + ak, d_v + av, d_gk + ak, NULL, d_o + av, NULL, a->q + ak,
                          a->k + ak, a->v + av, a->gk + ak, NULL, 1.0f / sqrtf((float)hk), sp->B,
                          sp->T, H, hk, hv, c->attn_block);
    }
    ops->logsigmoid_backward(d_gk_pre, d_gk, a->gk_pre, 1.0f / c->gate_normalizer, (long)N * Dk);
    off = t->gk1;
    ops->matmul_backward(d_gk_low, g + off, g + t->gk1_bias, d_gk_pre, a->gk_low, w + off, N, r,
                         Dk);
    off = t->gk0;
    ops->matmul_backward(dln, g + off, NULL, d_gk_low, a->ln1, w + off, N, D, r);
    const size_t offsets[4] = {t->q, t->k, t->v, t->g};
    const float *douts[4] = {d_q, d_k, d_v, d_g};
    const int widths[4] = {Dk, Dk, Dv, Dv};
    for (int i = 0; i < 4; i++) {
        off = offsets[i];
        ops->matmul_backward(dln, g + off, NULL, douts[i], a->ln1, w + off, N, D, widths[i]);
    }
}
