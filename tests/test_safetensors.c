// tests/test_safetensors.c: safetensors reading and writing: round trips (F32, BF16),
// F16 files written by hand, every kind of corrupt file, and sharded checkpoints.
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/safetensors.h"
#include "testing.h"

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

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
    unsigned char *raw = (unsigned char *)test_read_file(path, &len);
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

static Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
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
    return s;
}

int main(void) {
    make_scratch_root("safetensors");
    return run_suite(safetensors_suite());
}
