// tests/test_data.c: shards (uint16/uint32/zstd, validation, 64-bit sizes), the zstd
// stream reader, the loader (targets, shuffle, ranks, tell/seek/reset, batches per epoch,
// the vocabulary check) and the byte tokenizer (`bolt prep` is in
// tests/test_prep.c).
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "../data/loader.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../data/zstream.h"
#include "testing.h"

static uint32_t *random_tokens(Rng *rng, int64_t n, uint32_t limit) {
    uint32_t *t = xmalloc((size_t)n * sizeof(uint32_t));
    for (int64_t i = 0; i < n; i++) t[i] = (uint32_t)(rng_next(rng) % limit);
    return t;
}

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

// Compress `src` as two frames without declared content sizes (like a streaming or
// multi-threaded compressor would) into path.
static void write_two_frames(const char *path, const char *src, size_t n) {
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    size_t cap = ZSTD_compressBound(n) * 2 + 64;
    char *dst = xmalloc(cap);
    size_t half = n / 2, total = 0;
    for (int part = 0; part < 2; part++) {
        ZSTD_inBuffer in = {src + (part ? half : 0), part ? n - half : half, 0};
        ZSTD_outBuffer out = {dst + total, cap - total, 0};
        size_t left;
        do {
            left = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
            ck_assert(!ZSTD_isError(left));
        } while (left != 0);
        total += out.pos;
    }
    write_bytes(path, dst, total);
    free(dst);
    ZSTD_freeCCtx(c);
}

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

// A valid plain shard of 1000 uint16 tokens at dir/name; returns its path.
static char *good_shard(const char *dir, const char *name, bool zstd) {
    Rng rng = rng_seeded(14);
    uint32_t *tok = random_tokens(&rng, 1000, 60000);
    char *path = path_in(dir, name);
    shard_write(path, tok, 1000, false, zstd);
    free(tok);
    return path;
}

// Rewrite the file at path through fn (which edits the bytes and length).
static void edit_file(const char *path, void (*fn)(char **bytes, size_t *len)) {
    size_t len;
    char *bytes = test_read_file(path, &len);
    bytes = xrealloc(bytes, len + 64);
    fn(&bytes, &len);
    write_bytes(path, bytes, len);
    free(bytes);
}

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
static void append_byte(char **b, size_t *len) {
    (*b)[(*len)++] = 7;
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
// Loader. Shards hold a counter (token i of the data set = i + 1, uint32), so the first
// token of a row names its window and shard uniquely.

typedef struct Data {
    int nshards;
    int64_t sizes[8];
    int64_t base[8]; // counter value of each shard's first token
    char *dir;
    char glob[300];
} Data;

static Data counter_shards(const int64_t *sizes, int n, bool zstd_odd) {
    Data d = {.nshards = n, .dir = new_dir()};
    snprintf(d.glob, sizeof d.glob, "%s/d_*.bin*", d.dir);
    int64_t next = 1;
    for (int s = 0; s < n; s++) {
        d.sizes[s] = sizes[s];
        d.base[s] = next;
        uint32_t *tok = xmalloc((size_t)sizes[s] * sizeof(uint32_t) + 4);
        for (int64_t i = 0; i < sizes[s]; i++) tok[i] = (uint32_t)(next + i);
        next += sizes[s];
        char name[64];
        bool zstd = zstd_odd && s % 2 == 1;
        snprintf(name, sizeof name, "d_%03d.bin%s", s, zstd ? ".zst" : "");
        char *path = path_in(d.dir, name);
        shard_write(path, tok, sizes[s], true, zstd);
        free(path);
        free(tok);
    }
    return d;
}

// Number of windows of T+1 tokens over all shards, and their first tokens in `firsts`.
static int64_t all_windows(const Data *d, int T, int64_t *firsts) {
    int64_t k = 0;
    for (int s = 0; s < d->nshards; s++)
        for (int64_t w = 0; w < (d->sizes[s] - 1) / T; w++) {
            if (firsts) firsts[k] = d->base[s] + w * T;
            k++;
        }
    return k;
}

// Every row is a window: consecutive tokens, targets shifted by one, starting at a window
// boundary of some shard. Returns the first tokens of the rows in firsts[0..B).
static void check_batch(const Data *d, int B, int T, const int *tok, const int *tgt,
                        int64_t *firsts) {
    for (int b = 0; b < B; b++) {
        int64_t first = tok[b * T];
        for (int t = 0; t < T; t++) {
            ck_assert_int_eq(tok[b * T + t], first + t);
            ck_assert_int_eq(tgt[b * T + t], first + t + 1);
        }
        bool boundary = false;
        for (int s = 0; s < d->nshards; s++) {
            int64_t off = first - d->base[s];
            if (off >= 0 && off + T < d->sizes[s] && off % T == 0) boundary = true;
        }
        ck_assert_msg(boundary, "row %d starts at %lld: not a window", b, (long long)first);
        if (firsts) firsts[b] = first;
    }
}

static int compare_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const int64_t SIZES[4] = {161, 97, 130, 81}; // T=16: 10, 6, 8, 5 windows (29)

START_TEST(test_loader_sequential) {
    Data d = counter_shards(SIZES, 4, true);
    int B = 3, T = 16;
    int64_t max_token = 161 + 97 + 130 + 81; // the counter's last value
    Loader *l = loader_open(d.glob, B, T, 0, 1, 1, false, (int)max_token + 1);
    ck_assert_int_eq(loader_nfiles(l), 4);
    int64_t nwin = all_windows(&d, T, NULL);
    int64_t *expect = xmalloc((size_t)nwin * 2 * sizeof(int64_t));
    all_windows(&d, T, expect);
    all_windows(&d, T, expect + nwin); // the second epoch repeats the first in order
    ck_assert_int_eq(loader_total_tokens(l), 161 + 97 + 130 + 81);
    ck_assert_int_eq(loader_batches_per_epoch(l), nwin / B);
    int *tok = xmalloc((size_t)B * T * sizeof(int)), *tgt = xmalloc((size_t)B * T * sizeof(int));
    int64_t firsts[3];
    for (int64_t k = 0; k + B <= 2 * nwin; k += B) {
        loader_next(l, tok, tgt);
        check_batch(&d, B, T, tok, tgt, firsts);
        for (int b = 0; b < B; b++) ck_assert_int_eq(firsts[b], expect[k + b]);
    }
    loader_close(l);
    free(expect);
    free(tok);
    free(tgt);
}
END_TEST

// The first `count` window starts a loader gives (B = 1).
static int64_t *first_windows(const char *glob, int T, int rank, int world, uint64_t seed,
                              bool shuffle, int64_t count, const Data *d) {
    Loader *l = loader_open(glob, 1, T, rank, world, seed, shuffle, 1 << 20);
    int64_t *out = xmalloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
    int *tok = xmalloc((size_t)T * sizeof(int)), *tgt = xmalloc((size_t)T * sizeof(int));
    for (int64_t k = 0; k < count; k++) {
        loader_next(l, tok, tgt);
        check_batch(d, 1, T, tok, tgt, &out[k]);
    }
    free(tok);
    free(tgt);
    loader_close(l);
    return out;
}

START_TEST(test_loader_shuffle) {
    Data d = counter_shards(SIZES, 4, false);
    int T = 16;
    int64_t nwin = all_windows(&d, T, NULL);
    int64_t *all = xmalloc((size_t)nwin * sizeof(int64_t));
    all_windows(&d, T, all);
    int64_t *a = first_windows(d.glob, T, 0, 1, 42, true, 2 * nwin, &d);
    int64_t *b = first_windows(d.glob, T, 0, 1, 42, true, 2 * nwin, &d);
    int64_t *c = first_windows(d.glob, T, 0, 1, 43, true, 2 * nwin, &d);
    ck_assert(memcmp(a, b, (size_t)(2 * nwin) * sizeof(int64_t)) == 0);
    ck_assert(memcmp(a, c, (size_t)nwin * sizeof(int64_t)) != 0);
    ck_assert(memcmp(a, all, (size_t)nwin * sizeof(int64_t)) != 0);      // not in order
    ck_assert(memcmp(a, a + nwin, (size_t)nwin * sizeof(int64_t)) != 0); // epochs differ
    for (int epoch = 0; epoch < 2; epoch++) { // each epoch is a permutation of all windows
        qsort(a + epoch * nwin, (size_t)nwin, sizeof(int64_t), compare_int64);
        ck_assert(memcmp(a + epoch * nwin, all, (size_t)nwin * sizeof(int64_t)) == 0);
    }
    free(a);
    free(b);
    free(c);
    free(all);
}
END_TEST

// Ranks are disjoint and together cover every window of an epoch, with shard window
// counts that do not divide by the world size.
START_TEST(test_loader_ranks) {
    Data d = counter_shards(SIZES, 4, true);
    int T = 16;
    int64_t nwin = all_windows(&d, T, NULL); // 29
    int64_t *all = xmalloc((size_t)nwin * sizeof(int64_t));
    all_windows(&d, T, all);
    for (int world = 2; world <= 3; world++) {
        int64_t *got = xmalloc((size_t)nwin * sizeof(int64_t));
        int64_t k = 0;
        for (int r = 0; r < world; r++) {
            int64_t count = (nwin - r + world - 1) / world; // stream indices r, r+world, ...
            int64_t *w = first_windows(d.glob, T, r, world, 7, true, count, &d);
            memcpy(got + k, w, (size_t)count * sizeof(int64_t));
            k += count;
            free(w);
        }
        ck_assert_int_eq(k, nwin);
        qsort(got, (size_t)nwin, sizeof(int64_t), compare_int64);
        ck_assert(memcmp(got, all, (size_t)nwin * sizeof(int64_t)) == 0);
        free(got);
    }
    free(all);
}
END_TEST

// tell/seek: from every position of an uninterrupted run (crossing shard and epoch
// boundaries, batches straddling them), a seek reproduces the next batches exactly, for
// each rank; all ranks report the same position after the same number of batches.
START_TEST(test_loader_tell_seek) {
    Data d = counter_shards(SIZES, 4, true);
    int B = 2, T = 16, world = 2, steps = 40; // 29 windows: an epoch is 7.25 steps
    size_t bt = (size_t)B * T;
    for (int rank = 0; rank < world; rank++) {
        Loader *a = loader_open(d.glob, B, T, rank, world, 99, true, 0);
        Loader *other = loader_open(d.glob, B, T, 1 - rank, world, 99, true, 0);
        LoaderPos *pos = xmalloc((size_t)steps * sizeof(LoaderPos));
        int *tok = xmalloc((size_t)steps * bt * sizeof(int));
        int *tgt = xmalloc((size_t)steps * bt * sizeof(int));
        int *scratch = xmalloc(2 * bt * sizeof(int));
        bool saw_epoch = false, saw_shard = false;
        for (int k = 0; k < steps; k++) {
            pos[k] = loader_tell(a);
            LoaderPos p = loader_tell(other);
            ck_assert(p.epoch == pos[k].epoch && p.shard == pos[k].shard &&
                      p.window == pos[k].window);
            if (pos[k].epoch > 0) saw_epoch = true;
            if (pos[k].shard > 0) saw_shard = true;
            loader_next(a, tok + k * bt, tgt + k * bt);
            loader_next(other, scratch, scratch + bt);
        }
        ck_assert(saw_epoch && saw_shard);
        Loader *b = loader_open(d.glob, B, T, rank, world, 99, true, 0);
        for (int k = 0; k < steps; k++) {
            loader_seek(b, pos[k]);
            for (int j = k; j < steps && j < k + 3; j++) {
                loader_next(b, scratch, scratch + bt);
                ck_assert(memcmp(scratch, tok + j * bt, bt * sizeof(int)) == 0);
                ck_assert(memcmp(scratch + bt, tgt + j * bt, bt * sizeof(int)) == 0);
            }
        }
        loader_reset(b); // reset = the first batch again
        loader_next(b, scratch, scratch + bt);
        ck_assert(memcmp(scratch, tok, bt * sizeof(int)) == 0);
        loader_close(a);
        loader_close(b);
        loader_close(other);
        free(pos);
        free(tok);
        free(tgt);
        free(scratch);
    }
}
END_TEST

START_TEST(test_loader_no_match) {
    const char *dir = new_dir();
    char *glob = path_in(dir, "nothing_*.bin");
    loader_open(glob, 1, 8, 0, 1, 0, false, 0);
}
END_TEST

START_TEST(test_loader_too_few_windows) {
    const int64_t sizes[1] = {20}; // one window of 16+1
    Data d = counter_shards(sizes, 1, false);
    loader_open(d.glob, 1, 16, 1, 2, 0, false, 0);
}
END_TEST

START_TEST(test_loader_bad_shard) {
    Data d = counter_shards(SIZES, 2, false);
    char *path = path_in(d.dir, "d_001.bin");
    edit_file(path, append_byte);
    loader_open(d.glob, 1, 16, 0, 1, 0, false, 0);
}
END_TEST

static void open_loader(const char *glob) {
    loader_open(glob, 1, 16, 0, 1, 0, false, 0);
}

// Five .zst shards whose headers each claim ~2^61 tokens (the most a header may): their
// sum would overflow int64, so opening them must die naming a shard.
START_TEST(test_loader_claimed_tokens_overflow) {
    const char *dir = new_dir();
    char *plain = good_shard(dir, "p.bin", false);
    size_t len;
    char *bytes = test_read_file(plain, &len);
    const uint64_t claimed = ((uint64_t)INT64_MAX - 1024) / 4; // the most shard.c accepts
    for (int i = 0; i < 8; i++) bytes[8 + i] = (char)((claimed >> (8 * i)) & 0xFF);
    for (int s = 0; s < 5; s++) {
        char name[32];
        snprintf(name, sizeof name, "o_%d.bin.zst", s);
        char *packed = path_in(dir, name);
        write_two_frames(packed, bytes, len);
        free(packed);
    }
    char glob[600], msg[1024];
    snprintf(glob, sizeof glob, "%s/o_*.bin.zst", dir);
    int status = capture_stderr(open_loader, glob, msg, sizeof msg);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(msg, "add up") && strstr(msg, ".bin.zst"), "got: %s", msg);
    free(bytes);
    free(plain);
}
END_TEST

// Whole batches per epoch are the floor of windows / (B * world), 0 included; with 0 the
// loader still hands out batches (wrapping into the next epoch).
START_TEST(test_loader_batches_per_epoch) {
    Data d = counter_shards(SIZES, 4, true);
    int T = 16;
    int64_t nwin = all_windows(&d, T, NULL); // 29
    Rng rng = rng_seeded(31);
    for (int trial = 0; trial < 8; trial++) {
        int world = 1 + (int)(rng_next(&rng) % 3);
        int B = 1 + (int)(rng_next(&rng) % 40);
        int rank = (int)(rng_next(&rng) % (uint64_t)world);
        Loader *l = loader_open(d.glob, B, T, rank, world, 5, trial % 2 == 0, 0);
        int64_t want = 0; // count whole batches by hand
        while ((want + 1) * B * world <= nwin) want++;
        ck_assert_int_eq(loader_batches_per_epoch(l), want);
        int *tok = xmalloc((size_t)B * T * sizeof(int)),
            *tgt = xmalloc((size_t)B * T * sizeof(int));
        loader_next(l, tok, tgt);
        check_batch(&d, B, T, tok, tgt, NULL);
        free(tok);
        free(tgt);
        loader_close(l);
    }
    Loader *l = loader_open(d.glob, 30, T, 0, 1, 5, false, 0); // 29 windows < one batch
    ck_assert_int_eq(loader_batches_per_epoch(l), 0);
    loader_close(l);
}
END_TEST

// A counter data set whose largest token equals the vocabulary size: reading every shard
// (two epochs, so the last shard is read in the foreground or by the read-ahead thread)
// must die.
START_TEST(test_loader_token_outside_vocab) {
    Data d = counter_shards(SIZES, 4, true);
    int64_t max_token = 161 + 97 + 130 + 81;
    Loader *l = loader_open(d.glob, 2, 16, 0, 1, 3, true, (int)max_token);
    int tok[32], tgt[32];
    for (int k = 0; k < 40; k++) loader_next(l, tok, tgt);
    loader_close(l);
}
END_TEST

// The message names the shard, the id and its position, and the vocabulary.
START_TEST(test_loader_token_outside_vocab_message) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(33);
    int vocab = 300 + (int)(rng_next(&rng) % 1000);
    int64_t n = 5000, at = (int64_t)(rng_next(&rng) % (uint64_t)n);
    uint32_t *tok = random_tokens(&rng, n, (uint32_t)vocab);
    tok[at] = (uint32_t)vocab + (uint32_t)(rng_next(&rng) % 50);
    char *path = path_in(dir, "v.bin"), *err = path_in(dir, "err.txt");
    shard_write(path, tok, n, false, false);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(err, "w", stderr)) _exit(3);
        Loader *l = loader_open(path, 4, 32, 0, 1, 0, false, vocab);
        int b[128], t[128];
        loader_next(l, b, t);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    char *msg = test_read_file(err, NULL), want[700];
    snprintf(want, sizeof want,
             "%s: token id %u at position %lld is outside the vocabulary [0, %d)", path, tok[at],
             (long long)at, vocab);
    ck_assert_msg(strstr(msg, want) != NULL, "'%s' lacks '%s'", msg, want);
    free(msg);
    free(tok);
    free(path);
    free(err);
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

    tc = tcase_create("loader");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_loader_sequential);
    tcase_add_test(tc, test_loader_shuffle);
    tcase_add_test(tc, test_loader_ranks);
    tcase_add_test(tc, test_loader_tell_seek);
    tcase_add_exit_test(tc, test_loader_no_match, 1);
    tcase_add_exit_test(tc, test_loader_too_few_windows, 1);
    tcase_add_exit_test(tc, test_loader_bad_shard, 1);
    tcase_add_test(tc, test_loader_claimed_tokens_overflow);
    tcase_add_test(tc, test_loader_batches_per_epoch);
    tcase_add_exit_test(tc, test_loader_token_outside_vocab, 1);
    tcase_add_test(tc, test_loader_token_outside_vocab_message);
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
