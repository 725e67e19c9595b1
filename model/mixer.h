// model/mixer.h: the mixer table. A token mixer (lightning, GLA, softmax, ...) is one file
// that fills a `Mixer`: its tensors, the buffers it saves for backward and the scratch it
// needs there, its forward and backward, and the size of its decoding state. The model
// walks the table; adding a mixer is one new file plus one entry in model/mixer.c.
#pragma once
#include "model.h"

enum { MAX_BUFS = 12 };

// One activation buffer a mixer asks for: `width` elements per token, of the compute
// type (Act) or fp32.
typedef struct BufSpec {
    const char *name;
    size_t width;
    bool f32;
} BufSpec;

// A layer's buffers in the arena: the ones every block has, then the mixer's own (in the
// order of its `saved` list; NULL for one of width 0). With recompute, all layers share one
// set except resid_in.
struct LayerBufs {
    Act *resid_in;         // block input x [N, D]
    Act *ln1;              // norm(x), the mixer's input
    float *rstd1;          // [N]
    Act *resid_mid;        // x + mixer(norm(x))
    Act *ln2;              // norm feeding the MLP
    float *rstd2;          // [N]
    Act *mlp_ab;           // [N, 2F]: gate/l1 then up/l2
    Act *mlp_h;            // [N, F]: act(a) * b
    void *mixer[MAX_BUFS]; // the mixer's saved buffers
};

// Everything a mixer's forward or backward is handed.
typedef struct MixerCall {
    Model *m;
    int layer;
    int N;          // tokens
    LayerBufs *a;   // the layer's saved buffers
    void **scratch; // the mixer's backward scratch (its `scratch` list)
    LayerState *st; // states in / out (training) or the decoding state
    const int *pos; // [N] position of each token in its sequence (RoPE)
    bool decoding;  // one token against the decoding state: then
    int decode_pos; //   the tokens already decoded, and
    Seqs decode_kv; //   the one sequence of the KV cache including this token
} MixerCall;

typedef struct Mixer {
    const char *name; // as written in `mixers = ...` and checkpoints
    // Append layer l's tensors to the parameter table (under "model.layers.l.<prefix>"),
    // recording their indices in lp->mixer.
    void (*add_params)(Model *m, int l, const char *prefix, LayerParams *lp);
    // Check the config for a layer of this mixer (dies naming the problem).
    void (*check)(const ModelConfig *c);
    // Buffers saved for backward and scratch for backward; return their count.
    int (*saved)(const ModelConfig *c, BufSpec *out);
    int (*scratch)(const ModelConfig *c, BufSpec *out);
    // out [N, D] = mixer(a->ln1).
    void (*forward)(const MixerCall *mc, Act *out);
    // dln [N, D] = d loss / d a->ln1 (written), weight gradients accumulated.
    void (*backward)(const MixerCall *mc, const Act *dout, Act *dln);
    // Floats of one sequence's recurrent state (0: the mixer decodes from a KV cache of
    // kv_width elements per token for k and for v).
    size_t (*state_floats)(const ModelConfig *c);
    int (*kv_width)(const ModelConfig *c);
} Mixer;

extern const Mixer mixer_lightning, mixer_gla, mixer_softmax;
extern const Mixer *const mixer_table[N_MIXER_KINDS];

// ---- helpers the mixers share (model/mixer.c) ------------------------------------------

// The saved buffer of a linear op's chunk states (ops.h: the state entering each 64-token
// chunk, H * kdim * vdim / 64 values a token), or of width 0 (absent) with recompute_states.
BufSpec chunk_states_spec(const ModelConfig *c, size_t H, size_t kdim, size_t vdim);
// The compute copy of parameter i (NULL for i < 0).
const Act *param_weight(const Model *m, int i);
// The gradient of parameter i, or NULL if i < 0 or the tensor is frozen.
float *param_grad(const Model *m, int i);
// out [N, OC] = inp [N, C] @ W^T for the `count` adjacent tensors from param `first`
// stacked into one [OC, C] matrix (OC their rows summed).
void linear_forward(Model *m, Act *out, const Act *inp, int first, int count, int N);
// dinp (written, or += with accumulate) and the weight gradients of the same stack;
// frozen tensors get no weight-gradient work.
void linear_backward(Model *m, Act *dinp, bool accumulate, const Act *dout, const Act *inp,
                     int first, int count, int N);
// Append one tensor (rows x cols; cols = 0 for a vector) to the parameter table and return
// its index (model/params.c).
int model_add_param(Model *m, bool no_decay, int rows, int cols, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

// ---- sequence parallelism (model/slice.c) ----------------------------------------------

// The model's side of sequence parallelism (Model.slice): the current batch's rows and
// sequences as this slice sees them, each linear layer's initial states (saved for
// backward), and scratch for the exchange around a linear mixer's attention op.
struct SliceBufs {
    int rows, tokens;             // rows of the batch, tokens of each row in this slice
    int rows_cap, seq_cap;        // what the buffers hold
    int *first_seq, *last_seq;    // host [rows]: each row's first and last sequence (m->seqs)
    bool *carries_in;             // host [rows]: its first sequence continues an earlier slice's
    bool *passes;                 // host [rows]: no document starts in the slice
    LayerState layer[MAX_LAYERS]; // state_in [seq_cap, S] of each linear layer
    float *scratch;               // backend [seq_cap, S_max]: per-sequence states, gradients
    float *carry;                 // backend [rows_cap, S_max]: one state per row
    float *log_pass;              // host [rows_cap, S_max] (the first rows * H * K used)
    // Softmax layers (model/slice_kv.c): each row's keys are those of the whole row from
    // the start of the document holding the slice's first token to the slice's end.
    int *key_from;    // host [rows_cap]: the global token where each row's keys start
    int *key_row;     // host [rows_cap]: where each row's keys start in the gathered keys
    int *key_cu_host; // host [seq_cap + 1]: the key sequences' offsets (m->seqs' queries)
    int *key_cu;      // backend [seq_cap + 1]: the same
    Seqs keys;        // the key sequences, paired with m->seqs
    float *kv_f32;    // backend [slices, rows * tokens, kv width]: the exchange's buffer
    Act *kv_all;      // backend: the same in the compute type
    Act *kv_keys;     // backend [keys.cu[n], kv width]: the gathered keys and values
    Act *kv_grad;     // backend: their gradients, the same shape
    size_t kv_cap;    // elements each of the four holds
};

// True when this process computes a slice of each sequence (Model.slice.count > 1).
bool slice_active(const Model *m);
// Make room for a batch of `rows` rows of `tokens` tokens each in this slice, the row
// layout then filled in by the caller (model.c's load_batch), and for n_seqs sequences.
SliceBufs *slice_reserve(Model *m, int rows, int tokens, int n_seqs);
void slice_free(Model *m);
// The per-sequence scratch states [n sequences, S]: a linear mixer's zero-state forward
// writes its final states here, its first backward the gradients of its initial states.
float *slice_scratch(const Model *m);
// log_pass (see ModelHooks.state_exchange) of layer mc->layer: a lightning layer's decays
// over the slice (lambda_h^tokens, the same for each of K channels), or a GLA layer's
// gates g [N, H*K] summed over each row's slice.
const float *slice_log_pass_decay(const MixerCall *mc, int K);
const float *slice_log_pass_gates(const MixerCall *mc, const Act *g, int K);
// Forward: from the zero-state final states in the scratch, through the hook, to the
// layer's initial states mc->st->state_in (zero except each row's first sequence when it
// continues an earlier slice's document).
void slice_exchange_forward(const MixerCall *mc, const float *log_pass, int K, int V);
// Backward: from the initial states' gradients in the scratch (through this slice's
// outputs), through the hook, to the gradients of the final states, left in the scratch
// (zero except each row's last sequence) for the second backward.
void slice_exchange_backward(const MixerCall *mc, const float *log_pass, int K, int V);

// Softmax layers (model/slice_kv.c). After load_batch filled m->seqs (h_cu: its offsets on
// the host) and sb->key_from: the key sequences in sb->keys.
void slice_set_keys(Model *m, const int *h_cu);
// Free the softmax layers' exchange buffers (slice_free calls it).
void slice_free_kv(Backend *be, SliceBufs *sb);
// The keys and values [keys.cu[n], width] that this slice's queries attend to, gathered
// from every slice of the group through the kv_exchange hook: kv [N, width] (rows ld
// apart) is this slice's, after RoPE.
Act *slice_gather_kv(const MixerCall *mc, const Act *kv, int ld, int width);
// A buffer for the gradients of the gathered keys and values (the same shape).
Act *slice_kv_grad(const Model *m);
// From the gathered keys' gradients in slice_kv_grad: sum each slice's over the group and
// write this slice's into dkv [N, width] (rows ld apart).
void slice_reduce_kv_grad(const MixerCall *mc, Act *dkv, int ld, int width);
