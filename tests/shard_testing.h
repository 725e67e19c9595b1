// tests/shard_testing.h: shard helpers shared by tests/test_data.c (shards, zstream) and
// tests/test_loader.c (header-only, like testing.h).
#pragma once
#include <zstd.h>

#include "../data/shard.h"
#include "testing.h"

// n random token ids below limit.
static inline uint32_t *random_tokens(Rng *rng, int64_t n, uint32_t limit) {
    uint32_t *t = xmalloc((size_t)n * sizeof(uint32_t));
    for (int64_t i = 0; i < n; i++) t[i] = (uint32_t)(rng_next(rng) % limit);
    return t;
}

// Compress `src` as two frames without declared content sizes (like a streaming or
// multi-threaded compressor would) into path.
static inline void write_two_frames(const char *path, const char *src, size_t n) {
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

// A valid plain shard of 1000 uint16 tokens at dir/name; returns its path.
static inline char *good_shard(const char *dir, const char *name, bool zstd) {
    Rng rng = rng_seeded(14);
    uint32_t *tok = random_tokens(&rng, 1000, 60000);
    char *path = path_in(dir, name);
    shard_write(path, tok, 1000, false, zstd);
    free(tok);
    return path;
}

// Rewrite the file at path through fn (which edits the bytes and length).
static inline void edit_file(const char *path, void (*fn)(char **bytes, size_t *len)) {
    size_t len;
    char *bytes = test_read_file(path, &len);
    bytes = xrealloc(bytes, len + 64);
    fn(&bytes, &len);
    write_bytes(path, bytes, len);
    free(bytes);
}

// One byte more at the end of the file (a size mismatch).
static inline void append_byte(char **b, size_t *len) {
    (*b)[(*len)++] = 7;
}
