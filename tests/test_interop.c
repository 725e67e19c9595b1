// tests/test_interop.c: `bolt import` of Hugging Face style checkpoints (config.json
// without bolt's own object, bf16 weights in two shards with an index, a tokenizer.json),
// `bolt export` round trips, `bolt eval --tokens --logits_out` against model_loss,
// `bolt eval --data` against a hand-computed mean, and bad inputs dying with a message
// that names the problem.
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../data/shard.h"
#include "../model/checkpoint.h"
#include "../model/safetensors.h"
#include "model_testing.h"

// Entry points under test (train/interop.c, train/eval.c).
int import_main(int argc, char **argv);
int export_main(int argc, char **argv);
int eval_main(int argc, char **argv);
void checkpoint_tokenizer_path(const char *ckpt_dir, const char *spec, char *out, size_t cap);

// Call a subcommand's main with a NULL-terminated list of arguments.
static int call(int (*fn)(int, char **), const char *a0, ...) {
    char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 16; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    return fn(argc, argv);
}

// ---------------------------------------------------------------------------------------
// Models

typedef struct Case {
    Family family;
    const char *mixers;
    bool tied;
} Case;

// Llama with GQA (untied), a GLA + softmax hybrid (tied), plain GLA (untied).
static const Case cases[] = {
    {FAMILY_LLAMA, NULL, false},
    {FAMILY_GLA, "gla,softmax", true},
    {FAMILY_GLA, NULL, false},
};

static ModelConfig case_config(const Case *k) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = k->family;
    c.vocab_size = k->family == FAMILY_LLAMA ? 37 : 41;
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = k->family == FAMILY_LLAMA ? 4 : 2;
    c.n_kv_heads = k->family == FAMILY_LLAMA ? 2 : 1;
    c.mlp_dim = 40;
    c.tie_embeddings = k->tied;
    c.norm_eps = 1e-5f;
    c.rope_theta = 5000.0f;
    c.gate_low_rank = 8;
    c.attn_block = 4; // the parallel forms run in chunks; sequences below are not multiples
    c.eot_token = 3;
    model_config_finalize(&c, k->mixers);
    return c;
}

// A CPU model with weights spread more than the training init: norms 1 + 0.2 r.
static Model *new_model(const Case *k, uint64_t seed) {
    ModelConfig c = case_config(k);
    Model *m = test_owned(xcalloc(1, sizeof *m)); // reachable until the test ends
    model_create(m, &c, cpu_backend());
    Rng rng = rng_seeded(seed);
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        for (size_t j = 0; j < p->numel; j++) {
            float r = rng_normal(&rng);
            m->weights[p->offset + j] = p->ndim == 2 ? 0.3f * r : 1.0f + 0.2f * r;
        }
    }
    return m;
}

// A model built from a checkpoint directory, as sample/eval/train build it.
static Model *load_model(const char *dir, char *tok, size_t cap) {
    ModelConfig c;
    model_config_load(&c, tok, cap, dir);
    Model *m = test_owned(xcalloc(1, sizeof *m)); // reachable until the test ends
    model_create(m, &c, cpu_backend());
    model_load_weights(m, dir);
    return m;
}

static void assert_same_config(const ModelConfig *a, const ModelConfig *b) {
    ck_assert_int_eq(a->family, b->family);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->dim, b->dim);
    ck_assert_int_eq(a->n_layers, b->n_layers);
    ck_assert_int_eq(a->n_heads, b->n_heads);
    ck_assert_int_eq(a->mlp_dim, b->mlp_dim);
    ck_assert_int_eq(a->tie_embeddings, b->tie_embeddings);
    ck_assert(a->norm_eps == b->norm_eps);
    ck_assert_int_eq(a->eot_token, b->eot_token);
    for (int l = 0; l < a->n_layers; l++) ck_assert_int_eq(a->mixer[l], b->mixer[l]);
    if (a->family == FAMILY_GLA) {
        ck_assert_int_eq(a->gate_low_rank, b->gate_low_rank);
        ck_assert(a->gate_normalizer == b->gate_normalizer);
    }
    bool softmax = false;
    for (int l = 0; l < a->n_layers; l++) softmax |= a->mixer[l] == MIXER_SOFTMAX;
    if (softmax) {
        ck_assert(a->rope_theta == b->rope_theta);
        ck_assert_int_eq(a->n_kv_heads, b->n_kv_heads);
        ck_assert_int_eq(a->head_dim, b->head_dim);
    }
}

static float loss_on(Model *m, uint64_t seed) {
    enum { B = 2, T = 11 };
    int tokens[B * T], targets[B * T];
    Rng rng = rng_seeded(seed);
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)(rng_next(&rng) % (uint64_t)m->cfg.vocab_size);
        targets[i] = (int)(rng_next(&rng) % (uint64_t)m->cfg.vocab_size);
    }
    return model_loss(m, tokens, targets, B, T);
}

// ---------------------------------------------------------------------------------------
// Hugging Face style copies

// config.json as transformers / fla write it: bolt's file without the "bolt" object; for
// Llama, rope_theta moved under rope_parameters as transformers 5 writes it.
static void write_hf_config(const char *bolt_dir, const char *hf_dir, const char *model_type) {
    char *text = test_read_file(path_in(bolt_dir, "config.json"), NULL);
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    cJSON_DeleteItemFromObject(j, "bolt");
    cJSON *theta = cJSON_DetachItemFromObject(j, "rope_theta");
    if (theta && strcmp(cJSON_GetObjectItem(j, "model_type")->valuestring, "llama") == 0) {
        cJSON *rp = cJSON_AddObjectToObject(j, "rope_parameters");
        cJSON_AddStringToObject(rp, "rope_type", "default");
        cJSON_AddItemToObject(rp, "rope_theta", theta);
    } else if (theta) {
        cJSON_AddItemToObject(j, "rope_theta", theta);
    }
    if (model_type) cJSON_ReplaceItemInObject(j, "model_type", cJSON_CreateString(model_type));
    char *printed = cJSON_Print(j);
    write_text(path_in(hf_dir, "config.json"), printed);
    free(printed);
    cJSON_Delete(j);
    free(text);
}

// bf16 weights split over two shards with an index. `bad_shape` >= 0: that tensor is
// stored transposed (same size, wrong shape).
static void write_hf_weights(const Model *m, const char *hf_dir, int bad_shape) {
    StWriteTensor *ts = xcalloc((size_t)m->n_params, sizeof *ts);
    cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
    cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)m->n_weights * 2);
    int half = m->n_params / 2;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        ts[i] = (StWriteTensor){
            p->name, ST_BF16, p->ndim, {p->shape[0], p->shape[1]}, m->weights + p->offset};
        if (i == bad_shape) {
            ts[i].shape[0] = p->shape[1];
            ts[i].shape[1] = p->shape[0];
        }
        cJSON_AddStringToObject(map, p->name,
                                i < half ? "model-00001-of-00002.safetensors"
                                         : "model-00002-of-00002.safetensors");
    }
    const char *keys[] = {"format"}, *values[] = {"pt"};
    st_write(path_in(hf_dir, "model-00001-of-00002.safetensors"), ts, half, keys, values, 1);
    st_write(path_in(hf_dir, "model-00002-of-00002.safetensors"), ts + half, m->n_params - half,
             keys, values, 1);
    char *printed = cJSON_Print(index);
    write_text(path_in(hf_dir, "model.safetensors.index.json"), printed);
    free(printed);
    cJSON_Delete(index);
    free(ts);
}

static const char *fake_tokenizer = "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\"}}\n";

// A Hugging Face style directory of model m: returns its path.
static char *write_hf_dir(const Model *m, int bad_shape, const char *model_type) {
    char *bolt_dir = new_dir(), *hf = new_dir();
    model_save(m, bolt_dir, false, "");
    write_hf_config(bolt_dir, hf, model_type);
    write_hf_weights(m, hf, bad_shape);
    write_text(path_in(hf, "tokenizer.json"), fake_tokenizer);
    return hf;
}

// ---------------------------------------------------------------------------------------
// Import

// An HF-style checkpoint (no bolt object, bf16, sharded) imports to exactly the bf16
// values in fp32, the same config, the same loss, and carries its tokenizer.
START_TEST(test_import_hf) {
    const Case *k = &cases[_i];
    Model *m = new_model(k, 100 + (uint64_t)_i);
    char *hf = write_hf_dir(m, -1, NULL);
    char *out = path_in(new_dir(), "imported");
    ck_assert_int_eq(call(import_main, hf, out, NULL), 0);

    char tok[256];
    Model *m2 = load_model(out, tok, sizeof tok);
    assert_same_config(&m->cfg, &m2->cfg);
    ck_assert_uint_eq(m2->n_weights, m->n_weights);
    SafeTensors *imported = st_open(out);
    ck_assert_ptr_null(st_find(imported, "rotary_emb.inv_freq"));
    ck_assert_int_eq(st_tensor(imported, 0)->dtype, ST_F32); // fp32 by default
    st_close(imported);
    Model *rounded = new_model(k, 100 + (uint64_t)_i);
    for (size_t i = 0; i < m->n_weights; i++) {
        rounded->weights[i] = ref_bf16(m->weights[i]);
        ck_assert_msg(m2->weights[i] == rounded->weights[i], "weight %zu: %g, want %g", i,
                      m2->weights[i], rounded->weights[i]);
    }
    float want = loss_on(rounded, 7), got = loss_on(m2, 7), exact = loss_on(m, 7);
    ck_assert_msg(fabsf(got - want) <= 1e-6f * want, "loss %g, want %g", got, want);
    ck_assert_msg(fabsf(got - exact) <= 2e-2f * exact, "bf16 loss %g vs fp32 %g", got, exact);

    // The tokenizer is copied next to the weights and recorded relative to them.
    ck_assert_str_eq(tok, "tokenizer.json");
    ck_assert_str_eq(test_read_file(path_in(out, "tokenizer.json"), NULL), fake_tokenizer);
    char resolved[512];
    checkpoint_tokenizer_path(out, tok, resolved, sizeof resolved);
    ck_assert_str_eq(resolved, path_in(out, "tokenizer.json"));
    checkpoint_tokenizer_path(out, "", resolved, sizeof resolved);
    ck_assert_str_eq(resolved, "byte");

    // --dtype=bf16 stores BF16 tensors with the same values.
    char *out16 = path_in(new_dir(), "imported16");
    ck_assert_int_eq(call(import_main, hf, out16, "--dtype=bf16", NULL), 0);
    SafeTensors *st = st_open(out16);
    for (int i = 0; i < st_count(st); i++) ck_assert_int_eq(st_tensor(st, i)->dtype, ST_BF16);
    st_close(st);
    Model *m3 = load_model(out16, tok, sizeof tok);
    ck_assert_int_eq(memcmp(m3->weights, m2->weights, m2->n_weights * sizeof(float)), 0);
}
END_TEST

// ---------------------------------------------------------------------------------------
// Export

// Export of a checkpoint is bit-exact in fp32 and in the family's HF layout; re-importing
// the export with only its HF keys gives the same model again.
START_TEST(test_export_round_trip) {
    const Case *k = &cases[_i];
    Model *m = new_model(k, 200 + (uint64_t)_i);
    char *ck = new_dir(), *exp = path_in(new_dir(), "hf");
    model_save(m, ck, false, "byte");
    ck_assert_int_eq(call(export_main, ck, exp, NULL), 0);
    char tok[256];
    Model *m2 = load_model(exp, tok, sizeof tok);
    ck_assert_str_eq(tok, "byte");
    assert_same_config(&m->cfg, &m2->cfg);
    ck_assert_int_eq(memcmp(m2->weights, m->weights, m->n_weights * sizeof(float)), 0);

    // The family's HF keys: what transformers / fla read.
    cJSON *j = cJSON_Parse(test_read_file(path_in(exp, "config.json"), NULL));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "model_type")->valuestring,
                     k->family == FAMILY_LLAMA ? "llama" : "gla");
    ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")), k->tied);
    SafeTensors *st = st_open(exp);
    ck_assert_int_eq(st_find(st, "lm_head.weight") == NULL, k->tied);
    ck_assert_ptr_nonnull(st_find(st, k->family == FAMILY_LLAMA ? "model.embed_tokens.weight"
                                                                : "model.embeddings.weight"));
    ck_assert_str_eq(st_metadata(st, "format"), "pt");
    st_close(st);

    // Strip the bolt object: the HF keys alone rebuild the same model.
    char *hf = new_dir(), *back = path_in(new_dir(), "back");
    write_hf_config(exp, hf, NULL);
    char *data = test_read_file(path_in(exp, "model.safetensors"), NULL);
    size_t len = (size_t)file_size(path_in(exp, "model.safetensors"));
    FILE *f = xfopen(path_in(hf, "model.safetensors"), "wb");
    xfwrite(data, len, f, "model.safetensors");
    fclose(f);
    ck_assert_int_eq(call(import_main, hf, back, NULL), 0);
    Model *m3 = load_model(back, tok, sizeof tok);
    assert_same_config(&m->cfg, &m3->cfg);
    ck_assert_int_eq(memcmp(m3->weights, m->weights, m->n_weights * sizeof(float)), 0);
    cJSON_Delete(j);
}
END_TEST

// A TNL hybrid exports a config.json declaring its softmax layers ("attn", as fla's GLA
// does) and, for the byte tokenizer, a tokenizer_config.json saying so; an import that
// has only the Hugging Face keys (no "bolt" object) reads both back.
START_TEST(test_export_tnl_hybrid) {
    Model *m = new_model(&(Case){FAMILY_TNL, "lightning,softmax", false}, 800);
    char *ck = new_dir(), *exp = path_in(new_dir(), "hf"), *back = path_in(new_dir(), "b");
    model_save(m, ck, false, "byte");
    ck_assert_int_eq(call(export_main, ck, exp, NULL), 0);
    char *config_path = path_in(exp, "config.json");
    cJSON *j = cJSON_Parse(test_read_file(config_path, NULL));
    cJSON *layers = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "attn"), "layers");
    ck_assert(cJSON_IsArray(layers) && cJSON_GetArraySize(layers) == 1);
    ck_assert_int_eq(cJSON_GetArrayItem(layers, 0)->valueint, 1);
    cJSON_DeleteItemFromObject(j, "bolt");
    char *text = cJSON_Print(j);
    write_text(config_path, text);
    char *tok_config = test_read_file(path_in(exp, "tokenizer_config.json"), NULL);
    ck_assert(strstr(tok_config, "\"bolt_tokenizer\": \"byte\""));
    ck_assert_int_eq(call(import_main, exp, back, NULL), 0);
    ModelConfig c;
    char tok[64];
    model_config_load(&c, tok, sizeof tok, back);
    ck_assert_int_eq(c.mixer[0], MIXER_LIGHTNING);
    ck_assert_int_eq(c.mixer[1], MIXER_SOFTMAX);
    ck_assert_str_eq(tok, "byte");
    free(text);
    cJSON_Delete(j);
}
END_TEST

// A run's out_dir exports its latest complete checkpoint; --dtype=bf16 rounds to nearest.
START_TEST(test_export_run_dir) {
    Model *old = new_model(&cases[0], 300), *newest = new_model(&cases[0], 301);
    char *run = new_dir(), *exp = path_in(new_dir(), "hf");
    float *zeros_m = zeros((long)old->n_weights), *zeros_v = zeros((long)old->n_weights);
    TrainState s;
    memset(&s, 0, sizeof s);
    s.step = 3;
    checkpoint_save(run, old, zeros_m, zeros_v, &s, "byte");
    s.step = 7;
    checkpoint_save(run, newest, zeros_m, zeros_v, &s, "byte");
    ck_assert_int_eq(call(export_main, run, exp, "--dtype=bf16", NULL), 0);
    SafeTensors *st = st_open(exp);
    for (int i = 0; i < st_count(st); i++) ck_assert_int_eq(st_tensor(st, i)->dtype, ST_BF16);
    st_close(st);
    char tok[64];
    Model *m2 = load_model(exp, tok, sizeof tok);
    for (size_t i = 0; i < newest->n_weights; i++)
        ck_assert(m2->weights[i] == ref_bf16(newest->weights[i]));
}
END_TEST

// A tokenizer file that the checkpoint names relative to itself travels with the export.
START_TEST(test_export_tokenizer) {
    Model *m = new_model(&cases[2], 400);
    char *ck = new_dir(), *exp = path_in(new_dir(), "hf");
    write_text(path_in(ck, "my-tok.json"), fake_tokenizer);
    model_save(m, ck, false, "my-tok.json");
    ck_assert_int_eq(call(export_main, ck, exp, NULL), 0);
    char tok[256];
    Model *m2 = load_model(exp, tok, sizeof tok);
    ck_assert_str_eq(tok, "tokenizer.json");
    ck_assert_str_eq(test_read_file(path_in(exp, "tokenizer.json"), NULL), fake_tokenizer);
    ck_assert_uint_eq(m2->n_weights, m->n_weights);
}
END_TEST

// ---------------------------------------------------------------------------------------
// Eval

// Little-endian fp32 values of a file; *n gets the count.
static float *read_floats(const char *path, size_t *n) {
    size_t len;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    ck_assert_uint_eq(len % 4, 0);
    *n = len / 4;
    float *x = test_owned(xmalloc(len + 4));
    for (size_t i = 0; i < *n; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&x[i], &u, 4);
    }
    free(b);
    return x;
}

// Every position's logits from the recurrent form give, by softmax cross-entropy, the
// loss model_loss computes for that position with the parallel form.
START_TEST(test_eval_logits) {
    const Case *k = &cases[_i];
    Model *m = new_model(k, 500 + (uint64_t)_i);
    char *ck = new_dir(), *file = path_in(ck, "logits.f32");
    model_save(m, ck, false, "");
    enum { N = 13 };
    int V = m->cfg.vocab_size, tokens[N], targets[N];
    Rng rng = rng_seeded(77 + (uint64_t)_i);
    char list[256] = "--tokens=";
    for (int i = 0; i < N; i++) {
        tokens[i] = (int)(rng_next(&rng) % (uint64_t)V);
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? "," : "", tokens[i]);
    }
    char out_opt[600];
    snprintf(out_opt, sizeof out_opt, "--logits_out=%s", file);
    ck_assert_int_eq(call(eval_main, ck, list, out_opt, "--device=cpu", NULL), 0);
    size_t n;
    float *logits = read_floats(file, &n);
    ck_assert_uint_eq(n, (size_t)N * V);
    for (int pos = 0; pos < N; pos++) {
        int target = pos + 1 < N ? tokens[pos + 1] : (int)(rng_next(&rng) % (uint64_t)V);
        for (int i = 0; i < N; i++) targets[i] = i == pos ? target : -1;
        float want = model_loss(m, tokens, targets, 1, N);
        const float *row = logits + (size_t)pos * V;
        double max = row[0], sum = 0;
        for (int v = 1; v < V; v++) max = fmax(max, row[v]);
        for (int v = 0; v < V; v++) sum += exp(row[v] - max);
        double got = log(sum) + max - row[target];
        ck_assert_msg(fabs(got - want) <= 1e-5 * fabs(want), "position %d: CE %.8g, loss %.8g", pos,
                      got, (double)want);
    }
}
END_TEST

// Run fn's call with stdout in a file; returns what it printed.
static char *capture_stdout(int (*fn)(int, char **), int argc, char **argv, int *rc) {
    char *path = path_in(new_dir(), "stdout.txt");
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    *rc = fn(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(fd);
    close(saved);
    return test_read_file(path, NULL);
}

// --data: the token-weighted mean loss over the shard's windows, in order.
START_TEST(test_eval_data) {
    Model *m = new_model(&cases[1], 600);
    char *ck = new_dir(), *data = new_dir();
    model_save(m, ck, false, "");
    enum { B = 2, T = 8, NTOK = B * T * 3 + 5 }; // 6 windows: 3 batches, 4 tokens left over
    uint32_t shard[NTOK];
    Rng rng = rng_seeded(601);
    for (int i = 0; i < NTOK; i++) shard[i] = (uint32_t)(rng_next(&rng) % 41);
    shard_write(path_in(data, "val_000.bin"), shard, NTOK, false, false);
    char glob[600];
    snprintf(glob, sizeof glob, "--data=%s/val_*.bin", data);
    for (int limit = 0; limit <= 2; limit += 2) {
        int n_batches = limit ? limit : 3;
        double sum = 0;
        for (int b = 0; b < n_batches; b++) {
            int tokens[B * T], targets[B * T];
            for (int r = 0; r < B; r++) {
                int w = b * B + r;
                for (int t = 0; t < T; t++) {
                    tokens[r * T + t] = (int)shard[w * T + t];
                    targets[r * T + t] = (int)shard[w * T + t + 1];
                }
            }
            sum += model_loss(m, tokens, targets, B, T);
        }
        double want = sum / n_batches;
        char batches[32];
        snprintf(batches, sizeof batches, "--batches=%d", limit);
        char *argv[] = {ck, glob, "--batch_size=2", "--seq_len=8", batches, "--device=cpu"};
        int rc;
        char *text = capture_stdout(eval_main, 6, argv, &rc);
        ck_assert_int_eq(rc, 0);
        const char *at = strstr(text, "| loss ");
        ck_assert_msg(at != NULL, "no loss in '%s'", text);
        double got = strtod(at + 7, NULL);
        ck_assert_msg(fabs(got - want) <= 1e-5 * want, "loss %.7g, want %.7g", got, want);
        char expect_tokens[64];
        snprintf(expect_tokens, sizeof expect_tokens, "= %d tokens", n_batches * B * T);
        ck_assert_msg(strstr(text, expect_tokens) != NULL, "'%s' lacks '%s'", text, expect_tokens);
    }
}
END_TEST

// ---------------------------------------------------------------------------------------
// Bad inputs: the process exits with status 1 and one message naming the problem.

typedef struct BadInput {
    int (*fn)(int, char **);
    char *argv[4];
    int argc;
} BadInput;

// Run the call in a child with stderr in a file; assert exit status 1 and that the
// message contains `want`.
static void expect_death(BadInput bad, const char *want) {
    char *path = path_in(new_dir(), "stderr.txt");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        exit(bad.fn(bad.argc, bad.argv) == 0 ? 0 : 3);
    }
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    char *msg = test_read_file(path, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d, stderr '%s'", status,
                  msg);
    ck_assert_msg(strstr(msg, want) != NULL, "stderr '%s' lacks '%s'", msg, want);
    ck_assert_msg(strstr(msg, "bolt: error: ") == msg, "stderr '%s'", msg);
    free(msg);
}

START_TEST(test_import_no_config) {
    Model *m = new_model(&cases[0], 700);
    char *hf = write_hf_dir(m, -1, NULL), *out = path_in(new_dir(), "out");
    ck_assert_int_eq(unlink(path_in(hf, "config.json")), 0);
    expect_death((BadInput){import_main, {hf, out}, 2}, "no config.json");
    ck_assert_int_lt(file_size(out), 0);
    expect_death((BadInput){import_main, {path_in(hf, "nothing"), out}, 2}, "not a directory");
}
END_TEST

START_TEST(test_import_bad_model_type) {
    Model *m = new_model(&cases[0], 701);
    char *hf = write_hf_dir(m, -1, "bert"), *out = path_in(new_dir(), "out");
    expect_death((BadInput){import_main, {hf, out}, 2}, "model_type 'bert' is not supported");
    ck_assert_int_lt(file_size(out), 0);
}
END_TEST

// A tensor stored with the wrong shape: named in the message, and nothing is written.
START_TEST(test_import_bad_shape) {
    Model *m = new_model(&cases[1], 702);
    int bad = 0; // the first non-square matrix
    while (m->params[bad].ndim != 2 || m->params[bad].shape[0] == m->params[bad].shape[1]) bad++;
    char *hf = write_hf_dir(m, bad, NULL), *out = path_in(new_dir(), "out");
    expect_death((BadInput){import_main, {hf, out}, 2}, m->params[bad].name);
    expect_death((BadInput){import_main, {hf, out}, 2}, "has shape");
    ck_assert_int_lt(file_size(out), 0);
}
END_TEST

START_TEST(test_bad_commands) {
    Model *m = new_model(&cases[0], 703);
    char *ck = new_dir(), *empty = new_dir();
    model_save(m, ck, false, "");
    expect_death((BadInput){export_main, {empty, path_in(empty, "x")}, 2}, "no config.json");
    expect_death((BadInput){export_main, {ck, ck}, 2}, "must differ");
    expect_death((BadInput){import_main, {ck, ck, "--dtype=f16"}, 3},
                 "bad value 'f16' for option '--dtype'");
    expect_death((BadInput){eval_main, {ck, "--tokens=1,2,37", "--device=cpu"}, 3},
                 "id 37 is outside the vocabulary");
    expect_death((BadInput){eval_main, {ck, "--tokens=1,x", "--device=cpu"}, 3}, "comma-separated");
    expect_death((BadInput){eval_main, {ck, "--data=/nonexistent/*.bin", "--tokens=1"}, 3},
                 "give one of --data, --tokens or --text");
}
END_TEST

// eval --data: a data set with fewer windows than one batch, and a shard holding an id the
// model's vocabulary lacks, are clear errors (not a wrapped-around or out-of-bounds read).
START_TEST(test_eval_bad_data) {
    Model *m = new_model(&cases[0], 704); // vocab 37
    char *ck = new_dir(), *data = new_dir();
    model_save(m, ck, false, "");
    Rng rng = rng_seeded(705);
    enum { SMALL = 20, NTOK = 200 }; // T = 8: 2 windows (B = 4 needs 4); 24 windows
    uint32_t tok[NTOK];
    for (int i = 0; i < NTOK; i++) tok[i] = (uint32_t)(rng_next(&rng) % 37);
    shard_write(path_in(data, "small_000.bin"), tok, SMALL, false, false);
    int at = (int)(rng_next(&rng) % NTOK);
    tok[at] = 37 + (uint32_t)(rng_next(&rng) % 20);
    char *bad = path_in(data, "bad_000.bin");
    shard_write(bad, tok, NTOK, false, false);
    char small_flag[600], bad_flag[600], want[700];
    snprintf(small_flag, sizeof small_flag, "--data=%s/small_*.bin", data);
    snprintf(bad_flag, sizeof bad_flag, "--data=%s", bad);
    expect_death((BadInput){eval_main, {ck, small_flag, "--seq_len=8", "--device=cpu"}, 4},
                 "fewer windows than one batch of 4 x 8 tokens");
    snprintf(want, sizeof want, "%s: token id %u at position %d is outside the vocabulary [0, 37)",
             bad, tok[at], at);
    expect_death((BadInput){eval_main, {ck, bad_flag, "--seq_len=8", "--device=cpu"}, 4}, want);
    // Without --seq_len, a config.json claiming 2^30 training tokens per sequence gives the
    // most --seq_len takes, not batch buffers of 2^30 tokens.
    m->cfg.seq_len = 1 << 30;
    model_save(m, ck, false, "");
    expect_death((BadInput){eval_main, {ck, small_flag, "--device=cpu"}, 3},
                 "make 0 windows of 16777216+1 tokens");
}
END_TEST

int main(void) {
    make_scratch_root("interop");
    Suite *s = suite_create("interop");
    TCase *tc = tcase_create("interop");
    tcase_set_timeout(tc, 60);
    int n_cases = (int)(sizeof cases / sizeof cases[0]);
    tcase_add_loop_test(tc, test_import_hf, 0, n_cases);
    tcase_add_loop_test(tc, test_export_round_trip, 0, n_cases);
    tcase_add_test(tc, test_export_run_dir);
    tcase_add_test(tc, test_export_tokenizer);
    tcase_add_test(tc, test_export_tnl_hybrid);
    tcase_add_loop_test(tc, test_eval_logits, 0, n_cases);
    tcase_add_test(tc, test_eval_data);
    tcase_add_test(tc, test_eval_bad_data);
    tcase_add_test(tc, test_import_no_config);
    tcase_add_test(tc, test_import_bad_model_type);
    tcase_add_test(tc, test_import_bad_shape);
    tcase_add_test(tc, test_bad_commands);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
