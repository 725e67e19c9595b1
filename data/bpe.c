// data/bpe.c: encoding and decoding with a byte-level BPE tokenizer (Hugging Face
// tokenizer.json or tiktoken ranks; data/bpe_load.c reads those files into a Bpe).
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
#include "bpe_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

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

// ---------------------------------------------------------------------------------------
// Hash map lookups (data/bpe_load.c fills the maps)

// The id of the ordinary token with these bytes, or -1. A slot holds the first 8 bytes, so
// short tokens compare without touching the pool.
int64_t bpe_lookup_bytes(const Bpe *b, const uint8_t *p, size_t n) {
    uint64_t head = head_of(p, n);
    for (size_t i = hash_bytes(p, n, head) & b->bytes_mask;; i = (i + 1) & b->bytes_mask) {
        const ByteSlot *s = &b->bytes_map[i];
        if (s->id_plus1 == 0) return -1;
        if (s->head == head && s->len == n &&
            (n <= 8 || memcmp(b->pool + b->tok_off[s->id_plus1 - 1] + 8, p + 8, n - 8) == 0))
            return s->id_plus1 - 1;
    }
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

// One piece merged on its own, with a private Work (see data/bpe_internal.h).
void bpe_merge_bytes(const Bpe *b, const uint8_t *p, size_t n, uint32_t **ids, size_t *n_ids,
                     size_t *cap) {
    Work w = {.ids = ids, .n = n_ids, .cap = cap};
    merge_piece(b, &w, p, n);
    free(w.sym);
    free(w.heap);
}

// Encode one pre-tokenized piece.
static void encode_piece(const Bpe *b, Work *w, const uint8_t *p, size_t n) {
    if (n == 1) {
        if (b->byte_id[p[0]] != NO_ID) emit(w, b->byte_id[p[0]]);
        return;
    }
    int64_t id = bpe_lookup_bytes(b, p, n);
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
int bpe_utf8_step(const uint8_t *p, size_t n) {
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
        int step = bpe_utf8_step(p + i, n - i);
        if (step < 0) break;
        i += (size_t)step;
    }
    if (i == n) return NULL;
    uint8_t *out = xmalloc(3 * n + 1), *o = out;
    memcpy(o, p, i);
    o += i;
    while (i < n) {
        int step = bpe_utf8_step(p + i, n - i);
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
