// tests/test_config.c: config files, --key=value overrides, error messages, print/reload
// round trips, the shipped configs/, and the learning-rate schedules.
#include <check.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/util.h"
#include "../optim/schedule.h"
#include "../train/config.h"
#include "testing.h"

// Exported by train/config.c (to be declared in config.h).
const char *config_nearest_key(const char *key);
void config_usage(FILE *f);

// Every key, and how to draw a random valid value for it.
typedef struct KeySpec {
    const char *name;
    char kind;           // i: int, f: float, b: bool, u: u64, s: string, e: enum
    int min, max;        // i: range of random values
    const char *choices; // e: space-separated
} KeySpec;

static const KeySpec KEY_SPECS[] = {
    {"model", 'e', 0, 0, "tnl gla llama"},
    {"vocab_size", 'i', 1, 100000, NULL},
    {"dim", 'i', 1, 4096, NULL},
    {"n_layers", 'i', 1, 256, NULL},
    {"n_heads", 'i', 1, 64, NULL},
    {"n_kv_heads", 'i', 0, 64, NULL},
    {"head_dim", 'i', 0, 256, NULL},
    {"mlp_dim", 'i', 0, 20000, NULL},
    {"mixers", 's', 0, 0, NULL},
    {"softmax_layers", 's', 0, 0, NULL},
    {"tie_embeddings", 'b', 0, 0, NULL},
    {"norm_eps", 'f', 0, 0, NULL},
    {"rope_theta", 'f', 0, 0, NULL},
    {"decay", 'e', 0, 0, "alibi minimax"},
    {"gate_low_rank", 'i', 1, 64, NULL},
    {"gate_normalizer", 'f', 0, 0, NULL},
    {"attn_block", 'i', 1, 512, NULL},
    {"doc_reset", 'b', 0, 0, NULL},
    {"tokenizer", 's', 0, 0, NULL},
    {"init_from", 's', 0, 0, NULL},
    {"train_data", 's', 0, 0, NULL},
    {"val_data", 's', 0, 0, NULL},
    {"out_dir", 's', 0, 0, NULL},
    {"steps", 'i', 1, 1000000, NULL},
    {"batch_size", 'i', 1, 1024, NULL},
    {"seq_len", 'i', 1, 65536, NULL},
    {"grad_accum", 'i', 1, 512, NULL},
    {"lr", 'f', 0, 0, NULL},
    {"min_lr_ratio", 'f', 0, 0, NULL},
    {"warmup", 'i', 0, 10000, NULL},
    {"schedule", 'e', 0, 0, "cosine linear wsd constant"},
    {"decay_frac", 'f', 0, 0, NULL},
    {"weight_decay", 'f', 0, 0, NULL},
    {"beta1", 'f', 0, 0, NULL},
    {"beta2", 'f', 0, 0, NULL},
    {"adam_eps", 'f', 0, 0, NULL},
    {"grad_clip", 'f', 0, 0, NULL},
    {"max_bad_steps", 'i', 1, 1000, NULL},
    {"seed", 'u', 0, 0, NULL},
    {"device", 'e', 0, 0, "cpu cuda auto"},
    {"threads", 'i', 0, 256, NULL},
    {"log_every", 'i', 1, 1000, NULL},
    {"val_every", 'i', 0, 10000, NULL},
    {"val_batches", 'i', 0, 1000, NULL},
    {"save_every", 'i', 0, 10000, NULL},
    {"keep_checkpoints", 'i', 0, 100, NULL},
    {"resume", 'b', 0, 0, NULL},
    {"overwrite", 'b', 0, 0, NULL},
    {"sample_every", 'i', 0, 10000, NULL},
    {"sample_len", 'i', 0, 10000, NULL},
    {"tensorboard", 'b', 0, 0, NULL},
};
enum { N_KEY_SPECS = sizeof(KEY_SPECS) / sizeof(KEY_SPECS[0]) };

// Write text to a fresh temp file; returns its path (free it, unlink it). The path is
// registered with die, so a test that dies on purpose leaves no file behind.
static char *write_temp(const char *text) {
    char *path = xstrdup("/tmp/test_config_XXXXXX.conf");
    int fd = mkstemps(path, 5);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    temp_register(path);
    return path;
}

static void remove_temp(char *path) {
    unlink(path);
    temp_unregister(path);
    free(path);
}

// Load `text` as a config file on top of the defaults.
static void load_text(Config *c, const char *text) {
    char *path = write_temp(text);
    config_defaults(c);
    config_load_file(c, path);
    remove_temp(path);
}

// Run fn(arg) in a child with stderr captured into msg; the child must exit with status 1.
static void capture_die(void (*fn)(const char *), const char *arg, char *msg, size_t size) {
    int status = capture_stderr(fn, arg, msg, size);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
}

START_TEST(test_file_parsing) {
    Config c;
    load_text(&c, "# a comment line\n"
                  "\n"
                  "   # an indented comment\n"
                  "steps = 77\n"
                  "\tlr=2.5e-4   # trailing comment\n"
                  "  schedule   =   wsd\t\n"
                  "resume = true\r\n"
                  "tie_embeddings = 1\n"
                  "model = gla\n"
                  "decay = minimax\n"
                  "seed = 18446744073709551615\n"
                  "out_dir = out/some run\n"
                  "val_data =\n"
                  "mixers = gla*3,softmax # hybrid\n"
                  "doc_reset = false");
    ck_assert_int_eq(c.steps, 77);
    ck_assert_float_eq(c.lr, 2.5e-4f);
    ck_assert_str_eq(c.schedule, "wsd");
    ck_assert(c.resume);
    ck_assert(c.model.tie_embeddings);
    ck_assert_int_eq(c.model.family, FAMILY_GLA);
    ck_assert_int_eq(c.model.decay, DECAY_MINIMAX);
    ck_assert(c.seed == UINT64_MAX);
    ck_assert_str_eq(c.out_dir, "out/some run");
    ck_assert_str_eq(c.val_data, "");
    ck_assert_str_eq(c.mixers, "gla*3,softmax");
    ck_assert(!c.model.doc_reset);
    // Keys the file does not name keep their defaults.
    Config d;
    config_defaults(&d);
    ck_assert_int_eq(c.batch_size, d.batch_size);
    ck_assert_float_eq(c.beta2, d.beta2);
}
END_TEST

// Each key lands in its own field.
START_TEST(test_keys_map_to_fields) {
    Config c;
    config_defaults(&c);
    const char *ints[][2] = {
        {"vocab_size", "1001"},   {"dim", "1002"},           {"n_layers", "103"},
        {"n_heads", "1004"},      {"n_kv_heads", "1005"},    {"head_dim", "1006"},
        {"mlp_dim", "1007"},      {"gate_low_rank", "1008"}, {"attn_block", "1009"},
        {"steps", "1011"},        {"batch_size", "1012"},    {"seq_len", "1013"},
        {"grad_accum", "1014"},   {"warmup", "1015"},        {"max_bad_steps", "1016"},
        {"threads", "1017"},      {"log_every", "1018"},     {"val_every", "1019"},
        {"val_batches", "1020"},  {"save_every", "1021"},    {"keep_checkpoints", "1022"},
        {"sample_every", "1023"}, {"sample_len", "1024"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        config_set(&c, ints[i][0], ints[i][1], "test");
    }
    const ModelConfig *m = &c.model;
    int got[] = {m->vocab_size,      m->dim,         m->n_layers,     m->n_heads,
                 m->n_kv_heads,      m->head_dim,    m->mlp_dim,      m->gate_low_rank,
                 m->attn_block,      c.steps,        c.batch_size,    c.seq_len,
                 c.grad_accum,       c.warmup,       c.max_bad_steps, c.threads,
                 c.log_every,        c.val_every,    c.val_batches,   c.save_every,
                 c.keep_checkpoints, c.sample_every, c.sample_len};
    for (size_t i = 0; i < sizeof got / sizeof got[0]; i++) {
        ck_assert_int_eq(got[i], atoi(ints[i][1]));
    }
    const char *floats[][2] = {
        {"norm_eps", "0.5"},     {"rope_theta", "1.5"},   {"gate_normalizer", "2.5"},
        {"lr", "3.5"},           {"min_lr_ratio", "4.5"}, {"decay_frac", "5.5"},
        {"weight_decay", "6.5"}, {"beta1", "7.5"},        {"beta2", "8.5"},
        {"adam_eps", "9.5"},     {"grad_clip", "10.5"},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        config_set(&c, floats[i][0], floats[i][1], "test");
    }
    float fgot[] = {m->norm_eps,    m->rope_theta, m->gate_normalizer, c.lr,
                    c.min_lr_ratio, c.decay_frac,  c.weight_decay,     c.beta1,
                    c.beta2,        c.adam_eps,    c.grad_clip};
    for (size_t i = 0; i < sizeof fgot / sizeof fgot[0]; i++) {
        ck_assert_float_eq(fgot[i], strtof(floats[i][1], NULL));
    }
    const char *strs[] = {"mixers",     "softmax_layers", "tokenizer", "init_from",
                          "train_data", "val_data",       "out_dir"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        config_set(&c, strs[i], strs[i], "test"); // each field gets its own key's name
    }
    const char *sgot[] = {c.mixers,     c.softmax_layers, c.tokenizer, c.init_from,
                          c.train_data, c.val_data,       c.out_dir};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) ck_assert_str_eq(sgot[i], strs[i]);
    config_set(&c, "device", "cuda", "test");
    ck_assert_str_eq(c.device, "cuda");
    config_set(&c, "model", "llama", "test");
    ck_assert_int_eq(c.model.family, FAMILY_LLAMA);
    config_set(&c, "seed", "42", "test");
    ck_assert(c.seed == 42);
}
END_TEST

START_TEST(test_overrides_win) {
    char *path = write_temp("steps = 10\nlr = 1e-3\nbatch_size = 3\n");
    // The override comes before the file on the command line and still wins.
    char *argv[] = {"--steps=20", path, "--lr=5e-4", "--lr=7e-4"};
    Config c;
    config_defaults(&c);
    config_from_args(&c, "train", 4, argv);
    ck_assert_int_eq(c.steps, 20);
    ck_assert_float_eq(c.lr, 7e-4f); // the last of two overrides
    ck_assert_int_eq(c.batch_size, 3);
    // No file at all: overrides on the defaults.
    char *argv2[] = {"--schedule=linear"};
    config_defaults(&c);
    config_from_args(&c, "train", 1, argv2);
    ck_assert_str_eq(c.schedule, "linear");
    ck_assert_int_eq(c.steps, 1000);
    remove_temp(path);
}
END_TEST

START_TEST(test_nearest_key) {
    ck_assert_str_eq(config_nearest_key("lrr"), "lr");
    ck_assert_str_eq(config_nearest_key("stepz"), "steps");
    ck_assert_str_eq(config_nearest_key("batchsize"), "batch_size");
    ck_assert_str_eq(config_nearest_key("Batch-Size"), "batch_size");
    ck_assert_str_eq(config_nearest_key("nlayers"), "n_layers");
    ck_assert_str_eq(config_nearest_key("lerning_rate"), "lr");     // via learning_rate
    ck_assert_str_eq(config_nearest_key("warmup_steps"), "warmup"); // another tool's name
    ck_assert_str_eq(config_nearest_key("schedul"), "schedule");
    ck_assert_ptr_null(config_nearest_key("zzzzzzzzzzzz"));
    ck_assert_ptr_null(config_nearest_key("xyz"));
    ck_assert_ptr_null(config_nearest_key("completely_unrelated_thing"));
}
END_TEST

static void set_unknown_key(const char *key) {
    Config c;
    config_defaults(&c);
    config_set(&c, key, "1", "my.conf:3");
}

static void set_steps(const char *value) {
    Config c;
    config_defaults(&c);
    config_set(&c, "steps", value, "my.conf:4");
}

static void load_no_equals(const char *text) {
    Config c;
    load_text(&c, text);
}

START_TEST(test_error_messages) {
    char msg[1024];
    capture_die(set_unknown_key, "lerning_rate", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "my.conf:3: unknown key 'lerning_rate' (did you mean 'lr'?)"),
                  "got: %s", msg);
    ck_assert_ptr_null(strchr(strchr(msg, '\n') + 1, '\n')); // one line
    capture_die(set_unknown_key, "qqqqqqqqqq", msg, sizeof msg);
    ck_assert_msg(strstr(msg, "my.conf:3: unknown key 'qqqqqqqqqq'"), "got: %s", msg);
    ck_assert_msg(!strstr(msg, "did you mean"), "got: %s", msg);
    capture_die(set_steps, "abc", msg, sizeof msg);
    ck_assert_msg(
        strstr(msg, "my.conf:4: bad value 'abc' for key 'steps' (expected an integer >= 1)"),
        "got: %s", msg);
    capture_die(load_no_equals, "steps = 3\n\nlr 0.1\n", msg, sizeof msg);
    ck_assert_msg(strstr(msg, ".conf:3: expected key = value"), "got: %s", msg);
}
END_TEST

// config_set(key, value) must die: bad values of every type.
static const char *const BAD_VALUES[][2] = {
    {"steps", "abc"},
    {"steps", "10x"},
    {"steps", ""},
    {"steps", "1.5"},
    {"steps", "0"},
    {"steps", "-3"},
    {"steps", "99999999999"},
    {"n_layers", "257"},
    {"warmup", "-1"},
    {"lr", "fast"},
    {"lr", "3e-4x"},
    {"lr", "nan"},
    {"lr", "inf"},
    {"lr", ""},
    {"resume", "yes"},
    {"resume", "2"},
    {"tie_embeddings", ""},
    {"schedule", "cosin"},
    {"schedule", "COSINE"},
    {"device", "gpu"},
    {"model", "gpt"},
    {"decay", "linear"},
    {"seed", "-1"},
    {"seed", "12a"},
    {"seed", "99999999999999999999999"},
    {"nonexistent_key", "1"},
};
enum { N_BAD_VALUES = sizeof(BAD_VALUES) / sizeof(BAD_VALUES[0]) };

START_TEST(test_bad_value_dies) {
    Config c;
    config_defaults(&c);
    config_set(&c, BAD_VALUES[_i][0], BAD_VALUES[_i][1], "test");
}
END_TEST

// Command lines that must die.
START_TEST(test_bad_args_die) {
    char *path = write_temp("steps = 10\n");
    Config c;
    config_defaults(&c);
    if (_i == 0) {
        char *argv[] = {path, "--steps", "20"}; // '--key value' is not supported
        config_from_args(&c, "train", 3, argv);
    } else if (_i == 1) {
        char *argv[] = {path, path}; // two config files
        config_from_args(&c, "train", 2, argv);
    } else if (_i == 2) {
        char *argv[] = {path, "--lerning_rate=0.1"};
        config_from_args(&c, "train", 2, argv);
    } else if (_i == 3) {
        char *argv[] = {"-steps=3"};
        config_from_args(&c, "train", 1, argv);
    } else {
        char *argv[] = {"/nonexistent/dir/x.conf"};
        config_from_args(&c, "train", 1, argv);
    }
    remove_temp(path); // not reached: die removes the registered file
}
END_TEST

// Settings that parse but are inconsistent: config_finalize must die.
static const char *const BAD_FINALIZE[][2] = {
    {"lr", "0"},
    {"lr", "-1e-3"},
    {"min_lr_ratio", "1.5"},
    {"min_lr_ratio", "-0.1"},
    {"beta1", "1"},
    {"beta2", "-0.5"},
    {"adam_eps", "0"},
    {"weight_decay", "-1"},
    {"grad_clip", "-1"},
    {"decay_frac", "2"},
    {"train_data", ""},
    {"softmax_layers", "4"},
    {"softmax_layers", "1,x"},
    {"softmax_layers", "-1"},
    {"softmax_layers", "1,,2"},
    {"vocab_size", "100"},
    {"tokenizer", ""},
};
enum { N_BAD_FINALIZE = sizeof(BAD_FINALIZE) / sizeof(BAD_FINALIZE[0]) };

// A valid baseline: defaults plus training data.
static void valid_config(Config *c) {
    config_defaults(c);
    config_set(c, "train_data", "data/train_*.bin", "test");
}

START_TEST(test_bad_finalize_dies) {
    Config c;
    valid_config(&c);
    config_set(&c, BAD_FINALIZE[_i][0], BAD_FINALIZE[_i][1], "test");
    config_finalize(&c);
}
END_TEST

START_TEST(test_mixers_and_softmax_layers_conflict) {
    Config c;
    valid_config(&c);
    config_set(&c, "mixers", "lightning*3,softmax", "test");
    config_set(&c, "softmax_layers", "3", "test");
    config_finalize(&c);
}
END_TEST

// The documented defaults: a tiny byte-level TNL on the CPU.
START_TEST(test_defaults) {
    Config c;
    config_defaults(&c);
    const ModelConfig *m = &c.model;
    ck_assert_int_eq(m->family, FAMILY_TNL);
    ck_assert_int_eq(m->vocab_size, 0); // the tokenizer's
    ck_assert_int_eq(m->dim, 128);
    ck_assert_int_eq(m->n_layers, 4);
    ck_assert_int_eq(m->n_heads, 4);
    ck_assert_int_eq(m->attn_block, 64);
    ck_assert_int_eq(m->gate_low_rank, 16);
    ck_assert_float_eq(m->gate_normalizer, 16.0f);
    ck_assert_float_eq(m->norm_eps, 0.0f);
    ck_assert_float_eq(m->rope_theta, 10000.0f);
    ck_assert_int_eq(m->decay, DECAY_ALIBI);
    ck_assert_int_eq(m->eot_token, 0);
    ck_assert(!m->doc_reset);
    ck_assert_str_eq(c.tokenizer, "byte");
    ck_assert_str_eq(c.out_dir, "out");
    ck_assert_str_eq(c.schedule, "cosine");
    ck_assert_str_eq(c.device, "auto");
    ck_assert_int_eq(c.steps, 1000);
    ck_assert_int_eq(c.batch_size, 16);
    ck_assert_int_eq(c.seq_len, 128);
    ck_assert_int_eq(c.grad_accum, 1);
    ck_assert_float_eq(c.lr, 3e-3f);
    ck_assert_float_eq(c.min_lr_ratio, 0.1f);
    ck_assert_int_eq(c.warmup, 50);
    ck_assert_float_eq(c.decay_frac, 0.2f);
    ck_assert_float_eq(c.weight_decay, 0.1f);
    ck_assert_float_eq(c.beta1, 0.9f);
    ck_assert_float_eq(c.beta2, 0.95f);
    ck_assert_float_eq(c.adam_eps, 1e-8f);
    ck_assert_float_eq(c.grad_clip, 1.0f);
    ck_assert_int_eq(c.max_bad_steps, 10);
    ck_assert(c.seed == 1337);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_int_eq(c.log_every, 1);
    ck_assert_int_eq(c.val_every, 100);
    ck_assert_int_eq(c.val_batches, 10);
    ck_assert_int_eq(c.save_every, 0);
    ck_assert_int_eq(c.keep_checkpoints, 2);
    ck_assert(!c.resume);
    ck_assert_int_eq(c.sample_every, 0);
    ck_assert_int_eq(c.sample_len, 200);
}
END_TEST

START_TEST(test_defaults_finalize) {
    Config c;
    valid_config(&c); // must not die
    config_finalize(&c);
    ck_assert_int_eq(c.model.vocab_size, 256); // the byte tokenizer's
    ck_assert_int_eq(c.model.family, FAMILY_TNL);
    for (int l = 0; l < c.model.n_layers; l++) ck_assert_int_eq(c.model.mixer[l], MIXER_LIGHTNING);
}
END_TEST

// softmax_layers = 3,7 is the same as the explicit pattern with softmax at 3 and 7.
START_TEST(test_softmax_layers) {
    const char *families[] = {"tnl", "gla"};
    MixerKind own[] = {MIXER_LIGHTNING, MIXER_GLA};
    for (int f = 0; f < 2; f++) {
        Config a, b;
        valid_config(&a);
        config_set(&a, "model", families[f], "test");
        config_set(&a, "n_layers", "8", "test");
        b = a;
        config_set(&a, "softmax_layers", " 3, 7 ", "test");
        config_finalize(&a);
        for (int l = 0; l < 8; l++) {
            ck_assert_int_eq(a.model.mixer[l], (l == 3 || l == 7) ? MIXER_SOFTMAX : own[f]);
        }
        char pattern[64];
        snprintf(pattern, sizeof pattern, "%s*3,softmax", f == 0 ? "lightning" : "gla");
        config_set(&b, "mixers", pattern, "test");
        config_finalize(&b);
        ck_assert_mem_eq(a.model.mixer, b.model.mixer, sizeof(MixerKind) * 8);
        ck_assert_str_eq(a.softmax_layers, " 3, 7 "); // the user's setting is kept
    }
}
END_TEST

// A random valid value for a key, as config text.
static void random_value(Rng *rng, const KeySpec *k, char *out, size_t size) {
    switch (k->kind) {
    case 'i': {
        int span = k->max - k->min + 1;
        snprintf(out, size, "%d", k->min + (int)(rng_next(rng) % (uint64_t)span));
        break;
    }
    case 'f': {
        // A float with arbitrary mantissa bits across several decades.
        float v = rng_uniform(rng) * powf(10.0f, (float)(int)(rng_next(rng) % 12) - 8.0f);
        snprintf(out, size, "%.9g", (double)v);
        break;
    }
    case 'b':
        snprintf(out, size, "%s", (rng_next(rng) & 1) ? "true" : "0");
        break;
    case 'u':
        snprintf(out, size, "%llu", (unsigned long long)rng_next(rng));
        break;
    case 's': {
        const char *alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_/.*-,";
        int n = (int)(rng_next(rng) % 40);
        for (int i = 0; i < n; i++) out[i] = alphabet[rng_next(rng) % strlen(alphabet)];
        out[n] = '\0';
        break;
    }
    case 'e': {
        char list[128];
        snprintf(list, sizeof list, "%s", k->choices);
        int count = 1;
        for (char *p = list; *p; p++) count += *p == ' ';
        int pick = (int)(rng_next(rng) % (uint64_t)count);
        char *save, *word = strtok_r(list, " ", &save);
        for (int i = 0; i < pick; i++) word = strtok_r(NULL, " ", &save);
        snprintf(out, size, "%s", word);
        break;
    }
    }
}

// Print a config to a temp file and load it back onto fresh defaults.
static void print_and_reload(const Config *a, Config *b, bool finalize) {
    char *path = write_temp("");
    FILE *f = xfopen(path, "w");
    config_print(a, f);
    fclose(f);
    config_defaults(b);
    config_load_file(b, path);
    if (finalize) config_finalize(b);
    remove_temp(path);
}

START_TEST(test_print_round_trip) {
    Rng rng = rng_seeded(1000 + (uint64_t)_i);
    Config a, b;
    config_defaults(&a);
    char value[64];
    for (int k = 0; k < N_KEY_SPECS; k++) {
        random_value(&rng, &KEY_SPECS[k], value, sizeof value);
        config_set(&a, KEY_SPECS[k].name, value, "test");
    }
    print_and_reload(&a, &b, false);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
}
END_TEST

// Every key appears in the printout and in the usage text.
START_TEST(test_print_and_usage_list_every_key) {
    Config c;
    config_defaults(&c);
    char *printed = NULL, *usage = NULL;
    size_t n;
    FILE *f = open_memstream(&printed, &n);
    config_print(&c, f);
    fclose(f);
    f = open_memstream(&usage, &n);
    config_usage(f);
    fclose(f);
    for (int k = 0; k < N_KEY_SPECS; k++) {
        char line[128];
        snprintf(line, sizeof line, "\n%s = ", KEY_SPECS[k].name);
        char empty[128];
        snprintf(empty, sizeof empty, "\n%s =\n", KEY_SPECS[k].name);
        ck_assert_msg(strstr(printed, line) || strstr(printed, empty), "%s not printed",
                      KEY_SPECS[k].name);
        snprintf(line, sizeof line, " --%s=", KEY_SPECS[k].name);
        ck_assert_msg(strstr(usage, line), "%s not in usage", KEY_SPECS[k].name);
    }
    free(printed);
    free(usage);
}
END_TEST

// Every shipped config loads and finalizes, writes to out/<its name>, and survives a
// print -> reload -> finalize round trip unchanged.
START_TEST(test_shipped_configs) {
    glob_t g;
    ck_assert_int_eq(glob("configs/*.conf", 0, NULL, &g), 0);
    ck_assert_uint_ge(g.gl_pathc, 7);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        Config a, b;
        config_defaults(&a);
        config_load_file(&a, g.gl_pathv[i]);
        config_finalize(&a);
        char name[256];
        snprintf(name, sizeof name, "%s", strrchr(g.gl_pathv[i], '/') + 1);
        *strstr(name, ".conf") = '\0';
        char out_dir[300];
        snprintf(out_dir, sizeof out_dir, "out/%s", name);
        ck_assert_str_eq(a.out_dir, out_dir);
        print_and_reload(&a, &b, true);
        ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "%s: round trip differs", g.gl_pathv[i]);
    }
    globfree(&g);
}
END_TEST

// A random schedule setting: lr, warmup, steps.
typedef struct Sched {
    float lr, min_ratio, decay_frac;
    int warmup, steps;
} Sched;

static Sched random_sched(Rng *rng) {
    Sched s;
    s.lr = 1e-4f + 1e-2f * rng_uniform(rng);
    s.min_ratio = 0.5f * rng_uniform(rng);
    s.decay_frac = 0.05f + 0.5f * rng_uniform(rng);
    s.warmup = 2 + (int)(rng_next(rng) % 40);
    s.steps = s.warmup + 20 + (int)(rng_next(rng) % 200);
    if ((s.steps - 1 - s.warmup) % 2) s.steps++; // even, so there is an exact midpoint
    return s;
}

static float lr_of(const char *name, Sched s, int step) {
    return lr_at(name, s.lr, s.min_ratio, s.warmup, s.steps, s.decay_frac, step);
}

static void assert_close(float got, double want, double scale) {
    ck_assert_msg(fabs((double)got - want) <= 1e-5 * scale, "got %.9g want %.9g", (double)got,
                  want);
}

START_TEST(test_lr_warmup) {
    Rng rng = rng_seeded(7 + (uint64_t)_i);
    const char *names[] = {"cosine", "linear", "wsd", "constant"};
    Sched s = random_sched(&rng);
    for (int n = 0; n < 4; n++) {
        for (int step = 0; step < s.warmup; step++) {
            assert_close(lr_of(names[n], s, step), s.lr * (step + 1.0) / s.warmup, s.lr);
            if (step) ck_assert(lr_of(names[n], s, step) > lr_of(names[n], s, step - 1));
        }
        assert_close(lr_of(names[n], s, s.warmup - 1), s.lr, s.lr);
    }
    // No warmup: the first step is at the peak.
    s.warmup = 0;
    assert_close(lr_of("cosine", s, 0), s.lr, s.lr);
}
END_TEST

START_TEST(test_lr_cosine_and_linear) {
    Rng rng = rng_seeded(70 + (uint64_t)_i);
    Sched s = random_sched(&rng);
    double min_lr = (double)s.lr * s.min_ratio;
    int mid = s.warmup + (s.steps - 1 - s.warmup) / 2;
    for (int n = 0; n < 2; n++) {
        const char *name = n ? "linear" : "cosine";
        assert_close(lr_of(name, s, s.warmup), s.lr, s.lr);
        assert_close(lr_of(name, s, s.steps - 1), min_lr, s.lr);
        assert_close(lr_of(name, s, s.steps + 10), min_lr, s.lr); // past the end: stays
        assert_close(lr_of(name, s, mid), (s.lr + min_lr) / 2, s.lr);
        for (int step = s.warmup + 1; step < s.steps; step++) {
            float now = lr_of(name, s, step), before = lr_of(name, s, step - 1);
            ck_assert(now <= before);
            ck_assert(now >= (float)min_lr * (1 - 1e-6f) && now <= s.lr);
        }
    }
    // cosine at a quarter of the way: min + (lr - min) * (1 + cos(pi/4)) / 2
    int span = s.steps - 1 - s.warmup;
    if (span % 4 == 0) {
        assert_close(lr_of("cosine", s, s.warmup + span / 4),
                     min_lr + (s.lr - min_lr) * 0.5 * (1 + cos(M_PI / 4)), s.lr);
    }
    // linear: equal decrements
    double step_size = (s.lr - min_lr) / span;
    for (int step = s.warmup + 1; step < s.steps; step++) {
        assert_close(lr_of("linear", s, step - 1) - lr_of("linear", s, step), step_size, s.lr);
    }
}
END_TEST

START_TEST(test_lr_wsd_and_constant) {
    Rng rng = rng_seeded(700 + (uint64_t)_i);
    Sched s = random_sched(&rng);
    double min_lr = (double)s.lr * s.min_ratio;
    int decay_steps = (int)lround((double)s.decay_frac * s.steps);
    int flat_end = s.steps - decay_steps; // first decaying step
    if (flat_end < s.warmup) flat_end = s.warmup;
    for (int step = s.warmup; step < flat_end; step++) {
        ck_assert_float_eq(lr_of("wsd", s, step), s.lr);
    }
    for (int step = flat_end; step < s.steps; step++) {
        ck_assert(lr_of("wsd", s, step) < lr_of("wsd", s, step - 1));
        double want = s.lr - (s.lr - min_lr) * (step - flat_end + 1.0) / (s.steps - flat_end);
        assert_close(lr_of("wsd", s, step), want, s.lr);
    }
    assert_close(lr_of("wsd", s, s.steps - 1), min_lr, s.lr);
    assert_close(lr_of("wsd", s, s.steps + 3), min_lr, s.lr);
    // decay_frac 0: constant after warmup.
    s.decay_frac = 0;
    ck_assert_float_eq(lr_of("wsd", s, s.steps - 1), s.lr);
    for (int step = s.warmup; step < s.steps + 5; step++) {
        ck_assert_float_eq(lr_of("constant", s, step), s.lr);
    }
}
END_TEST

START_TEST(test_schedule_valid) {
    ck_assert(schedule_valid("cosine"));
    ck_assert(schedule_valid("linear"));
    ck_assert(schedule_valid("wsd"));
    ck_assert(schedule_valid("constant"));
    ck_assert(!schedule_valid("cosin"));
    ck_assert(!schedule_valid(""));
    ck_assert(!schedule_valid("Cosine"));
}
END_TEST

START_TEST(test_lr_unknown_schedule_dies) {
    lr_at("exponential", 1e-3f, 0.1f, 10, 100, 0.2f, 50);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_file_parsing);
    tcase_add_test(tc, test_keys_map_to_fields);
    tcase_add_test(tc, test_overrides_win);
    tcase_add_test(tc, test_nearest_key);
    tcase_add_test(tc, test_error_messages);
    tcase_add_loop_exit_test(tc, test_bad_value_dies, 1, 0, N_BAD_VALUES);
    tcase_add_loop_exit_test(tc, test_bad_args_die, 1, 0, 5);
    tcase_add_loop_exit_test(tc, test_bad_finalize_dies, 1, 0, N_BAD_FINALIZE);
    tcase_add_exit_test(tc, test_mixers_and_softmax_layers_conflict, 1);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_defaults_finalize);
    tcase_add_test(tc, test_softmax_layers);
    tcase_add_loop_test(tc, test_print_round_trip, 0, 8);
    tcase_add_test(tc, test_print_and_usage_list_every_key);
    tcase_add_test(tc, test_shipped_configs);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("schedule");
    tcase_add_loop_test(ts, test_lr_warmup, 0, 8);
    tcase_add_loop_test(ts, test_lr_cosine_and_linear, 0, 8);
    tcase_add_loop_test(ts, test_lr_wsd_and_constant, 0, 8);
    tcase_add_test(ts, test_schedule_valid);
    tcase_add_exit_test(ts, test_lr_unknown_schedule_dies, 1);
    suite_add_tcase(s, ts);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
