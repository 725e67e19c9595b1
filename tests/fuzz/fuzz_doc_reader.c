// tests/fuzz/fuzz_doc_reader.c: bolt prep's document readers (data/doc_reader.c): a text
// file, a .jsonl file or a .jsonl.zst stream (the first byte picks which), read document
// by document, in a counting pass and a loading pass, each document's text parsed out.
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../data/doc_reader.h"
#include "harness.h"

static void read_documents(void *path) {
    char *paths[1] = {path};
    for (int pass = 0; pass < 2; pass++) {
        DocReader *r = doc_reader_open(paths, 1, pass == 1);
        char *text = NULL;
        size_t len = 0, cap = 0;
        DocOrigin origin;
        while (doc_reader_next(r, &text, &len, &cap, &origin)) {
            DocText doc = doc_text(text, len, path, origin.line, "text");
            doc_text_free(&doc);
            len = 0;
        }
        (void)doc_reader_take_input_bytes(r);
        free(text);
        doc_reader_close(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static const char *const suffixes[] = {".txt", ".jsonl", ".jsonl.zst", ".jsonl"};
    if (n == 0) return 0;
    fuzz_run(read_documents, (void *)fuzz_write_file(suffixes[data[0] & 3], data + 1, n - 1));
    return 0;
}
