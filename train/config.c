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
#include "../optim/schedule.h"

// The size of a Config field (for the string keys' buffers).
#define FIELD_SIZE(field) sizeof(((Config *)0)->field)

typedef enum KeyType {
    KEY_INT,    // int, within [min, max]
    KEY_FLOAT,  // float, finite
    KEY_BOOL,   // bool: 0 / 1 / true / false
    KEY_U64,    // uint64_t
    KEY_STRING, // char[size]
    KEY_ENUM,   // char[size] holding one of `choices` ("a|b|c")
    KEY_FAMILY, // ModelConfig.family, by family_from_name
    KEY_DECAY,  // ModelConfig.decay: alibi | minimax
} KeyType;

typedef struct ConfigKey {
    const char *name;
    KeyType type;
    size_t offset;       // of the field in Config
    size_t size;         // KEY_STRING / KEY_ENUM: buffer size
    int min, max;        // KEY_INT: allowed range
    const char *choices; // KEY_ENUM / KEY_FAMILY / KEY_DECAY: "a|b|c"
    const char *section; // non-NULL on the first key of a section (printing only)
    const char *help;
} ConfigKey;

static const ConfigKey KEYS[] = {
    // model
    {"model", KEY_FAMILY, offsetof(Config, model.family), 0, 0, 0, "tnl|gla|llama", "model",
     "model family: tnl | gla | llama"},
    {"vocab_size", KEY_INT, offsetof(Config, model.vocab_size), 0, 1, INT_MAX, NULL, NULL,
     "vocabulary size (the byte tokenizer needs 256)"},
    {"dim", KEY_INT, offsetof(Config, model.dim), 0, 1, INT_MAX, NULL, NULL, "residual width D"},
    {"n_layers", KEY_INT, offsetof(Config, model.n_layers), 0, 1, MAX_LAYERS, NULL, NULL,
     "number of blocks L"},
    {"n_heads", KEY_INT, offsetof(Config, model.n_heads), 0, 1, INT_MAX, NULL, NULL,
     "attention heads H"},
    {"n_kv_heads", KEY_INT, offsetof(Config, model.n_kv_heads), 0, 0, INT_MAX, NULL, NULL,
     "key/value heads of softmax layers (GQA); 0: n_heads"},
    {"head_dim", KEY_INT, offsetof(Config, model.head_dim), 0, 0, INT_MAX, NULL, NULL,
     "head size of softmax and lightning layers; 0: dim / n_heads"},
    {"mlp_dim", KEY_INT, offsetof(Config, model.mlp_dim), 0, 0, INT_MAX, NULL, NULL,
     "MLP hidden size; 0: the family default"},
    {"mixers", KEY_STRING, offsetof(Config, mixers), FIELD_SIZE(mixers), 0, 0, NULL, NULL,
     "per-layer mixers, e.g. lightning*7,softmax, repeated to n_layers; empty: the "
     "family's own"},
    {"softmax_layers", KEY_STRING, offsetof(Config, softmax_layers), FIELD_SIZE(softmax_layers), 0,
     0, NULL, NULL,
     "comma list of layer indices using softmax attention (the rest: the family's own "
     "mixer); not with mixers"},
    {"tie_embeddings", KEY_BOOL, offsetof(Config, model.tie_embeddings), 0, 0, 0, NULL, NULL,
     "share the embedding and LM head matrices"},
    {"norm_eps", KEY_FLOAT, offsetof(Config, model.norm_eps), 0, 0, 0, NULL, NULL,
     "norm epsilon; 0: the family default"},
    {"rope_theta", KEY_FLOAT, offsetof(Config, model.rope_theta), 0, 0, 0, NULL, NULL,
     "RoPE base of softmax layers"},
    {"decay", KEY_DECAY, offsetof(Config, model.decay), 0, 0, 0, "alibi|minimax", NULL,
     "TNL decay slopes: alibi | minimax"},
    {"gate_low_rank", KEY_INT, offsetof(Config, model.gate_low_rank), 0, 1, INT_MAX, NULL, NULL,
     "GLA gate projection rank"},
    {"gate_normalizer", KEY_FLOAT, offsetof(Config, model.gate_normalizer), 0, 0, 0, NULL, NULL,
     "GLA gate divisor: gk = logsigmoid(.) / gate_normalizer"},
    {"attn_block", KEY_INT, offsetof(Config, model.attn_block), 0, 1, INT_MAX, NULL, NULL,
     "block (chunk) size of the linear-attention kernels"},
    {"doc_reset", KEY_BOOL, offsetof(Config, model.doc_reset), 0, 0, 0, NULL, NULL,
     "run each document (from one EOT token to the next) as its own sequence"},
    {"recompute", KEY_BOOL, offsetof(Config, model.recompute), 0, 0, 0, NULL, NULL,
     "save only each layer's input and recompute its internals in backward (less memory)"},
    {"tokenizer", KEY_STRING, offsetof(Config, tokenizer), FIELD_SIZE(tokenizer), 0, 0, NULL, NULL,
     "byte, a tokenizer.json or a .tiktoken file"},
    {"init_from", KEY_STRING, offsetof(Config, init_from), FIELD_SIZE(init_from), 0, 0, NULL, NULL,
     "start from this checkpoint or Hugging Face directory; empty: random init"},
    // data
    {"train_data", KEY_STRING, offsetof(Config, train_data), FIELD_SIZE(train_data), 0, 0, NULL,
     "data", "glob of training shards (.bin)"},
    {"val_data", KEY_STRING, offsetof(Config, val_data), FIELD_SIZE(val_data), 0, 0, NULL, NULL,
     "glob of validation shards; empty: no validation"},
    {"out_dir", KEY_STRING, offsetof(Config, out_dir), FIELD_SIZE(out_dir), 0, 0, NULL, NULL,
     "directory for checkpoints, logs and metrics"},
    // optimization
    {"steps", KEY_INT, offsetof(Config, steps), 0, 1, INT_MAX, NULL, "optimization",
     "optimizer steps"},
    {"batch_size", KEY_INT, offsetof(Config, batch_size), 0, 1, INT_MAX, NULL, NULL,
     "sequences per micro-batch"},
    {"seq_len", KEY_INT, offsetof(Config, seq_len), 0, 1, INT_MAX, NULL, NULL,
     "tokens per sequence"},
    {"grad_accum", KEY_INT, offsetof(Config, grad_accum), 0, 1, INT_MAX, NULL, NULL,
     "micro-batches accumulated per step"},
    {"lr", KEY_FLOAT, offsetof(Config, lr), 0, 0, 0, NULL, NULL, "peak learning rate"},
    {"min_lr_ratio", KEY_FLOAT, offsetof(Config, min_lr_ratio), 0, 0, 0, NULL, NULL,
     "final learning rate = lr * min_lr_ratio"},
    {"warmup", KEY_INT, offsetof(Config, warmup), 0, 0, INT_MAX, NULL, NULL, "linear warmup steps"},
    {"schedule", KEY_ENUM, offsetof(Config, schedule), FIELD_SIZE(schedule), 0, 0,
     "cosine|linear|wsd|constant", NULL, "lr schedule after warmup"},
    {"decay_frac", KEY_FLOAT, offsetof(Config, decay_frac), 0, 0, 0, NULL, NULL,
     "wsd: fraction of the steps spent in the final decay"},
    {"weight_decay", KEY_FLOAT, offsetof(Config, weight_decay), 0, 0, 0, NULL, NULL,
     "AdamW weight decay (not on norms and biases)"},
    {"beta1", KEY_FLOAT, offsetof(Config, beta1), 0, 0, 0, NULL, NULL, "AdamW beta1"},
    {"beta2", KEY_FLOAT, offsetof(Config, beta2), 0, 0, 0, NULL, NULL, "AdamW beta2"},
    {"adam_eps", KEY_FLOAT, offsetof(Config, adam_eps), 0, 0, 0, NULL, NULL, "AdamW epsilon"},
    {"grad_clip", KEY_FLOAT, offsetof(Config, grad_clip), 0, 0, 0, NULL, NULL,
     "clip the global gradient norm to this; 0: off"},
    {"max_bad_steps", KEY_INT, offsetof(Config, max_bad_steps), 0, 1, INT_MAX, NULL, NULL,
     "stop after this many non-finite steps in a row"},
    // run
    {"seed", KEY_U64, offsetof(Config, seed), 0, 0, 0, NULL, "run",
     "random seed (init, data order, sampling)"},
    {"device", KEY_ENUM, offsetof(Config, device), FIELD_SIZE(device), 0, 0, "cpu|cuda|auto", NULL,
     "backend: cpu | cuda | auto (cuda if a GPU is visible)"},
    {"threads", KEY_INT, offsetof(Config, threads), 0, 0, INT_MAX, NULL, NULL,
     "OpenMP threads; 0: all cores"},
    {"log_every", KEY_INT, offsetof(Config, log_every), 0, 1, INT_MAX, NULL, NULL,
     "print a log line every N steps"},
    {"val_every", KEY_INT, offsetof(Config, val_every), 0, 0, INT_MAX, NULL, NULL,
     "validate every N steps; 0: only at the end"},
    {"val_batches", KEY_INT, offsetof(Config, val_batches), 0, 0, INT_MAX, NULL, NULL,
     "batches per validation; 0: the whole validation set"},
    {"save_every", KEY_INT, offsetof(Config, save_every), 0, 0, INT_MAX, NULL, NULL,
     "checkpoint every N steps; 0: only at the end"},
    {"keep_checkpoints", KEY_INT, offsetof(Config, keep_checkpoints), 0, 0, INT_MAX, NULL, NULL,
     "keep the newest N checkpoints; 0: all"},
    {"resume", KEY_BOOL, offsetof(Config, resume), 0, 0, 0, NULL, NULL,
     "continue from the newest checkpoint in out_dir"},
    {"sample_every", KEY_INT, offsetof(Config, sample_every), 0, 0, INT_MAX, NULL, NULL,
     "print a sample every N steps; 0: never"},
    {"sample_len", KEY_INT, offsetof(Config, sample_len), 0, 0, INT_MAX, NULL, NULL,
     "tokens per sample"},
    {"tensorboard", KEY_BOOL, offsetof(Config, tensorboard), 0, 0, 0, NULL, NULL,
     "also write TensorBoard scalars (loss, val loss, lr, norm, tokens/s, MFU) to "
     "out_dir/events.out.tfevents.*"},
    // distributed
    {"zero", KEY_INT, offsetof(Config, zero), 0, 0, 1, NULL, "distributed",
     "1: ZeRO-1 (AdamW state sharded over the data-parallel ranks); 0: plain data parallel"},
    {"bucket_mb", KEY_FLOAT, offsetof(Config, bucket_mb), 0, 0, 0, NULL, NULL,
     "data parallel: all-reduce gradients in buckets of at least this many MB as layers "
     "finish backward; 0: one all-reduce per layer"},
    {"collective_timeout", KEY_INT, offsetof(Config, collective_timeout), 0, 1, INT_MAX, NULL, NULL,
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

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c); // padding too, so two configs built alike compare equal
    ModelConfig *m = &c->model;
    m->family = FAMILY_TNL;
    m->vocab_size = 256;
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
    c->sample_every = 0;
    c->sample_len = 200;
    c->tensorboard = false;
    c->zero = 0;
    c->bucket_mb = 16.0f;
    c->collective_timeout = 300;
}

// Lower-case, with '-' read as '_', so "Batch-Size" is one edit-free step from batch_size.
static char fold_char(char ch) {
    return ch == '-' ? '_' : (char)tolower((unsigned char)ch);
}

// Edit distance (insertions, deletions, substitutions) between a and b, after fold_char.
static int edit_distance(const char *a, const char *b) {
    enum { MAX_LEN = 128 };
    int na = (int)strlen(a), nb = (int)strlen(b);
    if (na >= MAX_LEN || nb >= MAX_LEN) return INT_MAX;
    int prev[MAX_LEN], cur[MAX_LEN];
    for (int j = 0; j <= nb; j++) prev[j] = j;
    for (int i = 1; i <= na; i++) {
        cur[0] = i;
        for (int j = 1; j <= nb; j++) {
            int cost = fold_char(a[i - 1]) == fold_char(b[j - 1]) ? 0 : 1;
            int best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, sizeof(int) * (size_t)(nb + 1));
    }
    return prev[nb];
}

// How many edits still count as a typo of `candidate`: 1, plus one per 3 characters.
static bool close_enough(const char *key, const char *candidate, int distance) {
    size_t n = strlen(key) > strlen(candidate) ? strlen(key) : strlen(candidate);
    return distance <= 1 + (int)(n / 3);
}

// The valid key closest to a misspelt one (aliases map to their key); NULL if none is
// close enough to be a plausible typo.
const char *config_nearest_key(const char *key) {
    const char *best = NULL;
    int best_distance = INT_MAX;
    for (int i = 0; i < N_KEYS; i++) {
        int d = edit_distance(key, KEYS[i].name);
        if (d < best_distance && close_enough(key, KEYS[i].name, d)) {
            best = KEYS[i].name;
            best_distance = d;
        }
    }
    for (int i = 0; i < N_ALIASES; i++) {
        int d = edit_distance(key, ALIASES[i][0]);
        if (d < best_distance && close_enough(key, ALIASES[i][0], d)) {
            best = ALIASES[i][1];
            best_distance = d;
        }
    }
    return best;
}

// The table entry of a key, or NULL.
static const ConfigKey *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++) {
        if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    }
    return NULL;
}

// True if `value` is one of the '|'-separated `choices`.
static bool is_choice(const char *value, const char *choices) {
    size_t n = strlen(value);
    const char *p = choices;
    while (*p) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

// "a|b|c" -> "a, b, c" for messages.
static void list_choices(const char *choices, char *out, size_t size) {
    size_t o = 0;
    for (const char *p = choices; *p && o + 3 < size; p++) {
        if (*p == '|') {
            out[o++] = ',';
            out[o++] = ' ';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

// Parse a whole base-10 int; false on junk, overflow or empty text.
static bool parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || v < INT_MIN || v > INT_MAX) return false;
    *out = (int)v;
    return true;
}

// Parse a whole finite float (3e-4 style accepted); false on junk or overflow.
static bool parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

// Parse a whole unsigned 64-bit integer (seeds); false on a sign, junk or overflow.
static bool parse_u64(const char *s, uint64_t *out) {
    if (!isdigit((unsigned char)s[0])) return false; // strtoull would accept "-1"
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE) return false;
    *out = (uint64_t)v;
    return true;
}

// Parse 1 / true / 0 / false.
static bool parse_bool(const char *s, bool *out) {
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

// Die with the standard bad-value message.
static _Noreturn void bad_value(const char *origin, const char *key, const char *value,
                                const char *expected) {
    die("%s: bad value '%s' for key '%s' (expected %s)", origin, value, key, expected);
}

// Parse `value` by the key's type and store it into c.
static void set_value(Config *c, const ConfigKey *k, const char *value, const char *origin) {
    char *field = (char *)c + k->offset;
    char expected[160];
    switch (k->type) {
    case KEY_INT: {
        int v;
        if (!parse_int(value, &v)) bad_value(origin, k->name, value, "an integer");
        if (v < k->min || v > k->max) {
            if (k->max == INT_MAX) {
                snprintf(expected, sizeof expected, "an integer >= %d", k->min);
            } else {
                snprintf(expected, sizeof expected, "an integer in %d..%d", k->min, k->max);
            }
            bad_value(origin, k->name, value, expected);
        }
        *(int *)field = v;
        break;
    }
    case KEY_FLOAT: {
        float v;
        if (!parse_float(value, &v)) bad_value(origin, k->name, value, "a number");
        *(float *)field = v;
        break;
    }
    case KEY_BOOL: {
        bool v;
        if (!parse_bool(value, &v)) bad_value(origin, k->name, value, "true, false, 1 or 0");
        *(bool *)field = v;
        break;
    }
    case KEY_U64: {
        uint64_t v;
        if (!parse_u64(value, &v)) bad_value(origin, k->name, value, "a non-negative integer");
        *(uint64_t *)field = v;
        break;
    }
    case KEY_STRING:
    case KEY_ENUM: {
        if (k->type == KEY_ENUM && !is_choice(value, k->choices)) {
            char list[128];
            list_choices(k->choices, list, sizeof list);
            snprintf(expected, sizeof expected, "one of: %s", list);
            bad_value(origin, k->name, value, expected);
        }
        size_t n = strlen(value);
        if (n >= k->size) {
            snprintf(expected, sizeof expected, "at most %zu characters", k->size - 1);
            bad_value(origin, k->name, value, expected);
        }
        memset(field, 0, k->size); // no stale bytes after the NUL: configs compare equal
        memcpy(field, value, n);
        break;
    }
    case KEY_FAMILY: {
        Family f;
        if (!family_from_name(value, &f)) bad_value(origin, k->name, value, "tnl, gla or llama");
        *(Family *)field = f;
        break;
    }
    case KEY_DECAY: {
        DecayKind d;
        if (strcmp(value, "alibi") == 0) {
            d = DECAY_ALIBI;
        } else if (strcmp(value, "minimax") == 0) {
            d = DECAY_MINIMAX;
        } else {
            bad_value(origin, k->name, value, "alibi or minimax");
        }
        *(DecayKind *)field = d;
        break;
    }
    }
}

void config_set(Config *c, const char *key, const char *value, const char *origin) {
    const ConfigKey *k = find_key(key);
    if (!k) {
        const char *near = config_nearest_key(key);
        if (near) die("%s: unknown key '%s' (did you mean '%s'?)", origin, key, near);
        die("%s: unknown key '%s' (see bolt train --help for the keys)", origin, key);
    }
    set_value(c, k, value, origin);
}

// Shortest text that reads back as exactly v (whole numbers without an exponent).
static void format_float(float v, char *buf, size_t size) {
    if (v == floorf(v) && fabsf(v) < 1e9f) {
        snprintf(buf, size, "%.0f", (double)v);
        return;
    }
    for (int precision = 1; precision <= 9; precision++) {
        snprintf(buf, size, "%.*g", precision, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

// The key's current value as config-file text.
static void format_value(const Config *c, const ConfigKey *k, char *buf, size_t size) {
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case KEY_INT:
        snprintf(buf, size, "%d", *(const int *)field);
        break;
    case KEY_FLOAT:
        format_float(*(const float *)field, buf, size);
        break;
    case KEY_BOOL:
        snprintf(buf, size, "%s", *(const bool *)field ? "true" : "false");
        break;
    case KEY_U64:
        snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case KEY_STRING:
    case KEY_ENUM:
        snprintf(buf, size, "%s", field);
        break;
    case KEY_FAMILY:
        snprintf(buf, size, "%s", family_name(*(const Family *)field));
        break;
    case KEY_DECAY:
        snprintf(buf, size, "%s", *(const DecayKind *)field == DECAY_MINIMAX ? "minimax" : "alibi");
        break;
    }
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

void config_from_args(Config *c, int argc, char **argv) {
    const char *file = NULL;
    // First pass: find the config file and reject malformed options before applying any.
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0) {
            if (!strchr(a, '='))
                die("command line: '%s' has no value: write %s=VALUE ('--key value' is not "
                    "supported)",
                    a, a);
        } else if (a[0] == '-' && a[1] != '\0') {
            die("command line: unknown option '%s' (settings are --key=value)", a);
        } else if (file) {
            die("command line: unexpected argument '%s' (the config file is already '%s')", a,
                file);
        } else {
            file = a;
        }
    }
    if (file) config_load_file(c, file);
    // Second pass: overrides, in order, after the file.
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) continue;
        char key[128];
        const char *eq = strchr(argv[i], '=');
        size_t n = (size_t)(eq - (argv[i] + 2));
        if (n >= sizeof key) die("command line: unknown key '%.*s'", (int)n, argv[i] + 2);
        memcpy(key, argv[i] + 2, n);
        key[n] = '\0';
        config_set(c, key, eq + 1, "command line");
    }
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
        int layer;
        if (!parse_int(s, &layer))
            die("config: softmax_layers = '%s': '%s' is not a layer index", c->softmax_layers, s);
        if (layer < 0 || layer >= n_layers)
            die("config: softmax_layers = '%s': layer %d is out of range (n_layers = %d)",
                c->softmax_layers, layer, n_layers);
        c->model.mixer[layer] = MIXER_SOFTMAX;
        item = comma;
    }
}

void config_finalize(Config *c) {
    // Integer ranges, from the table (the values may have been set by code, not parsed).
    for (int i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        if (k->type != KEY_INT) continue;
        int v = *(const int *)((const char *)c + k->offset);
        if (v < k->min || v > k->max) {
            if (k->max == INT_MAX) die("config: %s = %d must be >= %d", k->name, v, k->min);
            die("config: %s = %d must be in %d..%d", k->name, v, k->min, k->max);
        }
    }
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
    check(is_choice(c->device, "cpu|cuda|auto"), "config: device = '%s' must be cpu, cuda or auto",
          c->device);
    check(c->model.norm_eps >= 0, "config: norm_eps = %g must be >= 0 (0: family default)",
          c->model.norm_eps);
    check(c->model.rope_theta > 0, "config: rope_theta = %g must be > 0", c->model.rope_theta);
    check(c->model.gate_normalizer > 0, "config: gate_normalizer = %g must be > 0",
          c->model.gate_normalizer);
    check(c->tokenizer[0] != '\0', "config: tokenizer is empty (byte, a tokenizer.json or a "
                                   ".tiktoken file)");
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
    char value[CONFIG_STR + 32];
    for (int i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        if (k->section) fprintf(f, "%s# %s\n", i ? "\n" : "", k->section);
        format_value(c, k, value, sizeof value);
        if (value[0]) {
            fprintf(f, "%s = %s\n", k->name, value);
        } else {
            fprintf(f, "%s =\n", k->name);
        }
    }
}

void config_usage(FILE *f) {
    Config defaults;
    config_defaults(&defaults);
    char value[CONFIG_STR + 32];
    fprintf(f, "Keys: set as 'key = value' in the config file, or as --key=value on the "
               "command line (applied after the file).\n");
    for (int i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        if (k->section) fprintf(f, "\n%s:\n", k->section);
        format_value(&defaults, k, value, sizeof value);
        fprintf(f, "  %-17s %-10s %s\n", k->name, value[0] ? value : "\"\"", k->help);
    }
}
