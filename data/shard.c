// data/shard.c: read and write llm.c token shards, plain or zstd-compressed, with every
// size and offset in 64 bits. Reading decompresses as it goes (data/zstream.h), so a frame
// need not declare its content size and no compressed copy is held in memory.
#include "shard.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../core/util.h"
#include "zstream.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bolt's shard code assumes a little-endian host (shards are little-endian)"
#endif

enum {
    MAGIC_U16 = 20240520,
    VERSION_U16 = 1,
    MAGIC_U32 = 20240801,
    VERSION_U32 = 7,
    CHUNK_TOKENS = 1 << 16, // uint16 <-> uint32 conversion is done in chunks of this size
};

int64_t shard_file_bytes(int64_t ntok, int width) {
    return (int64_t)SHARD_HEADER_BYTES + (int64_t)width * ntok;
}

// Header for `ntok` tokens of `width` bytes; the high half of ntok goes in [3] (see shard.h).
void shard_header_encode(int32_t header[SHARD_HEADER_INTS], int64_t ntok, int width) {
    memset(header, 0, SHARD_HEADER_BYTES);
    header[0] = width == 2 ? MAGIC_U16 : MAGIC_U32;
    header[1] = width == 2 ? VERSION_U16 : VERSION_U32;
    uint64_t n = (uint64_t)ntok;
    header[2] = (int32_t)(uint32_t)(n & 0xFFFFFFFFu);
    header[3] = (int32_t)(uint32_t)(n >> 32);
}

int64_t shard_header_decode(const int32_t header[SHARD_HEADER_INTS], const char *path, int *width) {
    int32_t magic = header[0], version = header[1];
    if (magic == MAGIC_U16) {
        check(version == VERSION_U16,
              "%s: unsupported shard version %d for magic %d (expected version %d)", path, version,
              magic, VERSION_U16);
        *width = 2;
    } else if (magic == MAGIC_U32) {
        check(version == VERSION_U32,
              "%s: unsupported shard version %d for magic %d (expected version %d)", path, version,
              magic, VERSION_U32);
        *width = 4;
    } else {
        die("%s: not a token shard (magic %d, version %d; expected magic %d or %d)", path, magic,
            version, MAGIC_U16, MAGIC_U32);
    }
    uint64_t n = (uint64_t)(uint32_t)header[2] | ((uint64_t)(uint32_t)header[3] << 32);
    check(n <= (uint64_t)(INT64_MAX - SHARD_HEADER_BYTES) / 4,
          "%s: implausible token count %llu in the shard header", path, (unsigned long long)n);
    return (int64_t)n;
}

// True if `path` ends in ".zst".
static bool is_zstd_path(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcmp(path + n - 4, ".zst") == 0;
}

static _Noreturn void die_size_mismatch(const char *path, int64_t ntok, int width, int64_t got) {
    die("%s: size mismatch: expected %lld bytes (1024 + %d x %lld tokens), got %lld%s", path,
        (long long)shard_file_bytes(ntok, width), width, (long long)ntok, (long long)got,
        is_zstd_path(path) ? " after decompression" : "");
}

// Read and validate the header; for an uncompressed file also compare the file size.
static int64_t read_header(ZStream *z, const char *path, int *width) {
    int32_t header[SHARD_HEADER_INTS];
    size_t got = zstream_read(z, header, SHARD_HEADER_BYTES);
    check(got == SHARD_HEADER_BYTES, "%s: too short for a shard header (%zu bytes, need %d)", path,
          got, SHARD_HEADER_BYTES);
    int64_t ntok = shard_header_decode(header, path, width);
    if (!zstream_is_zstd(z)) {
        int64_t size = zstream_file_size(z);
        if (size != shard_file_bytes(ntok, *width)) die_size_mismatch(path, ntok, *width, size);
    }
    return ntok;
}

int64_t shard_peek(const char *path, int *width) {
    ZStream *z = zstream_open(path);
    int64_t ntok = read_header(z, path, width);
    zstream_close(z);
    return ntok;
}

// Read the tokens as uint32. A plain file's size was checked against its header, so its
// buffer is allocated at once; a .zst file's buffer grows with the data actually decoded,
// so a corrupt header cannot make bolt allocate memory the file never fills.
uint32_t *shard_read(const char *path, int64_t *ntok) {
    ZStream *z = zstream_open(path);
    int width;
    int64_t n = read_header(z, path, &width);
    check((uint64_t)n <= SIZE_MAX / 4, "%s: %lld tokens do not fit in memory", path, (long long)n);
    int64_t cap = zstream_is_zstd(z) && n > CHUNK_TOKENS ? CHUNK_TOKENS : n;
    uint32_t *tokens = xmalloc((size_t)(cap > 0 ? cap : 1) * 4);
    uint16_t *chunk = width == 2 ? xmalloc(CHUNK_TOKENS * sizeof(uint16_t)) : NULL;
    int64_t got = 0; // token bytes read so far
    for (int64_t i = 0; i < n; i += CHUNK_TOKENS) {
        int64_t m = n - i < CHUNK_TOKENS ? n - i : CHUNK_TOKENS;
        if (i + m > cap) { // cap >= i, so doubling it always makes room for m more tokens
            cap = 2 * cap < n ? 2 * cap : n;
            tokens = xrealloc(tokens, (size_t)cap * 4);
        }
        size_t want = (size_t)(m * width);
        size_t part = zstream_read(z, width == 4 ? (void *)(tokens + i) : (void *)chunk, want);
        got += (int64_t)part;
        if (width == 2)
            for (size_t k = 0; k < part / 2; k++) tokens[i + (int64_t)k] = chunk[k];
        if (part < want) break;
    }
    free(chunk);
    if (got < (int64_t)width * n) die_size_mismatch(path, n, width, SHARD_HEADER_BYTES + got);
    int64_t extra = zstream_skip_rest(z);
    if (extra > 0) die_size_mismatch(path, n, width, shard_file_bytes(n, width) + extra);
    zstream_close(z);
    *ntok = n;
    return tokens;
}

// A byte sink over an atomic file: plain writes, or zstd streaming compression.
typedef struct ShardWriter {
    AtomicFile af;
    ZSTD_CCtx *cctx; // NULL for an uncompressed shard
    char *out_buf;
    size_t out_cap;
} ShardWriter;

// Push n bytes through the compressor (or straight to the file); with `end`, finish the
// frame and flush everything.
static void writer_put(ShardWriter *w, const void *src, size_t n, bool end) {
    if (!w->cctx) {
        if (n > 0) xfwrite(src, n, w->af.f, w->af.tmp_path);
        return;
    }
    ZSTD_inBuffer in = {src, n, 0};
    ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
        ZSTD_outBuffer out = {w->out_buf, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        check(!ZSTD_isError(left), "%s: zstd compression failed (%s)", w->af.path,
              ZSTD_getErrorName(left));
        xfwrite(w->out_buf, out.pos, w->af.f, w->af.tmp_path);
        if (end ? left == 0 : in.pos == in.size) break;
    }
}

void shard_write(const char *path, const uint32_t *tokens, int64_t ntok, bool force_wide,
                 bool zstd) {
    check(ntok >= 0, "%s: negative token count %lld", path, (long long)ntok);
    int width = 2;
    if (force_wide) width = 4;
    for (int64_t i = 0; i < ntok && width == 2; i++)
        if (tokens[i] > 0xFFFF) width = 4;
    int32_t header[SHARD_HEADER_INTS];
    shard_header_encode(header, ntok, width);

    ShardWriter w = {0};
    w.af = atomic_open(path);
    if (zstd) {
        w.cctx = ZSTD_createCCtx();
        check(w.cctx != NULL, "%s: cannot create a zstd encoder", path);
        ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_compressionLevel, 3);
        ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setPledgedSrcSize(w.cctx, (unsigned long long)shard_file_bytes(ntok, width));
        w.out_cap = ZSTD_CStreamOutSize();
        w.out_buf = xmalloc(w.out_cap);
    }
    writer_put(&w, header, SHARD_HEADER_BYTES, false);
    if (width == 4) {
        writer_put(&w, tokens, (size_t)ntok * 4, false);
    } else {
        uint16_t *chunk = xmalloc(CHUNK_TOKENS * sizeof(uint16_t));
        for (int64_t i = 0; i < ntok; i += CHUNK_TOKENS) {
            int64_t m = ntok - i < CHUNK_TOKENS ? ntok - i : CHUNK_TOKENS;
            for (int64_t k = 0; k < m; k++) chunk[k] = (uint16_t)tokens[i + k];
            writer_put(&w, chunk, (size_t)m * 2, false);
        }
        free(chunk);
    }
    writer_put(&w, NULL, 0, true);
    if (w.cctx) {
        ZSTD_freeCCtx(w.cctx);
        free(w.out_buf);
    }
    atomic_commit(&w.af);
}
