// data/evalfile.h: multiple-choice evaluation sets. Two forms: llm.c's binary eval file
// (dev/data/data_common.py write_evalfile: a header of 256 little-endian int32, [0] magic
// 20240522, [1] version 1, [2] example count, [3] longest example in bytes; then per
// example a uint16 stream 65535, the example's bytes, its index, its label, the number
// of completions, the context length and tokens, and each completion's length and
// tokens), and jsonl with HellaSwag's keys, {"ctx": ..., "endings": [...], "label": n},
// tokenized here (each ending as " " + ending, as llm.c and lm-eval join them).
#pragma once
#include <stdint.h>

#include "tokenizer.h"

enum { MC_MAGIC = 20240522, MC_VERSION = 1, MC_MAX_ENDINGS = 16 };

// One question: the context, then its endings, laid end to end in `tokens`.
typedef struct McExample {
    int index;                            // the example's index as the file gives it
    int label;                            // the correct ending, in [0, n_endings)
    int n_endings;                        // 2..MC_MAX_ENDINGS
    int ctx_len;                          // tokens [0, ctx_len) are the context
    int ending_start[MC_MAX_ENDINGS + 1]; // ending e is tokens [ending_start[e], ending_start[e+1])
    int ending_bytes[MC_MAX_ENDINGS];     // the ending's length in bytes of text (acc_norm)
    int *tokens;
} McExample;

typedef struct McSet {
    McExample *examples;
    int n;
} McSet;

// Read a set: `path` ending in .jsonl is the jsonl form, anything else llm.c's binary
// form. Every token id must be < vocab_size. Any problem (wrong magic or version,
// truncated example, label out of range, bad token) dies naming the file and, for a
// problem inside one, the example's position in the file.
McSet mc_read(const char *path, const Tokenizer *tok, int vocab_size);
void mc_free(McSet *s);
