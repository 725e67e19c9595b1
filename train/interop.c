// train/interop.c: `bolt import HF_DIR OUT` and `bolt export CKPT HF_DIR`: Hugging Face
// checkpoints (transformers' Llama, fla's GLA) to and from bolt model checkpoints.
// Both go through model_config_load and model_load_weights, which validate every key,
// tensor name, shape and byte before anything is written, and model_save, which writes
// the family's config.json (HF keys plus a "bolt" object) and model.safetensors.
//
// Tokenizer: a checkpoint directory carries its own tokenizer file. import copies
// HF_DIR/tokenizer.json into OUT and records the relative name "tokenizer.json"; export
// copies the checkpoint's tokenizer file into HF_DIR the same way. A relative tokenizer
// name is looked up in the checkpoint directory first (checkpoint_tokenizer_path), so a
// directory can be moved or copied whole.
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/util.h"
#include "../model/checkpoint.h"
#include "../model/safetensors.h"
#include "commands.h"
#include "options.h"

enum { PATH_CAP = 4096 };

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

// Copy a (tokenizer) file atomically.
static void copy_file(const char *src, const char *dst) {
    size_t len;
    char *data = read_file(src, &len);
    AtomicFile af = atomic_open(dst);
    xfwrite(data, len, af.f, af.tmp_path);
    atomic_commit(&af);
    free(data);
}

// The tokenizer that travels from src_dir to dst_dir. `spec` is what src_dir's config
// names ("" if nothing). If it resolves to a file, *copy_from gets that path (else "") and
// `recorded` the name dst_dir's config will hold: "tokenizer.json" for a Hugging Face
// tokenizer, the file's own name for a tiktoken ranks file; otherwise the spec as it is.
static void plan_tokenizer(const char *src_dir, const char *spec, char *copy_from, size_t from_cap,
                           char *recorded, size_t rec_cap) {
    copy_from[0] = '\0';
    check(strlen(spec) < rec_cap, "%s: tokenizer name too long", spec);
    snprintf(recorded, rec_cap, "%s", spec);
    if (!spec[0] || strcmp(spec, "byte") == 0) return;
    char path[PATH_CAP];
    checkpoint_tokenizer_path(src_dir, spec, path, sizeof path);
    if (is_dir(path)) {
        char inner[PATH_CAP];
        path_join(inner, sizeof inner, path, "tokenizer.json");
        snprintf(path, sizeof path, "%s", inner);
    }
    if (!is_file(path)) {
        fprintf(stderr, "bolt: warning: tokenizer '%s' not found; recorded as it is\n", spec);
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    bool json = n >= 5 && strcmp(base + n - 5, ".json") == 0;
    check(strlen(path) < from_cap, "%s: path too long", path);
    snprintf(copy_from, from_cap, "%s", path);
    snprintf(recorded, rec_cap, "%s", json ? "tokenizer.json" : base);
}

// Die if two directories are the same one: writing the output would overwrite the input.
static void check_distinct(const char *in, const char *out) {
    char a[PATH_MAX], b[PATH_MAX];
    if (!realpath(in, a) || !realpath(out, b)) return; // out does not exist yet
    check(strcmp(a, b) != 0, "%s: the output directory must differ from the input %s", out, in);
}

// "BF16" or "F32 x 3, BF16 x 18": the dtypes of the tensors stored in a checkpoint.
static void describe_dtypes(const char *dir, char *out, size_t cap) {
    SafeTensors *st = st_open(dir);
    int count[3] = {0, 0, 0};
    for (int i = 0; i < st_count(st); i++) count[st_tensor(st, i)->dtype]++;
    st_close(st);
    StDtype kinds[3] = {ST_F32, ST_F16, ST_BF16};
    int present = 0;
    for (int k = 0; k < 3; k++) present += count[kinds[k]] > 0;
    size_t len = 0;
    out[0] = '\0';
    for (int k = 0; k < 3 && len < cap; k++) {
        int c = count[kinds[k]];
        if (c == 0) continue;
        const char *name = st_dtype_name(kinds[k]);
        int w = present == 1
                    ? snprintf(out + len, cap - len, "%s", name)
                    : snprintf(out + len, cap - len, "%s%s x %d", len ? ", " : "", name, c);
        if (w < 0) break;
        len += (size_t)w;
    }
}

// The options of import and export (the same for both).
typedef struct InteropArgs {
    const char *dtype;
} InteropArgs;

static const Option INTEROP_OPTIONS[] = {
    {"dtype", OPT_CHOICE, offsetof(InteropArgs, dtype), 0, 0, 0, "f32|bf16", NULL,
     "the weights' type in the output"},
};

static const OptionTable IMPORT_TABLE = {
    .command = "import",
    .args = "HF_DIR OUT",
    .min_args = 2,
    .max_args = 2,
    .about = "HF_DIR: a Hugging Face model directory: config.json (model_type llama, gla or\n"
             "transnormer; or a bolt export) and model.safetensors or a sharded\n"
             "model.safetensors.index.json; F32, F16 or BF16 tensors.\n"
             "OUT: a bolt model checkpoint (what `bolt sample OUT`, `bolt eval OUT` and\n"
             "`bolt train --init_from=OUT` take). HF_DIR's tokenizer.json, if any, is copied.",
    .options = INTEROP_OPTIONS,
    .count = 1,
};

static const OptionTable EXPORT_TABLE = {
    .command = "export",
    .args = "CKPT HF_DIR",
    .min_args = 2,
    .max_args = 2,
    .about = "CKPT: a checkpoint directory (step_*, or an import) or a run's out_dir (its newest\n"
             "complete checkpoint). HF_DIR gets model.safetensors and config.json: Llama loads\n"
             "with transformers' LlamaForCausalLM.from_pretrained, GLA with fla's\n"
             "GLAForCausalLM (tied embeddings: no lm_head.weight, tie_word_embeddings true). The\n"
             "tokenizer goes along: its file, or for the byte tokenizer a tokenizer_config.json\n"
             "that says so.",
    .options = INTEROP_OPTIONS,
    .count = 1,
};

// True if a tokenizer_config.json is the one export writes for the byte tokenizer.
static bool says_byte_tokenizer(const char *path) {
    char *text = read_file(path, NULL);
    bool byte = strstr(text, "\"bolt_tokenizer\": \"byte\"") != NULL;
    free(text);
    return byte;
}

// Write the model and tokenizer to dst: the tokenizer first and config.json last, so a
// directory with a config.json is complete.
static void write_model(const Model *m, const char *dst, bool bf16, const char *tok_from,
                        const char *tok_recorded) {
    make_dirs(dst);
    if (!tok_from[0] && (!tok_recorded[0] || strcmp(tok_recorded, "byte") == 0)) {
        // The byte tokenizer has no file: a tokenizer_config.json says which it is.
        char path[PATH_CAP];
        path_join(path, sizeof path, dst, "tokenizer_config.json");
        AtomicFile af = atomic_open(path);
        fprintf(af.f, "{\n  \"bolt_tokenizer\": \"byte\",\n  \"comment\": \"ids are the bytes of "
                      "UTF-8 text; id 0 is the end-of-text token\",\n  \"vocab_size\": 256,\n  "
                      "\"eos_token_id\": 0\n}\n");
        atomic_commit(&af);
        tok_recorded = "byte";
    }
    if (tok_from[0]) {
        char to[PATH_CAP];
        path_join(to, sizeof to, dst, tok_recorded);
        copy_file(tok_from, to);
    }
    model_save(m, dst, bf16, tok_recorded);
}

int import_main(int argc, char **argv) {
    InteropArgs a = {.dtype = "f32"};
    char *args[2];
    if (options_parse(&IMPORT_TABLE, &a, argc, argv, args) < 0) return 0;
    const char *src = args[0], *dst = args[1];
    bool bf16 = strcmp(a.dtype, "bf16") == 0;
    check(is_dir(src), "%s: not a directory (expected a Hugging Face model directory)", src);
    char path[PATH_CAP];
    path_join(path, sizeof path, src, "config.json");
    check(is_file(path), "%s: no config.json (not a Hugging Face model directory)", src);
    check_distinct(src, dst);

    Model m;
    char tok[PATH_CAP], dtypes[128];
    Backend *be = backend_create("cpu");
    model_load(&m, src, be, tok, sizeof tok);
    describe_dtypes(src, dtypes, sizeof dtypes);
    // A Hugging Face tokenizer.json next to the weights wins over what the config says.
    path_join(path, sizeof path, src, "tokenizer.json");
    if (is_file(path)) snprintf(tok, sizeof tok, "tokenizer.json");
    // A byte-tokenizer export says so in its tokenizer_config.json (it has no tokenizer file).
    path_join(path, sizeof path, src, "tokenizer_config.json");
    if (!tok[0] && is_file(path) && says_byte_tokenizer(path)) snprintf(tok, sizeof tok, "byte");
    char tok_from[PATH_CAP], tok_rec[PATH_CAP];
    plan_tokenizer(src, tok, tok_from, sizeof tok_from, tok_rec, sizeof tok_rec);
    write_model(&m, dst, bf16, tok_from, tok_rec);
    printf("imported %s: %d layers, dim %d, vocab %d, %zu parameters (%.2fM), weights %s -> "
           "%s (%s)%s%s\n",
           family_name(m.cfg.family), m.cfg.n_layers, m.cfg.dim, m.cfg.vocab_size, m.n_weights,
           m.n_weights / 1e6, dtypes, dst, bf16 ? "bf16" : "fp32", tok_rec[0] ? ", tokenizer " : "",
           tok_rec);
    model_free(&m);
    backend_free(be);
    return 0;
}

int export_main(int argc, char **argv) {
    InteropArgs a = {.dtype = "f32"};
    char *args[2];
    if (options_parse(&EXPORT_TABLE, &a, argc, argv, args) < 0) return 0;
    const char *src = args[0], *dst = args[1];
    bool bf16 = strcmp(a.dtype, "bf16") == 0;
    char dir[PATH_CAP];
    checkpoint_resolve(src, dir, sizeof dir);
    check_distinct(dir, dst);

    Model m;
    char tok[PATH_CAP];
    Backend *be = backend_create("cpu");
    model_load(&m, dir, be, tok, sizeof tok);
    char tok_from[PATH_CAP], tok_rec[PATH_CAP];
    plan_tokenizer(dir, tok, tok_from, sizeof tok_from, tok_rec, sizeof tok_rec);
    write_model(&m, dst, bf16, tok_from, tok_rec);
    // A distilled student (linear layers in the Llama layout) or RoPE lightning layers: no
    // library has that model, so the export is for bolt alone.
    bool linear_in_llama = false, rope_lightning = false;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        linear_in_llama |= m.cfg.family == FAMILY_LLAMA && m.cfg.mixer[l] != MIXER_SOFTMAX;
        rope_lightning |=
            m.cfg.mixer[l] == MIXER_LIGHTNING && m.cfg.lightning_qk == LIGHTNING_QK_ROPE;
    }
    const char *library = linear_in_llama  ? "bolt; no Hugging Face class has linear layers in "
                                             "the Llama layout"
                          : rope_lightning ? "bolt; no Hugging Face class has lightning layers "
                                             "with RoPE"
                          : m.cfg.family == FAMILY_LLAMA ? "transformers LlamaForCausalLM"
                          : m.cfg.family == FAMILY_GLA   ? "fla GLAForCausalLM"
                                                         : "TransNormerLLM's own code";
    printf("exported %s (%s): %d layers, %zu parameters (%.2fM) -> %s (%s, for %s)\n",
           family_name(m.cfg.family), dir, m.cfg.n_layers, m.n_weights, m.n_weights / 1e6, dst,
           bf16 ? "bf16" : "fp32", library);
    model_free(&m);
    backend_free(be);
    return 0;
}
