// data/doc_reader.c: documents from text, .jsonl and .jsonl.zst files (see doc_reader.h).
// The files are byte streams (data/zstream.h: plain reads, or zstd streaming
// decompression), cut into lines for .jsonl; a DocReader walks the inputs in order, one
// document a call.
#include "doc_reader.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/util.h"
#include "zstream.h"

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_jsonl(const char *path) {
    return has_suffix(path, ".jsonl") || has_suffix(path, ".jsonl.zst");
}

// ---------------------------------------------------------------------------------------
// Input files as byte streams

// One .jsonl input being cut into lines: its byte stream, and a buffer of decoded bytes
// that only grows to the longest line.
typedef struct Input {
    ZStream *z;
    char *buf; // decoded bytes; [head, tail) not handed out yet
    size_t head, tail, cap;
    size_t scanned; // bytes after head already known to hold no '\n'
    bool data_end;  // no more decoded bytes
    int64_t lineno; // of the line input_line returned last
} Input;

static void input_open(Input *in, const char *path) {
    memset(in, 0, sizeof *in);
    in->z = zstream_open(path);
}

static void input_close(Input *in) {
    zstream_close(in->z);
    free(in->buf);
    memset(in, 0, sizeof *in);
}

// The next line without its '\n' (valid until the next call); false at the end of the
// file. The last line need not end in '\n'.
static bool input_line(Input *in, const char **line, size_t *len) {
    for (;;) {
        char *start = in->buf ? in->buf + in->head : NULL; // nothing read yet: no buffer
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
        size_t got = zstream_read(in->z, in->buf + in->tail, in->cap - in->tail);
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
    ZStream *z = zstream_open(path);
    for (;;) {
        reserve_text(text, *len, cap, 1 << 16);
        size_t got = zstream_read(z, *text + *len, *cap - *len);
        if (got == 0) break;
        *len += got;
    }
    int64_t consumed = zstream_file_bytes_read(z);
    zstream_close(z);
    return consumed;
}

// A counting pass over a text file: the file bytes it accounts for. A .zst file is
// decompressed to its end and discarded, so a corrupt or truncated one dies now, before
// any shard is written; a plain one is only sized.
static int64_t scan_text_file(const char *path) {
    if (!has_suffix(path, ".zst")) {
        int64_t size = file_size(path);
        check(size >= 0, "%s: input file not found", path);
        return size;
    }
    ZStream *z = zstream_open(path);
    zstream_skip_rest(z);
    int64_t consumed = zstream_file_bytes_read(z);
    zstream_close(z);
    return consumed;
}

int64_t doc_input_check(const char *path) {
    struct stat st;
    check(stat(path, &st) == 0, "%s: input file not found", path);
    check(S_ISREG(st.st_mode), "%s: not a regular file (%s)", path,
          S_ISDIR(st.st_mode) ? "a directory" : "a device, pipe or socket");
    FILE *f = fopen(path, "rb");
    check(f != NULL, "%s: cannot read the input file (%s)", path, strerror(errno));
    fclose(f);
    return (int64_t)st.st_size;
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
            int64_t bytes =
                r->load_text ? append_text_file(path, text, len, cap) : scan_text_file(path);
            r->done_bytes += bytes;
            *origin = (DocOrigin){.file = r->file, .line = 0};
            r->file++;
            if (bytes == 0) continue; // an empty file is no document, as a blank .jsonl line
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
        r->done_bytes += zstream_file_bytes_read(r->in.z);
        input_close(&r->in);
        r->open = false;
        r->file++;
    }
    return false;
}

// The finished inputs plus the open one, less what earlier calls returned.
int64_t doc_reader_take_input_bytes(DocReader *r) {
    int64_t total = r->done_bytes + (r->open ? zstream_file_bytes_read(r->in.z) : 0);
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
