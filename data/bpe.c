// data/bpe.c: byte-level BPE tokenizers: Hugging Face tokenizer.json (GPT-2 and Llama-3
// style) and tiktoken ranks files (gpt2, cl100k_base, o200k_base).
//
// Encoding, in order:
//   1. Invalid UTF-8 is replaced by U+FFFD, one per maximal invalid subpart (the WHATWG
//      TextDecoder / Python errors="replace" rule), so the ids equal those of a reference
//      that receives the text decoded that way. Valid UTF-8 is used as is.
//   2. Added / special tokens are cut out literally (leftmost, then longest).
//   3. Each stretch between them goes through the pre-tokenizer stages: regex splits
//      (PCRE2 with JIT; matches and the gaps between them both become pieces, the
//      Hugging Face "Isolated" behaviour) and the optional ByteLevel prefix space.
//   4. Each piece is merged byte-level: repeatedly merge the adjacent pair with the
//      lowest rank, leftmost on ties. tiktoken ranks a pair by the rank of its
//      concatenation, tokenizer.json by the merge's line number. A piece that is itself a
//      token is emitted whole when that gives the same ids (always for tiktoken and for
//      ignore_merges, as the references do).
// Why PCRE2: the split patterns need Unicode properties (\p{L}, \p{N}), lookahead and
// (?i:...) groups; PCRE2 (Debian's libpcre2, well kept, with a JIT) runs them as written.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bpe.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/util.h"

enum { MAX_STAGES = 8, MAX_VOCAB = 1 << 24, NO_ID = 0xFFFFFFFFu };

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

// One pre-tokenizer stage: an optional prefix space, then an optional regex split.
typedef struct Stage {
    pcre2_code *re; // NULL: no split
    bool jit;       // JIT compiled
    bool prefix_space;
} Stage;

// bytes -> id (open addressing).
typedef struct ByteSlot {
    uint64_t head;     // the token's first 8 bytes, zero padded
    uint32_t id_plus1; // 0 = empty
    uint32_t len;
} ByteSlot;

// (left id, right id) -> (rank, merged id).
typedef struct PairSlot {
    uint64_t key; // left << 32 | right; UINT64_MAX = empty
    uint32_t rank, id;
} PairSlot;

typedef struct Special {
    uint32_t id;
    uint32_t len;
    const char *text; // into the pool
} Special;

struct Bpe {
    char *path;
    int vocab_size, eot;
    char *pool; // token bytes
    size_t pool_len, pool_cap;
    uint32_t *tok_off;
    int32_t *tok_len; // -1: no such id
    ByteSlot *bytes_map;
    size_t bytes_mask;
    PairSlot *pairs;
    size_t pairs_mask, n_pairs;
    uint32_t byte_id[256]; // id of each single byte, NO_ID if not in the vocab
    uint8_t *whole_ok;     // per id: a piece equal to this token may be emitted whole
    Special *specials;     // sorted longest first
    int n_specials;
    bool special_first[256];
    Stage stages[MAX_STAGES];
    int n_stages;
};

// Per-call merge state and output (bpe_encode is reentrant: nothing mutable in Bpe).
typedef struct Symbol {
    uint32_t id;
    int32_t prev, next; // -2 in next: merged away
} Symbol;
typedef struct Merge {
    uint32_t rank, pos, id;
} Merge;
typedef struct Work {
    uint32_t **ids;
    size_t *n, *cap;
    Symbol *sym;
    Merge *heap;
    size_t sym_cap;
    pcre2_match_data *md[MAX_STAGES];
    pcre2_match_context *mctx;
    pcre2_jit_stack *big_stack; // made only when the default JIT stack is too small
} Work;

// The first (up to) 8 bytes of p[0..n) as a number, zero padded.
static uint64_t head_of(const uint8_t *p, size_t n) {
    uint64_t head = 0;
    memcpy(&head, p, n < 8 ? n : 8);
    return head;
}

// A fast 64-bit hash of a short byte string whose head_of is `head`.
static uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t head) {
    uint64_t h = head ^ (n * 0x9E3779B97F4A7C15ull);
    for (size_t i = 8; i < n; i += 8)
        h = (h ^ (h >> 29) ^ head_of(p + i, n - i)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 32)) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

// The id of the ordinary token with these bytes, or -1. A slot holds the first 8 bytes, so
// short tokens compare without touching the pool.
static int64_t lookup_bytes(const Bpe *b, const uint8_t *p, size_t n) {
    uint64_t head = head_of(p, n);
    for (size_t i = hash_bytes(p, n, head) & b->bytes_mask;; i = (i + 1) & b->bytes_mask) {
        const ByteSlot *s = &b->bytes_map[i];
        if (s->id_plus1 == 0) return -1;
        if (s->head == head && s->len == n &&
            (n <= 8 || memcmp(b->pool + b->tok_off[s->id_plus1 - 1] + 8, p + 8, n - 8) == 0))
            return s->id_plus1 - 1;
    }
}

// Add an ordinary token to the bytes map (duplicates die: the vocab must be a bijection).
static void insert_bytes(Bpe *b, uint32_t id) {
    const uint8_t *p = (const uint8_t *)b->pool + b->tok_off[id];
    size_t n = (size_t)b->tok_len[id];
    int64_t other = lookup_bytes(b, p, n);
    if (other >= 0)
        die("%s: tokens %lld and %u have the same bytes", b->path, (long long)other, id);
    uint64_t head = head_of(p, n);
    size_t i = hash_bytes(p, n, head) & b->bytes_mask;
    while (b->bytes_map[i].id_plus1) i = (i + 1) & b->bytes_mask;
    b->bytes_map[i] = (ByteSlot){head, id + 1, (uint32_t)n};
}

static uint64_t pair_hash(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

// The merge of (left, right), or NULL.
static const PairSlot *lookup_pair(const Bpe *b, uint32_t left, uint32_t right) {
    uint64_t key = (uint64_t)left << 32 | right;
    for (size_t i = pair_hash(key) & b->pairs_mask;; i = (i + 1) & b->pairs_mask) {
        const PairSlot *s = &b->pairs[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
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
    if (b->pool_len + n > b->pool_cap) {
        b->pool_cap = 2 * (b->pool_len + n) + 4096;
        b->pool = xrealloc(b->pool, b->pool_cap);
    }
    memcpy(b->pool + b->pool_len, p, n);
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
        int64_t id = lookup_bytes(b, &byte, 1);
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
// Merging

// Min-heap of merges ordered by (rank, position).
static bool merge_before(Merge a, Merge b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(Merge *heap, size_t *n, Merge m) {
    size_t i = (*n)++;
    while (i > 0 && merge_before(m, heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = m;
}

static Merge heap_pop(Merge *heap, size_t *n) {
    Merge top = heap[0], last = heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && merge_before(heap[c + 1], heap[c])) c++;
        if (!merge_before(heap[c], last)) break;
        heap[i] = heap[c];
        i = c;
    }
    if (*n > 0) heap[i] = last;
    return top;
}

// Queue the merge of symbols at positions left and right, if their pair has one.
static void push_pair(const Bpe *b, Work *w, size_t *n_heap, int32_t left, int32_t right) {
    const PairSlot *m = lookup_pair(b, w->sym[left].id, w->sym[right].id);
    if (m) heap_push(w->heap, n_heap, (Merge){m->rank, (uint32_t)left, m->id});
}

static void emit(Work *w, uint32_t id) {
    if (*w->n == *w->cap) {
        *w->cap = *w->cap ? 2 * *w->cap : 1024;
        *w->ids = xrealloc(*w->ids, *w->cap * sizeof(uint32_t));
    }
    (*w->ids)[(*w->n)++] = id;
}

// Merge the bytes p[0..n) pair by pair, lowest rank first (leftmost on ties), and emit
// the resulting ids. A heap keeps long pieces (whitespace runs) O(n log n).
static void merge_long_piece(const Bpe *b, Work *w, const uint8_t *p, size_t n) {
    check(n < INT32_MAX, "%s: a pre-tokenized piece of %zu bytes is too long", b->path, n);
    if (n > w->sym_cap) {
        w->sym_cap = n + n / 2 + 64;
        free(w->sym);
        free(w->heap);
        w->sym = xmalloc(w->sym_cap * sizeof(Symbol));
        w->heap = xmalloc(3 * w->sym_cap * sizeof(Merge)); // n-1 pairs + 2 per merge
    }
    for (size_t i = 0; i < n; i++)
        w->sym[i] = (Symbol){b->byte_id[p[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(b, w, &n_heap, (int32_t)i, (int32_t)i + 1);
    while (n_heap > 0) {
        Merge m = heap_pop(w->heap, &n_heap);
        Symbol *left = &w->sym[m.pos];
        if (left->next < 0) continue; // merged away, or now last
        Symbol *right = &w->sym[left->next];
        const PairSlot *now = lookup_pair(b, left->id, right->id);
        if (!now || now->id != m.id) continue; // stale: a neighbour changed
        left->id = m.id;
        left->next = right->next;
        right->next = -2;
        if (left->next >= 0) w->sym[left->next].prev = (int32_t)m.pos;
        if (left->prev >= 0) push_pair(b, w, &n_heap, left->prev, (int32_t)m.pos);
        if (left->next >= 0) push_pair(b, w, &n_heap, (int32_t)m.pos, left->next);
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next)
        if (w->sym[i].id != NO_ID) emit(w, w->sym[i].id); // bytes outside the vocab drop
}

// The same merging for short pieces (most of them): arrays and a linear scan for the
// lowest rank beat the heap there.
enum { SHORT_PIECE = 48 };
static void merge_piece(const Bpe *b, Work *w, const uint8_t *p, size_t n) {
    if (n > SHORT_PIECE) {
        merge_long_piece(b, w, p, n);
        return;
    }
    uint32_t id[SHORT_PIECE], rank[SHORT_PIECE], merged[SHORT_PIECE]; // pair i = (i, i+1)
    size_t m = n;
    for (size_t i = 0; i < n; i++) id[i] = b->byte_id[p[i]];
    for (size_t i = 0; i + 1 < n; i++) {
        const PairSlot *s = lookup_pair(b, id[i], id[i + 1]);
        rank[i] = s ? s->rank : UINT32_MAX;
        merged[i] = s ? s->id : NO_ID;
    }
    for (;;) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rank[i] < rank[best]) best = i;
        if (m < 2 || rank[best] == UINT32_MAX) break;
        id[best] = merged[best];
        m--;
        for (size_t i = best + 1; i < m; i++) { // drop symbol best+1
            id[i] = id[i + 1];
            rank[i] = rank[i + 1];
            merged[i] = merged[i + 1];
        }
        for (size_t i = best > 0 ? best - 1 : 0; i <= best && i + 1 < m; i++) {
            const PairSlot *s = lookup_pair(b, id[i], id[i + 1]);
            rank[i] = s ? s->rank : UINT32_MAX;
            merged[i] = s ? s->id : NO_ID;
        }
    }
    for (size_t i = 0; i < m; i++)
        if (id[i] != NO_ID) emit(w, id[i]); // bytes outside the vocab drop
}

// Encode one pre-tokenized piece.
static void encode_piece(const Bpe *b, Work *w, const uint8_t *p, size_t n) {
    if (n == 1) {
        if (b->byte_id[p[0]] != NO_ID) emit(w, b->byte_id[p[0]]);
        return;
    }
    int64_t id = lookup_bytes(b, p, n);
    if (id >= 0 && b->whole_ok[id]) {
        emit(w, (uint32_t)id);
        return;
    }
    merge_piece(b, w, p, n);
}

// ---------------------------------------------------------------------------------------
// Splitting

// Find the next match of stage st in p[0..n) from `start`; false when there is none.
static bool next_match(const Bpe *b, Work *w, int stage, const uint8_t *p, size_t n, size_t start,
                       size_t *match_start, size_t *match_end) {
    const Stage *st = &b->stages[stage];
    pcre2_match_data *md = w->md[stage];
    int rc;
    if (st->jit) {
        rc = pcre2_jit_match(st->re, p, n, start, 0, md, w->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) { // retry once with a large stack
            if (!w->big_stack) {
                w->big_stack = pcre2_jit_stack_create(1 << 20, 256 << 20, NULL);
                check(w->big_stack != NULL, "out of memory for the regex JIT stack");
                pcre2_jit_stack_assign(w->mctx, NULL, w->big_stack);
            }
            rc = pcre2_jit_match(st->re, p, n, start, 0, md, w->mctx);
        }
    } else {
        rc = pcre2_match(st->re, p, n, start, PCRE2_NO_UTF_CHECK, md, w->mctx);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        die("%s: split pattern failed on the input: %s", b->path, (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *match_start = ov[0];
    *match_end = ov[1];
    return true;
}

// Run pre-tokenizer stages stage.. on p[0..n), then encode the pieces.
static void split_piece(const Bpe *b, Work *w, int stage, const uint8_t *p, size_t n) {
    if (n == 0) return;
    if (stage == b->n_stages) {
        encode_piece(b, w, p, n);
        return;
    }
    const Stage *st = &b->stages[stage];
    uint8_t *spaced = NULL;
    if (st->prefix_space && p[0] != ' ') {
        spaced = xmalloc(n + 1);
        spaced[0] = ' ';
        memcpy(spaced + 1, p, n);
        p = spaced;
        n++;
    }
    if (!st->re) {
        split_piece(b, w, stage + 1, p, n);
        free(spaced);
        return;
    }
    size_t gap = 0, pos = 0, s, e;
    while (pos < n && next_match(b, w, stage, p, n, pos, &s, &e)) {
        if (e == s) { // an empty match: step over one character, it stays in the gap
            pos = s + 1;
            while (pos < n && (p[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        split_piece(b, w, stage + 1, p + gap, s - gap);
        split_piece(b, w, stage + 1, p + s, e - s);
        gap = pos = e;
    }
    split_piece(b, w, stage + 1, p + gap, n - gap);
    free(spaced);
}

// ---------------------------------------------------------------------------------------
// UTF-8 repair

// The UTF-8 sequence at p[0..n): its length if valid, else minus the number of bytes that
// one U+FFFD replaces (the maximal subpart of a valid sequence, at least 1).
static int utf8_step(const uint8_t *p, size_t n) {
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; // nothing above U+10FFFF
    } else {
        return -1;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || p[k] < lo || p[k] > hi) return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

// NULL if p[0..n) is valid UTF-8; else a copy with each invalid subpart replaced by U+FFFD.
static uint8_t *utf8_repair(const uint8_t *p, size_t n, size_t *out_len) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, p + i, 8);
            if (!(word & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        int step = utf8_step(p + i, n - i);
        if (step < 0) break;
        i += (size_t)step;
    }
    if (i == n) return NULL;
    uint8_t *out = xmalloc(3 * n + 1), *o = out;
    memcpy(o, p, i);
    o += i;
    while (i < n) {
        int step = utf8_step(p + i, n - i);
        if (step > 0) {
            memcpy(o, p + i, (size_t)step);
            o += step;
            i += (size_t)step;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)-step;
        }
    }
    *out_len = (size_t)(o - out);
    return out;
}

// ---------------------------------------------------------------------------------------
// Public API

void bpe_encode(const Bpe *b, const char *text, size_t len, uint32_t **ids, size_t *n,
                size_t *cap) {
    size_t fixed_len = 0;
    uint8_t *fixed = utf8_repair((const uint8_t *)text, len, &fixed_len);
    const uint8_t *p = fixed ? fixed : (const uint8_t *)text;
    if (fixed) len = fixed_len;
    Work w = {.ids = ids, .n = n, .cap = cap};
    w.mctx = pcre2_match_context_create(NULL);
    check(w.mctx != NULL, "out of memory for a regex match context");
    pcre2_set_match_limit(w.mctx, UINT32_MAX); // long whitespace runs need many steps
    for (int s = 0; s < b->n_stages; s++) {
        if (!b->stages[s].re) continue;
        w.md[s] = pcre2_match_data_create_from_pattern(b->stages[s].re, NULL);
        check(w.md[s] != NULL, "out of memory for regex match data");
    }
    size_t seg = 0, pos = 0;
    while (pos < len) {
        if (!b->special_first[p[pos]]) {
            pos++;
            continue;
        }
        const Special *hit = NULL;
        for (int i = 0; i < b->n_specials && !hit; i++) {
            const Special *sp = &b->specials[i];
            if (sp->len <= len - pos && memcmp(p + pos, sp->text, sp->len) == 0) hit = sp;
        }
        if (!hit) {
            pos++;
            continue;
        }
        split_piece(b, &w, 0, p + seg, pos - seg);
        emit(&w, hit->id);
        pos += hit->len;
        seg = pos;
    }
    split_piece(b, &w, 0, p + seg, len - seg);
    for (int s = 0; s < b->n_stages; s++) pcre2_match_data_free(w.md[s]);
    pcre2_match_context_free(w.mctx);
    if (w.big_stack) pcre2_jit_stack_free(w.big_stack);
    free(w.sym);
    free(w.heap);
    free(fixed);
}

char *bpe_decode(const Bpe *b, const uint32_t *ids, size_t n, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < (uint32_t)b->vocab_size && b->tok_len[ids[i]] > 0)
            total += (size_t)b->tok_len[ids[i]];
    char *out = xmalloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) { // ids outside the vocabulary decode to nothing
        if (ids[i] >= (uint32_t)b->vocab_size || b->tok_len[ids[i]] <= 0) continue;
        memcpy(out + o, b->pool + b->tok_off[ids[i]], (size_t)b->tok_len[ids[i]]);
        o += (size_t)b->tok_len[ids[i]];
    }
    out[o] = 0;
    if (len) *len = o;
    return out;
}

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
            int64_t left = lookup_bytes(b, p, k), right = lookup_bytes(b, p + k, lens[i] - k);
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
        int step = utf8_step(p, n - i);
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
    int64_t id = *nb > 0 ? lookup_bytes(b, buf, (size_t)*nb) : -1;
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
        int64_t merged = lookup_bytes(b, buf, (size_t)(n_left + n_right));
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
    Work w = {.ids = &ids, .n = &n_ids, .cap = &cap};
    for (int id = 0; id < b->vocab_size; id++) {
        if (b->tok_len[id] < 2) continue;
        const uint8_t *p = (const uint8_t *)b->pool + b->tok_off[id];
        if (lookup_bytes(b, p, (size_t)b->tok_len[id]) != id) continue;
        n_ids = 0;
        if (!ignore_merges) merge_piece(b, &w, p, (size_t)b->tok_len[id]);
        b->whole_ok[id] = ignore_merges || (n_ids == 1 && ids[0] == (uint32_t)id);
    }
    free(ids);
    free(w.sym);
    free(w.heap);
    free(buf);
    cJSON_Delete(root);
}

Bpe *bpe_load(const char *path) {
    Bpe *b = xcalloc(1, sizeof(Bpe));
    b->eot = -1;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        b->path = xmalloc(strlen(path) + 20);
        sprintf(b->path, "%s/tokenizer.json", path);
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
