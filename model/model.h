// model/model.h: one model description for every family (TNL, GLA, Llama) and hybrids.
// The config picks the family (norm, MLP, embedding scale, tensor names) and each layer's
// token mixer; the parameter table built from it drives init, forward, backward,
// checkpoints and the optimizer, so no family has its own copy of any of them.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../kernels/ops.h"

enum { MAX_LAYERS = 256, MAX_PARAMS = 4096, PARAM_NAME_LEN = 96, N_SCRATCH = 10 };

typedef enum Family { FAMILY_TNL, FAMILY_GLA, FAMILY_LLAMA } Family;
typedef enum MixerKind { MIXER_LIGHTNING, MIXER_GLA, MIXER_SOFTMAX } MixerKind;
typedef enum DecayKind { DECAY_ALIBI, DECAY_MINIMAX } DecayKind;

typedef struct ModelConfig {
    Family family;
    int vocab_size;
    int dim;        // D, the residual width
    int n_layers;   // L
    int n_heads;    // H (query heads)
    int n_kv_heads; // softmax layers' key/value heads (GQA); 0: = n_heads
    int head_dim;   // softmax and lightning head size; 0: D / H
    int mlp_dim;    // GLU hidden size; 0: the family default
    MixerKind mixer[MAX_LAYERS];
    bool tie_embeddings;
    float norm_eps;
    float rope_theta;
    DecayKind decay;       // TNL decay slopes
    int gate_low_rank;     // GLA gate rank (16)
    float gate_normalizer; // GLA: gk = logsigmoid(.) / gate_normalizer (16)
    int attn_block;        // block / chunk size of the linear-attention kernels
    bool doc_reset;        // reset linear-attention state at EOT (packed documents)
    int eot_token;
} ModelConfig;

// Fill family defaults (dims left 0, eps, theta, ...) and check the config; dies naming
// the offending setting. `mixers` is a pattern such as "lightning*7,softmax" repeated to
// n_layers; NULL or "" means the family's own mixer everywhere.
void model_config_finalize(ModelConfig *c, const char *mixers);
// The same with c->mixer[0..n_layers) already set: fill defaults and check everything.
void model_config_check(ModelConfig *c);
// The mixer a family uses in every layer unless told otherwise.
MixerKind family_mixer(Family f);
// 256 * ceil(int(dim * hidden_ratio * 2/3) / 256): fla's GLU width (hidden_ratio 4 gives
// TNL's reference 2816 at dim 1024 too).
int default_mlp_dim(int dim, int hidden_ratio);
const char *family_name(Family f);
const char *mixer_name(MixerKind m);
bool family_from_name(const char *name, Family *out);
void model_config_print(const ModelConfig *c, FILE *f);
// TNL decays of one layer: log_decay[h] = -s_h * (1 - l/(L-1) + 1e-5), s_h the ALiBi (or
// MiniMax) slope of head h. Fixed, not learned.
void lightning_log_decays(const ModelConfig *c, int layer, float *log_decay);

// One parameter tensor: its Hugging Face name, shape and place in the flat buffers.
typedef struct ParamInfo {
    char name[PARAM_NAME_LEN];
    int ndim;
    int shape[2];
    size_t offset; // in floats, into Model.weights / grads / optimizer state
    size_t numel;
    bool no_decay;  // norms, biases, gate biases: no weight decay
    bool trainable; // false: frozen (distillation)
} ParamInfo;

// Offsets into the flat buffers of one layer's tensors, recorded when the parameter
// table is built so the block loop never looks a tensor up by name. NO_TENSOR where the
// layer has none (TNL norms; the other mixers' tensors).
static const size_t NO_TENSOR = SIZE_MAX;
typedef struct LayerOffsets {
    size_t attn_norm, mlp_norm;
    size_t mlp_in0, mlp_in1, mlp_out;     // gate/l1, up/l2, down/l3
    size_t q, k, v, o;                    // o: out_proj of lightning, o_proj otherwise
    size_t qkvu;                          // lightning: q, k, v, u stacked
    size_t g, gk0, gk1, gk1_bias, g_norm; // GLA gates
} LayerOffsets;

typedef struct LayerActs LayerActs; // per-layer saved activations (model.c)

// A run of tokens the token mixers process as independent sequences: rows
// [offset, offset + B*T) of the [N, width] activations, as B sequences of T tokens. One
// span covers the whole batch; with doc_reset each document of each row is its own span,
// so no state (linear) or attention (softmax) crosses a document boundary.
typedef struct Span {
    size_t offset;
    int B, T;
} Span;

typedef struct Model {
    ModelConfig cfg;
    const Ops *ops;
    ParamInfo params[MAX_PARAMS];
    int n_params;
    LayerOffsets layer_offsets[MAX_LAYERS];
    size_t embed, final_norm, lm_head; // offsets (final_norm NO_TENSOR for TNL; lm_head =
                                       // embed when tied)
    size_t n_weights;                  // total floats over all parameters
    float *weights;                    // [n_weights], device memory
    float *grads;                      // [n_weights], device memory
    float *log_decay;                  // [L][H] lightning decays (fixed), device memory
    // Activations for up to act_tokens tokens (B*T); grown, never shrunk, so decoding one
    // token mid-training does not reallocate the training buffers.
    size_t act_tokens;
    LayerActs *layers; // [n_layers]
    float *final_in;   // [N, D] residual stream after the last block
    float *final_ln, *final_rstd;
    float *losses;         // [N]
    float *d_resid, *d_ln; // [N, D] gradient of the residual stream / of a norm output
    float *tmp[N_SCRATCH]; // backward scratch, each [N, max layer width]
    int *tokens, *targets; // [N] device copies of the batch
    Span *spans;           // [n_spans] host; see Span
    int n_spans;
} Model;

// Fill m->params from m->cfg (names, shapes, offsets); no allocation. model_create calls it.
void model_build_params(Model *m);
// Build the parameter table and allocate weights and gradients (zeroed).
void model_create(Model *m, const ModelConfig *cfg, const Ops *ops);
void model_free(Model *m);
// Initialise weights: normal(0, 0.02) for matrices, ones for norm weights, the family's
// rules for gate biases; deterministic from seed.
void model_init_weights(Model *m, uint64_t seed);
const ParamInfo *model_find_param(const Model *m, const char *name);

// Mean cross-entropy of targets given tokens, both [B, T] host arrays (target < 0:
// ignored). Forward only.
float model_loss(Model *m, const int *tokens, const int *targets, int B, int T);
// Forward and backward: accumulates grad_scale * d(mean loss)/d(weights) into m->grads
// and returns the mean loss.
float model_forward_backward(Model *m, const int *tokens, const int *targets, int B, int T,
                             float grad_scale);
void model_zero_grad(Model *m);

// Recurrent decoding: per layer a linear-attention state or a KV cache.
typedef struct DecodeState DecodeState;
DecodeState *decode_state_new(const Model *m, int max_len);
void decode_state_free(DecodeState *s);
// Feed one token; writes next-token logits [vocab_size] (host memory).
void model_decode_step(Model *m, DecodeState *s, int token, float *logits);
