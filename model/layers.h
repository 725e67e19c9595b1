// model/layers.h: internals shared by model.c and the mixer files: the saved activations
// of one layer, the per-layer decoding state, and the mixers' forward/backward.
#pragma once
#include "model.h"

// Saved activations of one block, each [N, width] with N = B*T (NULL where the layer's
// mixer does not use it). Names follow the math in SPEC sec. 2. Only float pointers:
// model.c frees the struct's buffers by walking it as an array.
struct LayerActs {
    float *resid_in;      // block input x
    float *ln1, *rstd1;   // norm(x) feeding the mixer
    float *resid_mid;     // x + mixer(norm(x))
    float *ln2, *rstd2;   // norm feeding the MLP
    float *mlp_a, *mlp_b; // the two GLU branches (gate/l1, up/l2)
    float *mlp_h;         // act(a) * b
    // mixer
    float *q, *k, *v, *u;        // projections (u: TNL output gate, g: GLA swish gate)
    float *qa, *ka;              // q, k after SiLU (lightning) or RoPE (softmax)
    float *gk_low, *gk_pre, *gk; // GLA low-rank gate and its log-decays
    float *o;                    // attention output, heads concatenated
    float *onorm, *orstd;        // normalised attention output
    float *gated;                // onorm * gate, the input of the output projection
    float *lse;                  // softmax row log-sum-exp [B, H, T]
};

// Decoding state of one layer: a linear-attention state (swapped between two buffers),
// or a KV cache for softmax layers.
typedef struct MixerState {
    float *state_in, *state_out; // [H, kdim, vdim]
    size_t state_bytes;
    float *k_cache, *v_cache; // [max_len, Hkv, hd] after RoPE
    int pos;                  // tokens already in the cache / state
    int max_len;
} MixerState;

// Mixers: forward writes out [N, D] from a->ln1 (and fills a's mixer buffers); backward
// takes dout [N, D] and accumulates into dln [N, D] and the weight gradients. The
// projections run over all N tokens at once, the token mixing once per span of
// m->spans. st is NULL in training, the layer's decoding state otherwise (B = T = 1).
void lightning_mixer_forward(Model *m, int l, struct LayerActs *a, int B, int T, float *out,
                             MixerState *st);
void lightning_mixer_backward(Model *m, int l, struct LayerActs *a, int B, int T, const float *dout,
                              float *dln);
void gla_mixer_forward(Model *m, int l, struct LayerActs *a, int B, int T, float *out,
                       MixerState *st);
void gla_mixer_backward(Model *m, int l, struct LayerActs *a, int B, int T, const float *dout,
                        float *dln);
void softmax_mixer_forward(Model *m, int l, struct LayerActs *a, int B, int T, float *out,
                           MixerState *st);
void softmax_mixer_backward(Model *m, int l, struct LayerActs *a, int B, int T, const float *dout,
                            float *dln);
