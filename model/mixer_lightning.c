// model/mixer_lightning.c: the TNL token mixer (SPEC sec. 2):
//   q,k,v,u = split(x W_qkvu); q = SiLU(q); k = SiLU(k)
//   o = lightning_attn(q, k, v) with this layer's fixed per-head decays
//   out = W_o(SRMSNorm(o) * u)
#include <math.h>

#include "../core/util.h"
#include "layers.h"

void lightning_mixer_forward(Model *m, int l, LayerActs *a, int B, int T, float *out,
                             MixerState *st) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, hd = D / H;
    const LayerOffsets *t = &m->layer_offsets[l];
    const float *w_qkvu = m->weights + t->qkvu, *w_out = m->weights + t->o;
    size_t DD = (size_t)D * D;
    ops->matmul_forward(a->q, a->ln1, w_qkvu + 0 * DD, NULL, N, D, D);
    ops->matmul_forward(a->k, a->ln1, w_qkvu + 1 * DD, NULL, N, D, D);
    ops->matmul_forward(a->v, a->ln1, w_qkvu + 2 * DD, NULL, N, D, D);
    ops->matmul_forward(a->u, a->ln1, w_qkvu + 3 * DD, NULL, N, D, D);
    ops->silu_forward(a->qa, a->q, (long)N * D);
    ops->silu_forward(a->ka, a->k, (long)N * D);
    for (int i = 0; i < m->n_spans; i++) {
        const Span *sp = &m->spans[i];
        size_t at = sp->offset * D;
        ops->lightning_attn_forward(a->o + at, st ? st->state_out : NULL, a->qa + at, a->ka + at,
                                    a->v + at, st ? st->state_in : NULL,
                                    m->log_decay + (size_t)l * H, sp->B, sp->T, H, hd, hd,
                                    c->attn_block);
    }
    ops->norm_forward(a->onorm, a->orstd, a->o, NULL, N, D, c->norm_eps, NORM_SRMS);
    ops->mul_forward(a->gated, a->onorm, a->u, (long)N * D);
    ops->matmul_forward(out, a->gated, w_out, NULL, N, D, D);
}

void lightning_mixer_backward(Model *m, int l, LayerActs *a, int B, int T, const float *dout,
                              float *dln) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, hd = D / H;
    size_t DD = (size_t)D * D, bytes = (size_t)N * D * sizeof(float);
    size_t off_qkvu = m->layer_offsets[l].qkvu, off_out = m->layer_offsets[l].o;
    float *d_gated = m->tmp[0], *d_onorm = m->tmp[1], *d_u = m->tmp[2], *d_o = m->tmp[3];
    float *d_qa = m->tmp[4], *d_ka = m->tmp[5], *d_v = m->tmp[6];
    float *d_q = m->tmp[7], *d_k = m->tmp[8];
    for (int i = 0; i < 9; i++) ops->zero(m->tmp[i], bytes);

    ops->matmul_backward(d_gated, m->grads + off_out, NULL, dout, a->gated, m->weights + off_out, N,
                         D, D);
    ops->mul_backward(d_onorm, d_u, d_gated, a->onorm, a->u, (long)N * D);
    ops->norm_backward(d_o, NULL, d_onorm, a->o, NULL, a->orstd, N, D, c->norm_eps, NORM_SRMS);
    for (int i = 0; i < m->n_spans; i++) {
        const Span *sp = &m->spans[i];
        size_t at = sp->offset * D;
        ops->lightning_attn_backward(
            d_qa + at, d_ka + at, d_v + at, NULL, d_o + at, NULL, a->qa + at, a->ka + at, a->v + at,
            NULL, m->log_decay + (size_t)l * H, sp->B, sp->T, H, hd, hd, c->attn_block);
    }
    ops->silu_backward(d_q, d_qa, a->q, (long)N * D);
    ops->silu_backward(d_k, d_ka, a->k, (long)N * D);
    const float *dproj[4] = {d_q, d_k, d_v, d_u};
    for (int i = 0; i < 4; i++) {
        ops->matmul_backward(dln, m->grads + off_qkvu + i * DD, NULL, dproj[i], a->ln1,
                             m->weights + off_qkvu + i * DD, N, D, D);
    }
}
