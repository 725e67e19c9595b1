// data/bpe.h: byte-level BPE tokenizers: Hugging Face tokenizer.json (GPT-2 and Llama-3
// style) and tiktoken ranks files (gpt2, cl100k_base, o200k_base split patterns).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Bpe Bpe;

// Load a tokenizer.json (a file, or a directory holding one) or a .tiktoken ranks file.
// Dies naming the file and the problem on bad input.
Bpe *bpe_load(const char *path);
void bpe_free(Bpe *b);
int bpe_vocab_size(const Bpe *b);
int bpe_eot(const Bpe *b); // end-of-text id (<|endoftext|> or <|end_of_text|>), -1 if none
// Append the ids of text[0..len) to *ids (grown with xrealloc; *n and *cap updated).
void bpe_encode(const Bpe *b, const char *text, size_t len, uint32_t **ids, size_t *n, size_t *cap);
// Decode ids to bytes (NUL-terminated, length in *len); caller frees.
char *bpe_decode(const Bpe *b, const uint32_t *ids, size_t n, size_t *len);
