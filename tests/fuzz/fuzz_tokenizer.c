// tests/fuzz/fuzz_tokenizer.c: tokenizer loading (data/bpe_load.c: tokenizer.json, and
// tiktoken ranks files named like gpt2, cl100k_base or o200k_base, which picks the split
// pattern) and encoding/decoding (data/bpe.c, data/tokenizer.c). The first byte picks the
// file name; the input up to a line "@@TEXT@@" is the tokenizer file, the rest is text to
// encode, whose ids are decoded again.
#include <stdint.h>
#include <stdlib.h>

#include "../../data/tokenizer.h"
#include "harness.h"

typedef struct TokenizerInput {
    const char *path;
    const char *text;
    size_t len;
} TokenizerInput;

static void load_and_encode(void *arg) {
    TokenizerInput *in = arg;
    Tokenizer t = tokenizer_load(in->path);
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    tokenizer_encode(&t, in->text, in->len, &ids, &n, &cap);
    size_t len;
    free(tokenizer_decode(&t, ids, n, &len));
    free(ids);
    tokenizer_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static const char *const names[] = {"_tokenizer.json", "_gpt2.tiktoken",
                                        "_cl100k_base.tiktoken", "_o200k_base.tiktoken"};
    if (n == 0) return 0;
    const uint8_t *file, *text;
    size_t nfile, ntext;
    fuzz_split(data + 1, n - 1, "\n@@TEXT@@\n", &file, &nfile, &text, &ntext);
    TokenizerInput in = {fuzz_write_file(names[data[0] & 3], file, nfile), (const char *)text,
                         ntext};
    fuzz_run(load_and_encode, &in);
    return 0;
}
