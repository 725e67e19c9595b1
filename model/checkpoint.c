// model/checkpoint.c: model checkpoints (config.json in the Hugging Face layout of the
// family plus a "bolt" object, and model.safetensors) and training checkpoints (a step
// directory's files; finding, checking and pruning the directories is
// model/checkpoint_dirs.c).
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/util.h"
#include "safetensors.h"

enum { PATH_CAP = 4096 };

// ---------------------------------------------------------------------------------------
// config.json writing

// A float as the shortest decimal that reads back as the same float (1e-06, not
// 9.99999997e-07), so config.json is readable and loads bit-exactly.
static cJSON *json_float(float x) {
    char buf[48];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return cJSON_CreateNumber(strtod(buf, NULL));
}

static void add_float(cJSON *obj, const char *key, float x) {
    cJSON_AddItemToObject(obj, key, json_float(x));
}

static void add_strings(cJSON *obj, const char *key, const char *only) {
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    cJSON_AddItemToArray(arr, cJSON_CreateString(only));
}

// Hugging Face Llama keys.
static void add_llama_keys(cJSON *j, const ModelConfig *c) {
    cJSON_AddStringToObject(j, "model_type", "llama");
    add_strings(j, "architectures", "LlamaForCausalLM");
    cJSON_AddNumberToObject(j, "hidden_size", c->dim);
    cJSON_AddNumberToObject(j, "intermediate_size", c->mlp_dim);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    add_float(j, "rms_norm_eps", c->norm_eps);
    add_float(j, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "max_position_embeddings", 2048);
    cJSON_AddBoolToObject(j, "attention_bias", false);
    cJSON_AddBoolToObject(j, "mlp_bias", false);
    cJSON_AddNumberToObject(j, "eos_token_id", c->eot_token);
}

// The softmax layers of a GLA or TNL hybrid as fla declares them: "attn": {"layers": [...],
// heads, kv heads, rope_theta}, or null when every layer is linear.
static void add_attn_object(cJSON *j, const ModelConfig *c) {
    cJSON *layers = cJSON_CreateArray();
    for (int l = 0; l < c->n_layers; l++) {
        if (c->mixer[l] == MIXER_SOFTMAX) cJSON_AddItemToArray(layers, cJSON_CreateNumber(l));
    }
    if (cJSON_GetArraySize(layers) == 0) {
        cJSON_Delete(layers);
        cJSON_AddNullToObject(j, "attn");
        return;
    }
    cJSON *attn = cJSON_AddObjectToObject(j, "attn");
    cJSON_AddItemToObject(attn, "layers", layers);
    cJSON_AddNumberToObject(attn, "num_heads", c->n_heads);
    cJSON_AddNumberToObject(attn, "num_kv_heads", c->n_kv_heads);
    cJSON_AddBoolToObject(attn, "qkv_bias", false);
    cJSON_AddNullToObject(attn, "window_size");
    add_float(attn, "rope_theta", c->rope_theta);
}

// fla's GLAConfig keys; softmax layers of a hybrid go in fla's `attn` dict.
static void add_gla_keys(cJSON *j, const ModelConfig *c) {
    cJSON_AddStringToObject(j, "model_type", "gla");
    add_strings(j, "architectures", "GLAForCausalLM");
    cJSON_AddNumberToObject(j, "hidden_size", c->dim);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "expand_k", 0.5);
    cJSON_AddNumberToObject(j, "expand_v", 1);
    cJSON_AddNumberToObject(j, "hidden_ratio", 4);
    cJSON_AddNumberToObject(j, "intermediate_size", c->mlp_dim);
    cJSON_AddStringToObject(j, "attn_mode", "chunk");
    cJSON_AddBoolToObject(j, "use_short_conv", false);
    cJSON_AddBoolToObject(j, "use_output_gate", true);
    cJSON_AddBoolToObject(j, "use_gk", true);
    cJSON_AddBoolToObject(j, "use_gv", false);
    cJSON_AddStringToObject(j, "gate_fn", "swish");
    cJSON_AddStringToObject(j, "hidden_act", "swish");
    add_float(j, "gate_logit_normalizer", c->gate_normalizer);
    cJSON_AddNumberToObject(j, "gate_low_rank_dim", c->gate_low_rank);
    add_float(j, "norm_eps", c->norm_eps);
    cJSON_AddBoolToObject(j, "elementwise_affine", true);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddBoolToObject(j, "fuse_norm", true);
    cJSON_AddNumberToObject(j, "max_position_embeddings", 2048);
    cJSON_AddNumberToObject(j, "eos_token_id", c->eot_token);
    add_attn_object(j, c);
}

// TNL has no canonical Hugging Face config; these are TransNormerLLM's own key names.
static void add_tnl_keys(cJSON *j, const ModelConfig *c) {
    cJSON_AddStringToObject(j, "model_type", "transnormer");
    add_strings(j, "architectures", "TransnormerForCausalLM");
    cJSON_AddNumberToObject(j, "decoder_embed_dim", c->dim);
    cJSON_AddNumberToObject(j, "decoder_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "decoder_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "glu_dim", c->mlp_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddStringToObject(j, "norm_type", "simplermsnorm");
    cJSON_AddStringToObject(j, "linear_act_fun", "silu");
    cJSON_AddBoolToObject(j, "no_scale_embedding", false);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddNumberToObject(j, "eos_token_id", c->eot_token);
    add_attn_object(j, c); // a hybrid's softmax layers, declared as fla's GLA does
}

// Everything bolt needs to rebuild the config exactly, whatever the family's HF keys say.
static void add_bolt_object(cJSON *j, const ModelConfig *c, const char *tokenizer) {
    cJSON *b = cJSON_AddObjectToObject(j, "bolt");
    cJSON_AddStringToObject(b, "family", family_name(c->family));
    cJSON *mixers = cJSON_AddArrayToObject(b, "mixers");
    for (int l = 0; l < c->n_layers; l++) {
        cJSON_AddItemToArray(mixers, cJSON_CreateString(mixer_name(c->mixer[l])));
    }
    cJSON_AddNumberToObject(b, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(b, "dim", c->dim);
    cJSON_AddNumberToObject(b, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(b, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(b, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(b, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(b, "mlp_dim", c->mlp_dim);
    cJSON_AddBoolToObject(b, "tie_embeddings", c->tie_embeddings);
    add_float(b, "norm_eps", c->norm_eps);
    add_float(b, "rope_theta", c->rope_theta);
    cJSON_AddStringToObject(b, "decay", c->decay == DECAY_MINIMAX ? "minimax" : "alibi");
    cJSON_AddStringToObject(b, "lightning_qk", lightning_qk_name(c->lightning_qk));
    cJSON_AddNumberToObject(b, "gate_low_rank", c->gate_low_rank);
    add_float(b, "gate_normalizer", c->gate_normalizer);
    cJSON_AddNumberToObject(b, "attn_block", c->attn_block);
    cJSON_AddBoolToObject(b, "doc_reset", c->doc_reset);
    cJSON_AddNumberToObject(b, "eot_token", c->eot_token);
    if (c->seq_len > 0) cJSON_AddNumberToObject(b, "seq_len", c->seq_len);
    cJSON_AddStringToObject(b, "tokenizer", tokenizer ? tokenizer : "");
}

static void write_config(const ModelConfig *c, const char *path, bool bf16, const char *tokenizer) {
    cJSON *j = cJSON_CreateObject();
    if (c->family == FAMILY_LLAMA)
        add_llama_keys(j, c);
    else if (c->family == FAMILY_GLA)
        add_gla_keys(j, c);
    else
        add_tnl_keys(j, c);
    cJSON_AddStringToObject(j, "torch_dtype", bf16 ? "bfloat16" : "float32");
    add_bolt_object(j, c, tokenizer);
    char *text = cJSON_Print(j);
    check(text != NULL, "%s: cannot format config", path);
    cJSON_Delete(j);
    AtomicFile af = atomic_open(path);
    xfwrite(text, strlen(text), af.f, af.tmp_path);
    xfwrite("\n", 1, af.f, af.tmp_path);
    atomic_commit(&af);
    free(text);
}

// The index of the first value of x[0..n) that is not finite (or, with nonneg, is
// negative), or -1 if there is none: what a poisoned model or optimizer state looks like.
static long first_bad_value(const float *x, size_t n, bool nonneg) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || (nonneg && x[i] < 0)) return (long)i;
    }
    return -1;
}

// Die if a weight is not finite, naming the tensor: a poisoned model is never written
// (a checkpoint would become the one a resume trusts). `what` names the destination.
static void check_finite_weights(const Model *m, const float *host, const char *what) {
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        long bad = first_bad_value(host + p->offset, p->numel, false);
        check(bad < 0, "%s not saved: tensor '%s' holds a non-finite value (index %ld)", what,
              p->name, bad);
    }
}

// model.safetensors and config.json of the host weights into dir (which exists).
static void write_model(const Model *m, const float *host, const char *dir, bool bf16,
                        const char *tokenizer) {
    StWriteTensor *ts = xcalloc((size_t)m->n_params, sizeof *ts);
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        ts[i].name = p->name;
        ts[i].dtype = bf16 ? ST_BF16 : ST_F32;
        ts[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) ts[i].shape[d] = p->shape[d];
        ts[i].data = host + p->offset;
    }
    // transformers refuses safetensors without format "pt".
    const char *keys[] = {"format"}, *values[] = {"pt"};
    char path[PATH_CAP];
    path_join(path, sizeof path, dir, "model.safetensors");
    st_write(path, ts, m->n_params, keys, values, 1);
    path_join(path, sizeof path, dir, "config.json");
    write_config(&m->cfg, path, bf16, tokenizer);
    free(ts);
}

void model_save(const Model *m, const char *dir, bool bf16, const char *tokenizer) {
    float *host = xmalloc(m->n_weights * sizeof(float));
    model_download_weights(m, host);
    check_finite_weights(m, host, dir);
    make_dirs(dir);
    write_model(m, host, dir, bf16, tokenizer);
    free(host);
}

// ---------------------------------------------------------------------------------------
// config.json reading: every getter names the file and the key on error.

typedef struct JsonCtx {
    const char *path;   // the config file
    const char *prefix; // "" or "bolt." / "attn." for messages
} JsonCtx;

static const cJSON *get_item(JsonCtx ctx, const cJSON *obj, const char *key, bool required) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item && cJSON_IsNull(item)) item = NULL;
    check(item || !required, "%s: missing key \"%s%s\"", ctx.path, ctx.prefix, key);
    return item;
}

static int item_int(JsonCtx ctx, const cJSON *item, const char *key) {
    double v = item->valuedouble;
    check(cJSON_IsNumber(item) && v >= INT_MIN && v <= INT_MAX && v == (double)(int)v,
          "%s: key \"%s%s\" must be an integer", ctx.path, ctx.prefix, key);
    return (int)v;
}

// An integer key; `fallback` if absent or null and not required.
static int get_int(JsonCtx ctx, const cJSON *obj, const char *key, bool required, int fallback) {
    const cJSON *item = get_item(ctx, obj, key, required);
    return item ? item_int(ctx, item, key) : fallback;
}

static double get_num(JsonCtx ctx, const cJSON *obj, const char *key, bool required,
                      double fallback) {
    const cJSON *item = get_item(ctx, obj, key, required);
    if (!item) return fallback;
    check(cJSON_IsNumber(item), "%s: key \"%s%s\" must be a number", ctx.path, ctx.prefix, key);
    return item->valuedouble;
}

static bool get_bool(JsonCtx ctx, const cJSON *obj, const char *key, bool required, bool fallback) {
    const cJSON *item = get_item(ctx, obj, key, required);
    if (!item) return fallback;
    check(cJSON_IsBool(item), "%s: key \"%s%s\" must be true or false", ctx.path, ctx.prefix, key);
    return cJSON_IsTrue(item);
}

static const char *get_str(JsonCtx ctx, const cJSON *obj, const char *key, bool required,
                           const char *fallback) {
    const cJSON *item = get_item(ctx, obj, key, required);
    if (!item) return fallback;
    check(cJSON_IsString(item), "%s: key \"%s%s\" must be a string", ctx.path, ctx.prefix, key);
    return item->valuestring;
}

// eos_token_id may be an int or a list of ints (the first is used); 0 if absent.
static int get_eos(JsonCtx ctx, const cJSON *obj) {
    const cJSON *item = get_item(ctx, obj, "eos_token_id", false);
    if (!item) return 0;
    if (cJSON_IsArray(item)) {
        check(cJSON_GetArraySize(item) > 0, "%s: key \"eos_token_id\" is an empty list", ctx.path);
        item = cJSON_GetArrayItem(item, 0);
    }
    return item_int(ctx, item, "eos_token_id");
}

// Die unless an optional key is absent or has the only value bolt supports.
static void require_bool(JsonCtx ctx, const cJSON *obj, const char *key, bool supported) {
    check(get_bool(ctx, obj, key, false, supported) == supported,
          "%s: key \"%s%s\" = %s is not supported", ctx.path, ctx.prefix, key,
          supported ? "false" : "true");
}

static void require_str(JsonCtx ctx, const cJSON *obj, const char *key, const char *supported) {
    const char *v = get_str(ctx, obj, key, false, supported);
    check(strcmp(v, supported) == 0, "%s: key \"%s%s\" = \"%s\" is not supported (only \"%s\")",
          ctx.path, ctx.prefix, key, v, supported);
}

static void load_bolt_object(JsonCtx ctx, const cJSON *b, ModelConfig *c, MixerKind *mixers,
                             char *tokenizer_out, size_t cap) {
    const char *family = get_str(ctx, b, "family", true, NULL);
    check(family_from_name(family, &c->family), "%s: key \"bolt.family\": unknown family '%s'",
          ctx.path, family);
    c->vocab_size = get_int(ctx, b, "vocab_size", true, 0);
    c->dim = get_int(ctx, b, "dim", true, 0);
    c->n_layers = get_int(ctx, b, "n_layers", true, 0);
    c->n_heads = get_int(ctx, b, "n_heads", true, 0);
    c->n_kv_heads = get_int(ctx, b, "n_kv_heads", true, 0);
    c->head_dim = get_int(ctx, b, "head_dim", true, 0);
    c->mlp_dim = get_int(ctx, b, "mlp_dim", true, 0);
    c->tie_embeddings = get_bool(ctx, b, "tie_embeddings", true, false);
    c->norm_eps = (float)get_num(ctx, b, "norm_eps", true, 0);
    c->rope_theta = (float)get_num(ctx, b, "rope_theta", true, 0);
    const char *decay = get_str(ctx, b, "decay", true, NULL);
    check(strcmp(decay, "alibi") == 0 || strcmp(decay, "minimax") == 0,
          "%s: key \"bolt.decay\": '%s' is not alibi or minimax", ctx.path, decay);
    c->decay = strcmp(decay, "minimax") == 0 ? DECAY_MINIMAX : DECAY_ALIBI;
    const char *qk = get_str(ctx, b, "lightning_qk", false, "silu"); // absent before it existed
    check(strcmp(qk, "silu") == 0 || strcmp(qk, "rope") == 0,
          "%s: key \"bolt.lightning_qk\": '%s' is not silu or rope", ctx.path, qk);
    c->lightning_qk = strcmp(qk, "rope") == 0 ? LIGHTNING_QK_ROPE : LIGHTNING_QK_SILU;
    c->gate_low_rank = get_int(ctx, b, "gate_low_rank", true, 0);
    c->gate_normalizer = (float)get_num(ctx, b, "gate_normalizer", true, 0);
    c->attn_block = get_int(ctx, b, "attn_block", true, 0);
    c->doc_reset = get_bool(ctx, b, "doc_reset", true, false);
    c->eot_token = get_int(ctx, b, "eot_token", true, 0);
    c->seq_len = get_int(ctx, b, "seq_len", false, 0);
    const char *tok = get_str(ctx, b, "tokenizer", false, "");
    check(strlen(tok) < cap, "%s: key \"bolt.tokenizer\" is too long", ctx.path);
    snprintf(tokenizer_out, cap, "%s", tok);

    const cJSON *arr = get_item(ctx, b, "mixers", true);
    check(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == c->n_layers && c->n_layers <= MAX_LAYERS,
          "%s: key \"bolt.mixers\" must be a list of n_layers = %d mixer names", ctx.path,
          c->n_layers);
    int l = 0;
    for (const cJSON *e = arr->child; e; e = e->next, l++) {
        int kind = -1;
        for (int k = 0; k < 3 && cJSON_IsString(e); k++) {
            if (strcmp(e->valuestring, mixer_name((MixerKind)k)) == 0) kind = k;
        }
        check(kind >= 0, "%s: key \"bolt.mixers\"[%d] is not lightning, gla or softmax", ctx.path,
              l);
        mixers[l] = (MixerKind)kind;
    }
}

// Hugging Face Llama config.
static void load_llama_keys(JsonCtx ctx, const cJSON *j, ModelConfig *c, MixerKind *mixers) {
    c->family = FAMILY_LLAMA;
    c->dim = get_int(ctx, j, "hidden_size", true, 0);
    c->mlp_dim = get_int(ctx, j, "intermediate_size", true, 0);
    c->n_layers = get_int(ctx, j, "num_hidden_layers", true, 0);
    c->n_heads = get_int(ctx, j, "num_attention_heads", true, 0);
    c->n_kv_heads = get_int(ctx, j, "num_key_value_heads", false, c->n_heads);
    c->head_dim = get_int(ctx, j, "head_dim", false, 0);
    c->vocab_size = get_int(ctx, j, "vocab_size", true, 0);
    c->norm_eps = (float)get_num(ctx, j, "rms_norm_eps", false, 1e-6);
    const cJSON *rope = get_item(ctx, j, "rope_parameters", false);
    double theta =
        rope ? get_num((JsonCtx){ctx.path, "rope_parameters."}, rope, "rope_theta", false, 10000.0)
             : 10000.0;
    c->rope_theta = (float)get_num(ctx, j, "rope_theta", false, theta);
    c->tie_embeddings = get_bool(ctx, j, "tie_word_embeddings", false, false);
    c->eot_token = get_eos(ctx, j);
    require_str(ctx, j, "hidden_act", "silu");
    require_bool(ctx, j, "attention_bias", false);
    require_bool(ctx, j, "mlp_bias", false);
    check(get_item(ctx, j, "rope_scaling", false) == NULL,
          "%s: key \"rope_scaling\" is not supported (plain RoPE only)", ctx.path);
    check(c->n_layers >= 1 && c->n_layers <= MAX_LAYERS, "%s: num_hidden_layers %d out of range",
          ctx.path, c->n_layers);
    for (int l = 0; l < c->n_layers; l++) mixers[l] = MIXER_SOFTMAX;
}

// Read add_attn_object's "attn" (absent or null: no softmax layers) into c and mixers.
static void load_attn_object(JsonCtx ctx, const cJSON *j, ModelConfig *c, MixerKind *mixers) {
    const cJSON *attn = get_item(ctx, j, "attn", false);
    if (!attn || cJSON_IsNull(attn)) return;
    JsonCtx actx = {ctx.path, "attn."};
    check(cJSON_IsObject(attn), "%s: key \"attn\" must be an object or null", ctx.path);
    check(get_int(actx, attn, "num_heads", true, 0) == c->n_heads,
          "%s: key \"attn.num_heads\" must equal num_heads (%d)", ctx.path, c->n_heads);
    c->n_kv_heads = get_int(actx, attn, "num_kv_heads", false, c->n_heads);
    c->rope_theta = (float)get_num(actx, attn, "rope_theta", false, 10000.0);
    require_bool(actx, attn, "qkv_bias", false);
    check(get_item(actx, attn, "window_size", false) == NULL,
          "%s: key \"attn.window_size\" is not supported", ctx.path);
    const cJSON *layers = get_item(actx, attn, "layers", true);
    check(cJSON_IsArray(layers), "%s: key \"attn.layers\" must be a list", ctx.path);
    for (const cJSON *e = layers->child; e; e = e->next) {
        int l = item_int(actx, e, "layers");
        check(l >= 0 && l < c->n_layers, "%s: key \"attn.layers\": layer %d out of range [0, %d)",
              ctx.path, l, c->n_layers);
        mixers[l] = MIXER_SOFTMAX;
    }
}

// fla GLAConfig; the softmax layers of a hybrid come from its `attn` dict.
static void load_gla_keys(JsonCtx ctx, const cJSON *j, ModelConfig *c, MixerKind *mixers) {
    c->family = FAMILY_GLA;
    c->dim = get_int(ctx, j, "hidden_size", true, 0);
    c->n_layers = get_int(ctx, j, "num_hidden_layers", true, 0);
    c->n_heads = get_int(ctx, j, "num_heads", true, 0);
    c->vocab_size = get_int(ctx, j, "vocab_size", true, 0);
    c->norm_eps = (float)get_num(ctx, j, "norm_eps", false, 1e-6);
    c->tie_embeddings = get_bool(ctx, j, "tie_word_embeddings", false, false);
    c->gate_low_rank = get_int(ctx, j, "gate_low_rank_dim", false, 16);
    c->gate_normalizer = (float)get_num(ctx, j, "gate_logit_normalizer", false, 16.0);
    c->eot_token = get_eos(ctx, j);
    check(get_num(ctx, j, "expand_k", false, 0.5) == 0.5,
          "%s: key \"expand_k\" must be 0.5 (Dk = D/2)", ctx.path);
    check(get_num(ctx, j, "expand_v", false, 1.0) == 1.0, "%s: key \"expand_v\" must be 1 (Dv = D)",
          ctx.path);
    require_bool(ctx, j, "use_short_conv", false);
    require_bool(ctx, j, "use_output_gate", true);
    require_bool(ctx, j, "use_gk", true);
    require_bool(ctx, j, "use_gv", false);
    require_bool(ctx, j, "elementwise_affine", true);
    require_str(ctx, j, "hidden_act", "swish");
    check(get_item(ctx, j, "feature_map", false) == NULL,
          "%s: key \"feature_map\" is not supported", ctx.path);
    check(get_item(ctx, j, "clamp_min", false) == NULL, "%s: key \"clamp_min\" is not supported",
          ctx.path);
    check(get_int(ctx, j, "num_kv_heads", false, c->n_heads) == c->n_heads,
          "%s: key \"num_kv_heads\" must equal num_heads for GLA layers", ctx.path);
    c->mlp_dim = get_int(ctx, j, "intermediate_size", false, 0);
    if (c->mlp_dim == 0) {
        // fla: 256 * ceil(int(D * hidden_ratio * 2/3) / 256).
        c->mlp_dim = default_mlp_dim(c->dim, get_int(ctx, j, "hidden_ratio", false, 4));
    }
    check(c->n_layers >= 1 && c->n_layers <= MAX_LAYERS, "%s: num_hidden_layers %d out of range",
          ctx.path, c->n_layers);
    for (int l = 0; l < c->n_layers; l++) mixers[l] = MIXER_GLA;
    load_attn_object(ctx, j, c, mixers);
}

// TransNormerLLM's own config keys (model_type "transnormer").
static void load_tnl_keys(JsonCtx ctx, const cJSON *j, ModelConfig *c, MixerKind *mixers) {
    c->family = FAMILY_TNL;
    c->dim = get_int(ctx, j, "decoder_embed_dim", true, 0);
    c->n_layers = get_int(ctx, j, "decoder_layers", true, 0);
    c->n_heads = get_int(ctx, j, "decoder_attention_heads", true, 0);
    c->mlp_dim = get_int(ctx, j, "glu_dim", true, 0);
    c->vocab_size = get_int(ctx, j, "vocab_size", true, 0);
    c->tie_embeddings = get_bool(ctx, j, "tie_word_embeddings", false, false);
    c->eot_token = get_eos(ctx, j);
    require_str(ctx, j, "norm_type", "simplermsnorm");
    require_str(ctx, j, "linear_act_fun", "silu");
    require_bool(ctx, j, "no_scale_embedding", false);
    check(c->n_layers >= 1 && c->n_layers <= MAX_LAYERS, "%s: decoder_layers %d out of range",
          ctx.path, c->n_layers);
    for (int l = 0; l < c->n_layers; l++) mixers[l] = MIXER_LIGHTNING;
    load_attn_object(ctx, j, c, mixers);
}

void model_config_load(ModelConfig *c, char *tokenizer_out, size_t cap, const char *dir) {
    char path[PATH_CAP];
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        path_join(path, sizeof path, dir, "config.json");
    else
        snprintf(path, sizeof path, "%s", dir);
    char *text = read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    check(j != NULL && cJSON_IsObject(j), "%s: not a JSON object", path);
    memset(c, 0, sizeof *c);
    check(cap > 0, "model_config_load: no room for the tokenizer name");
    tokenizer_out[0] = '\0';
    MixerKind mixers[MAX_LAYERS];
    JsonCtx ctx = {path, ""};
    const cJSON *bolt = get_item(ctx, j, "bolt", false);
    if (bolt) {
        check(cJSON_IsObject(bolt), "%s: key \"bolt\" must be an object", path);
        load_bolt_object((JsonCtx){path, "bolt."}, bolt, c, mixers, tokenizer_out, cap);
    } else {
        const char *type = get_str(ctx, j, "model_type", true, NULL);
        if (strcmp(type, "llama") == 0)
            load_llama_keys(ctx, j, c, mixers);
        else if (strcmp(type, "gla") == 0)
            load_gla_keys(ctx, j, c, mixers);
        else if (strcmp(type, "transnormer") == 0)
            load_tnl_keys(ctx, j, c, mixers);
        else
            die("%s: model_type '%s' is not supported (llama, gla, transnormer)", path, type);
    }
    check(c->n_layers >= 1 && c->n_layers <= MAX_LAYERS, "%s: n_layers %d out of range", path,
          c->n_layers);
    memcpy(c->mixer, mixers, (size_t)c->n_layers * sizeof(MixerKind));
    cJSON_Delete(j);
    free(text);
    model_config_check(c);
    // Layer widths are ints (a projection's rows, a row stride): one that overflows makes
    // tensor shapes a tiny weights file can match, and buffers sized from the true width.
    int64_t qkv = ((int64_t)c->n_heads + 2 * (int64_t)c->n_kv_heads) * c->head_dim;
    check(4 * (int64_t)c->dim <= INT_MAX && 2 * (int64_t)c->mlp_dim <= INT_MAX && qkv <= INT_MAX,
          "%s: model too wide: 4 x dim (%d), 2 x mlp_dim (%d) and (n_heads + 2 x n_kv_heads) x "
          "head_dim (%lld) must each fit in an int",
          path, c->dim, c->mlp_dim, (long long)qkv);
}

// ---------------------------------------------------------------------------------------
// Weights

static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && len < cap; d++) {
        len += (size_t)snprintf(out + len, cap - len, "%s%lld", d ? ", " : "", (long long)shape[d]);
    }
    if (len < cap) snprintf(out + len, cap - len, "]");
}

// Buffers that are not parameters: old Llama checkpoints store RoPE's inv_freq.
static bool ignorable_tensor(const char *name) {
    const char *suffix = "rotary_emb.inv_freq";
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

// Die unless the tensors of st are exactly m's parameters (names and shapes; old Llama
// buffers aside), naming dir_or_file; returns the largest parameter's value count. Reads
// only m's parameter table, so it runs before anything the size of the model exists.
static size_t check_tensors(const Model *m, const SafeTensors *st, const char *dir_or_file) {
    size_t max_numel = 1;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        int64_t want[2] = {p->shape[0], p->shape[1]};
        char want_s[64], got_s[160];
        format_shape(want_s, sizeof want_s, p->ndim, want);
        const StTensor *t = st_find(st, p->name);
        check(t != NULL, "%s: missing tensor '%s' (expected shape %s)", dir_or_file, p->name,
              want_s);
        bool same = t->ndim == p->ndim;
        for (int d = 0; d < p->ndim && same; d++) same = t->shape[d] == want[d];
        format_shape(got_s, sizeof got_s, t->ndim, t->shape);
        check(same, "%s: tensor '%s' has shape %s but the model expects %s", dir_or_file, p->name,
              got_s, want_s);
        if (p->numel > max_numel) max_numel = p->numel;
    }
    int ignored = 0;
    for (int i = 0; i < st_count(st); i++) ignored += ignorable_tensor(st_tensor(st, i)->name);
    if (st_count(st) - ignored != m->n_params) {
        for (int i = 0; i < st_count(st); i++) {
            const char *name = st_tensor(st, i)->name;
            check(ignorable_tensor(name) || model_find_param(m, name) != NULL,
                  "%s: unexpected tensor '%s' (not a parameter of this %s model)", dir_or_file,
                  name, family_name(m->cfg.family));
        }
    }
    return max_numel;
}

// The parameter table of config c (no weights allocated) checked against the file: the
// shapes a config.json claims are then backed by tensor data the file really holds.
void model_check_weights(const ModelConfig *c, const char *dir_or_file) {
    Model *table = xcalloc(1, sizeof *table);
    table->cfg = *c;
    model_build_params(table);
    SafeTensors *st = st_open(dir_or_file);
    check_tensors(table, st, dir_or_file);
    st_close(st);
    free(table);
}

// Check the tensors against m's parameters, then read, check and upload each one.
void model_load_weights(Model *m, const char *dir_or_file) {
    SafeTensors *st = st_open(dir_or_file);
    size_t max_numel = check_tensors(m, st, dir_or_file);
    float *buf = xmalloc(max_numel * sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        st_read_f32(st, st_find(st, p->name), buf);
        long bad = first_bad_value(buf, p->numel, false);
        check(bad < 0,
              "%s: tensor '%s' holds a non-finite value (%g at index %ld): refusing to "
              "load a poisoned model",
              dir_or_file, p->name, (double)buf[bad < 0 ? 0 : bad], bad);
        m->be->ops->upload(m->be, m->weights + p->offset, buf, p->numel * sizeof(float));
    }
    free(buf);
    st_close(st);
    model_refresh_compute_weights(m);
}

// ---------------------------------------------------------------------------------------
// Training checkpoints

void checkpoint_save(const char *out_dir, const Model *m, const float *adam_m, const float *adam_v,
                     const TrainState *s, const char *tokenizer) {
    char dir[PATH_CAP], name[64], path[PATH_CAP];
    snprintf(name, sizeof name, "step_%08lld", (long long)s->step);
    char what[PATH_CAP + 64];
    snprintf(what, sizeof what, "%s/%s", out_dir, name);
    float *host = xmalloc(m->n_weights * sizeof(float)); // downloaded once: checked, written
    model_download_weights(m, host);
    check_finite_weights(m, host, what);
    long bad_m = first_bad_value(adam_m, m->n_weights, false);
    long bad_v = first_bad_value(adam_v, m->n_weights, true);
    check(bad_m < 0 && bad_v < 0, "%s not saved: the AdamW state holds an invalid value (%s)", what,
          bad_m >= 0 ? "adam_m" : "adam_v");
    path_join(dir, sizeof dir, out_dir, name);
    make_dirs(dir);
    // Re-saving a step: it stops counting until the new DONE is written.
    path_join(path, sizeof path, dir, "DONE");
    check(unlink(path) == 0 || errno == ENOENT, "%s: cannot remove (%s)", path, strerror(errno));
    fsync_dir(dir);

    write_model(m, host, dir, false, tokenizer);
    free(host);

    StWriteTensor ts[2] = {
        {"adam_m", ST_F32, 1, {(int64_t)m->n_weights}, adam_m},
        {"adam_v", ST_F32, 1, {(int64_t)m->n_weights}, adam_v},
    };
    char vals[8][64];
    snprintf(vals[0], 64, "%lld", (long long)s->step);
    snprintf(vals[1], 64, "%lld", (long long)s->loader.epoch);
    snprintf(vals[2], 64, "%lld", (long long)s->loader.shard);
    snprintf(vals[3], 64, "%lld", (long long)s->loader.window);
    snprintf(vals[4], 64, "%" PRIu64, s->rng);
    snprintf(vals[5], 64, "%d", s->bad_steps);
    snprintf(vals[6], 64, "%.17g", s->tokens_seen);
    snprintf(vals[7], 64, "%zu", m->n_weights);
    const char *keys[] = {"step", "loader_epoch", "loader_shard", "loader_window",
                          "rng",  "bad_steps",    "tokens_seen",  "n_weights"};
    const char *values[8];
    for (int i = 0; i < 8; i++) values[i] = vals[i];
    path_join(path, sizeof path, dir, "train_state.safetensors");
    st_write(path, ts, 2, keys, values, 8);

    path_join(path, sizeof path, dir, "DONE");
    AtomicFile done = atomic_open(path);
    atomic_commit(&done);
    fsync_dir(dir);
    fsync_dir(out_dir);
}

// A metadata value of train_state.safetensors as a whole decimal number, or die.
static const char *meta_text(const SafeTensors *st, const char *path, const char *key) {
    const char *v = st_metadata(st, key);
    check(v != NULL && v[0] != '\0', "%s: metadata '%s' is missing", path, key);
    return v;
}

static int64_t meta_i64(const SafeTensors *st, const char *path, const char *key) {
    const char *v = meta_text(st, path, key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    check(*end == '\0' && errno == 0, "%s: metadata '%s' = '%s' is not an integer", path, key, v);
    return (int64_t)x;
}

void checkpoint_load_train_state(const char *ckpt_dir, const Model *m, float *adam_m, float *adam_v,
                                 TrainState *s) {
    char path[PATH_CAP];
    path_join(path, sizeof path, ckpt_dir, "train_state.safetensors");
    SafeTensors *st = st_open(path);
    const char *names[2] = {"adam_m", "adam_v"};
    float *dst[2] = {adam_m, adam_v};
    for (int i = 0; i < 2; i++) {
        const StTensor *t = st_find(st, names[i]);
        check(t != NULL, "%s: missing tensor '%s'", path, names[i]);
        check(t->dtype == ST_F32 && t->ndim == 1, "%s: tensor '%s' must be 1-D F32", path,
              names[i]);
        check(t->shape[0] == (int64_t)m->n_weights,
              "%s: tensor '%s' has %lld values but the model has %zu weights (different model?)",
              path, names[i], (long long)t->shape[0], m->n_weights);
        st_read_f32(st, t, dst[i]);
        // Second moments are squares: a negative one turns the next step's weights to NaN.
        long bad = first_bad_value(dst[i], m->n_weights, i == 1);
        check(bad < 0,
              "%s: tensor '%s' holds an invalid value (%g at index %ld; %s): refusing "
              "to resume from a poisoned optimizer state",
              path, names[i], (double)dst[i][bad < 0 ? 0 : bad], bad,
              i == 1 ? "second moments must be finite and >= 0" : "moments must be finite");
    }
    check(meta_i64(st, path, "n_weights") == (int64_t)m->n_weights,
          "%s: metadata n_weights does not match the model's %zu", path, m->n_weights);
    memset(s, 0, sizeof *s);
    s->step = meta_i64(st, path, "step");
    s->loader.epoch = meta_i64(st, path, "loader_epoch");
    s->loader.shard = meta_i64(st, path, "loader_shard");
    s->loader.window = meta_i64(st, path, "loader_window");
    int64_t bad = meta_i64(st, path, "bad_steps");
    check(bad >= INT_MIN && bad <= INT_MAX, "%s: metadata 'bad_steps' out of range", path);
    s->bad_steps = (int)bad;
    const char *rng = meta_text(st, path, "rng");
    char *end;
    errno = 0;
    unsigned long long r = strtoull(rng, &end, 10);
    check(*end == '\0' && errno == 0 && rng[0] != '-', "%s: metadata 'rng' = '%s' is not a u64",
          path, rng);
    s->rng = (uint64_t)r;
    const char *tokens = meta_text(st, path, "tokens_seen");
    s->tokens_seen = strtod(tokens, &end);
    check(*end == '\0', "%s: metadata 'tokens_seen' = '%s' is not a number", path, tokens);
    st_close(st);
}

// The config, then its weights checked against it before the model is allocated, then
// the model created and filled.
void model_load(Model *m, const char *dir, Backend *be, char *tokenizer, size_t cap) {
    ModelConfig cfg;
    model_config_load(&cfg, tokenizer, cap, dir);
    model_check_weights(&cfg, dir);
    model_create(m, &cfg, be);
    model_load_weights(m, dir);
}

void checkpoint_tokenizer_path(const char *ckpt_dir, const char *spec, char *out, size_t cap) {
    const char *s = spec[0] ? spec : "byte";
    char local[PATH_CAP];
    if (strcmp(s, "byte") != 0 && s[0] != '/') {
        path_join(local, sizeof local, ckpt_dir, s);
        if (file_size(local) >= 0) s = local;
    }
    check(strlen(s) < cap, "%s: tokenizer path too long", s);
    snprintf(out, cap, "%s", s);
}
