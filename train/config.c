// train/config.c: the run configuration. One table lists every key with its type, its
// place in Config, its allowed range and its help text; parsing, printing, --help and
// the range checks of config_finalize all walk that table, so a key is added in one place.
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../dist/launch.h"
#include "../optim/schedule.h"
#include "options.h"

// The size of a Config field (for the string keys' buffers).
#define FIELD_SIZE(field) sizeof(((Config *)0)->field)

// Family and DecayKind are set as OPT_INDEX (an int-sized enum, index into the choices).
_Static_assert(sizeof(Family) == sizeof(int) && sizeof(DecayKind) == sizeof(int),
               "enums set as OPT_INDEX must be int-sized");

static const Option KEYS[] = {
    // model
    {"model", OPT_INDEX, offsetof(Config, model.family), 0, 0, 0, "tnl|gla|llama", "model",
     "model family"},
    {"vocab_size", OPT_INT, offsetof(Config, model.vocab_size), 0, 0, INT_MAX, NULL, NULL,
     "vocabulary size; 0: the tokenizer's (256 for byte; larger pads the LM head)"},
    {"dim", OPT_INT, offsetof(Config, model.dim), 0, 1, INT_MAX, NULL, NULL, "residual width D"},
    {"n_layers", OPT_INT, offsetof(Config, model.n_layers), 0, 1, MAX_LAYERS, NULL, NULL,
     "number of blocks L"},
    {"n_heads", OPT_INT, offsetof(Config, model.n_heads), 0, 1, INT_MAX, NULL, NULL,
     "attention heads H"},
    {"n_kv_heads", OPT_INT, offsetof(Config, model.n_kv_heads), 0, 0, INT_MAX, NULL, NULL,
     "key/value heads of softmax layers (GQA); 0: n_heads"},
    {"head_dim", OPT_INT, offsetof(Config, model.head_dim), 0, 0, INT_MAX, NULL, NULL,
     "head size of softmax and lightning layers; 0: dim / n_heads"},
    {"mlp_dim", OPT_INT, offsetof(Config, model.mlp_dim), 0, 0, INT_MAX, NULL, NULL,
     "MLP hidden size; 0: the family default"},
    {"mixers", OPT_STRING, offsetof(Config, mixers), FIELD_SIZE(mixers), 0, 0, NULL, NULL,
     "per-layer mixers, e.g. lightning*7,softmax, repeated to n_layers; empty: the "
     "family's own"},
    {"softmax_layers", OPT_STRING, offsetof(Config, softmax_layers), FIELD_SIZE(softmax_layers), 0,
     0, NULL, NULL,
     "comma list of layer indices using softmax attention (the rest: the family's own "
     "mixer); not with mixers"},
    {"tie_embeddings", OPT_BOOL, offsetof(Config, model.tie_embeddings), 0, 0, 0, NULL, NULL,
     "share the embedding and LM head matrices"},
    {"norm_eps", OPT_FLOAT, offsetof(Config, model.norm_eps), 0, 0, 0, NULL, NULL,
     "norm epsilon; 0: the family default"},
    {"rope_theta", OPT_FLOAT, offsetof(Config, model.rope_theta), 0, 0, 0, NULL, NULL,
     "RoPE base of softmax layers (and lightning ones with lightning_qk = rope)"},
    {"decay", OPT_INDEX, offsetof(Config, model.decay), 0, 0, 0, "alibi|minimax", NULL,
     "TNL decay slopes"},
    {"lightning_qk", OPT_INDEX, offsetof(Config, model.lightning_qk), 0, 0, 0, "silu|rope", NULL,
     "lightning layers' q, k: SiLU feature map (TNL) or RoPE, no feature map (distilled students)"},
    {"gate_low_rank", OPT_INT, offsetof(Config, model.gate_low_rank), 0, 1, INT_MAX, NULL, NULL,
     "GLA gate projection rank"},
    {"gate_normalizer", OPT_FLOAT, offsetof(Config, model.gate_normalizer), 0, 0, 0, NULL, NULL,
     "GLA gate divisor: gk = logsigmoid(.) / gate_normalizer"},
    {"attn_block", OPT_INT, offsetof(Config, model.attn_block), 0, 1, INT_MAX, NULL, NULL,
     "block (chunk) size of the linear-attention kernels"},
    {"doc_reset", OPT_BOOL, offsetof(Config, model.doc_reset), 0, 0, 0, NULL, NULL,
     "run each document (from one EOT token to the next) as its own sequence"},
    {"recompute", OPT_BOOL, offsetof(Config, model.recompute), 0, 0, 0, NULL, NULL,
     "save only each layer's input and recompute its internals in backward (less memory)"},
    {"recompute_states", OPT_BOOL, offsetof(Config, model.recompute_states), 0, 0, 0, NULL, NULL,
     "linear-attention backward walks its chunk states again instead of keeping the forward's "
     "(4 KB less a token a layer at head size 128, a few percent slower on CUDA)"},
    {"tokenizer", OPT_STRING, offsetof(Config, tokenizer), FIELD_SIZE(tokenizer), 0, 0, NULL, NULL,
     "byte, a tokenizer.json or a .tiktoken file"},
    {"init_from", OPT_STRING, offsetof(Config, init_from), FIELD_SIZE(init_from), 0, 0, NULL, NULL,
     "start from this checkpoint or Hugging Face directory; empty: random init"},
    // data
    {"train_data", OPT_STRING, offsetof(Config, train_data), FIELD_SIZE(train_data), 0, 0, NULL,
     "data", "glob of training shards (.bin)"},
    {"val_data", OPT_STRING, offsetof(Config, val_data), FIELD_SIZE(val_data), 0, 0, NULL, NULL,
     "glob of validation shards; empty: no validation"},
    {"out_dir", OPT_STRING, offsetof(Config, out_dir), FIELD_SIZE(out_dir), 0, 0, NULL, NULL,
     "directory for checkpoints, logs and metrics"},
    // optimization
    {"steps", OPT_INT, offsetof(Config, steps), 0, 1, INT_MAX, NULL, "optimization",
     "optimizer steps"},
    {"batch_size", OPT_INT, offsetof(Config, batch_size), 0, 1, INT_MAX, NULL, NULL,
     "sequences per micro-batch"},
    {"seq_len", OPT_INT, offsetof(Config, seq_len), 0, 1, INT_MAX, NULL, NULL,
     "tokens per sequence"},
    {"grad_accum", OPT_INT, offsetof(Config, grad_accum), 0, 1, INT_MAX, NULL, NULL,
     "micro-batches accumulated per step"},
    {"lr", OPT_FLOAT, offsetof(Config, lr), 0, 0, 0, NULL, NULL, "peak learning rate"},
    {"min_lr_ratio", OPT_FLOAT, offsetof(Config, min_lr_ratio), 0, 0, 0, NULL, NULL,
     "final learning rate = lr * min_lr_ratio"},
    {"warmup", OPT_INT, offsetof(Config, warmup), 0, 0, INT_MAX, NULL, NULL, "linear warmup steps"},
    {"schedule", OPT_CHOICE, offsetof(Config, schedule), FIELD_SIZE(schedule), 0, 0,
     "cosine|linear|wsd|constant", NULL, "lr schedule after warmup"},
    {"decay_frac", OPT_FLOAT, offsetof(Config, decay_frac), 0, 0, 0, NULL, NULL,
     "wsd: fraction of the steps spent in the final decay"},
    {"weight_decay", OPT_FLOAT, offsetof(Config, weight_decay), 0, 0, 0, NULL, NULL,
     "AdamW weight decay (not on norms and biases)"},
    {"beta1", OPT_FLOAT, offsetof(Config, beta1), 0, 0, 0, NULL, NULL, "AdamW beta1"},
    {"beta2", OPT_FLOAT, offsetof(Config, beta2), 0, 0, 0, NULL, NULL, "AdamW beta2"},
    {"adam_eps", OPT_FLOAT, offsetof(Config, adam_eps), 0, 0, 0, NULL, NULL, "AdamW epsilon"},
    {"grad_clip", OPT_FLOAT, offsetof(Config, grad_clip), 0, 0, 0, NULL, NULL,
     "clip the global gradient norm to this; 0: off"},
    {"max_bad_steps", OPT_INT, offsetof(Config, max_bad_steps), 0, 1, INT_MAX, NULL, NULL,
     "stop after this many non-finite steps in a row"},
    // run
    {"seed", OPT_U64, offsetof(Config, seed), 0, 0, 0, NULL, "run",
     "random seed (init, data order, sampling)"},
    {"device", OPT_CHOICE, offsetof(Config, device), FIELD_SIZE(device), 0, 0, "cpu|cuda|auto",
     NULL, "backend (auto: cuda if a GPU is visible)"},
    {"threads", OPT_INT, offsetof(Config, threads), 0, 0, INT_MAX, NULL, NULL,
     "OpenMP threads; 0: the cores not busy with other work (the load average)"},
    {"log_every", OPT_INT, offsetof(Config, log_every), 0, 1, INT_MAX, NULL, NULL,
     "print a log line every N steps"},
    {"val_every", OPT_INT, offsetof(Config, val_every), 0, 0, INT_MAX, NULL, NULL,
     "validate every N steps; 0: only at the end"},
    {"val_batches", OPT_INT, offsetof(Config, val_batches), 0, 0, INT_MAX, NULL, NULL,
     "batches per validation; 0: the whole validation set"},
    {"save_every", OPT_INT, offsetof(Config, save_every), 0, 0, INT_MAX, NULL, NULL,
     "checkpoint every N steps; 0: only at the end"},
    {"keep_checkpoints", OPT_INT, offsetof(Config, keep_checkpoints), 0, 0, INT_MAX, NULL, NULL,
     "keep the newest N checkpoints; 0: all"},
    {"resume", OPT_BOOL, offsetof(Config, resume), 0, 0, 0, NULL, NULL,
     "continue from the newest checkpoint in out_dir"},
    {"overwrite", OPT_BOOL, offsetof(Config, overwrite), 0, 0, 0, NULL, NULL,
     "a fresh run into an out_dir that holds a run deletes that run's checkpoints, metrics "
     "and plots first (without it: an error)"},
    {"sample_every", OPT_INT, offsetof(Config, sample_every), 0, 0, INT_MAX, NULL, NULL,
     "print a sample every N steps; 0: never"},
    {"sample_len", OPT_INT, offsetof(Config, sample_len), 0, 0, INT_MAX, NULL, NULL,
     "tokens per sample"},
    {"tensorboard", OPT_BOOL, offsetof(Config, tensorboard), 0, 0, 0, NULL, NULL,
     "also write TensorBoard scalars (loss, val loss, lr, norm, tokens/s, MFU) to "
     "out_dir/events.out.tfevents.*"},
    {"mc_data", OPT_STRING, offsetof(Config, mc_data), FIELD_SIZE(mc_data), 0, 0, NULL, NULL,
     "multiple-choice set (llm.c eval file or jsonl) scored during training; empty: none"},
    {"mc_every", OPT_INT, offsetof(Config, mc_every), 0, 0, INT_MAX, NULL, NULL,
     "score mc_data every N steps; 0: only at the end"},
    // distillation
    {"teacher", OPT_STRING, offsetof(Config, teacher), FIELD_SIZE(teacher), 0, 0, NULL,
     "distillation (bolt distill)",
     "softmax teacher: a Hugging Face Llama directory or a bolt checkpoint (or run dir)"},
    {"student_mixer", OPT_STRING, offsetof(Config, student_mixer), FIELD_SIZE(student_mixer), 0, 0,
     NULL, NULL, "the student's mixers: gla | lightning | a pattern like lightning*3,softmax"},
    {"stage1_steps", OPT_INT, offsetof(Config, stage1_steps), 0, 0, INT_MAX, NULL, NULL,
     "attention-transfer steps (per-layer MSE to the teacher's attention output)"},
    {"stage2_steps", OPT_INT, offsetof(Config, stage2_steps), 0, 0, INT_MAX, NULL, NULL,
     "fine-tuning steps (ce_weight * CE + kd_weight * T^2 * KL)"},
    {"transfer_train", OPT_CHOICE, offsetof(Config, transfer_train), FIELD_SIZE(transfer_train), 0,
     0, "new|qk|all", NULL,
     "stage 1 trains the new tensors only, new + q/k, or every tensor of the mixers"},
    {"ce_weight", OPT_FLOAT, offsetof(Config, ce_weight), 0, 0, 0, NULL, NULL,
     "stage 2: weight of the cross-entropy on the data"},
    {"kd_weight", OPT_FLOAT, offsetof(Config, kd_weight), 0, 0, 0, NULL, NULL,
     "stage 2: weight of T^2 * KL(teacher || student)"},
    {"kd_temperature", OPT_FLOAT, offsetof(Config, kd_temperature), 0, 0, 0, NULL, NULL,
     "stage 2: softmax temperature T of both models' logits"},
    {"lr_new", OPT_FLOAT, offsetof(Config, lr_new), 0, 0, 0, NULL, NULL,
     "peak learning rate of the student's new tensors"},
    {"lr_copied", OPT_FLOAT, offsetof(Config, lr_copied), 0, 0, 0, NULL, NULL,
     "peak learning rate of the tensors copied from the teacher (stage 2); 0: frozen"},
    // distributed
    {"nproc", OPT_INT, offsetof(Config, nproc), 0, 1, SHM_MAX_RANKS, NULL, "distributed",
     "start this many ranks on this node and supervise them (no MPI needed: shared memory on "
     "the CPU, NCCL on GPUs); 1: this process alone"},
    {"zero", OPT_INT, offsetof(Config, zero), 0, 0, 1, NULL, NULL,
     "1: ZeRO-1 (AdamW state sharded over the data-parallel ranks); 0: plain data parallel"},
    {"sp", OPT_INT, offsetof(Config, sp), 0, 1, INT_MAX, NULL, NULL,
     "sequence parallel: split each sequence over this many ranks (LASP-2); the ranks form "
     "dp = world / sp data-parallel groups"},
    {"bucket_mb", OPT_FLOAT, offsetof(Config, bucket_mb), 0, 0, 0, NULL, NULL,
     "data parallel: all-reduce gradients in buckets of at least this many MB as layers "
     "finish backward; 0: one all-reduce per layer"},
    {"collective_timeout", OPT_INT, offsetof(Config, collective_timeout), 0, 1, INT_MAX, NULL, NULL,
     "seconds a collective may take before the job is ended (a rank died or hangs)"},
};
enum { N_KEYS = sizeof(KEYS) / sizeof(KEYS[0]) };

// Names people commonly write for a key (other tools' spellings). Never accepted, only
// used to suggest the right key in the "unknown key" error.
static const char *const ALIASES[][2] = {
    {"learning_rate", "lr"},
    {"max_lr", "lr"},
    {"warmup_steps", "warmup"},
    {"max_steps", "steps"},
    {"num_steps", "steps"},
    {"train_steps", "steps"},
    {"num_layers", "n_layers"},
    {"num_hidden_layers", "n_layers"},
    {"hidden_size", "dim"},
    {"d_model", "dim"},
    {"n_embd", "dim"},
    {"num_heads", "n_heads"},
    {"num_attention_heads", "n_heads"},
    {"num_key_value_heads", "n_kv_heads"},
    {"intermediate_size", "mlp_dim"},
    {"block_size", "seq_len"},
    {"context_length", "seq_len"},
    {"seq_length", "seq_len"},
    {"micro_batch_size", "batch_size"},
    {"gradient_accumulation_steps", "grad_accum"},
    {"max_grad_norm", "grad_clip"},
    {"lr_schedule", "schedule"},
    {"lr_scheduler", "schedule"},
    {"output_dir", "out_dir"},
    {"eval_every", "val_every"},
    {"eval_interval", "val_every"},
    {"save_interval", "save_every"},
    {"tie_word_embeddings", "tie_embeddings"},
    {"rms_norm_eps", "norm_eps"},
    {"family", "model"},
};
enum { N_ALIASES = sizeof(ALIASES) / sizeof(ALIASES[0]) };

void config_resolve_vocab(Config *c, int tokenizer_vocab) {
    if (c->model.vocab_size == 0) c->model.vocab_size = tokenizer_vocab;
}

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c); // padding too, so two configs built alike compare equal
    ModelConfig *m = &c->model;
    m->family = FAMILY_TNL;
    m->vocab_size = 0; // the tokenizer's
    m->dim = 128;
    m->n_layers = 4;
    m->n_heads = 4;
    m->n_kv_heads = 0;
    m->head_dim = 0;
    m->mlp_dim = 0;
    m->tie_embeddings = false;
    m->norm_eps = 0.0f;
    m->rope_theta = 10000.0f;
    m->decay = DECAY_ALIBI;
    m->gate_low_rank = 16;
    m->gate_normalizer = 16.0f;
    m->attn_block = 64;
    m->doc_reset = false;
    m->recompute = false;
    m->recompute_states = false;
    m->eot_token = 0;
    strcpy(c->tokenizer, "byte");
    strcpy(c->out_dir, "out");
    c->steps = 1000;
    c->batch_size = 16;
    c->seq_len = 128;
    c->grad_accum = 1;
    c->lr = 3e-3f;
    c->min_lr_ratio = 0.1f;
    c->warmup = 50;
    strcpy(c->schedule, "cosine");
    c->decay_frac = 0.2f;
    c->weight_decay = 0.1f;
    c->beta1 = 0.9f;
    c->beta2 = 0.95f;
    c->adam_eps = 1e-8f;
    c->grad_clip = 1.0f;
    c->max_bad_steps = 10;
    c->seed = 1337;
    strcpy(c->device, "auto");
    c->threads = 0;
    c->log_every = 1;
    c->val_every = 100;
    c->val_batches = 10;
    c->save_every = 0;
    c->keep_checkpoints = 2;
    c->resume = false;
    c->overwrite = false;
    c->sample_every = 0;
    c->sample_len = 200;
    c->tensorboard = false;
    c->mc_every = 0;
    strcpy(c->student_mixer, "lightning");
    c->stage1_steps = 100;
    c->stage2_steps = 200;
    strcpy(c->transfer_train, "new");
    c->ce_weight = 1.0f;
    c->kd_weight = 1.0f;
    c->kd_temperature = 2.0f;
    c->lr_new = 1e-3f;
    c->lr_copied = 1e-4f;
    c->zero = 0;
    c->nproc = 1;
    c->sp = 1;
    c->bucket_mb = 16.0f;
    c->collective_timeout = 300;
}

// The train command's table: every config key (also the keys of config files).
static const OptionTable CONFIG_TABLE = {
    .command = "train",
    .args = "[CONFIG]",
    .min_args = 0,
    .max_args = 1,
    .about = "Trains the model CONFIG describes (a file of 'key = value' lines, # comments);\n"
             "--key=value overrides any key (applied after the file, whatever the order).\n"
             "bolt distill reads the same keys; its student's architecture comes from the\n"
             "teacher (see the distillation section).",
    .options = KEYS,
    .count = N_KEYS,
    .aliases = ALIASES,
    .n_aliases = N_ALIASES,
};

const char *config_nearest_key(const char *key) {
    return option_nearest(&CONFIG_TABLE, key);
}

void config_set(Config *c, const char *key, const char *value, const char *origin) {
    option_set(&CONFIG_TABLE, c, key, value, origin);
}

// Strip leading and trailing whitespace in place; returns the new start.
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) end--;
    *end = '\0';
    return s;
}

void config_load_file(Config *c, const char *path) {
    size_t len;
    char *text = read_file(path, &len);
    char origin[CONFIG_STR + 32];
    char *line = text;
    for (int line_no = 1; line; line_no++) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *comment = strchr(line, '#');
        if (comment) *comment = '\0';
        char *s = trim(line);
        snprintf(origin, sizeof origin, "%s:%d", path, line_no);
        if (*s != '\0') {
            char *eq = strchr(s, '=');
            if (!eq) die("%s: expected key = value, got '%s'", origin, s);
            *eq = '\0';
            char *key = trim(s);
            char *value = trim(eq + 1);
            if (*key == '\0') die("%s: expected key = value (the key is missing)", origin);
            config_set(c, key, value, origin);
        }
        line = next;
    }
    free(text);
}

bool config_from_args(Config *c, const char *command, int argc, char **argv) {
    OptionTable table = CONFIG_TABLE;
    table.command = command;
    char *file[1];
    int n = options_scan(&table, c, argc, argv, file);
    if (n < 0) return false;
    if (n == 1) config_load_file(c, file[0]);
    options_apply(&table, c, argc, argv); // overrides, in order, after the file
    return true;
}

// softmax_layers "3,7": softmax at layers 3 and 7, the family's own mixer elsewhere.
static void set_softmax_layers(Config *c) {
    int n_layers = c->model.n_layers;
    for (int l = 0; l < n_layers; l++) c->model.mixer[l] = family_mixer(c->model.family);
    char list[CONFIG_STR];
    snprintf(list, sizeof list, "%s", c->softmax_layers);
    char *item = list;
    while (item) {
        char *comma = strchr(item, ',');
        if (comma) *comma++ = '\0';
        char *s = trim(item);
        char *end;
        long layer = strtol(s, &end, 10);
        if (end == s || *end != '\0')
            die("config: softmax_layers = '%s': '%s' is not a layer index", c->softmax_layers, s);
        if (layer < 0 || layer >= n_layers)
            die("config: softmax_layers = '%s': layer %ld is out of range (n_layers = %d)",
                c->softmax_layers, layer, n_layers);
        c->model.mixer[layer] = MIXER_SOFTMAX;
        item = comma;
    }
}

void config_finalize(Config *c) {
    // Integer ranges, from the table (the values may have been set by code, not parsed).
    options_check_ranges(&CONFIG_TABLE, c, "config");
    check(isfinite(c->lr) && c->lr > 0, "config: lr = %g must be > 0", c->lr);
    check(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1,
          "config: min_lr_ratio = %g must be in [0, 1]", c->min_lr_ratio);
    check(schedule_valid(c->schedule),
          "config: schedule = '%s' must be cosine, linear, wsd or constant", c->schedule);
    check(c->decay_frac >= 0 && c->decay_frac <= 1, "config: decay_frac = %g must be in [0, 1]",
          c->decay_frac);
    check(c->weight_decay >= 0, "config: weight_decay = %g must be >= 0", c->weight_decay);
    check(c->beta1 >= 0 && c->beta1 < 1, "config: beta1 = %g must be in [0, 1)", c->beta1);
    check(c->beta2 >= 0 && c->beta2 < 1, "config: beta2 = %g must be in [0, 1)", c->beta2);
    check(c->adam_eps > 0, "config: adam_eps = %g must be > 0", c->adam_eps);
    check(c->grad_clip >= 0, "config: grad_clip = %g must be >= 0 (0: off)", c->grad_clip);
    check(c->bucket_mb >= 0, "config: bucket_mb = %g must be >= 0", c->bucket_mb);
    check(strcmp(c->device, "cpu") == 0 || strcmp(c->device, "cuda") == 0 ||
              strcmp(c->device, "auto") == 0,
          "config: device = '%s' must be cpu, cuda or auto", c->device);
    check(c->model.norm_eps >= 0, "config: norm_eps = %g must be >= 0 (0: family default)",
          c->model.norm_eps);
    check(c->model.rope_theta > 0, "config: rope_theta = %g must be > 0", c->model.rope_theta);
    check(c->model.gate_normalizer > 0, "config: gate_normalizer = %g must be > 0",
          c->model.gate_normalizer);
    check(c->tokenizer[0] != '\0', "config: tokenizer is empty (byte, a tokenizer.json or a "
                                   ".tiktoken file)");
    if (strcmp(c->tokenizer, "byte") == 0) config_resolve_vocab(c, 256);
    check(c->model.vocab_size > 0,
          "config: vocab_size is 0 (the tokenizer's) but tokenizer '%s' was not loaded to tell it",
          c->tokenizer);
    check(strcmp(c->tokenizer, "byte") != 0 || c->model.vocab_size >= 256,
          "config: vocab_size = %d is too small for the byte tokenizer (needs 256)",
          c->model.vocab_size);
    check(c->train_data[0] != '\0', "config: train_data is not set (a glob of .bin shards)");
    check(c->out_dir[0] != '\0', "config: out_dir is empty");

    // Per-layer mixers: an explicit pattern, or softmax layers among the family's own.
    check(!(c->mixers[0] && c->softmax_layers[0]),
          "config: set mixers or softmax_layers, not both");
    if (c->softmax_layers[0]) {
        set_softmax_layers(c);
        model_config_check(&c->model);
    } else {
        model_config_finalize(&c->model, c->mixers);
    }
}

void config_print(const Config *c, FILE *f) {
    options_print(&CONFIG_TABLE, c, f);
}

void config_usage(FILE *f) {
    Config defaults;
    config_defaults(&defaults);
    options_usage(&CONFIG_TABLE, &defaults, f);
}
