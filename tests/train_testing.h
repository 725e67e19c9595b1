// tests/train_testing.h: what the end-to-end training suites share (header-only): a
// small byte corpus in shards.
#pragma once
#include "../data/shard.h"
#include "testing.h"

// A byte corpus with structure to learn, repeated words in random order, written as
// dir/c_train_000000.bin and dir/c_val_000000.bin in a fresh directory; returns it.
static inline char *write_word_corpus(void) {
    char *dir = new_dir();
    const char *words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog. "};
    Rng rng = rng_seeded(99);
    int64_t n = 40000;
    uint32_t *tok = xmalloc((size_t)n * sizeof(uint32_t));
    int64_t i = 0;
    while (i < n) {
        const char *w = words[rng_next(&rng) % 8];
        for (const char *p = w; *p && i < n; p++) tok[i++] = (unsigned char)*p;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/c_train_000000.bin", dir);
    shard_write(path, tok, n - 4000, false, false);
    snprintf(path, sizeof path, "%s/c_val_000000.bin", dir);
    shard_write(path, tok + n - 4000, 4000, false, false);
    free(tok);
    return dir;
}
