// data/tokenizer.h: one tokenizer interface over the byte tokenizer and BPE (data/bpe.h).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "bpe.h"

typedef struct Tokenizer {
    int vocab_size;
    int eot;  // id written between documents
    Bpe *bpe; // NULL for the byte tokenizer
} Tokenizer;

// "byte": ids 0..255 are the bytes, vocab 256, EOT = 0 (NUL bytes in input text are
// dropped by prep); otherwise a tokenizer.json / .tiktoken path (data/bpe.h).
Tokenizer tokenizer_load(const char *spec);
void tokenizer_free(Tokenizer *t);
void tokenizer_encode(const Tokenizer *t, const char *text, size_t len, uint32_t **ids, size_t *n,
                      size_t *cap);
char *tokenizer_decode(const Tokenizer *t, const uint32_t *ids, size_t n, size_t *len);
