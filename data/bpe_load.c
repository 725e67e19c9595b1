// data/bpe_load.c: reading byte-level BPE tokenizers into a Bpe: Hugging Face
// tokenizer.json (vocab, merges, added tokens, pre_tokenizer stages; GPT-2 and Llama-3
// style) and tiktoken ranks files (gpt2, cl100k_base, o200k_base, with the split pattern
// and special tokens picked by the file's name, else its size). Unsupported or malformed
// input dies naming the file. Encoding and decoding are in data/bpe.c.
#include "bpe_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/util.h"

enum { MAX_VOCAB = 1 << 24 };

// The split patterns of tiktoken's encodings (Llama-3's tokenizer.json uses cl100k's).
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+"
                                   "| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char CL100K_PATTERN[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
                                     "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+"
                                     "|\\s+(?!\\S)|\\s+";
static const char O200K_PATTERN[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// ---------------------------------------------------------------------------------------
// Building the tables

// Add an ordinary token to the bytes map (duplicates die: the vocab must be a bijection).
static void insert_bytes(Bpe *b, uint32_t id) {
    const uint8_t *p = (const uint8_t *)b->pool + b->tok_off[id];
    size_t n = (size_t)b->tok_len[id];
    int64_t other = bpe_lookup_bytes(b, p, n);
    if (other >= 0)
        die("%s: tokens %lld and %u have the same bytes", b->path, (long long)other, id);
    uint64_t head = head_of(p, n);
    size_t i = hash_bytes(p, n, head) & b->bytes_mask;
    while (b->bytes_map[i].id_plus1) i = (i + 1) & b->bytes_mask;
    b->bytes_map[i] = (ByteSlot){head, id + 1, (uint32_t)n};
}

// An empty merge table of `size` (a power of two) slots.
static void alloc_pairs(Bpe *b, size_t size) {
    b->pairs = xmalloc(size * sizeof(PairSlot));
    memset(b->pairs, 0xff, size * sizeof(PairSlot));
    b->pairs_mask = size - 1;
    b->n_pairs = 0;
}

// Add or replace a merge (a later duplicate wins, as in Hugging Face's merge map).
static void insert_pair(Bpe *b, uint32_t left, uint32_t right, uint32_t rank, uint32_t id) {
    if (2 * (b->n_pairs + 1) > b->pairs_mask + 1) { // keep the load under 1/2: grow
        PairSlot *old = b->pairs;
        size_t old_size = b->pairs_mask + 1;
        alloc_pairs(b, 2 * old_size);
        for (size_t i = 0; i < old_size; i++)
            if (old[i].key != UINT64_MAX)
                insert_pair(b, (uint32_t)(old[i].key >> 32), (uint32_t)old[i].key, old[i].rank,
                            old[i].id);
        free(old);
    }
    uint64_t key = (uint64_t)left << 32 | right;
    size_t i = pair_hash(key) & b->pairs_mask;
    while (b->pairs[i].key != UINT64_MAX && b->pairs[i].key != key) i = (i + 1) & b->pairs_mask;
    if (b->pairs[i].key == UINT64_MAX) b->n_pairs++;
    b->pairs[i] = (PairSlot){key, rank, id};
}

// Allocate the per-id tables for `vocab_size` ids and a bytes map for `n_tokens`.
static void alloc_vocab(Bpe *b, int vocab_size, size_t n_tokens) {
    b->vocab_size = vocab_size;
    b->tok_off = xcalloc((size_t)vocab_size, sizeof(uint32_t));
    b->tok_len = xmalloc((size_t)vocab_size * sizeof(int32_t));
    for (int i = 0; i < vocab_size; i++) b->tok_len[i] = -1;
    b->whole_ok = xcalloc((size_t)vocab_size, 1);
    size_t size = 1024;
    while (size < 2 * n_tokens) size *= 2;
    b->bytes_map = xcalloc(size, sizeof(ByteSlot));
    b->bytes_mask = size - 1;
    alloc_pairs(b, size);
}

// Give id the bytes p[0..n) (stored in the pool).
static void set_token(Bpe *b, uint32_t id, const void *p, size_t n) {
    if (!b->pool || b->pool_len + n > b->pool_cap) { // an empty first token still needs a pool
        b->pool_cap = 2 * (b->pool_len + n) + 4096;
        b->pool = xrealloc(b->pool, b->pool_cap);
    }
    if (n > 0) memcpy(b->pool + b->pool_len, p, n);
    b->tok_off[id] = (uint32_t)b->pool_len;
    b->tok_len[id] = (int32_t)n;
    b->pool_len += n;
    check(b->pool_len < UINT32_MAX, "%s: vocabulary too large", b->path);
}

// Register an added/special token matched literally in the input.
static void add_special(Bpe *b, uint32_t id, const char *text, size_t len) {
    check(len > 0, "%s: empty added token (id %u)", b->path, id);
    for (int i = 0; i < b->n_specials; i++)
        check(!(b->specials[i].len == len &&
                memcmp(b->pool + b->tok_off[b->specials[i].id], text, len) == 0),
              "%s: added token '%s' given twice", b->path, text);
    set_token(b, id, text, len);
    b->specials = xrealloc(b->specials, (size_t)(b->n_specials + 1) * sizeof(Special));
    b->specials[b->n_specials++] = (Special){id, (uint32_t)len, NULL};
    b->special_first[(uint8_t)text[0]] = true;
    if ((len == 13 && memcmp(text, "<|endoftext|>", 13) == 0) ||
        (len == 15 && memcmp(text, "<|end_of_text|>", 15) == 0))
        b->eot = (int)id;
}

static int longer_special_first(const void *x, const void *y) {
    const Special *a = x, *b = y;
    return (a->len < b->len) - (a->len > b->len);
}

// After all tokens are set: point specials into the pool, sort them, fill byte_id.
static void finish_tables(Bpe *b) {
    for (int i = 0; i < b->n_specials; i++)
        b->specials[i].text = b->pool + b->tok_off[b->specials[i].id];
    if (b->n_specials > 0)
        qsort(b->specials, (size_t)b->n_specials, sizeof(Special), longer_special_first);
    for (int c = 0; c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        int64_t id = bpe_lookup_bytes(b, &byte, 1);
        b->byte_id[c] = id < 0 ? NO_ID : (uint32_t)id;
    }
}

// Compile a split stage. `literal`: the pattern is a plain string, not a regex.
static void add_stage(Bpe *b, const char *pattern, size_t len, bool literal, bool prefix_space) {
    check(b->n_stages < MAX_STAGES, "%s: more than %d pre-tokenizer stages", b->path, MAX_STAGES);
    Stage *st = &b->stages[b->n_stages++];
    st->prefix_space = prefix_space;
    if (!pattern) return;
    int err;
    PCRE2_SIZE err_at;
    uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    st->re = pcre2_compile((PCRE2_SPTR)pattern, len, options, &err, &err_at, NULL);
    if (!st->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        die("%s: split pattern '%.*s' does not compile at offset %zu: %s", b->path, (int)len,
            pattern, (size_t)err_at, (char *)msg);
    }
    st->jit = pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE) == 0;
}

// ---------------------------------------------------------------------------------------
// Loading: tiktoken ranks files ("base64-token rank" per line)

// Decode standard padded base64 s[0..n) into out; the length, or -1 if malformed.
static long base64_decode(const char *s, size_t n, uint8_t *out) {
    if (n == 0 || n % 4) return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t x = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + k];
            int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                    : c >= 'a' && c <= 'z' ? c - 'a' + 26
                    : c >= '0' && c <= '9' ? c - '0' + 52
                    : c == '+'             ? 62
                    : c == '/'             ? 63
                                           : -1;
            if (c == '=' && i + 4 == n && k >= 2) {
                v = 0;
                pad++;
            } else if (v < 0 || pad) {
                return -1;
            }
            x = x << 6 | (uint32_t)v;
        }
        out[o++] = (uint8_t)(x >> 16);
        if (pad < 2) out[o++] = (uint8_t)(x >> 8);
        if (pad < 1) out[o++] = (uint8_t)x;
    }
    return o;
}

static void load_tiktoken(Bpe *b, char *text, size_t len) {
    // Parse every line first: the vocabulary size is the largest rank + 1.
    size_t n_lines = 0, n = 0, pool_len = 0, line_no = 0;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    uint8_t *bytes = xmalloc(len + 1);
    size_t *offs = xmalloc((n_lines + 1) * sizeof(size_t)),
           *lens = xmalloc((n_lines + 1) * sizeof(size_t));
    int *ranks = xmalloc((n_lines + 1) * sizeof(int));
    int max_rank = -1;
    for (char *line = text; line < text + len; line_no++) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) end = text + len;
        *end = 0;
        if (end > line && end[-1] == '\r') end[-1] = 0;
        if (*line) {
            char *space = strchr(line, ' '), *rank_end = NULL;
            long rank = space ? strtol(space + 1, &rank_end, 10) : -1;
            long nb = space ? base64_decode(line, (size_t)(space - line), bytes + pool_len) : -1;
            check(space && nb > 0 && rank_end != space + 1 && *rank_end == 0 && rank >= 0 &&
                      rank < MAX_VOCAB,
                  "%s:%zu: expected \"<base64 token> <rank>\", got \"%.60s\"", b->path, line_no + 1,
                  line);
            offs[n] = pool_len;
            lens[n] = (size_t)nb;
            ranks[n++] = (int)rank;
            pool_len += (size_t)nb;
            if (rank > max_rank) max_rank = (int)rank;
        }
        line = end + 1;
    }
    check(n > 0, "%s: no tokens", b->path);

    // The split pattern and special tokens follow the encoding's name, else its size.
    typedef struct Encoding {
        const char *pattern;
        int n_special;
        const char *names[5];
        int ids[5];
    } Encoding;
    static const Encoding gpt2 = {GPT2_PATTERN, 1, {"<|endoftext|>"}, {50256}};
    static const Encoding cl100k = {
        CL100K_PATTERN,
        5,
        {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"},
        {100257, 100258, 100259, 100260, 100276}};
    static const Encoding o200k = {
        O200K_PATTERN, 2, {"<|endoftext|>", "<|endofprompt|>"}, {199999, 200018}};
    const char *base = strrchr(b->path, '/') ? strrchr(b->path, '/') + 1 : b->path;
    bool named_gpt2 = strstr(base, "gpt2") || strstr(base, "r50k") || strstr(base, "p50k");
    const Encoding *enc = strstr(base, "o200k")    ? &o200k
                          : strstr(base, "cl100k") ? &cl100k
                          : named_gpt2             ? &gpt2
                          : n > 150000             ? &o200k
                          : n > 75000              ? &cl100k
                                                   : &gpt2;
    int vocab_size = max_rank + 1;
    for (int i = 0; i < enc->n_special; i++)
        if (enc->ids[i] + 1 > vocab_size) vocab_size = enc->ids[i] + 1;
    alloc_vocab(b, vocab_size, n);
    for (size_t i = 0; i < n; i++) {
        check(b->tok_len[ranks[i]] < 0, "%s: rank %d appears twice", b->path, ranks[i]);
        set_token(b, (uint32_t)ranks[i], bytes + offs[i], lens[i]);
        insert_bytes(b, (uint32_t)ranks[i]);
        b->whole_ok[ranks[i]] = 1; // tiktoken emits a piece that is a token whole
    }
    for (int i = 0; i < enc->n_special; i++) {
        check(b->tok_len[enc->ids[i]] < 0, "%s: rank %d is also the special token %s", b->path,
              enc->ids[i], enc->names[i]);
        add_special(b, (uint32_t)enc->ids[i], enc->names[i], strlen(enc->names[i]));
    }
    finish_tables(b);
    // tiktoken merges two parts when their concatenation is a token: list every split of
    // every token into two tokens as a merge ranked by the whole.
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = bytes + offs[i];
        for (size_t k = 1; k < lens[i]; k++) {
            int64_t left = bpe_lookup_bytes(b, p, k),
                    right = bpe_lookup_bytes(b, p + k, lens[i] - k);
            if (left >= 0 && right >= 0)
                insert_pair(b, (uint32_t)left, (uint32_t)right, (uint32_t)ranks[i],
                            (uint32_t)ranks[i]);
        }
    }
    add_stage(b, enc->pattern, strlen(enc->pattern), false, false);
    free(bytes);
    free(offs);
    free(lens);
    free(ranks);
}

// ---------------------------------------------------------------------------------------
// Loading: Hugging Face tokenizer.json

// GPT-2's byte-to-unicode table, inverted: code point (< 324) -> byte, or -1.
static void make_char_to_byte(int16_t table[324]) {
    for (int c = 0; c < 324; c++) table[c] = -1;
    int extra = 0;
    for (int byte = 0; byte < 256; byte++) {
        bool printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) ||
                         (byte >= 174 && byte <= 255);
        table[printable ? byte : 256 + extra++] = (int16_t)byte;
    }
}

// Bytes of a token written in byte-to-unicode form; the length, or -1 if it is not.
static long bytelevel_decode(const int16_t table[324], const char *s, uint8_t *out) {
    size_t n = strlen(s);
    long o = 0;
    for (size_t i = 0; i < n;) {
        const uint8_t *p = (const uint8_t *)s + i;
        int step = bpe_utf8_step(p, n - i);
        if (step < 0 || step > 2) return -1; // every mapped code point is below U+0800
        uint32_t cp = step == 1 ? p[0] : (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        if (cp >= 324 || table[cp] < 0) return -1;
        out[o++] = (uint8_t)table[cp];
        i += (size_t)step;
    }
    return o;
}

static const cJSON *item(const cJSON *object, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(object, key);
}

static const char *type_of(const Bpe *b, const cJSON *object, const char *what) {
    const cJSON *type = item(object, "type");
    check(cJSON_IsString(type), "%s: %s has no \"type\"", b->path, what);
    return type->valuestring;
}

// Turn a pre_tokenizer (Sequence, ByteLevel, Split) into stages.
static void parse_pre_tokenizer(Bpe *b, const cJSON *pt, bool *byte_level) {
    if (!pt || cJSON_IsNull(pt)) return;
    const char *type = type_of(b, pt, "a pre_tokenizer");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = item(pt, "pretokenizers"), *one;
        check(cJSON_IsArray(list), "%s: Sequence pre_tokenizer without a list", b->path);
        cJSON_ArrayForEach(one, list) parse_pre_tokenizer(b, one, byte_level);
    } else if (strcmp(type, "ByteLevel") == 0) {
        *byte_level = true;
        const cJSON *use_regex = item(pt, "use_regex");
        bool split = !use_regex || cJSON_IsTrue(use_regex);
        bool prefix = cJSON_IsTrue(item(pt, "add_prefix_space"));
        if (split || prefix)
            add_stage(b, split ? GPT2_PATTERN : NULL, split ? strlen(GPT2_PATTERN) : 0, false,
                      prefix);
    } else if (strcmp(type, "Split") == 0) {
        const cJSON *pattern = item(pt, "pattern"), *behavior = item(pt, "behavior");
        const cJSON *regex = item(pattern, "Regex"), *string = item(pattern, "String");
        const cJSON *text = cJSON_IsString(regex) ? regex : string;
        check(cJSON_IsString(text), "%s: Split pre_tokenizer without a Regex or String pattern",
              b->path);
        check(cJSON_IsString(behavior) && strcmp(behavior->valuestring, "Isolated") == 0 &&
                  !cJSON_IsTrue(item(pt, "invert")),
              "%s: only Split pre_tokenizers with behavior Isolated and no invert are supported",
              b->path);
        add_stage(b, text->valuestring, strlen(text->valuestring), text == string, false);
    } else {
        die("%s: pre_tokenizer type \"%s\" is not supported (ByteLevel, Split and Sequence are)",
            b->path, type);
    }
}

// Byte-level bytes of a merge side; dies naming the merge if it is not in the vocab.
static uint32_t merge_side(Bpe *b, const int16_t table[324], const char *s, uint8_t *buf, long *nb,
                           int index) {
    *nb = bytelevel_decode(table, s, buf);
    int64_t id = *nb > 0 ? bpe_lookup_bytes(b, buf, (size_t)*nb) : -1;
    check(id >= 0, "%s: merge %d uses \"%s\", which is not in the vocab", b->path, index, s);
    return (uint32_t)id;
}

static void load_json(Bpe *b, const char *text, size_t len) {
    cJSON *root = cJSON_ParseWithLength(text, len);
    check(cJSON_IsObject(root), "%s: not a valid JSON object", b->path);
    const cJSON *model = item(root, "model"), *entry;
    check(cJSON_IsObject(model), "%s: no \"model\" object", b->path);
    const cJSON *type = item(model, "type"), *dropout = item(model, "dropout");
    const cJSON *prefix = item(model, "continuing_subword_prefix");
    const cJSON *suffix = item(model, "end_of_word_suffix");
    check(!type || (cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0),
          "%s: model type \"%s\" is not supported (only BPE)", b->path,
          cJSON_IsString(type) ? type->valuestring : "?");
    check(
        !cJSON_IsTrue(item(model, "byte_fallback")) &&
            (!prefix || cJSON_IsNull(prefix) ||
             (cJSON_IsString(prefix) && !*prefix->valuestring)) &&
            (!suffix || cJSON_IsNull(suffix) || (cJSON_IsString(suffix) && !*suffix->valuestring)),
        "%s: byte_fallback / subword prefix / word suffix BPE is not supported (only byte-level)",
        b->path);
    check(!dropout || cJSON_IsNull(dropout) ||
              (cJSON_IsNumber(dropout) && dropout->valuedouble == 0),
          "%s: BPE dropout is not supported", b->path);
    const cJSON *vocab = item(model, "vocab"), *merges = item(model, "merges");
    const cJSON *added = item(root, "added_tokens"), *normalizer = item(root, "normalizer");
    check(cJSON_IsObject(vocab) && cJSON_IsArray(merges),
          "%s: model needs a \"vocab\" object and a \"merges\" list", b->path);
    check(!added || cJSON_IsArray(added), "%s: \"added_tokens\" is not a list", b->path);
    if (normalizer && !cJSON_IsNull(normalizer))
        die("%s: normalizer \"%s\" is not supported", b->path,
            type_of(b, normalizer, "the normalizer"));

    // Sizes first: the vocabulary covers the largest id of the vocab and the added tokens.
    int max_id = -1;
    size_t n_tokens = 0, longest = 16;
    cJSON_ArrayForEach(entry, vocab) {
        double id = cJSON_IsNumber(entry) ? entry->valuedouble : -1;
        check(id >= 0 && id < MAX_VOCAB && id == (int)id, "%s: vocab entry \"%s\" has no valid id",
              b->path, entry->string);
        if ((int)id > max_id) max_id = (int)id;
        if (strlen(entry->string) > longest) longest = strlen(entry->string);
        n_tokens++;
    }
    cJSON_ArrayForEach(entry, added) {
        const cJSON *id = item(entry, "id"), *content = item(entry, "content");
        check(cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < MAX_VOCAB &&
                  cJSON_IsString(content) && *content->valuestring,
              "%s: an added token lacks an id or content", b->path);
        check(!cJSON_IsTrue(item(entry, "lstrip")) && !cJSON_IsTrue(item(entry, "rstrip")) &&
                  !cJSON_IsTrue(item(entry, "single_word")),
              "%s: added token \"%s\": lstrip, rstrip and single_word are not supported", b->path,
              content->valuestring);
        if (id->valueint > max_id) max_id = id->valueint;
    }
    check(n_tokens > 0, "%s: the vocab is empty", b->path);
    alloc_vocab(b, max_id + 1, n_tokens);

    int16_t table[324];
    make_char_to_byte(table);
    uint8_t *buf = xmalloc(2 * longest + 2);
    cJSON_ArrayForEach(entry, vocab) {
        uint32_t id = (uint32_t)entry->valueint;
        check(b->tok_len[id] < 0, "%s: id %u is given to two vocab entries", b->path, id);
        long nb = bytelevel_decode(table, entry->string, buf);
        if (nb <= 0) { // not in byte-to-unicode form: decodes as written, merges never make it
            set_token(b, id, entry->string, strlen(entry->string));
            continue;
        }
        set_token(b, id, buf, (size_t)nb);
        insert_bytes(b, id);
    }
    int index = 0;
    cJSON_ArrayForEach(entry, merges) {
        char *left = NULL, *right = NULL, *copy = NULL;
        if (cJSON_IsString(entry)) {
            copy = xstrdup(entry->valuestring);
            right = strchr(copy, ' ');
            if (right && !strchr(right + 1, ' ')) *right++ = 0, left = copy;
        } else if (cJSON_GetArraySize(entry) == 2 && cJSON_IsString(entry->child) &&
                   cJSON_IsString(entry->child->next)) {
            left = entry->child->valuestring;
            right = entry->child->next->valuestring;
        }
        check(left && right, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", b->path, index);
        size_t need = strlen(left) + strlen(right) + 1;
        if (need > 2 * longest) buf = xrealloc(buf, 2 * (longest = need));
        long n_left, n_right;
        uint32_t a = merge_side(b, table, left, buf, &n_left, index);
        uint32_t c = merge_side(b, table, right, buf + n_left, &n_right, index);
        int64_t merged = bpe_lookup_bytes(b, buf, (size_t)(n_left + n_right));
        check(merged >= 0, "%s: merge %d makes \"%s%s\", which is not in the vocab", b->path, index,
              left, right);
        insert_pair(b, a, c, (uint32_t)index++, (uint32_t)merged);
        free(copy);
    }
    cJSON_ArrayForEach(entry, added) {
        const char *content = item(entry, "content")->valuestring;
        add_special(b, (uint32_t)item(entry, "id")->valueint, content, strlen(content));
    }
    finish_tables(b);

    bool byte_level = false;
    parse_pre_tokenizer(b, item(root, "pre_tokenizer"), &byte_level);
    const cJSON *decoder = item(root, "decoder");
    if (cJSON_IsObject(decoder) && cJSON_IsString(item(decoder, "type")))
        byte_level |= strcmp(item(decoder, "type")->valuestring, "ByteLevel") == 0;
    check(byte_level, "%s: not a byte-level BPE (no ByteLevel pre_tokenizer or decoder)", b->path);

    // A piece that is a token may skip merging when merging would give that token anyway
    // (or always, with ignore_merges): find out per token by merging its own bytes.
    bool ignore_merges = cJSON_IsTrue(item(model, "ignore_merges"));
    uint32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    for (int id = 0; id < b->vocab_size; id++) {
        if (b->tok_len[id] < 2) continue;
        const uint8_t *p = (const uint8_t *)b->pool + b->tok_off[id];
        if (bpe_lookup_bytes(b, p, (size_t)b->tok_len[id]) != id) continue;
        n_ids = 0;
        if (!ignore_merges) bpe_merge_bytes(b, p, (size_t)b->tok_len[id], &ids, &n_ids, &cap);
        b->whole_ok[id] = ignore_merges || (n_ids == 1 && ids[0] == (uint32_t)id);
    }
    free(ids);
    free(buf);
    cJSON_Delete(root);
}

Bpe *bpe_load(const char *path) {
    Bpe *b = xcalloc(1, sizeof(Bpe));
    b->eot = -1;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t cap = strlen(path) + sizeof "/tokenizer.json";
        b->path = xmalloc(cap);
        path_join(b->path, cap, path, "tokenizer.json");
    } else {
        b->path = xstrdup(path);
    }
    size_t len;
    char *text = read_file(b->path, &len);
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    if (i < len && text[i] == '{')
        load_json(b, text, len);
    else
        load_tiktoken(b, text, len);
    free(text);
    return b;
}

// ---------------------------------------------------------------------------------------
// Accessors and cleanup

int bpe_vocab_size(const Bpe *b) {
    return b->vocab_size;
}
int bpe_eot(const Bpe *b) {
    return b->eot;
}

void bpe_free(Bpe *b) {
    if (!b) return;
    for (int s = 0; s < b->n_stages; s++) pcre2_code_free(b->stages[s].re);
    free(b->path);
    free(b->pool);
    free(b->tok_off);
    free(b->tok_len);
    free(b->bytes_map);
    free(b->pairs);
    free(b->whole_ok);
    free(b->specials);
    free(b);
}
