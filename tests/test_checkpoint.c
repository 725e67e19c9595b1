// tests/test_checkpoint.c: model save/load for every family (Hugging Face keys, shapes,
// sharded weights) and training checkpoints (DONE markers, latest, train state, pruning).
// The safetensors format itself is tests/test_safetensors.c.
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../model/checkpoint.h"
#include "../model/safetensors.h"
#include "model_testing.h"

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

// ---------------------------------------------------------------------------------------
// Models

typedef struct Case {
    Family family;
    const char *mixers;
    int n_layers, n_heads, n_kv_heads;
    bool tie;
    LightningQk qk;
} Case;

static const Case cases[] = {
    {FAMILY_TNL, "", 2, 2, 0, true, LIGHTNING_QK_SILU},
    {FAMILY_GLA, "", 2, 2, 0, false, LIGHTNING_QK_SILU},
    {FAMILY_LLAMA, "", 2, 4, 2, false, LIGHTNING_QK_SILU},
    {FAMILY_LLAMA, "", 2, 4, 2, true, LIGHTNING_QK_SILU},
    {FAMILY_TNL, "lightning*3,softmax", 4, 4, 2, false, LIGHTNING_QK_SILU},
    {FAMILY_GLA, "gla,softmax", 4, 2, 1, true, LIGHTNING_QK_SILU},
    {FAMILY_LLAMA, "lightning,softmax", 2, 4, 2, false, LIGHTNING_QK_ROPE}, // a distilled student
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

// A small finalized config with non-default settings everywhere they can differ.
static ModelConfig case_config(const Case *k) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = k->family;
    c.vocab_size = 50;
    c.dim = 32;
    c.n_layers = k->n_layers;
    c.n_heads = k->n_heads;
    c.n_kv_heads = k->n_kv_heads;
    c.mlp_dim = 48;
    c.tie_embeddings = k->tie;
    c.norm_eps = 1e-5f;
    c.rope_theta = 500000.0f;
    c.decay = DECAY_MINIMAX;
    c.lightning_qk = k->qk;
    c.gate_low_rank = 8;
    c.gate_normalizer = 8.0f;
    c.attn_block = 32;
    c.doc_reset = true;
    c.eot_token = 7;
    model_config_finalize(&c, k->mixers);
    return c;
}

// A model on host memory with random weights.
static Model *new_model(const ModelConfig *c, uint64_t seed) {
    Model *m = test_owned(xcalloc(1, sizeof *m)); // reachable until the test ends
    model_create(m, c, cpu_backend());
    Rng rng = rng_seeded(seed);
    for (size_t i = 0; i < m->n_weights; i++) m->weights[i] = rng_normal(&rng);
    return m;
}

static void free_model(Model *m) {
    model_free(m);
    free(m);
}

// The fields a Hugging Face config carries (structure, norms, gates, RoPE, EOT).
static void assert_structure_equal(const ModelConfig *a, const ModelConfig *b) {
    ck_assert_int_eq(a->family, b->family);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->dim, b->dim);
    ck_assert_int_eq(a->n_layers, b->n_layers);
    ck_assert_int_eq(a->n_heads, b->n_heads);
    ck_assert_int_eq(a->n_kv_heads, b->n_kv_heads);
    ck_assert_int_eq(a->head_dim, b->head_dim);
    ck_assert_int_eq(a->mlp_dim, b->mlp_dim);
    ck_assert_int_eq(a->tie_embeddings, b->tie_embeddings);
    ck_assert_int_eq(a->eot_token, b->eot_token);
    for (int l = 0; l < a->n_layers; l++) ck_assert_int_eq(a->mixer[l], b->mixer[l]);
}

static void assert_config_equal(const ModelConfig *a, const ModelConfig *b) {
    assert_structure_equal(a, b);
    ck_assert(a->norm_eps == b->norm_eps);
    ck_assert(a->rope_theta == b->rope_theta);
    ck_assert_int_eq(a->decay, b->decay);
    ck_assert_int_eq(a->lightning_qk, b->lightning_qk);
    ck_assert_int_eq(a->gate_low_rank, b->gate_low_rank);
    ck_assert(a->gate_normalizer == b->gate_normalizer);
    ck_assert_int_eq(a->attn_block, b->attn_block);
    ck_assert_int_eq(a->doc_reset, b->doc_reset);
}

START_TEST(test_model_roundtrip) {
    ModelConfig c = case_config(&cases[_i]);
    Model *m = new_model(&c, 100 + (uint64_t)_i);
    char *dir = new_dir(), *out = path_in(dir, "model");
    model_save(m, out, false, "bpe:tok/tokenizer.json");
    ck_assert(exists(path_in(out, "config.json")) && exists(path_in(out, "model.safetensors")));
    ck_assert(!exists(path_in(out, "config.json.tmp")));

    ModelConfig back;
    char tok[64];
    model_config_load(&back, tok, sizeof tok, out);
    assert_config_equal(&c, &back);
    ck_assert_str_eq(tok, "bpe:tok/tokenizer.json");
    Model *m2 = new_model(&back, 999);
    ck_assert_int_eq(m2->n_params, m->n_params);
    ck_assert_uint_eq(m2->n_weights, m->n_weights);
    model_load_weights(m2, out);
    ck_assert_int_eq(memcmp(m2->weights, m->weights, m->n_weights * sizeof(float)), 0);

    // bf16: every weight is the nearest bf16 of the original.
    char *out16 = path_in(dir, "model16");
    model_save(m, out16, true, "");
    model_load_weights(m2, path_in(out16, "model.safetensors"));
    for (size_t i = 0; i < m->n_weights; i++) {
        ck_assert(float_bits(m2->weights[i]) == float_bits(ref_bf16(m->weights[i])));
    }
    char *text = test_read_file(path_in(out16, "config.json"), NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"bfloat16\""));
    free_model(m);
    free_model(m2);
}
END_TEST

// The Hugging Face keys alone (bolt object removed) rebuild the same structure.
// Any per-layer mixer layout survives save and load, also one with no short period
// (softmax at the prime layers of 200).
START_TEST(test_mixers_any_layout) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = FAMILY_TNL;
    c.vocab_size = 16;
    c.dim = 8;
    c.n_layers = 200;
    c.n_heads = 2;
    c.mlp_dim = 8;
    for (int l = 0; l < c.n_layers; l++) {
        bool prime = l >= 2;
        for (int d = 2; d * d <= l && prime; d++) prime = l % d != 0;
        c.mixer[l] = prime ? MIXER_SOFTMAX : MIXER_LIGHTNING;
    }
    model_config_check(&c);
    Model *m = new_model(&c, 1);
    char *dir = new_dir();
    model_save(m, dir, false, "byte");
    ModelConfig back;
    char tok[64];
    model_config_load(&back, tok, sizeof tok, dir);
    ck_assert_int_eq(back.n_layers, 200);
    ck_assert_mem_eq(back.mixer, c.mixer, 200 * sizeof(MixerKind));
    free_model(m);
}
END_TEST

START_TEST(test_model_hf_keys) {
    const Case *k = &cases[_i];
    ModelConfig c = case_config(k);
    // TNL hybrids and Llama layouts with linear layers (distilled students) have no HF
    // form; pure families and fla GLA hybrids do.
    if (k->family != FAMILY_GLA && k->mixers[0]) return;
    Model *m = new_model(&c, 7);
    char *dir = new_dir();
    model_save(m, dir, false, "byte");
    char *cfg_path = path_in(dir, "config.json");
    cJSON *j = cJSON_Parse(test_read_file(cfg_path, NULL));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "bolt"));
    cJSON_DeleteItemFromObject(j, "bolt");
    FILE *f = xfopen(cfg_path, "w");
    char *printed = cJSON_Print(j);
    fputs(printed, f);
    fclose(f);
    free(printed);
    cJSON_Delete(j);
    ModelConfig back;
    char tok[16];
    model_config_load(&back, tok, sizeof tok, dir);
    assert_structure_equal(&c, &back);
    ck_assert_str_eq(tok, "");
    ck_assert(back.norm_eps == c.norm_eps || k->family == FAMILY_TNL);
    if (k->family == FAMILY_GLA) {
        ck_assert_int_eq(back.gate_low_rank, c.gate_low_rank);
        ck_assert(back.gate_normalizer == c.gate_normalizer);
    }
    if (k->family == FAMILY_LLAMA || k->mixers[0]) ck_assert(back.rope_theta == c.rope_theta);
    Model *m2 = new_model(&back, 8);
    model_load_weights(m2, dir);
    ck_assert_int_eq(memcmp(m2->weights, m->weights, m->n_weights * sizeof(float)), 0);
    free_model(m);
    free_model(m2);
}
END_TEST

// An imported transformers config: rope_theta under rope_parameters, eos as a list.
START_TEST(test_config_hf_llama) {
    char *dir = new_dir();
    write_text(path_in(dir, "config.json"),
               "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
               "\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":1,"
               "\"rms_norm_eps\":1e-05,\"rope_parameters\":{\"rope_theta\":500000.0,"
               "\"rope_type\":\"default\"},\"vocab_size\":100,\"tie_word_embeddings\":true,"
               "\"eos_token_id\":[5,6],\"head_dim\":null,\"hidden_act\":\"silu\"}");
    ModelConfig c;
    char tok[8];
    model_config_load(&c, tok, sizeof tok, dir);
    ck_assert_int_eq(c.family, FAMILY_LLAMA);
    ck_assert_int_eq(c.dim, 64);
    ck_assert_int_eq(c.mlp_dim, 128);
    ck_assert_int_eq(c.n_layers, 3);
    ck_assert_int_eq(c.n_heads, 4);
    ck_assert_int_eq(c.n_kv_heads, 1);
    ck_assert_int_eq(c.head_dim, 16);
    ck_assert(c.rope_theta == 500000.0f);
    ck_assert(c.norm_eps == 1e-5f);
    ck_assert(c.tie_embeddings);
    ck_assert_int_eq(c.eot_token, 5);
    for (int l = 0; l < 3; l++) ck_assert_int_eq(c.mixer[l], MIXER_SOFTMAX);
}
END_TEST

START_TEST(test_config_missing_key) {
    char *dir = new_dir();
    write_text(path_in(dir, "config.json"),
               "{\"model_type\":\"llama\",\"intermediate_size\":128,\"num_hidden_layers\":3,"
               "\"num_attention_heads\":4,\"vocab_size\":100}");
    ModelConfig c;
    char tok[8];
    model_config_load(&c, tok, sizeof tok, dir);
}
END_TEST

START_TEST(test_config_bad_type) {
    char *dir = new_dir();
    write_text(path_in(dir, "config.json"),
               "{\"model_type\":\"gla\",\"hidden_size\":\"64\",\"num_hidden_layers\":3,"
               "\"num_heads\":4,\"vocab_size\":100}");
    ModelConfig c;
    char tok[8];
    model_config_load(&c, tok, sizeof tok, dir);
}
END_TEST

// Save with `a`, load into a model built from `b`: must die.
static void load_mismatched(const Case *a, const Case *b, int mlp_b) {
    ModelConfig ca = case_config(a), cb = case_config(b);
    if (mlp_b) cb.mlp_dim = mlp_b;
    Model *m = new_model(&ca, 1), *m2 = new_model(&cb, 2);
    char *dir = new_dir();
    model_save(m, dir, false, "");
    model_load_weights(m2, dir);
}

START_TEST(test_load_wrong_shape) {
    load_mismatched(&cases[2], &cases[2], 64);
}
END_TEST
START_TEST(test_load_missing_tensor) {
    load_mismatched(&cases[3], &cases[2], 0);
} // tied->untied
END_TEST
START_TEST(test_load_extra_tensor) {
    load_mismatched(&cases[2], &cases[3], 0);
} // untied->tied
END_TEST

// model_load of dir (in a child: see load_in_child).
static void load_model_dir(const char *dir) {
    Model m;
    char tok[64];
    model_load(&m, dir, cpu_backend(), tok, sizeof tok);
}

// model_load of dir in a child process, its stderr into err[cap]; returns the wait status.
static int load_in_child(const char *dir, char *err, size_t cap) {
    return capture_stderr(load_model_dir, dir, err, cap);
}

// A config.json that claims a model of 2^31 - 1 tokens x 2^20 dims (16 PiB of weights)
// next to the weights of a small one: loading it must die on the tensor shapes, before
// anything of the claimed size is allocated (not "out of memory").
START_TEST(test_load_config_larger_than_weights) {
    ModelConfig c = case_config(&cases[2]);
    Model *m = new_model(&c, 5);
    char *dir = new_dir();
    model_save(m, dir, false, "");
    write_text(path_in(dir, "config.json"),
               "{\"model_type\":\"llama\",\"hidden_size\":1048576,\"intermediate_size\":"
               "1048576,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
               "\"num_key_value_heads\":2,\"vocab_size\":2147483647}");
    char err[1024];
    int status = load_in_child(dir, err, sizeof err);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(err, dir) && strstr(err, "but the model expects"), "got: %s", err);
    free_model(m);
}
END_TEST

// A config.json whose attention width, 65536 heads x 65536 dims, overflows an int (to 0)
// next to a weights file of the shapes that overflow makes (q_proj [0, 2], ...): loading
// must die on the config, not accept a model whose buffers are sized from 2^32 rows.
START_TEST(test_load_config_width_overflow) {
    char *dir = new_dir();
    write_text(path_in(dir, "config.json"),
               "{\"model_type\":\"llama\",\"hidden_size\":2,\"intermediate_size\":2,"
               "\"num_hidden_layers\":1,\"num_attention_heads\":65536,"
               "\"num_key_value_heads\":65536,\"head_dim\":65536,\"vocab_size\":4,"
               "\"tie_word_embeddings\":true}");
    static const float zero[8];
    StWriteTensor ts[] = {
        {"model.embed_tokens.weight", ST_F32, 2, {4, 2}, zero},
        {"model.layers.0.input_layernorm.weight", ST_F32, 1, {2}, zero},
        {"model.layers.0.self_attn.q_proj.weight", ST_F32, 2, {0, 2}, zero},
        {"model.layers.0.self_attn.k_proj.weight", ST_F32, 2, {0, 2}, zero},
        {"model.layers.0.self_attn.v_proj.weight", ST_F32, 2, {0, 2}, zero},
        {"model.layers.0.self_attn.o_proj.weight", ST_F32, 1, {2}, zero},
        {"model.layers.0.post_attention_layernorm.weight", ST_F32, 1, {2}, zero},
        {"model.layers.0.mlp.gate_proj.weight", ST_F32, 2, {2, 2}, zero},
        {"model.layers.0.mlp.up_proj.weight", ST_F32, 2, {2, 2}, zero},
        {"model.layers.0.mlp.down_proj.weight", ST_F32, 2, {2, 2}, zero},
        {"model.norm.weight", ST_F32, 1, {2}, zero},
    };
    st_write(path_in(dir, "model.safetensors"), ts, sizeof ts / sizeof ts[0], NULL, NULL, 0);
    char err[1024];
    int status = load_in_child(dir, err, sizeof err);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(err, "config.json") && strstr(err, "model too wide"), "got: %s", err);
}
END_TEST

// A model split over two shards with an index loads exactly.
START_TEST(test_load_sharded_model) {
    ModelConfig c = case_config(&cases[1]);
    Model *m = new_model(&c, 21);
    char *dir = new_dir();
    StWriteTensor *ts = xcalloc((size_t)m->n_params, sizeof *ts);
    cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
    int half = m->n_params / 2;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        ts[i] = (StWriteTensor){
            p->name, ST_F32, p->ndim, {p->shape[0], p->shape[1]}, m->weights + p->offset};
        cJSON_AddStringToObject(map, p->name, i < half ? "s1.safetensors" : "s2.safetensors");
    }
    st_write(path_in(dir, "s1.safetensors"), ts, half, NULL, NULL, 0);
    st_write(path_in(dir, "s2.safetensors"), ts + half, m->n_params - half, NULL, NULL, 0);
    char *printed = cJSON_Print(index);
    write_text(path_in(dir, "model.safetensors.index.json"), printed);
    free(printed);
    Model *m2 = new_model(&c, 22);
    model_load_weights(m2, dir);
    ck_assert_int_eq(memcmp(m2->weights, m->weights, m->n_weights * sizeof(float)), 0);
    cJSON_Delete(index);
    free(ts);
}
END_TEST

// ---------------------------------------------------------------------------------------
// Training checkpoints

typedef struct Saved {
    Model *m;
    float *adam_m, *adam_v;
    TrainState s;
} Saved;

static Saved make_state(int case_index, int64_t step, uint64_t seed) {
    Saved v;
    ModelConfig c = case_config(&cases[case_index]);
    v.m = new_model(&c, seed);
    Rng rng = rng_seeded(seed + 1);
    v.adam_m = rand_tensor(&rng, (long)v.m->n_weights, 0.1f);
    v.adam_v = rand_tensor(&rng, (long)v.m->n_weights, 0.01f);
    for (size_t i = 0; i < v.m->n_weights; i++) v.adam_v[i] = fabsf(v.adam_v[i]); // squares
    v.s = (TrainState){step,
                       {3, 17, 123456789012LL},
                       0xDEADBEEFCAFEBABEULL ^ seed,
                       2,
                       1.2345678901234567e12 + (double)step};
    return v;
}

// A model holding a non-finite weight is never written as a checkpoint (it would become
// the one a resume trusts): the save stops naming the tensor.
START_TEST(test_ckpt_refuses_poisoned) {
    char *out = new_dir();
    Saved v = make_state(0, 7, 3);
    v.m->weights[v.m->params[1].offset + 2] = NAN;
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "byte");
}
END_TEST

START_TEST(test_ckpt_roundtrip) {
    char *out = new_dir();
    char path[512];
    ck_assert(!checkpoint_latest(out, path, sizeof path));
    ck_assert(!checkpoint_latest(path_in(out, "nonexistent"), path, sizeof path));
    Saved v = make_state(1, 1234, 5);
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "byte");
    ck_assert(checkpoint_latest(out, path, sizeof path));
    ck_assert_str_eq(path, path_in(out, "step_00001234"));
    ck_assert(exists(path_in(path, "DONE")));
    ck_assert(!exists(path_in(path, "train_state.safetensors.tmp")));

    ModelConfig c;
    char tok[16];
    model_config_load(&c, tok, sizeof tok, path);
    assert_config_equal(&v.m->cfg, &c);
    ck_assert_str_eq(tok, "byte");
    Model *m2 = new_model(&c, 77);
    model_load_weights(m2, path);
    ck_assert_int_eq(memcmp(m2->weights, v.m->weights, v.m->n_weights * sizeof(float)), 0);
    float *am = zeros((long)v.m->n_weights), *av = zeros((long)v.m->n_weights);
    TrainState s;
    checkpoint_load_train_state(path, m2, am, av, &s);
    ck_assert_int_eq(memcmp(am, v.adam_m, v.m->n_weights * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(av, v.adam_v, v.m->n_weights * sizeof(float)), 0);
    ck_assert_int_eq(s.step, 1234);
    ck_assert_int_eq(s.loader.epoch, 3);
    ck_assert_int_eq(s.loader.shard, 17);
    ck_assert_int_eq(s.loader.window, 123456789012LL);
    ck_assert(s.rng == v.s.rng);
    ck_assert_int_eq(s.bad_steps, 2);
    ck_assert(s.tokens_seen == v.s.tokens_seen);

    // Saving the same step again replaces it and stays complete.
    v.s.bad_steps = 5;
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "byte");
    checkpoint_load_train_state(path, m2, am, av, &s);
    ck_assert_int_eq(s.bad_steps, 5);
}
END_TEST

START_TEST(test_ckpt_latest_needs_done) {
    char *out = new_dir();
    Saved v = make_state(0, 5, 1);
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    v.s.step = 10;
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    char path[512];
    ck_assert(checkpoint_latest(out, path, sizeof path));
    ck_assert_str_eq(path, path_in(out, "step_00000010"));
    // A newer step directory without DONE (a crash mid-save) and look-alikes are ignored.
    v.s.step = 20;
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    ck_assert_int_eq(unlink(path_in(path_in(out, "step_00000020"), "DONE")), 0);
    ck_assert_int_eq(mkdir(path_in(out, "step_00000030.tmp"), 0755), 0);
    ck_assert_int_eq(mkdir(path_in(out, "step_x40"), 0755), 0);
    ck_assert(checkpoint_latest(out, path, sizeof path));
    ck_assert_str_eq(path, path_in(out, "step_00000010"));
}
END_TEST

START_TEST(test_ckpt_truncated_state) {
    char *out = new_dir();
    Saved v = make_state(2, 3, 2);
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    char *dir = path_in(out, "step_00000003"), *ts = path_in(dir, "train_state.safetensors");
    ck_assert_int_eq(truncate(ts, file_size(ts) - 100), 0);
    TrainState s;
    checkpoint_load_train_state(dir, v.m, v.adam_m, v.adam_v, &s);
}
END_TEST

START_TEST(test_ckpt_size_mismatch) {
    char *out = new_dir();
    Saved v = make_state(2, 3, 2), w = make_state(4, 3, 3);
    ck_assert_uint_ne(v.m->n_weights, w.m->n_weights);
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    TrainState s;
    float *big = zeros((long)(v.m->n_weights + w.m->n_weights));
    checkpoint_load_train_state(path_in(out, "step_00000003"), w.m, big, big, &s);
}
END_TEST

START_TEST(test_ckpt_prune) {
    char *out = new_dir();
    Saved v = make_state(0, 0, 4);
    // Incomplete (no DONE, as a kill mid-save or mid-prune leaves it): pruned.
    ck_assert_int_eq(mkdir(path_in(out, "step_00000000"), 0755), 0);
    write_bytes(path_in(path_in(out, "step_00000000"), "model.safetensors"), "x", 1);
    for (int step = 1; step <= 5; step++) {
        v.s.step = step;
        checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    }
    checkpoint_prune(out, 0); // keep all complete ones
    ck_assert_msg(!exists(path_in(out, "step_00000000")), "incomplete step directory kept");
    for (int step = 1; step <= 5; step++) {
        char name[32];
        snprintf(name, sizeof name, "step_%08d", step);
        ck_assert(exists(path_in(out, name)));
    }
    checkpoint_prune(out, 2);
    for (int step = 1; step <= 5; step++) {
        char name[32];
        snprintf(name, sizeof name, "step_%08d", step);
        ck_assert_msg(exists(path_in(out, name)) == (step >= 4), "step %d", step);
    }
    char path[512];
    ck_assert(checkpoint_latest(out, path, sizeof path));
    ck_assert_str_eq(path, path_in(out, "step_00000005"));
    checkpoint_prune(out, 1);
    ck_assert(!exists(path_in(out, "step_00000004")));
    ck_assert(exists(path_in(out, "step_00000005")));
}
END_TEST

// checkpoint_save in a child process (its failure ends in die); true if it succeeded.
static bool save_in_child(const char *out, const Saved *v) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        fclose(stderr); // the expected "not saved" message
        checkpoint_save(out, v->m, v->adam_m, v->adam_v, &v->s, "");
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Pruning never removes the newest checkpoint whose weights are finite: a save of NaN
// weights (a new step, or over the newest good one) is refused before it touches any step
// directory, so the prune that follows a save keeps the last good checkpoint, which loads.
START_TEST(test_ckpt_prune_keeps_newest_finite) {
    char *out = new_dir();
    Saved v = make_state(0, 1, 6);
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    v.s.step = 2;
    checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    float *good = copy_tensor(v.m->weights, (long)v.m->n_weights);
    v.m->weights[v.m->n_weights - 1] = NAN;
    v.s.step = 3;
    ck_assert_msg(!save_in_child(out, &v), "a NaN model was saved as a new step");
    v.s.step = 2;
    ck_assert_msg(!save_in_child(out, &v), "a NaN model replaced the newest good step");
    checkpoint_prune(out, 1);
    char path[512];
    ck_assert(checkpoint_latest(out, path, sizeof path));
    ck_assert_str_eq(path, path_in(out, "step_00000002"));
    ck_assert(!exists(path_in(out, "step_00000003")));
    ck_assert(!exists(path_in(out, "step_00000001")));
    model_load_weights(v.m, path); // dies on a non-finite weight
    ck_assert_int_eq(memcmp(v.m->weights, good, v.m->n_weights * sizeof(float)), 0);
    free(good);
}
END_TEST

static Suite *checkpoint_suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_model_roundtrip, 0, N_CASES);
    tcase_add_loop_test(tc, test_model_hf_keys, 0, N_CASES);
    tcase_add_test(tc, test_config_hf_llama);
    tcase_add_test(tc, test_mixers_any_layout);
    tcase_add_test(tc, test_load_sharded_model);
    tcase_add_exit_test(tc, test_config_missing_key, 1);
    tcase_add_exit_test(tc, test_config_bad_type, 1);
    tcase_add_exit_test(tc, test_load_wrong_shape, 1);
    tcase_add_exit_test(tc, test_load_missing_tensor, 1);
    tcase_add_exit_test(tc, test_load_extra_tensor, 1);
    tcase_add_test(tc, test_load_config_larger_than_weights);
    tcase_add_test(tc, test_load_config_width_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("train");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ckpt_roundtrip);
    tcase_add_exit_test(tc, test_ckpt_refuses_poisoned, 1);
    tcase_add_test(tc, test_ckpt_latest_needs_done);
    tcase_add_test(tc, test_ckpt_prune);
    tcase_add_test(tc, test_ckpt_prune_keeps_newest_finite);
    tcase_add_exit_test(tc, test_ckpt_truncated_state, 1);
    tcase_add_exit_test(tc, test_ckpt_size_mismatch, 1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    make_scratch_root("checkpoint");
    return run_suite(checkpoint_suite());
}
