// tests/test_data.c: shards (uint16/uint32/zstd, validation, 64-bit sizes), the zstd
// stream reader and the byte tokenizer (the loader is in tests/test_loader.c, `bolt prep`
// in tests/test_prep.c).
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../data/zstream.h"
#include "shard_testing.h"

// Little-endian int32 i of a byte buffer (independent of the code under test).
static int32_t le_int32(const char *buf, int i) {
    const unsigned char *b = (const unsigned char *)buf + 4 * i;
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24);
}

// ---------------------------------------------------------------------------------------
// Shards

// Write, check the raw bytes against llm.c's layout, read back.
static void roundtrip(const char *dir, const char *name, uint32_t limit, bool force_wide,
                      int want_width) {
    Rng rng = rng_seeded(11);
    int64_t n = 70001;
    uint32_t *tok = random_tokens(&rng, n, limit);
    if (limit > 65536) tok[n / 2] = 65536 + (uint32_t)(rng_next(&rng) % (limit - 65536));
    char *path = path_in(dir, name);
    shard_write(path, tok, n, force_wide, false);
    size_t len;
    char *raw = test_read_file(path, &len);
    ck_assert_uint_eq(len, 1024 + (size_t)want_width * (size_t)n);
    ck_assert_int_eq(le_int32(raw, 0), want_width == 2 ? 20240520 : 20240801);
    ck_assert_int_eq(le_int32(raw, 1), want_width == 2 ? 1 : 7);
    ck_assert_int_eq(le_int32(raw, 2), n);
    for (int i = 3; i < 256; i++) ck_assert_int_eq(le_int32(raw, i), 0);
    for (int64_t i = 0; i < n; i += 997) {
        const unsigned char *b = (const unsigned char *)raw + 1024 + want_width * i;
        uint32_t v = b[0] | (uint32_t)b[1] << 8;
        if (want_width == 4) v |= (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        ck_assert_uint_eq(v, tok[i]);
    }
    int64_t m;
    uint32_t *back = shard_read(path, &m);
    ck_assert_int_eq(m, n);
    ck_assert(memcmp(back, tok, (size_t)n * 4) == 0);
    int width;
    ck_assert_int_eq(shard_peek(path, &width), n);
    ck_assert_int_eq(width, want_width);
    free(raw);
    free(back);
    free(tok);
    free(path);
}

START_TEST(test_shard_uint16) {
    roundtrip(new_dir(), "a.bin", 65536, false, 2);
}
END_TEST

START_TEST(test_shard_uint32) {
    const char *dir = new_dir();
    roundtrip(dir, "wide.bin", 200000, false, 4);
    roundtrip(dir, "forced.bin", 300, true, 4);
}
END_TEST

START_TEST(test_shard_empty) {
    const char *dir = new_dir();
    char *path = path_in(dir, "empty.bin");
    shard_write(path, NULL, 0, false, false);
    ck_assert_int_eq(file_size(path), 1024);
    int64_t n = -1;
    free(shard_read(path, &n));
    ck_assert_int_eq(n, 0);
    free(path);
}
END_TEST

// The .zst file decompresses (with zstd's one-shot API) to exactly the plain shard's bytes,
// and reads back to the same tokens, for both widths.
START_TEST(test_shard_zstd) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(12);
    for (int wide = 0; wide < 2; wide++) {
        int64_t n = 50000;
        uint32_t *tok = random_tokens(&rng, n, wide ? 100000 : 300);
        char *plain = path_in(dir, "z.bin"), *packed = path_in(dir, "z.bin.zst");
        shard_write(plain, tok, n, false, false);
        shard_write(packed, tok, n, false, true);
        size_t plain_len, packed_len;
        char *plain_bytes = test_read_file(plain, &plain_len);
        char *packed_bytes = test_read_file(packed, &packed_len);
        ck_assert_uint_eq((unsigned char)packed_bytes[0], 0x28); // zstd frame magic
        ck_assert_uint_eq((unsigned char)packed_bytes[3], 0xFD);
        char *out = xmalloc(plain_len);
        size_t got = ZSTD_decompress(out, plain_len, packed_bytes, packed_len);
        ck_assert(!ZSTD_isError(got));
        ck_assert_uint_eq(got, plain_len);
        ck_assert(memcmp(out, plain_bytes, plain_len) == 0);
        int64_t m;
        uint32_t *back = shard_read(packed, &m);
        ck_assert_int_eq(m, n);
        ck_assert(memcmp(back, tok, (size_t)n * 4) == 0);
        free(back);
        free(out);
        free(plain_bytes);
        free(packed_bytes);
        free(plain);
        free(packed);
        free(tok);
    }
}
END_TEST

START_TEST(test_shard_zstd_streamed_frames) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(13);
    int64_t n = 300000;
    uint32_t *tok = random_tokens(&rng, n, 50000);
    char *plain = path_in(dir, "s.bin"), *packed = path_in(dir, "s.bin.zst");
    shard_write(plain, tok, n, false, false);
    size_t len;
    char *bytes = test_read_file(plain, &len);
    write_two_frames(packed, bytes, len);
    int64_t m;
    uint32_t *back = shard_read(packed, &m);
    ck_assert_int_eq(m, n);
    ck_assert(memcmp(back, tok, (size_t)n * 4) == 0);
    free(back);
    free(bytes);
    free(tok);
    free(plain);
    free(packed);
}
END_TEST

// zstream: random bytes read back in chunks of random sizes, from a plain file and from a
// two-frame .zst file, are the bytes written; the file bytes read end at the file's size.
START_TEST(test_zstream_chunks) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(15);
    size_t n = 400000;
    char *src = xmalloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (char)(rng_next(&rng) % 7); // compressible
    char *plain = path_in(dir, "b.raw"), *packed = path_in(dir, "b.raw.zst");
    write_bytes(plain, src, n);
    write_two_frames(packed, src, n);
    const char *paths[2] = {plain, packed};
    char *back = xmalloc(n + 1);
    for (int k = 0; k < 2; k++) {
        ZStream *z = zstream_open(paths[k]);
        ck_assert(zstream_is_zstd(z) == (k == 1));
        size_t got = 0;
        for (;;) {
            size_t want = 1 + (size_t)(rng_next(&rng) % 70000);
            if (want > n + 1 - got) want = n + 1 - got;
            size_t part = zstream_read(z, back + got, want);
            got += part;
            if (part < want) break; // short only at the end
        }
        ck_assert_uint_eq(got, n);
        ck_assert(memcmp(back, src, n) == 0);
        ck_assert_int_eq(zstream_read(z, back, 16), 0);
        ck_assert_int_eq(zstream_file_bytes_read(z), file_size(paths[k]));
        ck_assert_int_eq(zstream_file_size(z), file_size(paths[k]));
        zstream_close(z);
    }
    free(back);
    free(src);
    free(plain);
    free(packed);
}
END_TEST

// A .zst stream cut short dies in zstream_skip_rest (exit 1).
START_TEST(test_zstream_truncated) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(16);
    size_t n = 100000;
    char *src = xmalloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (char)(rng_next(&rng) % 5);
    char *packed = path_in(dir, "c.zst");
    write_two_frames(packed, src, n);
    ck_assert_int_eq(truncate(packed, file_size(packed) - 7), 0);
    ZStream *z = zstream_open(packed);
    zstream_skip_rest(z);
}
END_TEST

static void cut_to_500(char **b, size_t *len) {
    (void)b, *len = 500;
}
static void cut_half(char **b, size_t *len) {
    (void)b, *len /= 2;
}
static void bad_magic(char **b, size_t *len) {
    (void)len, (*b)[0] ^= 0x5A;
}
static void bad_version(char **b, size_t *len) {
    (void)len, (*b)[4] = 3;
}
static void flip_middle(char **b, size_t *len) {
    for (size_t i = *len / 2; i < *len / 2 + 8; i++) (*b)[i] ^= 0xFF;
}
static void append_garbage(char **b, size_t *len) {
    for (int i = 0; i < 16; i++) (*b)[(*len)++] = (char)(i * 37 + 1);
}

// Edit a good shard, then read it: every case must die.
static void read_broken(const char *name, bool zstd, void (*fn)(char **, size_t *)) {
    char *path = good_shard(new_dir(), name, zstd);
    edit_file(path, fn);
    int64_t n;
    shard_read(path, &n);
}

START_TEST(test_shard_too_short) {
    read_broken("s.bin", false, cut_to_500);
}
END_TEST
START_TEST(test_shard_truncated_tokens) {
    read_broken("s.bin", false, cut_half);
}
END_TEST
START_TEST(test_shard_wrong_magic) {
    read_broken("s.bin", false, bad_magic);
}
END_TEST
START_TEST(test_shard_wrong_version) {
    read_broken("s.bin", false, bad_version);
}
END_TEST
START_TEST(test_shard_size_mismatch) {
    read_broken("s.bin", false, append_byte);
}
END_TEST
START_TEST(test_shard_zstd_truncated) {
    read_broken("s.bin.zst", true, cut_half);
}
END_TEST
START_TEST(test_shard_zstd_corrupt) {
    read_broken("s.bin.zst", true, flip_middle);
}
END_TEST
START_TEST(test_shard_zstd_trailing_garbage) {
    read_broken("s.bin.zst", true, append_garbage);
}
END_TEST

// A .zst whose decompressed bytes are one too many: the size check still applies.
START_TEST(test_shard_zstd_size_mismatch) {
    const char *dir = new_dir();
    char *plain = good_shard(dir, "p.bin", false);
    edit_file(plain, append_byte);
    size_t len;
    char *bytes = test_read_file(plain, &len);
    char *packed = path_in(dir, "p.bin.zst");
    write_two_frames(packed, bytes, len);
    int64_t n;
    shard_read(packed, &n);
}
END_TEST

// 64-bit sizes: expected values are worked out by hand.
START_TEST(test_shard_64bit_arithmetic) {
    ck_assert_int_eq(shard_file_bytes(3000000000LL, 2), 6000001024LL);
    ck_assert_int_eq(shard_file_bytes(5000000000LL, 4), 20000001024LL);
    int32_t h[SHARD_HEADER_INTS];
    int width;
    shard_header_encode(h, 5000000000LL, 4); // 5e9 = 1 * 2^32 + 705032704
    ck_assert_int_eq(h[0], 20240801);
    ck_assert_int_eq(h[1], 7);
    ck_assert_int_eq(h[2], 705032704);
    ck_assert_int_eq(h[3], 1);
    ck_assert_int_eq(shard_header_decode(h, "x", &width), 5000000000LL);
    ck_assert_int_eq(width, 4);
    shard_header_encode(h, 3000000000LL, 2); // above INT32_MAX, below 2^32
    ck_assert_int_eq(h[2], -1294967296);
    ck_assert_int_eq(h[3], 0);
    ck_assert_int_eq(shard_header_decode(h, "x", &width), 3000000000LL);
    ck_assert_int_eq(width, 2);
    shard_header_encode(h, 123456, 2); // small shards: llm.c's exact header
    ck_assert_int_eq(h[2], 123456);
    for (int i = 3; i < SHARD_HEADER_INTS; i++) ck_assert_int_eq(h[i], 0);
}
END_TEST

// A sparse 6 GB file with a 3e9-token uint16 header: its size validates (or not) without
// the tokens ever being written or read.
static char *sparse_shard(int64_t extra) {
    const char *dir = new_dir();
    char *path = path_in(dir, "huge.bin");
    int32_t h[SHARD_HEADER_INTS];
    shard_header_encode(h, 3000000000LL, 2);
    write_bytes(path, h, sizeof h);
    ck_assert_int_eq(truncate(path, (off_t)6000001024LL + extra), 0);
    return path;
}

START_TEST(test_shard_sparse_huge_peek) {
    char *path = sparse_shard(0);
    int width;
    ck_assert_int_eq(shard_peek(path, &width), 3000000000LL);
    ck_assert_int_eq(width, 2);
    free(path);
}
END_TEST

START_TEST(test_shard_sparse_huge_mismatch) {
    char *path = sparse_shard(1);
    int width;
    shard_peek(path, &width);
}
END_TEST

static void read_shard_path(const char *path) {
    int64_t n;
    free(shard_read(path, &n));
}

// A .zst shard whose header claims 2^40 uint32 tokens (4 TiB) but holds 1000: reading it
// must end in the size-mismatch error, not in an attempt to allocate what the header says
// (which dies "out of memory", or is granted by overcommit and then runs the host out).
START_TEST(test_shard_zstd_huge_header) {
    const char *dir = new_dir();
    char *plain = good_shard(dir, "h.bin", false);
    size_t len;
    char *bytes = test_read_file(plain, &len);
    const int64_t claimed = (int64_t)1 << 40;
    for (int i = 0; i < 4; i++) {
        bytes[8 + i] = (char)((claimed >> (8 * i)) & 0xFF);       // low half of the count
        bytes[12 + i] = (char)((claimed >> (32 + 8 * i)) & 0xFF); // high half
    }
    char *packed = path_in(dir, "h.bin.zst");
    write_two_frames(packed, bytes, len);
    char msg[1024];
    int status = capture_stderr(read_shard_path, packed, msg, sizeof msg);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(msg, "size mismatch") && strstr(msg, "h.bin.zst"), "got: %s", msg);
    free(bytes);
    free(plain);
    free(packed);
}
END_TEST

// ---------------------------------------------------------------------------------------
// Byte tokenizer

START_TEST(test_byte_tokenizer) {
    Tokenizer t = tokenizer_load("byte");
    ck_assert_int_eq(t.vocab_size, 256);
    ck_assert_int_eq(t.eot, 0);
    // Empty text into no buffer yet (an empty ending of a jsonl eval set): nothing happens
    // (it used to add 0 to a NULL pointer, which UBSan reports).
    uint32_t *none = NULL;
    size_t n_none = 0, cap_none = 0;
    tokenizer_encode(&t, "", 0, &none, &n_none, &cap_none);
    ck_assert(none == NULL && n_none == 0 && cap_none == 0);
    Rng rng = rng_seeded(21);
    size_t len = 5000;
    char *text = xmalloc(len);
    for (size_t i = 0; i < len; i++) text[i] = (char)(rng_next(&rng) % 256);
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    tokenizer_encode(&t, text, len, &ids, &n, &cap);
    size_t k = 0; // ids are the bytes, NULs dropped
    for (size_t i = 0; i < len; i++)
        if (text[i] != 0) ck_assert_uint_eq(ids[k++], (unsigned char)text[i]);
    ck_assert_uint_eq(n, k);
    ids = xrealloc(ids, (n + 1) * sizeof(uint32_t)); // an EOT, then append more
    cap = n + 1;
    ids[n++] = 0;
    tokenizer_encode(&t, "ab", 2, &ids, &n, &cap);
    ck_assert_uint_eq(n, k + 3);
    ck_assert_uint_eq(ids[k + 1], 'a');
    size_t out_len;
    char *out = tokenizer_decode(&t, ids, n, &out_len);
    ck_assert_uint_eq(out_len, k + 2);
    size_t j = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] != 0) ck_assert_int_eq(out[j++], text[i]);
    ck_assert(memcmp(out + j, "ab", 3) == 0); // NUL-terminated
    free(out);
    free(ids);
    free(text);
    tokenizer_free(&t);
}
END_TEST

// ---------------------------------------------------------------------------------------

static Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("shard");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_shard_uint16);
    tcase_add_test(tc, test_shard_uint32);
    tcase_add_test(tc, test_shard_empty);
    tcase_add_test(tc, test_shard_zstd);
    tcase_add_test(tc, test_shard_zstd_streamed_frames);
    tcase_add_test(tc, test_shard_64bit_arithmetic);
    tcase_add_test(tc, test_shard_sparse_huge_peek);
    tcase_add_exit_test(tc, test_shard_too_short, 1);
    tcase_add_exit_test(tc, test_shard_truncated_tokens, 1);
    tcase_add_exit_test(tc, test_shard_wrong_magic, 1);
    tcase_add_exit_test(tc, test_shard_wrong_version, 1);
    tcase_add_exit_test(tc, test_shard_size_mismatch, 1);
    tcase_add_exit_test(tc, test_shard_zstd_truncated, 1);
    tcase_add_exit_test(tc, test_shard_zstd_corrupt, 1);
    tcase_add_exit_test(tc, test_shard_zstd_trailing_garbage, 1);
    tcase_add_exit_test(tc, test_shard_zstd_size_mismatch, 1);
    tcase_add_test(tc, test_shard_zstd_huge_header);
    tcase_add_exit_test(tc, test_shard_sparse_huge_mismatch, 1);
    tcase_add_test(tc, test_zstream_chunks);
    tcase_add_exit_test(tc, test_zstream_truncated, 1);
    suite_add_tcase(s, tc);

    tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_byte_tokenizer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    make_scratch_root("data");
    return run_suite(data_suite());
}
