// tests/test_bpe.c: byte-level BPE (data/bpe.h). Hand-built tokenizer.json / .tiktoken
// files checked against a naive BPE written here; added tokens, split patterns, invalid
// UTF-8, malformed files; and, when tools/tokenizer-refs.sh can install the npm reference
// encoders, id-for-id parity with them (GPT-2, cl100k, o200k, Llama-3 style).
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/util.h"
#include "../data/bpe.h"
#include "testing.h"

static const char *refs_dir = "build/tokenizer-refs"; // tools/tokenizer-refs.sh output

// ---- helpers: files, byte-level strings, encoding

// The path of `name` in the scratch root, in a static buffer the next call reuses.
static char *tmp_path(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", scratch_root(), name);
    return path;
}

// GPT-2's byte-to-unicode code point of a byte, from the rule: printable bytes stand for
// themselves, the others count up from 256.
static int char_of_byte(int byte) {
    int extra = 0;
    for (int c = 0; c < 256; c++) {
        bool printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174);
        if (c == byte) return printable ? c : 256 + extra;
        if (!printable) extra++;
    }
    return -1;
}

static int put_utf8(char *out, int cp) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 63));
        return out[2] = (char)(0x80 | (cp & 63)), 3;
    }
    out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | ((cp >> 12) & 63));
    out[2] = (char)(0x80 | ((cp >> 6) & 63)), out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

// Append the token's bytes in byte-to-unicode form as a JSON string literal.
static void put_json_token(FILE *f, const char *bytes, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        char buf[4];
        int cp = char_of_byte((uint8_t)bytes[i]);
        if (cp == '"' || cp == '\\') fputc('\\', f);
        int len = put_utf8(buf, cp);
        fwrite(buf, 1, (size_t)len, f);
    }
    fputc('"', f);
}

typedef struct Ids {
    uint32_t *v;
    size_t n, cap;
} Ids;

static Ids encode(const Bpe *b, const char *text, size_t len) {
    Ids ids = {0};
    bpe_encode(b, text, len, &ids.v, &ids.n, &ids.cap);
    return ids;
}

static void expect_ids(const Bpe *b, const char *text, const uint32_t *want, size_t n_want) {
    Ids got = encode(b, text, strlen(text));
    ck_assert_msg(got.n == n_want, "'%s': %zu ids, want %zu", text, got.n, n_want);
    for (size_t i = 0; i < n_want; i++)
        ck_assert_msg(got.v[i] == want[i], "'%s': id %zu is %u, want %u", text, i, got.v[i],
                      want[i]);
    free(got.v);
}

// ---- a small tokenizer.json: ids 0..255 are the bytes, then the listed tokens

typedef struct TinySpec {
    const char **tokens; // extra tokens (raw bytes), ids 256..
    int n_tokens;
    const char *(*merges)[2]; // pairs of raw byte strings, in rank order
    int n_merges;
    const char *pre_tokenizer; // JSON text
    const char *added;         // JSON list text, or NULL
    bool ignore_merges;
} TinySpec;

static void write_tiny_json(const char *path, const TinySpec *s) {
    FILE *f = xfopen(path, "wb");
    fprintf(f, "{\"version\": \"1.0\", \"added_tokens\": %s, \"normalizer\": null,\n",
            s->added ? s->added : "[]");
    fprintf(f, "\"pre_tokenizer\": %s,\n\"decoder\": {\"type\": \"ByteLevel\"},\n",
            s->pre_tokenizer);
    fprintf(f, "\"model\": {\"type\": \"BPE\", \"dropout\": null, \"ignore_merges\": %s,\n",
            s->ignore_merges ? "true" : "false");
    fprintf(f, "\"vocab\": {");
    for (int i = 0; i < 256 + s->n_tokens; i++) {
        char byte = (char)i;
        const char *tok = i < 256 ? &byte : s->tokens[i - 256];
        put_json_token(f, tok, i < 256 ? 1 : strlen(tok));
        fprintf(f, ": %d%s", i, i + 1 < 256 + s->n_tokens ? ", " : "},\n\"merges\": [");
    }
    for (int i = 0; i < s->n_merges; i++) {
        fputc('[', f); // pairs as lists (newer files); the GPT-2 parity file uses "a b"
        put_json_token(f, s->merges[i][0], strlen(s->merges[i][0]));
        fputc(',', f);
        put_json_token(f, s->merges[i][1], strlen(s->merges[i][1]));
        fprintf(f, "]%s", i + 1 < s->n_merges ? ", " : "");
    }
    fprintf(f, "]}}\n");
    fclose(f);
}

static Bpe *load_tiny(const TinySpec *s) {
    write_tiny_json(tmp_path("tiny.json"), s);
    return bpe_load(tmp_path("tiny.json"));
}

static const char NO_SPLIT[] = "{\"type\": \"ByteLevel\", \"use_regex\": false}";
static const char GPT2_SPLIT[] = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}";

// ---- the naive BPE the tokenizer must agree with: merge the lowest-ranked adjacent pair
// (leftmost on ties) until none applies, comparing strings.

static void naive_bpe(const char *text, const char *(*merges)[2], int n_merges, const char **tokens,
                      int n_tokens, Ids *out) {
    size_t n = strlen(text);
    char **parts = xmalloc(n * sizeof(char *));
    for (size_t i = 0; i < n; i++) parts[i] = strndup(text + i, 1);
    for (;;) {
        int best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++)
            for (int r = 0; r < n_merges && (best < 0 || r < best); r++)
                if (!strcmp(parts[i], merges[r][0]) && !strcmp(parts[i + 1], merges[r][1]))
                    best = r, at = i;
        if (best < 0) break;
        char *joined = xmalloc(strlen(parts[at]) + strlen(parts[at + 1]) + 1);
        strcat(strcpy(joined, parts[at]), parts[at + 1]);
        free(parts[at]);
        free(parts[at + 1]);
        parts[at] = joined;
        memmove(parts + at + 1, parts + at + 2, (n - at - 2) * sizeof(char *));
        n--;
    }
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint8_t)parts[i][0];
        for (int t = 0; t < n_tokens && strlen(parts[i]) > 1; t++)
            if (!strcmp(parts[i], tokens[t])) id = 256 + (uint32_t)t;
        out->v[out->n++] = id;
        free(parts[i]);
    }
    free(parts);
}

// Random merges over a small alphabet (some tokens reachable two ways, some never), random
// texts: the tokenizer's ids must equal the naive BPE's.
START_TEST(test_random_merges_match_naive) {
    Rng rng = rng_seeded(1234 + (uint64_t)_i);
    const char *alphabet[] = {"a", "b", "c", " ", "\xc3", "\xa9"};
    const char *tokens[64], *merges[64][2], *cands[80];
    int n_tokens = 0, n_merges = 0, n_cands = 6;
    for (int i = 0; i < 6; i++) cands[i] = alphabet[i];
    for (int tries = 0; tries < 200 && n_merges < 48; tries++) {
        const char *x = cands[rng_next(&rng) % (uint64_t)n_cands];
        const char *y = cands[rng_next(&rng) % (uint64_t)n_cands];
        bool seen = false;
        for (int m = 0; m < n_merges; m++)
            seen |= !strcmp(merges[m][0], x) && !strcmp(merges[m][1], y);
        if (seen || strlen(x) + strlen(y) > 10) continue;
        char *joined = xmalloc(strlen(x) + strlen(y) + 1);
        strcat(strcpy(joined, x), y);
        const char *tok = NULL;
        for (int t = 0; t < n_tokens; t++)
            if (!strcmp(tokens[t], joined)) tok = tokens[t];
        if (tok)
            free(joined); // a second pair that makes the same token
        else
            tokens[n_tokens++] = tok = cands[n_cands++] = joined;
        merges[n_merges][0] = x;
        merges[n_merges++][1] = y;
    }
    TinySpec spec = {tokens, n_tokens, merges, n_merges, NO_SPLIT, NULL, false};
    Bpe *b = load_tiny(&spec);
    ck_assert_int_eq(bpe_vocab_size(b), 256 + n_tokens);
    ck_assert_int_eq(bpe_eot(b), -1);
    char text[200];
    Ids want = {xmalloc(200 * sizeof(uint32_t)), 0, 200};
    for (int trial = 0; trial < 200; trial++) {
        size_t len = 0, target = rng_next(&rng) % 150;
        while (len < target) {
            const char *piece =
                rng_uniform(&rng) < 0.1f ? "\xc3\xa9" : alphabet[rng_next(&rng) % 4];
            strcpy(text + len, piece);
            len += strlen(piece);
        }
        text[len] = 0;
        naive_bpe(text, merges, n_merges, tokens, n_tokens, &want);
        expect_ids(b, text, want.v, want.n);
        Ids got = encode(b, text, len);
        size_t back_len;
        char *back = bpe_decode(b, got.v, got.n, &back_len);
        ck_assert_uint_eq(back_len, len);
        ck_assert_mem_eq(back, text, len);
        free(back);
        free(got.v);
    }
    free(want.v);
    bpe_free(b);
    for (int t = 0; t < n_tokens; t++) free((char *)tokens[t]);
}
END_TEST

// A token that the merges cannot build is used whole only with ignore_merges.
START_TEST(test_ignore_merges) {
    const char *tokens[] = {"ab", "abc"};
    const char *merges[][2] = {{"a", "b"}};
    TinySpec spec = {tokens, 2, merges, 1, NO_SPLIT, NULL, false};
    Bpe *b = load_tiny(&spec);
    expect_ids(b, "abc", (uint32_t[]){256, 'c'}, 2);
    bpe_free(b);
    spec.ignore_merges = true;
    b = load_tiny(&spec);
    expect_ids(b, "abc", (uint32_t[]){257}, 1);
    expect_ids(b, "abcab", (uint32_t[]){256, 'c', 256}, 3);
    bpe_free(b);
}
END_TEST

// Merges never cross pre-tokenizer pieces: GPT-2's pattern, a custom Split, a prefix space.
START_TEST(test_split_patterns) {
    const char *tokens[] = {"o ", " w", "12", " h"};
    const char *merges[][2] = {{"o", " "}, {" ", "w"}, {"1", "2"}, {" ", "h"}};
    TinySpec spec = {tokens, 4, merges, 4, NO_SPLIT, NULL, false};
    Bpe *b = load_tiny(&spec);
    expect_ids(b, "o w", (uint32_t[]){256, 'w'}, 2); // one piece: "o " merges first
    expect_ids(b, "x12", (uint32_t[]){'x', 258}, 2);
    bpe_free(b);
    spec.pre_tokenizer = GPT2_SPLIT;
    b = load_tiny(&spec);
    expect_ids(b, "o w", (uint32_t[]){'o', 257}, 2); // pieces "o", " w"
    expect_ids(b, "o  w", (uint32_t[]){'o', ' ', 257}, 3);
    bpe_free(b);
    spec.pre_tokenizer = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                         "\"pattern\": {\"Regex\": \"[0-9]\"}, \"behavior\": \"Isolated\", "
                         "\"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}";
    b = load_tiny(&spec);
    expect_ids(b, "x12", (uint32_t[]){'x', '1', '2'}, 3);
    bpe_free(b);
    spec.pre_tokenizer = "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, "
                         "\"use_regex\": false}";
    spec.added = "[{\"id\": 300, \"content\": \"<s>\", \"special\": true}]";
    b = load_tiny(&spec);
    expect_ids(b, "hi<s>hi", (uint32_t[]){259, 'i', 300, 259, 'i'}, 5);
    expect_ids(b, " hi", (uint32_t[]){259, 'i'}, 2);
    bpe_free(b);
}
END_TEST

// Added tokens: matched literally, leftmost then longest, decoded to their text.
START_TEST(test_added_tokens) {
    const char *tokens[] = {"ab"};
    const char *merges[][2] = {{"a", "b"}};
    TinySpec spec = {tokens,
                     1,
                     merges,
                     1,
                     GPT2_SPLIT,
                     "[{\"id\": 400, \"content\": \"<s>\"}, {\"id\": 401, \"content\": "
                     "\"<s>x\"}, {\"id\": 402, \"content\": \"<|endoftext|>\"}]",
                     false};
    Bpe *b = load_tiny(&spec);
    ck_assert_int_eq(bpe_vocab_size(b), 403);
    ck_assert_int_eq(bpe_eot(b), 402);
    const char *text = "ab<s>xab<s><|endoftext|><s";
    expect_ids(b, text, (uint32_t[]){256, 401, 256, 400, 402, '<', 's'}, 7);
    Ids got = encode(b, text, strlen(text));
    size_t len;
    char *back = bpe_decode(b, got.v, got.n, &len);
    ck_assert_str_eq(back, text);
    free(back);
    uint32_t odd[] = {'a', 5000, 399, 'b'}; // ids outside the vocabulary decode to nothing
    back = bpe_decode(b, odd, 4, &len);
    ck_assert_str_eq(back, "ab");
    free(back);
    free(got.v);
    bpe_free(b);
}
END_TEST

// Invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart (WHATWG / Unicode rule);
// the expectations are worked out by hand from that rule.
START_TEST(test_invalid_utf8) {
    TinySpec spec = {NULL, 0, NULL, 0, GPT2_SPLIT, NULL, false};
    Bpe *b = load_tiny(&spec);
#define R "\xEF\xBF\xBD"
    const char *cases[][2] = {
        {"a\xff"
         "b",
         "a" R "b"},
        {"\xe2\x82", R},
        {"\xed\xa0\x80z", R R R "z"},
        {"\xf0\x9f\x98x", R "x"},
        {"\xc0\xaf", R R},
        {"\xf4\x90\x80\x80", R R R R},
        {"\xe0\x80\x80", R R R},
        {"ok \xf0\x9f\x98\x80 \xc3\xa9", "ok \xf0\x9f\x98\x80 \xc3\xa9"},
        {"\x80 \xbf", R " " R},
        {"\xf8\x88\x80\x80\x80", R R R R R},
    };
#undef R
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Ids got = encode(b, cases[c][0], strlen(cases[c][0]));
        size_t len;
        char *back = bpe_decode(b, got.v, got.n, &len);
        ck_assert_msg(strcmp(back, cases[c][1]) == 0, "case %zu decodes wrong", c);
        free(back);
        free(got.v);
    }
    // Random bytes: never a crash, and the repaired text is a fixed point.
    Rng rng = rng_seeded(99);
    for (int trial = 0; trial < 300; trial++) {
        char text[64];
        size_t len = rng_next(&rng) % sizeof text;
        for (size_t i = 0; i < len; i++) text[i] = (char)rng_next(&rng);
        Ids once = encode(b, text, len);
        size_t back_len;
        char *back = bpe_decode(b, once.v, once.n, &back_len);
        Ids twice = encode(b, back, back_len);
        ck_assert_uint_eq(twice.n, once.n);
        if (once.n > 0) ck_assert_mem_eq(twice.v, once.v, once.n * sizeof(uint32_t));
        free(back);
        free(once.v);
        free(twice.v);
    }
    bpe_free(b);
}
END_TEST

// Random valid UTF-8 (ASCII, accents, CJK, emoji, whitespace runs) round-trips exactly.
START_TEST(test_round_trip_random_text) {
    const char *tokens[] = {"th", "the", " the", "in"};
    const char *merges[][2] = {{"t", "h"}, {"th", "e"}, {" ", "the"}, {"i", "n"}};
    TinySpec spec = {tokens, 4, merges, 4, GPT2_SPLIT, NULL, false};
    Bpe *b = load_tiny(&spec);
    Rng rng = rng_seeded(7);
    static const int ranges[][2] = {{'a', 'z'},       {' ', '~'},         {0xe0, 0xff},
                                    {0x4e00, 0x9fa5}, {0x1f600, 0x1f64f}, {'\t', '\r'}};
    for (int trial = 0; trial < 300; trial++) {
        char text[1200];
        size_t len = 0, target = rng_next(&rng) % 1000;
        while (len < target) {
            const int *r = ranges[rng_next(&rng) % 6];
            len += (size_t)put_utf8(text + len,
                                    r[0] + (int)(rng_next(&rng) % (uint64_t)(r[1] - r[0] + 1)));
        }
        Ids got = encode(b, text, len);
        size_t back_len;
        char *back = bpe_decode(b, got.v, got.n, &back_len);
        ck_assert_uint_eq(back_len, len);
        ck_assert_mem_eq(back, text, len);
        free(back);
        free(got.v);
    }
    bpe_free(b);
}
END_TEST

// A small tiktoken ranks file named like gpt2: GPT-2 pattern, <|endoftext|> = 50256, and a
// piece that is a token is emitted whole.
START_TEST(test_tiktoken_file) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = xfopen(tmp_path("tiny-gpt2.tiktoken"), "wb");
    for (int byte = 0; byte < 256; byte++) // one byte -> two chars + "=="
        fprintf(f, "%c%c== %d\n", b64[byte >> 2], b64[(byte & 3) << 4], byte);
    fprintf(f, "YWI= 256\nYWJj 257\nIGFi 258\n"); // "ab", "abc", " ab"
    fclose(f);
    Bpe *b = bpe_load(tmp_path("tiny-gpt2.tiktoken"));
    ck_assert_int_eq(bpe_vocab_size(b), 50257);
    ck_assert_int_eq(bpe_eot(b), 50256);
    expect_ids(b, "abc", (uint32_t[]){257}, 1);
    expect_ids(b, "abcab", (uint32_t[]){257, 256}, 2);
    expect_ids(b, "x ab<|endoftext|>", (uint32_t[]){'x', 258, 50256}, 3);
    bpe_free(b);
}
END_TEST

// ---- malformed files die naming the file

static void load_text(const char *name, const char *text) {
    write_text(tmp_path(name), text);
    bpe_load(tmp_path(name));
}
static const char VOCAB_AB[] = "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}";
#define BYTE_LEVEL "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}"

START_TEST(test_bad_json) {
    load_text("bad.json", "{\"model\": {\"vocab\": {\"a\": 0");
}
END_TEST
START_TEST(test_no_model) {
    load_text("bad.json", "{" BYTE_LEVEL "}");
}
END_TEST
START_TEST(test_bad_vocab_id) {
    load_text("bad.json",
              "{" BYTE_LEVEL ", \"model\": {\"vocab\": {\"a\": \"x\"}, \"merges\": []}}");
}
END_TEST
START_TEST(test_merge_not_in_vocab) {
    char text[400];
    snprintf(text, sizeof text, "{" BYTE_LEVEL ", \"model\": {%s, \"merges\": [\"a c\"]}}",
             VOCAB_AB);
    load_text("bad.json", text);
}
END_TEST
START_TEST(test_merge_malformed) {
    char text[400];
    snprintf(text, sizeof text, "{" BYTE_LEVEL ", \"model\": {%s, \"merges\": [\"ab\"]}}",
             VOCAB_AB);
    load_text("bad.json", text);
}
END_TEST
START_TEST(test_not_byte_level) {
    char text[400];
    snprintf(text, sizeof text, "{\"model\": {%s, \"merges\": [\"a b\"]}}", VOCAB_AB);
    load_text("bad.json", text);
}
END_TEST
START_TEST(test_unsupported_normalizer) {
    char text[400];
    snprintf(text, sizeof text,
             "{\"normalizer\": {\"type\": \"NFKC\"}, " BYTE_LEVEL
             ", \"model\": {%s, \"merges\": []}}",
             VOCAB_AB);
    load_text("bad.json", text);
}
END_TEST
START_TEST(test_bad_split_regex) {
    char text[400];
    snprintf(text, sizeof text,
             "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
             "\"behavior\": \"Isolated\"}, \"model\": {%s, \"merges\": []}}",
             VOCAB_AB);
    load_text("bad.json", text);
}
END_TEST
START_TEST(test_bad_tiktoken_base64) {
    load_text("bad.tiktoken", "YWI= 0\nY*I= 1\n");
}
END_TEST
START_TEST(test_bad_tiktoken_rank) {
    load_text("bad.tiktoken", "YWI= 0\nYWJj\n");
}
END_TEST
START_TEST(test_missing_file) {
    bpe_load(tmp_path("no-such-tokenizer.json"));
}
END_TEST

// ---- parity with the reference encoders (tools/tokenizer-refs.sh)

typedef struct RefTokenizer {
    char name[64], path[512], ids_path[512];
} RefTokenizer;
static RefTokenizer refs[16];
static int n_refs;

// Parse one line of space-separated ids.
static size_t parse_ids(char **cursor, uint32_t **ids, size_t *cap) {
    size_t n = 0;
    char *p = *cursor;
    while (*p && *p != '\n') {
        char *end;
        unsigned long id = strtoul(p, &end, 10);
        if (end == p) break;
        if (n == *cap) *ids = xrealloc(*ids, (*cap = 2 * *cap + 64) * sizeof(uint32_t));
        (*ids)[n++] = (uint32_t)id;
        p = end;
        while (*p == ' ') p++;
    }
    *cursor = *p ? p + 1 : p;
    return n;
}

START_TEST(test_reference_parity) {
    const RefTokenizer *r = &refs[_i];
    Bpe *b = bpe_load(r->path);
    size_t ids_len, want_cap = 0;
    char *ids_text = test_read_file(r->ids_path, &ids_len), *cursor = ids_text;
    uint32_t *want = NULL;
    int n_cases = 0, n_bad = 0;
    for (;; n_cases++) {
        char bin[600], txt[600];
        snprintf(bin, sizeof bin, "%s/corpus/%03d.bin", refs_dir, n_cases);
        snprintf(txt, sizeof txt, "%s/corpus/%03d.txt", refs_dir, n_cases);
        if (file_size(bin) < 0) break;
        size_t len, expect_len, back_len;
        char *text = test_read_file(bin, &len), *expect = test_read_file(txt, &expect_len);
        ck_assert_msg(*cursor, "%s: fewer reference lines than texts", r->ids_path);
        size_t n_want = parse_ids(&cursor, &want, &want_cap);
        Ids got = encode(b, text, len);
        size_t same = 0;
        while (same < got.n && same < n_want && got.v[same] == want[same]) same++;
        if (same != got.n || same != n_want) {
            if (n_bad++ < 5)
                fprintf(stderr, "%s: text %03d: %zu ids, reference %zu, first difference at %zu\n",
                        r->name, n_cases, got.n, n_want, same);
        }
        char *back = bpe_decode(b, got.v, got.n, &back_len);
        ck_assert_msg(back_len == expect_len && memcmp(back, expect, back_len) == 0,
                      "%s: text %03d does not decode back", r->name, n_cases);
        free(back);
        free(got.v);
        free(text);
        free(expect);
    }
    printf("%s: %d texts, %d differ from the reference\n", r->name, n_cases, n_bad);
    ck_assert_msg(n_cases > 0, "no corpus in %s", refs_dir);
    ck_assert_msg(n_bad == 0, "%s: %d of %d texts differ from the reference", r->name, n_bad,
                  n_cases);
    free(want);
    free(ids_text);
    bpe_free(b);
}
END_TEST

// Run tools/tokenizer-refs.sh (fast when already done) and list its tokenizers; false with
// a printed reason if npm or the packages cannot be had.
static bool find_references(void) {
    if (getenv("BOLT_TOKENIZER_REFS")) refs_dir = getenv("BOLT_TOKENIZER_REFS");
    char command[700], list[600];
    snprintf(command, sizeof command, "bash tools/tokenizer-refs.sh '%s' >&2", refs_dir);
    if (access("tools/tokenizer-refs.sh", R_OK) != 0 || system(command) != 0) {
        printf("SKIPPED: tokenizer parity tests (tools/tokenizer-refs.sh could not build the "
               "references: needs node, npm and the npm registry)\n");
        return false;
    }
    snprintf(list, sizeof list, "%s/tokenizers.txt", refs_dir);
    FILE *f = fopen(list, "r");
    if (!f) return false;
    char line[1200], name[64], path[400], ids[400];
    while (n_refs < 16 && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %399s %399s", name, path, ids) != 3) continue;
        RefTokenizer *r = &refs[n_refs++];
        snprintf(r->name, sizeof r->name, "%s", name);
        snprintf(r->path, sizeof r->path, "%s/%s", refs_dir, path);
        snprintf(r->ids_path, sizeof r->ids_path, "%s/%s", refs_dir, ids);
    }
    fclose(f);
    return n_refs > 0;
}

int main(void) {
    make_scratch_root("bpe");
    bool have_refs = find_references();

    Suite *s = suite_create("bpe");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_random_merges_match_naive, 0, 6);
    tcase_add_test(tc, test_ignore_merges);
    tcase_add_test(tc, test_split_patterns);
    tcase_add_test(tc, test_added_tokens);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_round_trip_random_text);
    tcase_add_test(tc, test_tiktoken_file);
    suite_add_tcase(s, tc);

    TCase *bad = tcase_create("malformed");
    tcase_add_exit_test(bad, test_bad_json, 1);
    tcase_add_exit_test(bad, test_no_model, 1);
    tcase_add_exit_test(bad, test_bad_vocab_id, 1);
    tcase_add_exit_test(bad, test_merge_not_in_vocab, 1);
    tcase_add_exit_test(bad, test_merge_malformed, 1);
    tcase_add_exit_test(bad, test_not_byte_level, 1);
    tcase_add_exit_test(bad, test_unsupported_normalizer, 1);
    tcase_add_exit_test(bad, test_bad_split_regex, 1);
    tcase_add_exit_test(bad, test_bad_tiktoken_base64, 1);
    tcase_add_exit_test(bad, test_bad_tiktoken_rank, 1);
    tcase_add_exit_test(bad, test_missing_file, 1);
    suite_add_tcase(s, bad);

    if (have_refs) {
        TCase *parity = tcase_create("parity");
        tcase_set_timeout(parity, 60);
        tcase_add_loop_test(parity, test_reference_parity, 0, n_refs);
        suite_add_tcase(s, parity);
    }

    return run_suite(s);
}
