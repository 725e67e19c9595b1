// data/doc_reader.c: documents from text, .jsonl and .jsonl.zst files (see doc_reader.h).
// The files are byte streams (an Input: plain reads, or zstd streaming decompression),
// cut into lines for .jsonl; a DocReader walks the inputs in order, one document a call.
#include "doc_reader.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../core/util.h"

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_jsonl(const char *path) {
    return has_suffix(path, ".jsonl") || has_suffix(path, ".jsonl.zst");
}

// ---------------------------------------------------------------------------------------
// Input files as byte streams

// One input file: plain reads, or zstd streaming decompression when the name ends in
// ".zst". Lines are cut from a buffer that only grows to the longest line.
typedef struct Input {
    const char *path;
    FILE *f;
    int64_t consumed; // bytes read from the file so far (progress)
    ZSTD_DCtx *dctx;  // NULL: a plain file
    char *zbuf;       // compressed bytes read from the file
    size_t zcap;
    ZSTD_inBuffer zin;
    bool file_end;   // the file has no more bytes
    bool frame_open; // the decoder is inside a frame it has not finished
    char *buf;       // decoded bytes; [head, tail) not handed out yet
    size_t head, tail, cap;
    size_t scanned; // bytes after head already known to hold no '\n'
    bool data_end;  // no more decoded bytes
    int64_t lineno; // of the line input_line returned last
} Input;

static void input_open(Input *in, const char *path) {
    memset(in, 0, sizeof *in);
    in->path = path;
    in->f = xfopen(path, "rb");
    if (has_suffix(path, ".zst")) {
        in->dctx = ZSTD_createDCtx();
        check(in->dctx != NULL, "%s: cannot create a zstd decoder", path);
        in->zcap = ZSTD_DStreamInSize();
        in->zbuf = xmalloc(in->zcap);
        in->zin = (ZSTD_inBuffer){in->zbuf, 0, 0};
    }
}

static void input_close(Input *in) {
    fclose(in->f);
    if (in->dctx) ZSTD_freeDCtx(in->dctx);
    free(in->zbuf);
    free(in->buf);
    memset(in, 0, sizeof *in);
}

// Up to n (> 0) decoded bytes into dst; 0 only at the end of the data. Corrupt zstd data,
// or a stream that ends inside a frame, dies naming the file.
static size_t input_read(Input *in, char *dst, size_t n) {
    if (!in->dctx) {
        size_t got = fread(dst, 1, n, in->f);
        check(!ferror(in->f), "%s: read error (%s)", in->path, strerror(errno));
        in->consumed += (int64_t)got;
        return got;
    }
    ZSTD_outBuffer out = {dst, n, 0};
    while (out.pos == 0) {
        if (in->zin.pos == in->zin.size && !in->file_end) {
            size_t got = fread(in->zbuf, 1, in->zcap, in->f);
            check(!ferror(in->f), "%s: read error (%s)", in->path, strerror(errno));
            in->consumed += (int64_t)got;
            in->zin = (ZSTD_inBuffer){in->zbuf, got, 0};
            in->file_end = got == 0;
        }
        size_t in_before = in->zin.pos;
        size_t ret = ZSTD_decompressStream(in->dctx, &out, &in->zin);
        check(!ZSTD_isError(ret), "%s: corrupt zstd data (%s)", in->path, ZSTD_getErrorName(ret));
        // No input taken and no output made: the data is over (the file was read to its end).
        if (out.pos == 0 && in->zin.pos == in_before) break;
        in->frame_open = ret != 0; // 0: a frame just ended and is fully flushed
    }
    check(out.pos > 0 || !in->frame_open, "%s: truncated zstd data (the last frame is incomplete)",
          in->path);
    return out.pos;
}

// The next line without its '\n' (valid until the next call); false at the end of the
// file. The last line need not end in '\n'.
static bool input_line(Input *in, const char **line, size_t *len) {
    for (;;) {
        char *start = in->buf + in->head;
        size_t avail = in->tail - in->head;
        char *nl =
            avail > in->scanned ? memchr(start + in->scanned, '\n', avail - in->scanned) : NULL;
        if (nl || (in->data_end && avail > 0)) {
            *line = start;
            *len = nl ? (size_t)(nl - start) : avail;
            in->head += nl ? *len + 1 : avail;
            in->scanned = 0;
            in->lineno++;
            return true;
        }
        if (in->data_end) return false;
        // Keep the partial line: move it to the front, grow the buffer if it is nearly full.
        in->scanned = avail;
        if (avail > 0) memmove(in->buf, start, avail);
        in->head = 0;
        in->tail = avail;
        if (in->cap - in->tail < (1 << 16)) {
            in->cap = in->cap ? 2 * in->cap : 1 << 20;
            in->buf = xrealloc(in->buf, in->cap);
        }
        size_t got = input_read(in, in->buf + in->tail, in->cap - in->tail);
        in->tail += got;
        in->data_end = got == 0;
    }
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return false;
    return true;
}

// ---------------------------------------------------------------------------------------
// Documents

// The reader's place in the inputs.
struct DocReader {
    char *const *paths;
    int npaths;
    bool load_text; // false in a counting pass: text files are counted, not read
    int file;       // the input being read (npaths: all done)
    bool open;      // `in` is open on that (jsonl) file
    Input in;
    int64_t done_bytes; // file bytes of the inputs finished so far
    int64_t reported;   // file bytes already returned by doc_reader_take_input_bytes
};

// The first allocation of a document buffer: room for 1 MiB of documents (a prep batch)
// and one more line before it has to grow.
enum { FIRST_TEXT_CAP = (1 << 20) + (1 << 16) };

// Make room for `extra` more bytes after (*text)[0..len).
static void reserve_text(char **text, size_t len, size_t *cap, size_t extra) {
    if (len + extra <= *cap) return;
    size_t grown = *cap ? *cap : FIRST_TEXT_CAP;
    while (grown < len + extra) grown *= 2;
    *text = xrealloc(*text, grown);
    *cap = grown;
}

// Append a whole (possibly .zst) text file to (*text)[*len..]; the file bytes read.
static int64_t append_text_file(const char *path, char **text, size_t *len, size_t *cap) {
    Input in;
    input_open(&in, path);
    for (;;) {
        reserve_text(text, *len, cap, 1 << 16);
        size_t got = input_read(&in, *text + *len, *cap - *len);
        if (got == 0) break;
        *len += got;
    }
    int64_t consumed = in.consumed;
    input_close(&in);
    return consumed;
}

// A reader at the start of the first input (nothing is opened yet).
DocReader *doc_reader_open(char *const *paths, int npaths, bool load_text) {
    DocReader *r = xcalloc(1, sizeof(DocReader));
    r->paths = paths;
    r->npaths = npaths;
    r->load_text = load_text;
    return r;
}

// Walk the inputs to the next document: a whole text file, or a non-blank .jsonl line.
bool doc_reader_next(DocReader *r, char **text, size_t *len, size_t *cap, DocOrigin *origin) {
    while (r->file < r->npaths) {
        const char *path = r->paths[r->file];
        if (!is_jsonl(path)) {
            if (r->load_text) {
                r->done_bytes += append_text_file(path, text, len, cap);
            } else {
                int64_t size = file_size(path);
                check(size >= 0, "%s: input file not found", path);
                r->done_bytes += size;
            }
            *origin = (DocOrigin){.file = r->file, .line = 0};
            r->file++;
            return true;
        }
        if (!r->open) {
            input_open(&r->in, path);
            r->open = true;
        }
        const char *line;
        size_t n;
        if (input_line(&r->in, &line, &n)) {
            if (is_blank(line, n)) continue;
            reserve_text(text, *len, cap, n);
            memcpy(*text + *len, line, n);
            *len += n;
            *origin = (DocOrigin){.file = r->file, .line = r->in.lineno};
            return true;
        }
        r->done_bytes += r->in.consumed;
        input_close(&r->in);
        r->open = false;
        r->file++;
    }
    return false;
}

// The finished inputs plus the open one, less what earlier calls returned.
int64_t doc_reader_take_input_bytes(DocReader *r) {
    int64_t total = r->done_bytes + (r->open ? r->in.consumed : 0);
    int64_t fresh = total - r->reported;
    r->reported = total;
    return fresh;
}

// Close the open input, if any, and free the reader.
void doc_reader_close(DocReader *r) {
    if (!r) return;
    if (r->open) input_close(&r->in);
    free(r);
}

// Parse a .jsonl line for its text field; a text file's bytes pass through.
DocText doc_text(const char *raw, size_t len, const char *path, int64_t line, const char *field) {
    DocText t = {.text = raw, .len = len, .json = NULL};
    if (line <= 0) return t;
    t.json = cJSON_ParseWithLength(raw, len);
    check(t.json != NULL, "%s:%lld: not valid JSON", path, (long long)line);
    cJSON *value = cJSON_GetObjectItemCaseSensitive(t.json, field);
    check(cJSON_IsObject(t.json) && cJSON_IsString(value) && value->valuestring,
          "%s:%lld: no string field \"%s\"", path, (long long)line, field);
    t.text = value->valuestring;
    t.len = strlen(t.text);
    return t;
}

// Free the parsed line (the text points into it).
void doc_text_free(DocText *t) {
    cJSON_Delete(t->json);
    t->json = NULL;
}
