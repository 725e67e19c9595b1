// train/bench_tokenizer.c: `bolt bench tokenizer TOKENIZER FILE`: encode a text file with a
// tokenizer.json / .tiktoken tokenizer on one thread and print the speed in MB/s (10^6
// bytes of input per second) and the token count; docs/benchmarks.md records the numbers.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../data/bpe.h"
#include "commands.h"

// argv holds the arguments after "bench tokenizer": TOKENIZER FILE.
int bench_tokenizer_main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bolt bench tokenizer TOKENIZER FILE\n"
                        "  TOKENIZER: a tokenizer.json (or its directory) or a .tiktoken file\n");
        return 2;
    }
    double start = now_seconds();
    Bpe *bpe = bpe_load(argv[0]);
    double load_seconds = now_seconds() - start;
    size_t len;
    char *text = read_file(argv[1], &len);
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    start = now_seconds();
    bpe_encode(bpe, text, len, &ids, &n, &cap);
    double seconds = now_seconds() - start;
    printf("%s: %.1f MB encoded in %.2f s: %.1f MB/s on one thread, %zu tokens "
           "(%.2f bytes per token); tokenizer loaded in %.2f s\n",
           argv[1], len / 1e6, seconds, len / 1e6 / seconds, n, n ? (double)len / n : 0.0,
           load_seconds);
    free(ids);
    free(text);
    bpe_free(bpe);
    return 0;
}
