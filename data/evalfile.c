// data/evalfile.c: reading multiple-choice sets (see evalfile.h).
#include "evalfile.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

// Little-endian integers from a byte buffer.
static uint32_t read_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int read_u16(const unsigned char *p) {
    return p[0] | p[1] << 8;
}

// Append one example to the set (its tokens are taken over).
static void add_example(McSet *s, int *cap, const McExample *ex) {
    if (s->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        s->examples = xrealloc(s->examples, (size_t)*cap * sizeof(McExample));
    }
    s->examples[s->n++] = *ex;
}

// The byte length of an ending's text, decoded with the tokenizer (acc_norm's divisor).
static int decoded_bytes(const Tokenizer *tok, const int *ids, int n) {
    uint32_t *u = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(uint32_t));
    for (int i = 0; i < n; i++) u[i] = (uint32_t)ids[i];
    size_t len;
    free(tokenizer_decode(tok, u, (size_t)n, &len));
    free(u);
    return (int)len;
}

// One example of the binary form at `p` (`left` uint16 values remain in the file);
// returns the uint16 values it spans. `at` is its position, for messages.
static int parse_binary_example(const char *path, int at, const unsigned char *p, size_t left,
                                const Tokenizer *tok, int V, McExample *ex) {
    check(left >= 6, "%s: example %d: truncated (the file ends inside its header)", path, at);
    check(read_u16(p) == 65535, "%s: example %d: no start marker 65535 (found %d)", path, at,
          read_u16(p));
    int bytes = read_u16(p + 2);
    check(bytes % 2 == 0 && bytes >= 12, "%s: example %d: bad example size %d bytes", path, at,
          bytes);
    int words = bytes / 2;
    check((size_t)words <= left, "%s: example %d: truncated (%d bytes, %zu left in the file)", path,
          at, bytes, 2 * left);
    memset(ex, 0, sizeof *ex);
    ex->index = read_u16(p + 4);
    ex->label = read_u16(p + 6);
    ex->n_endings = read_u16(p + 8);
    check(ex->n_endings >= 2 && ex->n_endings <= MC_MAX_ENDINGS,
          "%s: example %d: %d completions (expected 2..%d)", path, at, ex->n_endings,
          MC_MAX_ENDINGS);
    check(ex->label < ex->n_endings, "%s: example %d: label %d out of range (%d completions)", path,
          at, ex->label, ex->n_endings);
    ex->tokens = xmalloc((size_t)words * sizeof(int));
    int w = 5, n_tok = 0;                               // w: the next uint16 of the example
    for (int part = -1; part < ex->n_endings; part++) { // -1: the context
        check(w < words, "%s: example %d: truncated (its size ends before completion %d)", path, at,
              part + 1);
        int len = read_u16(p + 2 * w++);
        check(w + len <= words, "%s: example %d: truncated (%s of %d tokens overruns its size)",
              path, at, part < 0 ? "context" : "a completion", len);
        check(len > 0 || part < 0, "%s: example %d: completion %d is empty", path, at, part);
        if (part < 0)
            ex->ctx_len = len;
        else
            ex->ending_start[part] = n_tok;
        for (int i = 0; i < len; i++) {
            int id = read_u16(p + 2 * w++);
            check(id < V, "%s: example %d: token id %d >= vocab size %d", path, at, id, V);
            ex->tokens[n_tok++] = id;
        }
    }
    ex->ending_start[ex->n_endings] = n_tok;
    check(w == words, "%s: example %d: %d bytes of it unread (size field disagrees)", path, at,
          2 * (words - w));
    for (int e = 0; e < ex->n_endings; e++) {
        int s = ex->ending_start[e];
        ex->ending_bytes[e] = decoded_bytes(tok, ex->tokens + s, ex->ending_start[e + 1] - s);
    }
    return words;
}

// llm.c's binary form.
static McSet read_binary(const char *path, const Tokenizer *tok, int V) {
    size_t len;
    unsigned char *data = (unsigned char *)read_file(path, &len);
    check(len >= 1024, "%s: %zu bytes, shorter than the 1024-byte header", path, len);
    check(read_u32(data) == MC_MAGIC, "%s: bad magic %u (an eval file has %d)", path,
          read_u32(data), MC_MAGIC);
    check(read_u32(data + 4) == MC_VERSION, "%s: unsupported version %u (expected %d)", path,
          read_u32(data + 4), MC_VERSION);
    int count = (int)read_u32(data + 8);
    check(count > 0 && count < 65536, "%s: bad example count %d in the header", path, count);
    check((len - 1024) % 2 == 0, "%s: odd number of bytes after the header", path);
    McSet s = {0};
    int cap = 0;
    size_t at = 1024, words = (len - 1024) / 2;
    for (int i = 0; i < count; i++) {
        McExample ex;
        size_t left = words - (at - 1024) / 2;
        at += 2 * (size_t)parse_binary_example(path, i, data + at, left, tok, V, &ex);
        add_example(&s, &cap, &ex);
    }
    check(at == len, "%s: %zu bytes after the %d examples the header counts", path, len - at,
          count);
    free(data);
    return s;
}

// Tokenize text into ids appended to ex->tokens at *n (capacity *cap); returns the count.
static int append_text(const Tokenizer *tok, const char *text, McExample *ex, int *n, int *cap) {
    uint32_t *ids = NULL;
    size_t count = 0, ids_cap = 0;
    tokenizer_encode(tok, text, strlen(text), &ids, &count, &ids_cap);
    if (*n + (int)count > *cap) {
        *cap = 2 * (*n + (int)count) + 16;
        ex->tokens = xrealloc(ex->tokens, (size_t)*cap * sizeof(int));
    }
    for (size_t i = 0; i < count; i++) ex->tokens[(*n)++] = (int)ids[i];
    free(ids);
    return (int)count;
}

// One jsonl line into ex (tokenized); `at` is its position, for messages.
static void parse_json_example(const char *path, int at, const char *line, const Tokenizer *tok,
                               int V, McExample *ex) {
    cJSON *j = cJSON_Parse(line);
    check(j != NULL, "%s: example %d: not a JSON object", path, at);
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(j, "ctx");
    const cJSON *endings = cJSON_GetObjectItemCaseSensitive(j, "endings");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(j, "label");
    check(cJSON_IsString(ctx), "%s: example %d: no string \"ctx\"", path, at);
    check(cJSON_IsArray(endings), "%s: example %d: no array \"endings\"", path, at);
    check(cJSON_IsNumber(label), "%s: example %d: no number \"label\"", path, at);
    memset(ex, 0, sizeof *ex);
    ex->index = at;
    ex->n_endings = cJSON_GetArraySize(endings);
    check(ex->n_endings >= 2 && ex->n_endings <= MC_MAX_ENDINGS,
          "%s: example %d: %d endings (expected 2..%d)", path, at, ex->n_endings, MC_MAX_ENDINGS);
    check(label->valuedouble >= 0 && label->valuedouble < ex->n_endings &&
              label->valuedouble == (int)label->valuedouble,
          "%s: example %d: label %g out of range (%d endings)", path, at, label->valuedouble,
          ex->n_endings);
    ex->label = (int)label->valuedouble;
    int n = 0, cap = 0;
    ex->ctx_len = append_text(tok, ctx->valuestring, ex, &n, &cap);
    for (int e = 0; e < ex->n_endings; e++) {
        const cJSON *end = cJSON_GetArrayItem(endings, e);
        check(cJSON_IsString(end), "%s: example %d: ending %d is not a string", path, at, e);
        size_t len = strlen(end->valuestring);
        char *text = xmalloc(len + 2);
        text[0] = ' ';
        memcpy(text + 1, end->valuestring, len + 1);
        ex->ending_start[e] = n;
        check(append_text(tok, text, ex, &n, &cap) > 0, "%s: example %d: ending %d is empty", path,
              at, e);
        ex->ending_bytes[e] = (int)len + 1;
        free(text);
    }
    ex->ending_start[ex->n_endings] = n;
    for (int i = 0; i < n; i++)
        check(ex->tokens[i] < V, "%s: example %d: token id %d >= vocab size %d", path, at,
              ex->tokens[i], V);
    cJSON_Delete(j);
}

// The jsonl form: one example per non-empty line.
static McSet read_jsonl(const char *path, const Tokenizer *tok, int V) {
    size_t len;
    char *text = read_file(path, &len);
    McSet s = {0};
    int cap = 0;
    for (char *line = text; line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (end) *end = '\0';
        if (strspn(line, " \t\r") != strlen(line)) {
            McExample ex;
            parse_json_example(path, s.n, line, tok, V, &ex);
            add_example(&s, &cap, &ex);
        }
        line = end ? end + 1 : text + len;
    }
    check(s.n > 0, "%s: no examples", path);
    free(text);
    return s;
}

McSet mc_read(const char *path, const Tokenizer *tok, int vocab_size) {
    size_t n = strlen(path);
    if (n >= 6 && strcmp(path + n - 6, ".jsonl") == 0) return read_jsonl(path, tok, vocab_size);
    return read_binary(path, tok, vocab_size);
}

void mc_free(McSet *s) {
    for (int i = 0; i < s->n; i++) free(s->examples[i].tokens);
    free(s->examples);
    memset(s, 0, sizeof *s);
}
