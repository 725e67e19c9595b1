// model/params.c: the parameter table. Every tensor gets its Hugging Face name (Llama's,
// fla's GLA names, or TNL's scheme), its shape, and a slice of the flat weight buffer.
// Init, checkpoints, the optimizer and distillation all walk this one table.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "mixer.h"

// Name pieces that differ by family: embeddings, block norms, mixer and MLP prefixes.
typedef struct FamilyNames {
    const char *embed, *attn_norm, *mixer, *mlp_norm, *final_norm;
    const char *mlp_in0, *mlp_in1, *mlp_out; // gate/l1, up/l2, down/l3
} FamilyNames;

static const FamilyNames names_by_family[] = {
    [FAMILY_TNL] = {"model.embed_tokens", "token_norm", "token_mixer", "channel_norm",
                    "model.final_norm", "channel_mixer.l1", "channel_mixer.l2", "channel_mixer.l3"},
    [FAMILY_GLA] = {"model.embeddings", "attn_norm", "attn", "mlp_norm", "model.norm",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"},
    [FAMILY_LLAMA] = {"model.embed_tokens", "input_layernorm", "self_attn",
                      "post_attention_layernorm", "model.norm", "mlp.gate_proj", "mlp.up_proj",
                      "mlp.down_proj"},
};

int model_add_param(Model *m, bool no_decay, int rows, int cols, const char *fmt, ...) {
    check(m->n_params < MAX_PARAMS, "model has more than %d tensors", MAX_PARAMS);
    ParamInfo *p = &m->params[m->n_params];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = cols ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols;
    p->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    p->offset = m->n_weights;
    p->no_decay = no_decay;
    p->trainable = true;
    m->n_weights += p->numel;
    return m->n_params++;
}

// Build the table in a fixed order: embedding, per layer (norm, mixer, norm, MLP), final
// norm, LM head, and record each tensor's offset where the block loop looks for it.
// SRMSNorm (TNL) has no weight, so no tensor (offset NO_TENSOR).
void model_build_params(Model *m) {
    const ModelConfig *c = &m->cfg;
    const FamilyNames *nm = &names_by_family[c->family];
    bool norm_weight = c->family != FAMILY_TNL;
    int D = c->dim, F = c->mlp_dim;
    m->n_params = 0;
    m->n_weights = 0;
    m->embed = model_add_param(m, false, c->vocab_size, D, "%s.weight", nm->embed);
    for (int l = 0; l < c->n_layers; l++) {
        LayerParams *lp = &m->layer_params[l];
        memset(lp, 0xff, sizeof *lp); // every index -1
        lp->first = m->n_params;
        if (norm_weight)
            lp->attn_norm =
                model_add_param(m, true, D, 0, "model.layers.%d.%s.weight", l, nm->attn_norm);
        mixer_table[c->mixer[l]]->add_params(m, l, nm->mixer, lp);
        if (norm_weight)
            lp->mlp_norm =
                model_add_param(m, true, D, 0, "model.layers.%d.%s.weight", l, nm->mlp_norm);
        lp->mlp_in = model_add_param(m, false, F, D, "model.layers.%d.%s.weight", l, nm->mlp_in0);
        model_add_param(m, false, F, D, "model.layers.%d.%s.weight", l, nm->mlp_in1);
        lp->mlp_out = model_add_param(m, false, D, F, "model.layers.%d.%s.weight", l, nm->mlp_out);
        lp->end = m->n_params;
    }
    m->final_norm = norm_weight ? model_add_param(m, true, D, 0, "%s.weight", nm->final_norm) : -1;
    m->lm_head = c->tie_embeddings ? m->embed
                                   : model_add_param(m, false, c->vocab_size, D, "lm_head.weight");
}

const ParamInfo *model_find_param(const Model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++) {
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    }
    return NULL;
}

// Is this tensor a norm weight (initialised to ones)?
static bool is_norm_weight(const ParamInfo *p) {
    return p->ndim == 1 && strstr(p->name, ".bias") == NULL;
}

void model_init_weights(Model *m, uint64_t seed) {
    Rng rng = rng_seeded(seed); // one stream through the matrices in table order
    float *host = xmalloc(m->n_weights * sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        float *w = host + p->offset;
        if (p->ndim == 2) {
            fill_normal_from(w, p->numel, 0.02f, rng);
            rng = rng_jump(rng, 2 * (uint64_t)p->numel); // rng_normal takes two draws
        } else {
            float value = is_norm_weight(p) ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->numel; j++) w[j] = value;
        }
    }
    model_upload_weights(m, host);
    free(host);
}
