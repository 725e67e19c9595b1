// data/bpe.c: placeholder until the BPE tokenizer lands.
#include "bpe.h"

#include "../core/util.h"

Bpe *bpe_load(const char *path) { die("%s: BPE tokenizers are not built in yet", path); }
void bpe_free(Bpe *b) { (void)b; }
int bpe_vocab_size(const Bpe *b) { return 0; }
int bpe_eot(const Bpe *b) { return -1; }
void bpe_encode(const Bpe *b, const char *text, size_t len, uint32_t **ids, size_t *n,
                size_t *cap) {}
char *bpe_decode(const Bpe *b, const uint32_t *ids, size_t n, size_t *len) { return NULL; }
