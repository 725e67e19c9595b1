// data/tokenizer.c: one interface over the byte tokenizer (ids are bytes, EOT = 0) and the
// byte-level BPE tokenizers of data/bpe.h.
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

// "byte" is the built-in 256-id tokenizer; anything else is a BPE tokenizer path.
Tokenizer tokenizer_load(const char *spec) {
    Tokenizer t = {0};
    if (strcmp(spec, "byte") == 0) {
        t.vocab_size = 256;
        t.eot = 0;
        t.bpe = NULL;
        return t;
    }
    t.bpe = bpe_load(spec);
    t.vocab_size = bpe_vocab_size(t.bpe);
    t.eot = bpe_eot(t.bpe);
    check(t.eot >= 0, "%s: tokenizer has no end-of-text token (<|endoftext|> or <|end_of_text|>)",
          spec);
    check(t.vocab_size > 0, "%s: tokenizer has an empty vocabulary", spec);
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (t->bpe) bpe_free(t->bpe);
    t->bpe = NULL;
}

// Append the ids of text[0..len) to *ids. The byte tokenizer maps each byte to its value
// and drops NUL bytes, since id 0 is the EOT that separates documents.
void tokenizer_encode(const Tokenizer *t, const char *text, size_t len, uint32_t **ids, size_t *n,
                      size_t *cap) {
    if (t->bpe) {
        bpe_encode(t->bpe, text, len, ids, n, cap);
        return;
    }
    if (len == 0) return; // *ids may still be NULL: no offset to apply to it
    if (*n + len > *cap) {
        size_t want = *cap ? *cap : 1024;
        while (want < *n + len) want *= 2;
        *ids = xrealloc(*ids, want * sizeof(uint32_t));
        *cap = want;
    }
    uint32_t *out = *ids + *n;
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c != 0) out[m++] = c;
    }
    *n += m;
}

// Bytes for ids (NUL-terminated, length in *len; caller frees). With the byte tokenizer
// the EOT (0) and ids outside 0..255 decode to nothing, so decoding a shard gives back
// the concatenated documents.
char *tokenizer_decode(const Tokenizer *t, const uint32_t *ids, size_t n, size_t *len) {
    if (t->bpe) return bpe_decode(t->bpe, ids, n, len);
    char *out = xmalloc(n + 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0 || ids[i] > 255) continue;
        out[m++] = (char)ids[i];
    }
    out[m] = '\0';
    if (len) *len = m;
    return out;
}
