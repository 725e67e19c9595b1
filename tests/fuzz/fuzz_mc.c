// tests/fuzz/fuzz_mc.c: the multiple-choice eval reader (data/evalfile.c): llm.c's binary
// eval file (first byte even) or HellaSwag-style jsonl (first byte odd), tokenized with
// the byte tokenizer, token ids checked against a vocabulary of 256.
#include <stdint.h>

#include "../../data/evalfile.h"
#include "harness.h"

static void read_set(void *path) {
    Tokenizer tok = tokenizer_load("byte");
    McSet s = mc_read(path, &tok, 256);
    mc_free(&s);
    tokenizer_free(&tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n == 0) return 0;
    fuzz_run(read_set, (void *)fuzz_write_file(data[0] & 1 ? ".jsonl" : ".bin", data + 1, n - 1));
    return 0;
}
