// model/checkpoint.h: model checkpoints (safetensors + a Hugging Face config.json, so GLA
// and Llama checkpoints load in fla / transformers) and training checkpoints (model,
// optimizer moments, loader position, RNG, step), each counted only once complete.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../data/loader.h"
#include "model.h"

// Write dir/config.json and dir/model.safetensors (fp32, or bf16 rounded to nearest
// even), both atomically. config.json holds the family's Hugging Face keys plus a "bolt"
// object from which bolt rebuilds the exact config; `tokenizer` is stored in it.
void model_save(const Model *m, const char *dir, bool bf16, const char *tokenizer);

// Read dir/config.json into c (finalized). Uses the "bolt" object when present; otherwise
// the Hugging Face keys of model_type llama, gla or transnormer. tokenizer_out gets the
// saved tokenizer string ("" if none). Dies naming the file and key on any problem.
void model_config_load(ModelConfig *c, char *tokenizer_out, size_t cap, const char *dir);

// Load every tensor of m->params from a safetensors file, a directory (model.safetensors
// or a sharded index) or an index file. Shapes must match exactly; a missing or an
// unexpected tensor is an error. F32/F16/BF16 are converted to fp32 and uploaded.
void model_load_weights(Model *m, const char *dir_or_file);
// Die unless the weights at dir_or_file are exactly the tensors of a model of config c
// (model_load_weights' name and shape checks), without allocating the model: call it
// before model_create with a config read from a file, so a config.json that claims a
// larger model than its weights hold dies naming a tensor, not allocating what it claims.
void model_check_weights(const ModelConfig *c, const char *dir_or_file);

// A checkpoint argument as the directory holding its config.json: a run's out_dir
// resolves to its newest complete checkpoint, anything else is the checkpoint itself.
// Dies if it is not a directory or holds no config.json.
void checkpoint_resolve(const char *arg, char *dir, size_t cap);
// Load a saved model onto backend `be`: model_config_load + model_check_weights +
// model_create + model_load_weights.
// tokenizer gets the tokenizer the config names ("" if none).
void model_load(Model *m, const char *dir, Backend *be, char *tokenizer, size_t cap);
// A checkpoint's recorded tokenizer as a usable path: a relative name is looked up in
// ckpt_dir first; "" means "byte".
void checkpoint_tokenizer_path(const char *ckpt_dir, const char *spec, char *out, size_t cap);

// Everything besides weights and Adam moments that a resumed run needs.
typedef struct TrainState {
    int64_t step;
    LoaderPos loader;
    uint64_t rng;
    int bad_steps;
    double tokens_seen;
} TrainState;

// Write out_dir/step_%08lld/: model.safetensors + config.json (fp32), train_state.safetensors
// (adam_m, adam_v [n_weights] from host memory, and TrainState in its metadata), then an
// empty DONE marker last. Only a directory with DONE counts as a checkpoint.
void checkpoint_save(const char *out_dir, const Model *m, const float *adam_m, const float *adam_v,
                     const TrainState *s, const char *tokenizer);
// The newest complete step_* directory under out_dir into path; false if there is none.
bool checkpoint_latest(const char *out_dir, char *path, size_t cap);
// The same, skipping complete checkpoints whose files do not open (a truncated or corrupt
// file), each with a warning naming it; dies if there are complete checkpoints but none
// opens.
bool checkpoint_latest_valid(const char *out_dir, char *path, size_t cap);
// Read the Adam moments (host memory, [n_weights]) and TrainState of a checkpoint
// directory; dies if its sizes do not match m. Weights: model_load_weights(m, ckpt_dir).
void checkpoint_load_train_state(const char *ckpt_dir, const Model *m, float *adam_m, float *adam_v,
                                 TrainState *s);
// Remove all but the newest `keep` complete checkpoints (keep <= 0: keep all), and any step
// directory without DONE older than the newest complete one (left by a kill).
void checkpoint_prune(const char *out_dir, int keep);
