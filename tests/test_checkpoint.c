// tests/test_checkpoint.c: safetensors reading/writing (round trips, F16, every kind of
// corrupt file, sharded checkpoints), model save/load for every family, and training
// checkpoints (DONE markers, latest, train state, pruning).
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/checkpoint.h"
#include "../model/safetensors.h"
#include "testing.h"

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

// A backend of plain host memory: the model code only needs alloc/upload/download here.
static void *host_alloc(size_t bytes) {
    return xcalloc(bytes, 1);
}
static void host_free(void *p) {
    free(p);
}
static void host_zero(void *p, size_t bytes) {
    memset(p, 0, bytes);
}
static void host_copy(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
}
static const Ops host_ops = {.name = "host",
                             .alloc = host_alloc,
                             .free = host_free,
                             .zero = host_zero,
                             .upload = host_copy,
                             .download = host_copy};

// ---------------------------------------------------------------------------------------
// Independent references for the 16-bit formats (ref_bf16 is in testing.h).

// IEEE half value from its fields, in double.
static double ref_f16(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    double v = exp == 0 ? ldexp(mant, -24) : exp == 31 ? INFINITY : ldexp(1024 + mant, exp - 25);
    return sign ? -v : v;
}

// Write a safetensors file by hand: u64 header length, header (space padded to 8), data.
static void write_raw(const char *path, const char *header, const void *data, size_t len) {
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    FILE *f = xfopen(path, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, hlen, f);
    for (size_t i = hlen; i < padded; i++) fputc(' ', f);
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

// ---------------------------------------------------------------------------------------
// safetensors

START_TEST(test_st_roundtrip_f32) {
    Rng rng = rng_seeded(11);
    char *dir = new_dir(), *path = path_in(dir, "a.safetensors");
    StWriteTensor ts[5] = {
        {"layer.weight", ST_F32, 2, {3, 5}, NULL}, {"bias", ST_F32, 1, {7}, NULL},
        {"scalar", ST_F32, 0, {0}, NULL},          {"empty", ST_F32, 2, {0, 4}, NULL},
        {"cube", ST_F32, 3, {2, 3, 4}, NULL},
    };
    long numel[5] = {15, 7, 1, 0, 24};
    float *data[5];
    for (int i = 0; i < 5; i++) ts[i].data = data[i] = rand_tensor(&rng, numel[i], 1.0f);
    const char *keys[] = {"format", "note"}, *values[] = {"pt", "a \"quoted\" value"};
    st_write(path, ts, 5, keys, values, 2);

    // Layout: u64 length multiple of 8, then exactly the data.
    size_t len;
    unsigned char *raw = (unsigned char *)read_file(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(len, 8 + hlen + 4 * (15 + 7 + 1 + 0 + 24));
    free(raw);

    SafeTensors *st = st_open(path);
    ck_assert_int_eq(st_count(st), 5);
    for (int i = 0; i < 5; i++) {
        const StTensor *t = st_find(st, ts[i].name);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->dtype, ST_F32);
        ck_assert_int_eq(t->ndim, ts[i].ndim);
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(t->shape[d], ts[i].shape[d]);
        ck_assert_int_eq(t->numel, numel[i]);
        float *back = xmalloc((size_t)(numel[i] + 1) * sizeof(float));
        st_read_f32(st, t, back);
        ck_assert_int_eq(memcmp(back, data[i], (size_t)numel[i] * sizeof(float)), 0);
        free(back);
        free(data[i]);
    }
    ck_assert_ptr_null(st_find(st, "nope"));
    ck_assert_str_eq(st_metadata(st, "format"), "pt");
    ck_assert_str_eq(st_metadata(st, "note"), "a \"quoted\" value");
    ck_assert_ptr_null(st_metadata(st, "missing"));
    st_close(st);
    ck_assert(!exists(path_in(dir, "a.safetensors.tmp")));
}
END_TEST

START_TEST(test_st_roundtrip_bf16) {
    Rng rng = rng_seeded(12);
    enum { N = 4096 };
    float *x = xmalloc(N * sizeof(float));
    for (int i = 0; i < N; i++) {
        x[i] = rng_normal(&rng) * powf(2.0f, (float)(int)(rng_next(&rng) % 40) - 20.0f);
    }
    // Exact ties: 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7 (odd): rounds down;
    // 1 + 3*2^-8 lies between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
    x[0] = 1.0f + 0x1p-8f;
    x[1] = 1.0f + 3 * 0x1p-8f;
    x[2] = -(1.0f + 0x1p-8f);
    x[3] = INFINITY;
    x[4] = NAN;
    x[5] = 1.0f + 0x1p-8f + 0x1p-20f; // just above the tie: up
    char *dir = new_dir(), *path = path_in(dir, "b.safetensors");
    StWriteTensor t = {"x", ST_BF16, 2, {64, 64}, x};
    st_write(path, &t, 1, NULL, NULL, 0);
    ck_assert_int_eq(file_size(path) % 2, 0);
    SafeTensors *st = st_open(path);
    const StTensor *r = st_find(st, "x");
    ck_assert_int_eq(r->dtype, ST_BF16);
    ck_assert_int_eq(r->nbytes, 2 * N);
    float *y = xmalloc(N * sizeof(float));
    st_read_f32(st, r, y);
    ck_assert_float_eq(y[0], 1.0f);
    ck_assert_float_eq(y[1], 1.0f + 0x1p-6f);
    ck_assert_float_eq(y[2], -1.0f);
    ck_assert(isinf(y[3]) && y[3] > 0);
    ck_assert(isnan(y[4]));
    ck_assert_float_eq(y[5], 1.0f + 0x1p-7f);
    for (int i = 6; i < N; i++) {
        ck_assert_msg(float_bits(y[i]) == float_bits(ref_bf16(x[i])), "x=%g got %g want %g",
                      (double)x[i], (double)y[i], (double)ref_bf16(x[i]));
        ck_assert(fabsf(y[i] - x[i]) <= 0x1p-8f * fabsf(x[i]));
    }
    st_close(st);
    free(x);
    free(y);
}
END_TEST

START_TEST(test_st_read_f16) {
    Rng rng = rng_seeded(13);
    enum { N = 1000 };
    uint16_t h[N];
    uint16_t special[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00};
    for (int i = 0; i < N; i++) {
        if (i < 9) {
            h[i] = special[i];
            continue;
        }
        do h[i] = (uint16_t)rng_next(&rng);
        while (((h[i] >> 10) & 31) == 31); // no inf/NaN among the random ones
    }
    char *dir = new_dir(), *path = path_in(dir, "h.safetensors");
    char header[256];
    snprintf(header, sizeof header,
             "{\"__metadata__\":{\"k\":\"v\"},\"h\":{\"dtype\":\"F16\",\"shape\":[10,100],"
             "\"data_offsets\":[0,%d]}}",
             2 * N);
    write_raw(path, header, h, sizeof h);
    SafeTensors *st = st_open(path);
    const StTensor *t = st_find(st, "h");
    ck_assert_int_eq(t->dtype, ST_F16);
    float y[N];
    st_read_f32(st, t, y);
    for (int i = 0; i < N; i++) {
        ck_assert_msg((double)y[i] == ref_f16(h[i]) && !signbit(y[i]) == !signbit(ref_f16(h[i])),
                      "half 0x%04x: got %g want %g", h[i], (double)y[i], ref_f16(h[i]));
    }
    ck_assert_str_eq(st_metadata(st, "k"), "v");
    st_close(st);
}
END_TEST

// Positive control for the hand-written files below: tensors listed out of offset order.
START_TEST(test_st_handmade_valid) {
    char *dir = new_dir(), *path = path_in(dir, "ok.safetensors");
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    write_raw(path,
              "{\"b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
              data, sizeof data);
    SafeTensors *st = st_open(path);
    ck_assert_int_eq(st_count(st), 2);
    float y[4];
    st_read_f32(st, st_find(st, "b"), y);
    ck_assert(y[0] == 5 && y[3] == 8);
    st_read_f32(st, st_find(st, "a"), y);
    ck_assert(y[0] == 1 && y[3] == 4);
    st_close(st);
}
END_TEST

// Each corrupt file below must make st_open die (exit status 1).
static void open_raw(const char *header, size_t data_len) {
    char *dir = new_dir(), *path = path_in(dir, "bad.safetensors");
    void *data = xcalloc(data_len + 1, 1);
    write_raw(path, header, data, data_len);
    st_open(path);
}

START_TEST(test_st_too_short) {
    char *dir = new_dir(), *path = path_in(dir, "short.safetensors");
    FILE *f = xfopen(path, "wb");
    fwrite("\x10\0\0\0\0", 1, 5, f);
    fclose(f);
    st_open(path);
}
END_TEST

START_TEST(test_st_truncated) {
    char *dir = new_dir(), *path = path_in(dir, "t.safetensors");
    float x[16] = {0};
    StWriteTensor t = {"x", ST_F32, 1, {16}, x};
    st_write(path, &t, 1, NULL, NULL, 0);
    ck_assert_int_eq(truncate(path, file_size(path) - 4), 0);
    st_open(path);
}
END_TEST

START_TEST(test_st_trailing_bytes) {
    open_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 20);
}
END_TEST

START_TEST(test_st_header_past_end) {
    char *dir = new_dir(), *path = path_in(dir, "p.safetensors");
    unsigned char buf[24] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    FILE *f = xfopen(path, "wb");
    fwrite(buf, 1, sizeof buf, f);
    fclose(f);
    st_open(path);
}
END_TEST

START_TEST(test_st_header_over_cap) {
    char *dir = new_dir(), *path = path_in(dir, "c.safetensors");
    unsigned char buf[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}'}; // 2^40
    FILE *f = xfopen(path, "wb");
    fwrite(buf, 1, sizeof buf, f);
    fclose(f);
    st_open(path);
}
END_TEST

START_TEST(test_st_bad_json) {
    open_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],", 16);
}
END_TEST

START_TEST(test_st_not_object) {
    open_raw("[1, 2, 3]", 0);
}
END_TEST

START_TEST(test_st_overlap) {
    open_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
             24);
}
END_TEST

START_TEST(test_st_gap) {
    open_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[20,36]}}",
             36);
}
END_TEST

START_TEST(test_st_size_mismatch) {
    open_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 12);
}
END_TEST

START_TEST(test_st_unsupported_dtype) {
    open_raw("{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
}
END_TEST

START_TEST(test_st_negative_shape) {
    open_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0);
}
END_TEST

START_TEST(test_st_duplicate_name) {
    open_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             8);
}
END_TEST

// Two shards and an index written by hand; `variant` 1 maps a tensor to the wrong shard,
// 2 leaves a shard tensor out of the index.
static char *write_sharded(int variant, float **a, float **b, float **c) {
    Rng rng = rng_seeded(14);
    char *dir = new_dir();
    *a = rand_tensor(&rng, 12, 1.0f);
    *b = rand_tensor(&rng, 5, 1.0f);
    *c = rand_tensor(&rng, 8, 1.0f);
    StWriteTensor s1[2] = {{"a", ST_F32, 2, {3, 4}, *a}, {"b", ST_F32, 1, {5}, *b}};
    StWriteTensor s2[1] = {{"c", ST_BF16, 2, {2, 4}, *c}};
    st_write(path_in(dir, "model-00001-of-00002.safetensors"), s1, 2, NULL, NULL, 0);
    st_write(path_in(dir, "model-00002-of-00002.safetensors"), s2, 1, NULL, NULL, 0);
    const char *c_shard = variant == 1 ? "1" : "2";
    char index[512];
    snprintf(index, sizeof index,
             "{\"metadata\":{\"total_size\":84},\"weight_map\":{"
             "\"a\":\"model-00001-of-00002.safetensors\",%s"
             "\"c\":\"model-0000%s-of-00002.safetensors\"}}",
             variant == 2 ? "" : "\"b\":\"model-00001-of-00002.safetensors\",", c_shard);
    FILE *f = xfopen(path_in(dir, "model.safetensors.index.json"), "w");
    fputs(index, f);
    fclose(f);
    return dir;
}

START_TEST(test_st_sharded) {
    float *a, *b, *c;
    char *dir = write_sharded(0, &a, &b, &c);
    for (int how = 0; how < 2; how++) {
        SafeTensors *st = st_open(how ? dir : path_in(dir, "model.safetensors.index.json"));
        ck_assert_int_eq(st_count(st), 3);
        float y[12];
        st_read_f32(st, st_find(st, "a"), y);
        ck_assert_int_eq(memcmp(y, a, sizeof(float) * 12), 0);
        st_read_f32(st, st_find(st, "b"), y);
        ck_assert_int_eq(memcmp(y, b, sizeof(float) * 5), 0);
        const StTensor *t = st_find(st, "c");
        ck_assert_int_eq(t->dtype, ST_BF16);
        ck_assert_int_eq(t->shape[0], 2);
        st_read_f32(st, t, y);
        for (int i = 0; i < 8; i++) ck_assert(float_bits(y[i]) == float_bits(ref_bf16(c[i])));
        st_close(st);
    }
}
END_TEST

START_TEST(test_st_sharded_wrong_shard) {
    float *a, *b, *c;
    st_open(write_sharded(1, &a, &b, &c));
}
END_TEST

START_TEST(test_st_sharded_unlisted) {
    float *a, *b, *c;
    st_open(write_sharded(2, &a, &b, &c));
}
END_TEST

// ---------------------------------------------------------------------------------------
// Models

typedef struct Case {
    Family family;
    const char *mixers;
    int n_layers, n_heads, n_kv_heads;
    bool tie;
} Case;

static const Case cases[] = {
    {FAMILY_TNL, "", 2, 2, 0, true},
    {FAMILY_GLA, "", 2, 2, 0, false},
    {FAMILY_LLAMA, "", 2, 4, 2, false},
    {FAMILY_LLAMA, "", 2, 4, 2, true},
    {FAMILY_TNL, "lightning*3,softmax", 4, 4, 2, false},
    {FAMILY_GLA, "gla,softmax", 4, 2, 1, true},
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
    Model *m = xcalloc(1, sizeof *m);
    m->cfg = *c;
    m->ops = &host_ops;
    model_build_params(m);
    m->weights = m->ops->alloc(m->n_weights * sizeof(float));
    Rng rng = rng_seeded(seed);
    for (size_t i = 0; i < m->n_weights; i++) m->weights[i] = rng_normal(&rng);
    return m;
}

static void free_model(Model *m) {
    free(m->weights);
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
    char *text = read_file(path_in(out16, "config.json"), NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"bfloat16\""));
    free_model(m);
    free_model(m2);
}
END_TEST

// The Hugging Face keys alone (bolt object removed) rebuild the same structure.
START_TEST(test_model_hf_keys) {
    const Case *k = &cases[_i];
    ModelConfig c = case_config(k);
    // TNL hybrids have no HF form; pure families and fla GLA hybrids do.
    if (k->family == FAMILY_TNL && k->mixers[0]) return;
    Model *m = new_model(&c, 7);
    char *dir = new_dir();
    model_save(m, dir, false, "byte");
    char *cfg_path = path_in(dir, "config.json");
    cJSON *j = cJSON_Parse(read_file(cfg_path, NULL));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "bolt"));
    cJSON_DeleteItemFromObject(j, "bolt");
    FILE *f = xfopen(cfg_path, "w");
    fputs(cJSON_Print(j), f);
    fclose(f);
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
    write_text(path_in(dir, "model.safetensors.index.json"), cJSON_Print(index));
    Model *m2 = new_model(&c, 22);
    model_load_weights(m2, dir);
    ck_assert_int_eq(memcmp(m2->weights, m->weights, m->n_weights * sizeof(float)), 0);
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
    v.s = (TrainState){step,
                       {3, 17, 123456789012LL},
                       0xDEADBEEFCAFEBABEULL ^ seed,
                       2,
                       1.2345678901234567e12 + (double)step};
    return v;
}

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
    ck_assert_int_eq(mkdir(path_in(out, "step_00000000"), 0755), 0); // incomplete: kept
    for (int step = 1; step <= 5; step++) {
        v.s.step = step;
        checkpoint_save(out, v.m, v.adam_m, v.adam_v, &v.s, "");
    }
    checkpoint_prune(out, 0); // keep all
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
    ck_assert(exists(path_in(out, "step_00000000")));
    char path[512];
    ck_assert(checkpoint_latest(out, path, sizeof path));
    ck_assert_str_eq(path, path_in(out, "step_00000005"));
    checkpoint_prune(out, 1);
    ck_assert(!exists(path_in(out, "step_00000004")));
    ck_assert(exists(path_in(out, "step_00000005")));
}
END_TEST

static Suite *checkpoint_suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, test_st_roundtrip_f32);
    tcase_add_test(tc, test_st_roundtrip_bf16);
    tcase_add_test(tc, test_st_read_f16);
    tcase_add_test(tc, test_st_handmade_valid);
    tcase_add_test(tc, test_st_sharded);
    tcase_add_exit_test(tc, test_st_too_short, 1);
    tcase_add_exit_test(tc, test_st_truncated, 1);
    tcase_add_exit_test(tc, test_st_trailing_bytes, 1);
    tcase_add_exit_test(tc, test_st_header_past_end, 1);
    tcase_add_exit_test(tc, test_st_header_over_cap, 1);
    tcase_add_exit_test(tc, test_st_bad_json, 1);
    tcase_add_exit_test(tc, test_st_not_object, 1);
    tcase_add_exit_test(tc, test_st_overlap, 1);
    tcase_add_exit_test(tc, test_st_gap, 1);
    tcase_add_exit_test(tc, test_st_size_mismatch, 1);
    tcase_add_exit_test(tc, test_st_unsupported_dtype, 1);
    tcase_add_exit_test(tc, test_st_negative_shape, 1);
    tcase_add_exit_test(tc, test_st_duplicate_name, 1);
    tcase_add_exit_test(tc, test_st_sharded_wrong_shard, 1);
    tcase_add_exit_test(tc, test_st_sharded_unlisted, 1);
    suite_add_tcase(s, tc);

    tc = tcase_create("model");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_model_roundtrip, 0, N_CASES);
    tcase_add_loop_test(tc, test_model_hf_keys, 0, N_CASES);
    tcase_add_test(tc, test_config_hf_llama);
    tcase_add_test(tc, test_load_sharded_model);
    tcase_add_exit_test(tc, test_config_missing_key, 1);
    tcase_add_exit_test(tc, test_config_bad_type, 1);
    tcase_add_exit_test(tc, test_load_wrong_shape, 1);
    tcase_add_exit_test(tc, test_load_missing_tensor, 1);
    tcase_add_exit_test(tc, test_load_extra_tensor, 1);
    suite_add_tcase(s, tc);

    tc = tcase_create("train");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ckpt_roundtrip);
    tcase_add_test(tc, test_ckpt_latest_needs_done);
    tcase_add_test(tc, test_ckpt_prune);
    tcase_add_exit_test(tc, test_ckpt_truncated_state, 1);
    tcase_add_exit_test(tc, test_ckpt_size_mismatch, 1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    make_scratch_root("checkpoint");
    SRunner *sr = srunner_create(checkpoint_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_scratch_root();
    return failed == 0 ? 0 : 1;
}
