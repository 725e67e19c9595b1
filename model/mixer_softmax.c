// model/mixer_softmax.c: Llama attention (SPEC sec. 2): q, k, v projections, RoPE in
// rotate_half form, causal softmax attention with GQA, output projection. Positions count
// from the start of each span (each document, with doc_reset). In decoding (st != NULL)
// keys and values go to the layer's KV cache and the query attends to it.
#include "../core/util.h"
#include "layers.h"

void softmax_mixer_forward(Model *m, int l, LayerActs *a, int B, int T, float *out,
                           MixerState *st) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    int Dq = H * hd, Dkv = Hkv * hd, pos0 = st ? st->pos : 0;
    const LayerOffsets *t = &m->layer_offsets[l];
    const float *w = m->weights;
    ops->matmul_forward(a->q, a->ln1, w + t->q, NULL, N, D, Dq);
    ops->matmul_forward(a->k, a->ln1, w + t->k, NULL, N, D, Dkv);
    ops->matmul_forward(a->v, a->ln1, w + t->v, NULL, N, D, Dkv);
    for (int i = 0; i < m->n_spans; i++) {
        const Span *sp = &m->spans[i];
        size_t aq = sp->offset * Dq, akv = sp->offset * Dkv;
        ops->rope_forward(a->qa + aq, a->q + aq, sp->B, sp->T, H, hd, c->rope_theta, pos0);
        ops->rope_forward(a->ka + akv, a->k + akv, sp->B, sp->T, Hkv, hd, c->rope_theta, pos0);
        if (!st) {
            ops->softmax_attn_forward(a->o + aq, a->lse + sp->offset * H, a->qa + aq, a->ka + akv,
                                      a->v + akv, sp->B, sp->T, sp->T, H, Hkv, hd);
        }
    }
    if (st) {
        check(B == 1 && st->pos + T <= st->max_len, "decoding past the context of %d tokens",
              st->max_len);
        size_t at = (size_t)st->pos * Dkv, bytes = (size_t)T * Dkv * sizeof(float);
        ops->copy(st->k_cache + at, a->ka, bytes);
        ops->copy(st->v_cache + at, a->v, bytes);
        ops->softmax_attn_forward(a->o, a->lse, a->qa, st->k_cache, st->v_cache, 1, T, st->pos + T,
                                  H, Hkv, hd);
    }
    ops->matmul_forward(out, a->o, w + t->o, NULL, N, Dq, D);
}

void softmax_mixer_backward(Model *m, int l, LayerActs *a, int B, int T, const float *dout,
                            float *dln) {
    const Ops *ops = m->ops;
    const ModelConfig *c = &m->cfg;
    int N = B * T, D = c->dim, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    int Dq = H * hd, Dkv = Hkv * hd;
    const LayerOffsets *t = &m->layer_offsets[l];
    const float *w = m->weights;
    float *g = m->grads;
    size_t bytes = (size_t)N * (Dq > D ? Dq : D) * sizeof(float);
    float *d_o = m->tmp[0], *d_qa = m->tmp[1], *d_ka = m->tmp[2], *d_v = m->tmp[3];
    float *d_q = m->tmp[4], *d_k = m->tmp[5];
    for (int i = 0; i < 6; i++) ops->zero(m->tmp[i], bytes);

    size_t off = t->o;
    ops->matmul_backward(d_o, g + off, NULL, dout, a->o, w + off, N, Dq, D);
    for (int i = 0; i < m->n_spans; i++) {
        const Span *sp = &m->spans[i];
        size_t aq = sp->offset * Dq, akv = sp->offset * Dkv;
        ops->softmax_attn_backward(d_qa + aq, d_ka + akv, d_v + akv, d_o + aq, a->o + aq,
                                   a->lse + sp->offset * H, a->qa + aq, a->ka + akv, a->v + akv,
                                   sp->B, sp->T, sp->T, H, Hkv, hd);
        ops->rope_backward(d_q + aq, d_qa + aq, sp->B, sp->T, H, hd, c->rope_theta, 0);
        ops->rope_backward(d_k + akv, d_ka + akv, sp->B, sp->T, Hkv, hd, c->rope_theta, 0);
    }
    const size_t offsets[3] = {t->q, t->k, t->v};
    const float *douts[3] = {d_q, d_k, d_v};
    const int widths[3] = {Dq, Dkv, Dkv};
    for (int i = 0; i < 3; i++) {
        off = offsets[i];
        ops->matmul_backward(dln, g + off, NULL, douts[i], a->ln1, w + off, N, D, widths[i]);
    }
}
