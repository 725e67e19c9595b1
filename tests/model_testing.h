// tests/model_testing.h: helpers shared by the whole-model suites (header-only): the CPU
// backend, tiny configs of every family, spread-out random weights and random batches.
#pragma once
#include "../model/model.h"
#include "testing.h"

// The CPU backend, created once per test program.
static inline Backend *cpu_backend(void) {
    static Backend *be;
    if (!be) be = backend_create("cpu");
    return be;
}

// A tiny config of the given family; `mixers` may be NULL.
static inline ModelConfig tiny_config(Family family, const char *mixers, bool tied) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = family;
    c.vocab_size = 23;
    c.dim = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = family == FAMILY_LLAMA ? 1 : 0; // GQA for Llama
    c.mlp_dim = 24;
    c.tie_embeddings = tied;
    c.attn_block = 4; // T below is not a multiple of it
    model_config_finalize(&c, mixers);
    return c;
}

// Weights with more spread than the training init, so gradients are well above fp32 noise.
static inline void spread_weights(Model *m, uint64_t seed) {
    Rng rng = rng_seeded(seed);
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        for (size_t j = 0; j < p->numel; j++) {
            float r = rng_normal(&rng);
            m->weights[p->offset + j] = p->ndim == 2 ? 0.3f * r : 1.0f + 0.2f * r;
        }
    }
}

static inline void random_tokens(Rng *rng, int *tokens, int *targets, int n, int V) {
    for (int i = 0; i < n; i++) {
        tokens[i] = (int)(rng_next(rng) % (uint64_t)V);
        targets[i] = (int)(rng_next(rng) % (uint64_t)V);
    }
}
