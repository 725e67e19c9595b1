// data/bpe_internal.h: what data/bpe.c (encoding, decoding) and data/bpe_load.c (reading
// tokenizer.json and .tiktoken files) share: the Bpe struct, the hash functions of its two
// maps (the loader inserts and the encoder looks up, so both must hash alike) and the few
// functions the loader borrows from the encoder. Not part of the public API (data/bpe.h).
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bpe.h"

enum { MAX_STAGES = 8, NO_ID = 0xFFFFFFFFu };

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

// The first (up to) 8 bytes of p[0..n) as a number, zero padded.
static inline uint64_t head_of(const uint8_t *p, size_t n) {
    uint64_t head = 0;
    memcpy(&head, p, n < 8 ? n : 8);
    return head;
}

// A fast 64-bit hash of a short byte string whose head_of is `head`.
static inline uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t head) {
    uint64_t h = head ^ (n * 0x9E3779B97F4A7C15ull);
    for (size_t i = 8; i < n; i += 8)
        h = (h ^ (h >> 29) ^ head_of(p + i, n - i)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 32)) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

// The hash of a merge key (left id << 32 | right id).
static inline uint64_t pair_hash(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

// The id of the ordinary token with these bytes, or -1 (data/bpe.c).
int64_t bpe_lookup_bytes(const Bpe *b, const uint8_t *p, size_t n);
// The UTF-8 sequence at p[0..n): its length if valid, else minus the number of bytes that
// one U+FFFD replaces (data/bpe.c).
int bpe_utf8_step(const uint8_t *p, size_t n);
// Merge p[0..n) as one piece (no split, no whole-token shortcut) and append the ids to
// *ids (grown with xrealloc; *n_ids and *cap updated) (data/bpe.c).
void bpe_merge_bytes(const Bpe *b, const uint8_t *p, size_t n, uint32_t **ids, size_t *n_ids,
                     size_t *cap);
