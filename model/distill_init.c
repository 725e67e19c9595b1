// model/distill_init.c: the student's config, its segments (new or copied) and its
// initialisation from the teacher (see distill_init.h for the rule of every tensor).
#include "distill_init.h"

#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

// Mixer tensors in the order the mixer files add them (model/mixer_*.c).
enum { LIGHTNING_QKVU, LIGHTNING_OUT };
enum { GLA_Q, GLA_K, GLA_V, GLA_G, GLA_GK0, GLA_GK1, GLA_GK1_BIAS, GLA_GNORM, GLA_O };
enum { SOFTMAX_Q, SOFTMAX_K, SOFTMAX_V, SOFTMAX_O };

void distill_student_config(const ModelConfig *t, const char *pattern, ModelConfig *out) {
    check(t->family == FAMILY_LLAMA,
          "teacher: a %s model; distillation needs a Llama-layout "
          "softmax teacher",
          family_name(t->family));
    for (int l = 0; l < t->n_layers; l++)
        check(t->mixer[l] == MIXER_SOFTMAX, "teacher: layer %d uses %s, not softmax attention", l,
              mixer_name(t->mixer[l]));
    *out = *t;
    model_config_finalize(out, pattern);
    // Without lightning layers the student is exactly fla's GLA layout (RMSNorm, SwiGLU,
    // unscaled embeddings, softmax layers as its `attn` layers): the GLA family, so it
    // exports for fla's GLAForCausalLM. With lightning it keeps the Llama layout.
    bool lightning = false;
    for (int l = 0; l < out->n_layers; l++) lightning |= out->mixer[l] == MIXER_LIGHTNING;
    if (!lightning) out->family = FAMILY_GLA;
    model_config_check(out);
    for (int l = 0; l < out->n_layers; l++) {
        if (out->mixer[l] == MIXER_SOFTMAX) continue;
        check(t->head_dim * t->n_heads == t->dim,
              "student: %s layers need the teacher's head_dim (%d) x n_heads (%d) = dim (%d)",
              mixer_name(out->mixer[l]), t->head_dim, t->n_heads, t->dim);
    }
}

void distill_check_match(const ModelConfig *t, const ModelConfig *s, const char *what) {
    const char *names[] = {"vocab_size", "dim", "n_layers", "n_heads", "head_dim", "mlp_dim"};
    int tv[] = {t->vocab_size, t->dim, t->n_layers, t->n_heads, t->head_dim, t->mlp_dim};
    int sv[] = {s->vocab_size, s->dim, s->n_layers, s->n_heads, s->head_dim, s->mlp_dim};
    for (int i = 0; i < 6; i++)
        check(tv[i] == sv[i], "%s: %s %d does not match the teacher's %s %d", what, names[i], sv[i],
              names[i], tv[i]);
    check(t->tie_embeddings == s->tie_embeddings,
          "%s: tie_embeddings %d does not match the "
          "teacher's %d",
          what, s->tie_embeddings, t->tie_embeddings);
    check(s->family == FAMILY_LLAMA || s->family == FAMILY_GLA,
          "%s: a %s model, not the teacher's llama layout (or GLA's)", what,
          family_name(s->family));
}

// Append a segment of `rows` rows of param p starting at row r0.
static void add_segment(Segment *out, int *n, const Model *m, int p, int r0, int rows, bool is_new,
                        bool is_qk, bool linear) {
    const ParamInfo *info = &m->params[p];
    size_t width = info->ndim == 2 ? (size_t)info->shape[1] : 1;
    out[(*n)++] = (Segment){
        info->offset + (size_t)r0 * width, (size_t)rows * width, p, is_new, is_qk, linear};
}

// The role of mixer tensor `slot` (its index in LayerParams.mixer) of a layer of `kind`:
// new or copied, q/k or not.
static void mixer_role(MixerKind kind, int slot, bool *is_new, bool *is_qk) {
    *is_new = kind == MIXER_GLA && slot >= GLA_G && slot <= GLA_GNORM;
    *is_qk = (kind == MIXER_GLA && (slot == GLA_Q || slot == GLA_K)) ||
             (kind == MIXER_SOFTMAX && (slot == SOFTMAX_Q || slot == SOFTMAX_K));
}

int distill_segments(const Model *m, Segment **out) {
    const ModelConfig *c = &m->cfg;
    Segment *seg = xmalloc((size_t)(m->n_params + 3 * c->n_layers) * sizeof(Segment));
    int n = 0, D = c->dim;
    for (int p = 0; p < m->n_params; p++) {
        int rows = m->params[p].shape[0];
        int layer = -1, slot = -1;
        for (int l = 0; l < c->n_layers && layer < 0; l++) {
            const LayerParams *lp = &m->layer_params[l];
            if (p < lp->first || p >= lp->end) continue;
            layer = l;
            for (int k = 0; k < MAX_MIXER_TENSORS; k++)
                if (lp->mixer[k] == p) slot = k;
        }
        if (slot < 0) { // embedding, norms, MLP, LM head
            add_segment(seg, &n, m, p, 0, rows, false, false, false);
            continue;
        }
        MixerKind kind = c->mixer[layer];
        bool linear = kind != MIXER_SOFTMAX;
        if (kind == MIXER_LIGHTNING && slot == LIGHTNING_QKVU) {
            add_segment(seg, &n, m, p, 0, 2 * D, false, true, true);  // q, k
            add_segment(seg, &n, m, p, 2 * D, D, false, false, true); // v
            add_segment(seg, &n, m, p, 3 * D, D, true, false, true);  // u: the output gate
            continue;
        }
        bool is_new, is_qk;
        mixer_role(kind, slot, &is_new, &is_qk);
        add_segment(seg, &n, m, p, 0, rows, is_new, is_qk, linear);
    }
    *out = seg;
    return n;
}

// dst rows [0, H * rows) from the teacher's head-major projection src (src_heads heads of
// hd rows each, D columns): student head h takes the first `rows` rows of teacher head
// h / (H / src_heads) (the GQA repeat for keys and values).
static void copy_heads(float *dst, const float *src, int H, int rows, int src_heads, int hd,
                       int D) {
    int group = H / src_heads;
    for (int h = 0; h < H; h++) {
        const float *from = src + (size_t)(h / group) * hd * D;
        memcpy(dst + (size_t)h * rows * D, from, (size_t)rows * D * sizeof(float));
    }
}

// The host copy of tensor `slot` of teacher layer l.
static const float *teacher_mixer(const Model *t, const float *tw, int l, int slot) {
    return tw + t->params[t->layer_params[l].mixer[slot]].offset;
}

// Copy the teacher's attention projections into student layer l's mixer.
static void init_mixer(Model *s, float *sw, const Model *t, const float *tw, int l) {
    const ModelConfig *c = &s->cfg;
    int D = c->dim, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    const int *sm = s->layer_params[l].mixer;
    const float *q = teacher_mixer(t, tw, l, SOFTMAX_Q), *k = teacher_mixer(t, tw, l, SOFTMAX_K);
    const float *v = teacher_mixer(t, tw, l, SOFTMAX_V), *o = teacher_mixer(t, tw, l, SOFTMAX_O);
    float *dst = sw + s->params[sm[0]].offset;
    size_t square = (size_t)D * D;
    switch (c->mixer[l]) {
    case MIXER_SOFTMAX: // the teacher's own layer
        for (int slot = SOFTMAX_Q; slot <= SOFTMAX_O; slot++)
            memcpy(sw + s->params[sm[slot]].offset, teacher_mixer(t, tw, l, slot),
                   s->params[sm[slot]].numel * sizeof(float));
        break;
    case MIXER_LIGHTNING:
        copy_heads(dst, q, H, hd, H, hd, D);
        copy_heads(dst + square, k, H, hd, Hkv, hd, D);
        copy_heads(dst + 2 * square, v, H, hd, Hkv, hd, D);
        memcpy(sw + s->params[sm[LIGHTNING_OUT]].offset, o, square * sizeof(float));
        break;
    case MIXER_GLA:
        copy_heads(sw + s->params[sm[GLA_Q]].offset, q, H, hd / 2, H, hd, D);
        copy_heads(sw + s->params[sm[GLA_K]].offset, k, H, hd / 2, Hkv, hd, D);
        copy_heads(sw + s->params[sm[GLA_V]].offset, v, H, hd, Hkv, hd, D);
        memcpy(sw + s->params[sm[GLA_O]].offset, o, square * sizeof(float));
        break;
    default:
        die("distill: no initialisation for mixer %s", mixer_name(c->mixer[l]));
    }
}

// Copy a tensor that student and teacher share (same index in both layer tables).
static void copy_param(Model *s, float *sw, const Model *t, const float *tw, int sp, int tp) {
    check(s->params[sp].numel == t->params[tp].numel, "distill: %s has %zu values, teacher's %zu",
          s->params[sp].name, s->params[sp].numel, t->params[tp].numel);
    memcpy(sw + s->params[sp].offset, tw + t->params[tp].offset,
           s->params[sp].numel * sizeof(float));
}

void distill_init_student(Model *s, const Model *t, uint64_t seed) {
    distill_check_match(&t->cfg, &s->cfg, "student");
    model_init_weights(s, seed); // the new tensors' values; everything else is overwritten
    float *sw = xmalloc(s->n_weights * sizeof(float)), *tw = xmalloc(t->n_weights * sizeof(float));
    model_download_weights(s, sw);
    model_download_weights(t, tw);
    copy_param(s, sw, t, tw, s->embed, t->embed);
    for (int l = 0; l < s->cfg.n_layers; l++) {
        const LayerParams *a = &s->layer_params[l], *b = &t->layer_params[l];
        copy_param(s, sw, t, tw, a->attn_norm, b->attn_norm);
        copy_param(s, sw, t, tw, a->mlp_norm, b->mlp_norm);
        copy_param(s, sw, t, tw, a->mlp_in, b->mlp_in);
        copy_param(s, sw, t, tw, a->mlp_in + 1, b->mlp_in + 1);
        copy_param(s, sw, t, tw, a->mlp_out, b->mlp_out);
        init_mixer(s, sw, t, tw, l);
    }
    copy_param(s, sw, t, tw, s->final_norm, t->final_norm);
    if (!s->cfg.tie_embeddings) copy_param(s, sw, t, tw, s->lm_head, t->lm_head);
    model_upload_weights(s, sw);
    free(sw);
    free(tw);
}
