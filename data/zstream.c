// data/zstream.c: a plain or zstd-compressed file as a sequential byte stream (see
// zstream.h). Decompression is ZSTD_decompressStream over a buffer of compressed input.
#include "zstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "../core/util.h"

struct ZStream {
    char *path;
    FILE *f;
    int64_t file_bytes; // bytes read from the file so far
    ZSTD_DCtx *dctx;    // NULL: a plain file
    char *in_buf;       // compressed bytes read from the file; [in.pos, in.size) not decoded yet
    size_t in_cap;
    ZSTD_inBuffer in;
    bool file_end;   // the file has no more bytes
    bool frame_open; // the decoder is inside a frame it has not finished
};

static bool ends_with_zst(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcmp(path + n - 4, ".zst") == 0;
}

ZStream *zstream_open(const char *path) {
    ZStream *z = xcalloc(1, sizeof(ZStream));
    z->path = xstrdup(path);
    z->f = xfopen(path, "rb");
    if (ends_with_zst(path)) {
        z->dctx = ZSTD_createDCtx();
        check(z->dctx != NULL, "%s: cannot create a zstd decoder", path);
        z->in_cap = ZSTD_DStreamInSize();
        z->in_buf = xmalloc(z->in_cap);
        z->in = (ZSTD_inBuffer){z->in_buf, 0, 0};
    }
    return z;
}

// Up to n bytes straight from the file.
static size_t read_plain(ZStream *z, void *dst, size_t n) {
    size_t got = fread(dst, 1, n, z->f);
    check(!ferror(z->f), "%s: read error (%s)", z->path, strerror(errno));
    z->file_bytes += (int64_t)got;
    return got;
}

size_t zstream_read(ZStream *z, void *dst, size_t n) {
    if (!z->dctx) {
        size_t total = 0; // fread stops short only at the end of the file or on an error
        while (total < n) {
            size_t got = read_plain(z, (char *)dst + total, n - total);
            if (got == 0) break;
            total += got;
        }
        return total;
    }
    ZSTD_outBuffer out = {dst, n, 0};
    while (out.pos < out.size) {
        if (z->in.pos == z->in.size && !z->file_end) {
            size_t got = read_plain(z, z->in_buf, z->in_cap);
            z->in = (ZSTD_inBuffer){z->in_buf, got, 0};
            z->file_end = got == 0;
        }
        size_t in_before = z->in.pos, out_before = out.pos;
        size_t ret = ZSTD_decompressStream(z->dctx, &out, &z->in);
        check(!ZSTD_isError(ret), "%s: corrupt zstd data (%s)", z->path, ZSTD_getErrorName(ret));
        bool progress = z->in.pos != in_before || out.pos != out_before;
        if (progress) z->frame_open = ret != 0; // 0: a frame just ended and is fully flushed
        // Out of input and the decoder has nothing more to give: the data is over.
        if (z->file_end && !progress) break;
    }
    check(out.pos == out.size || !z->frame_open,
          "%s: truncated zstd data (the last frame is incomplete)", z->path);
    return out.pos;
}

int64_t zstream_skip_rest(ZStream *z) {
    char buf[1 << 14];
    int64_t total = 0;
    size_t got;
    while ((got = zstream_read(z, buf, sizeof buf)) > 0) total += (int64_t)got;
    return total;
}

int64_t zstream_file_bytes_read(const ZStream *z) {
    return z->file_bytes;
}

int64_t zstream_file_size(const ZStream *z) {
    struct stat st;
    check(fstat(fileno(z->f), &st) == 0, "%s: cannot stat (%s)", z->path, strerror(errno));
    return (int64_t)st.st_size;
}

bool zstream_is_zstd(const ZStream *z) {
    return z->dctx != NULL;
}

void zstream_close(ZStream *z) {
    if (!z) return;
    fclose(z->f);
    if (z->dctx) ZSTD_freeDCtx(z->dctx);
    free(z->in_buf);
    free(z->path);
    free(z);
}
