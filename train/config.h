// train/config.h: the run configuration: `key = value` files with `#` comments, every key
// overridable on the command line as --key=value. Unknown keys and bad values are errors
// naming the key (and the nearest valid key).
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../model/model.h"

enum { CONFIG_STR = 512 };

typedef struct Config {
    // model
    ModelConfig model;               // family from key `model`, dims, eps, ...
    char mixers[CONFIG_STR];         // per-layer mixer pattern, e.g. "lightning*7,softmax"
    char softmax_layers[CONFIG_STR]; // alternative: comma list of softmax layer indices
    char tokenizer[CONFIG_STR];      // "byte", a tokenizer.json or a .tiktoken file
    char init_from[CONFIG_STR];      // start from this checkpoint / HF directory
    // data
    char train_data[CONFIG_STR]; // glob of shards
    char val_data[CONFIG_STR];   // glob of shards ("" = no validation)
    char out_dir[CONFIG_STR];
    // schedule and optimiser
    int steps;
    int batch_size;
    int seq_len;
    int grad_accum;
    float lr;
    float min_lr_ratio; // final lr = lr * min_lr_ratio
    int warmup;
    char schedule[32]; // cosine | linear | wsd | constant
    float decay_frac;  // wsd: fraction of steps in the final decay
    float weight_decay;
    float beta1, beta2, adam_eps;
    float grad_clip;   // 0: off
    int max_bad_steps; // stop after this many non-finite steps in a row
    // run
    uint64_t seed;
    char device[16]; // cpu | cuda | auto
    int threads;     // OpenMP threads (0: all cores)
    int log_every;
    int val_every;        // 0: only at the end
    int val_batches;      // batches per validation (0: the whole val set)
    int save_every;       // 0: only at the end
    int keep_checkpoints; // keep the newest N (0: all)
    bool resume;
    bool overwrite;   // a fresh run may clear an out_dir holding another run
    int sample_every; // print a sample every N steps (0: never)
    int sample_len;
    bool tensorboard; // also write TensorBoard scalars to out_dir
    char mc_data[CONFIG_STR]; // multiple-choice set scored during training ("" = none)
    int mc_every;             // score it every N steps (0: only at the end)
    // distillation (bolt distill; train/distill.h)
    char teacher[CONFIG_STR];       // softmax teacher: Hugging Face directory or bolt checkpoint
    char student_mixer[CONFIG_STR]; // gla | lightning | a pattern such as lightning*3,softmax
    int stage1_steps;               // attention transfer steps
    int stage2_steps;               // fine-tuning steps (CE + KD)
    char transfer_train[8];         // stage 1 trains: new | qk | all
    float ce_weight, kd_weight;     // stage 2: ce_weight * CE + kd_weight * T^2 * KL
    float kd_temperature;           // T
    float lr_new, lr_copied;        // peak learning rates of new and copied tensors
    // distributed (mpirun / srun; see dist/)
    int nproc;              // ranks to start on this node (bolt supervises them); 1: this one
    int zero;               // 1: ZeRO-1, optimizer state sharded over data-parallel ranks
    int sp;                 // sequence-parallel group size: each sequence split over sp ranks
    float bucket_mb;        // data parallel: all-reduce gradients in buckets of this many MB
    int collective_timeout; // seconds a collective may take before the job is ended
} Config;

// Defaults for every key (a tiny TNL, CPU).
void config_defaults(Config *c);
// Apply a config file; dies with "FILE:LINE: ..." on a syntax error, unknown key or bad value.
void config_load_file(Config *c, const char *path);
// Set one key from its text; `origin` names where it came from (file:line or
// "command line") for error messages.
void config_set(Config *c, const char *key, const char *value, const char *origin);
// Parse argv: the first non-option argument is a config file, then --key=value overrides
// (applied after the file, whatever their order). `command` names the command in
// messages. False if --help was asked for (the help is printed).
bool config_from_args(Config *c, const char *command, int argc, char **argv);
// Resolve derived settings (model defaults, mixers) and check cross-key consistency.
void config_finalize(Config *c);
// vocab_size = 0 (the default) means the tokenizer's own vocabulary: set it to
// `tokenizer_vocab`. Called once the tokenizer is loaded, before config_finalize (which
// does it alone for the byte tokenizer).
void config_resolve_vocab(Config *c, int tokenizer_vocab);
// Every key with its help text and default, for --help.
void config_usage(FILE *f);
// The valid key nearest to `key` (edit distance), or NULL if none is close.
const char *config_nearest_key(const char *key);
// Print every key = value, in a form config_load_file reads back.
void config_print(const Config *c, FILE *f);
