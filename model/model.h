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

enum { MAX_LAYERS = 256, MAX_PARAMS = 4096, PARAM_NAME_LEN = 96, MAX_MIXER_TENSORS = 12 };

typedef enum Family { FAMILY_TNL, FAMILY_GLA, FAMILY_LLAMA } Family;
// The token mixers, in the order of the mixer table (model/mixer.c).
typedef enum MixerKind { MIXER_LIGHTNING, MIXER_GLA, MIXER_SOFTMAX, N_MIXER_KINDS } MixerKind;
typedef enum DecayKind { DECAY_ALIBI, DECAY_MINIMAX } DecayKind;
// What lightning layers do to q and k before the attention: TNL's SiLU feature map, or no
// feature map and the rotary position embedding of softmax layers (rope_theta), which a
// student distilled from a RoPE teacher needs for its copied q and k to keep their meaning.
typedef enum LightningQk { LIGHTNING_QK_SILU, LIGHTNING_QK_ROPE } LightningQk;

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
    DecayKind decay;          // TNL decay slopes
    LightningQk lightning_qk; // lightning layers' q, k: SiLU (TNL) or RoPE
    int gate_low_rank;        // GLA gate rank (16)
    float gate_normalizer;    // GLA: gk = logsigmoid(.) / gate_normalizer (16)
    int attn_block;           // block / chunk size of the linear-attention kernels
    bool doc_reset;           // reset linear-attention state at EOT (packed documents)
    bool recompute;           // save only each layer's input; recompute its internals in backward
    bool recompute_states;    // linear layers' backward walks its chunk states again, unkept
    int eot_token;
    int seq_len; // the sequence length it was trained at (0: unknown); eval's default
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
const char *lightning_qk_name(LightningQk qk); // "silu" or "rope", as configs spell it
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

// The parameters of one layer, as indices into Model.params (-1 where the layer has none:
// TNL's weightless norms). Recorded when the table is built, so the block loop never
// looks a tensor up by name. Tensors that one matmul uses together are adjacent in the
// table and so in the flat buffers (gate and up of the MLP; a mixer's input projections).
typedef struct LayerParams {
    int attn_norm, mlp_norm;
    int mlp_in;                   // gate/l1, then up/l2 right after it: one [2F, D] matrix
    int mlp_out;                  // down/l3
    int mixer[MAX_MIXER_TENSORS]; // the mixer's tensors, in the order its file names them
    int first, end;               // the layer's tensors are params [first, end)
} LayerParams;

// One layer's recurrent state and its gradients (fp32, backend memory, any may be NULL).
// In training, linear mixers start from state_in and write state_out (sequence
// parallelism passes them between ranks); backward takes dstate_out and writes
// dstate_in. In decoding, the state of the last token, or a softmax layer's KV cache.
typedef struct LayerState {
    float *state_in, *state_out;   // [n sequences, H, kdim, vdim]
    float *dstate_in, *dstate_out; // the same shape, training only
    Act *kv_cache;                 // softmax decoding: [max_len, 2 * kv width], k then v
    int max_len;
} LayerState;

// Sequence parallelism: every sequence of a batch is cut into `count` equal slices and
// this process computes slice `index` (tokens [index*T/count, (index+1)*T/count) of each
// row). The model is still handed whole rows (tokens are cheap), so positions are global
// and a document that starts in an earlier slice is known; a linear layer's state crosses
// slice boundaries through the state_exchange hook. count 1 (or 0): whole sequences.
typedef struct SeqSlice {
    int index, count;
} SeqSlice;

// Hooks for what runs beside the model (parallelism, distillation); NULL: not called.
typedef struct ModelHooks {
    void *ctx;
    // After the backward of a group of tensors: the gradients of params [first, end),
    // floats [offset, offset + count) of Model.grads, are final for this micro-batch.
    // Called for the head (final norm, LM head), each layer from the last, then the
    // embedding.
    void (*grads_ready)(void *ctx, int first, int end, size_t offset, size_t count);
    // At the start of layer l's backward: d_resid [N, D] holds d loss / d (layer l's
    // output); the hook may add an extra gradient into it (a distillation loss).
    void (*resid_grad)(void *ctx, int layer, Act *d_resid, int N);
    // After the LM head's backward: h [N, D] is the final norm's output and dh holds d
    // loss / dh; the hook may add an extra gradient into dh (and the LM head's gradient): a
    // distillation loss on the logits. targets [N] are the batch's, in backend memory.
    void (*head_grad)(void *ctx, const Act *h, Act *dh, const int *targets, int N);
    // Sequence parallelism (Model.slice.count > 1): once in each linear layer's forward and
    // once in its backward, the same calls in the same order on every rank of the group.
    // carry [rows, H, K, V] fp32 in backend memory; log_pass [rows, H*K] (host) is the log
    // of the decay that a state entering this slice keeps at its end, per key channel
    // (-INFINITY: a document starts inside the slice, so nothing passes).
    // Forward: carry holds each row's state at the end of this slice from a zero initial
    // state; the hook replaces it with the state entering this slice.
    // Backward: carry holds d loss / d (state entering this slice) through this slice's
    // outputs; the hook replaces it with d loss / d (state leaving this slice).
    // Its own context (state_ctx), as it is installed by another part than grads_ready.
    void (*state_exchange)(void *state_ctx, int layer, bool backward, float *carry,
                           const float *log_pass, int rows, int H, int K, int V);
    // Sequence parallelism, softmax layers: buf [slices, shard] fp32 in backend memory, one
    // shard per slice of the group, in the same calls on every rank of the group (once in
    // each softmax layer's forward, twice in its backward).
    // reduce false (gather): this slice's shard holds its keys and values; the hook fills
    // every other shard with that slice's (an all-gather).
    // reduce true: every shard holds this slice's gradient of that slice's keys and values;
    // the hook replaces this slice's shard with the sum over the slices (the rest of buf
    // is left unspecified).
    void (*kv_exchange)(void *state_ctx, int layer, bool reduce, float *buf, size_t shard);
    void *state_ctx;
} ModelHooks;

typedef struct SliceBufs SliceBufs; // sequence-parallel state buffers (model/slice.c)

typedef struct Arena Arena;         // the activation arena (model.c)
typedef struct LayerBufs LayerBufs; // one layer's buffers in the arena (model/mixer.h)

typedef struct Model {
    ModelConfig cfg;
    Backend *be;
    ParamInfo params[MAX_PARAMS];
    int n_params;
    LayerParams layer_params[MAX_LAYERS];
    int embed, final_norm, lm_head; // param indices (final_norm -1 for TNL; lm_head = embed
                                    // when tied)
    size_t n_weights;               // total floats over all parameters
    float *weights;                 // [n_weights] fp32 master weights, backend memory
    Act *weights_act;               // their compute copy (the same memory on the CPU)
    float *grads;                   // [n_weights] fp32
    float *log_decay;               // [L][H] lightning decays (fixed)
    float *stats;                   // [2] device scalars: loss sum, squared grad norm
    Arena *arena;                   // activations, grown for the largest batch seen
    LayerState states[MAX_LAYERS];  // training state I/O, all NULL unless a caller sets them
    ModelHooks hooks;
    SeqSlice slice;    // sequence parallelism: this process's slice of every sequence
    SliceBufs *sliced; // its buffers (NULL until a sliced batch is loaded)
    // The current batch's sequences (one per row, or one per document with doc_reset).
    Seqs seqs;
} Model;

// Floats of one sequence's recurrent state in layer l (0 for softmax layers): the size of
// each sequence's slice of LayerState.state_in and friends.
size_t layer_state_floats(const ModelConfig *c, int layer);

// Fill m->params from m->cfg (names, shapes, offsets); no allocation. model_create calls it.
void model_build_params(Model *m);
// Build the parameter table and allocate weights and gradients (zeroed).
void model_create(Model *m, const ModelConfig *cfg, Backend *be);
void model_free(Model *m);
// Initialise weights: normal(0, 0.02) for matrices, ones for norm weights, the family's
// rules for gate biases; deterministic from seed.
void model_init_weights(Model *m, uint64_t seed);
const ParamInfo *model_find_param(const Model *m, const char *name);
// Host <-> backend copies of all fp32 master weights; upload refreshes the compute copy.
void model_upload_weights(Model *m, const float *host);
void model_download_weights(const Model *m, float *host);
// After writing m->weights directly (tests, loading one tensor at a time): rebuild the
// compute copy from the master weights.
void model_refresh_compute_weights(Model *m);
// Grow the fp32 master weights and the gradients to n >= n_weights floats each (contents
// kept, the rest zero), so collectives can treat them as equal shards (ZeRO-1 pads the
// flat buffers to a multiple of the data-parallel size). The model still uses n_weights.
void model_pad_buffers(Model *m, size_t n);

// Mean cross-entropy of targets given tokens, both [B, T] host arrays (target < 0:
// ignored). Forward only; waits for the result. With a slice (Model.slice): the sum of
// this slice's losses over the whole rows' target count, so the slices' values sum to
// the mean (the same holds for the loss model_forward_backward accumulates).
float model_loss(Model *m, const int *tokens, const int *targets, int B, int T);
// The per-token losses of the last model_loss / model_forward_backward (n values, host;
// with a slice, those of the slice's tokens, row by row).
void model_token_losses(Model *m, float *host, int n);
// Forward and backward of one micro-batch without waiting for the device: accumulates
// grad_scale * d(mean loss)/d(weights) into m->grads and grad_scale * mean loss into
// m->stats[0].
void model_forward_backward(Model *m, const int *tokens, const int *targets, int B, int T,
                            float grad_scale);
// Zero the gradients and the loss / norm accumulators (the start of an optimizer step).
void model_zero_grad(Model *m);
// Add the squared global gradient norm into m->stats[1] (frozen tensors' gradients are
// zero, so they add nothing).
void model_grad_norm_squared(Model *m);
// The one download of a step: the accumulated loss and the gradient norm.
void model_read_stats(Model *m, float *loss, float *grad_norm);

// Model FLOPs per token of a training step (forward + backward) at sequence length T:
// 6 x the matmul weights (the LM head included) plus each mixer's token mixing.
// Recomputation is not counted (MFU measures useful work).
double model_flops_per_token(const Model *m, int T);

// A forward pass without gradients that reports every layer's hidden states: after layer
// l's mixer, `fn` gets the layer's input (the residual stream), its mixer's input (the
// normed stream) and the mixer's output, each [B*T, D] in backend memory. Only one
// layer's internals are held at a time.
typedef void (*LayerFn)(void *ctx, int layer, const Act *resid_in, const Act *mixer_in,
                        const Act *mixer_out, int N);
void model_forward_layers(Model *m, const int *tokens, int B, int T, LayerFn fn, void *ctx);

// fp32 logits [N, V] (backend memory) of the last forward pass's N tokens (model_loss,
// model_forward_layers, model_forward_backward).
void model_last_logits(Model *m, float *logits, int N);

// One layer's mixer alone (distillation's attention transfer). model_load_tokens sets up
// the batch (sequences and positions) without running anything; model_mixer_forward
// copies inp [N, D] into layer l's mixer input and returns the mixer's output (valid
// until the next forward); model_mixer_backward then accumulates the mixer's weight
// gradients from dout (the gradient of its input is not kept).
void model_load_tokens(Model *m, const int *tokens, int B, int T);
const Act *model_mixer_forward(Model *m, int layer, const Act *inp, int N);
void model_mixer_backward(Model *m, int layer, const Act *dout, int N);

// Recurrent decoding: per layer a linear-attention state or a KV cache.
typedef struct DecodeState DecodeState;
DecodeState *decode_state_new(const Model *m, int max_len);
void decode_state_free(DecodeState *s);
// Feed one token; writes next-token logits [vocab_size] (host memory).
void model_decode_step(Model *m, DecodeState *s, int token, float *logits);
