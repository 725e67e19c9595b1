// train/bench_tokenizer.c: `bolt bench tokenizer TOKENIZER FILE`: encode a text file with a
// tokenizer (byte, a tokenizer.json or a .tiktoken file) on one thread and print the speed
// in MB/s (10^6 bytes of input per second) and the token count; docs/benchmarks.md records
// the numbers.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "../data/tokenizer.h"
#include "commands.h"
#include "options.h"

static const OptionTable BENCH_TOKENIZER_TABLE = {
    .command = "bench tokenizer",
    .args = "TOKENIZER FILE",
    .min_args = 2,
    .max_args = 2,
    .about = "Encodes FILE with TOKENIZER (byte, a tokenizer.json or its directory, or a\n"
             ".tiktoken file) on one thread and prints MB/s and the token count.",
    .options = NULL,
    .count = 0,
};

int bench_tokenizer_main(int argc, char **argv) {
    char *args[2];
    if (options_parse(&BENCH_TOKENIZER_TABLE, NULL, argc, argv, args) < 0) return 0;
    double start = now_seconds();
    Tokenizer tok = tokenizer_load(args[0]);
    double load_seconds = now_seconds() - start;
    size_t len;
    char *text = read_file(args[1], &len);
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0;
    start = now_seconds();
    tokenizer_encode(&tok, text, len, &ids, &n, &cap);
    double seconds = now_seconds() - start;
    printf("%s: %.1f MB encoded in %.2f s: %.1f MB/s on one thread, %zu tokens "
           "(%.2f bytes per token); tokenizer loaded in %.2f s\n",
           args[1], len / 1e6, seconds, seconds > 0 ? len / 1e6 / seconds : 0.0, n,
           n ? (double)len / n : 0.0, load_seconds);
    free(ids);
    free(text);
    tokenizer_free(&tok);
    return 0;
}
