// tests/fuzz/fuzz_config.c: the train config parser (train/config.c) and the option table
// parser under it (train/options.c). The input is a config file; after a line "--" its
// remaining lines are command-line arguments (--key=value) applied on top, and then the
// config is finalized (cross-key checks) as `bolt train` does.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/util.h"
#include "../../train/config.h"
#include "harness.h"

enum { MAX_ARGS = 32 };

typedef struct ConfigInput {
    int argc;
    char *argv[MAX_ARGS];
} ConfigInput;

// As `bolt train CONFIG --key=value ...` reads them: the file, then the overrides.
static void parse_config(void *arg) {
    ConfigInput *in = arg;
    static Config c; // large: off the stack
    config_defaults(&c);
    if (config_from_args(&c, "train", in->argc, in->argv)) config_finalize(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const uint8_t *file, *args;
    size_t nfile, nargs;
    fuzz_split(data, n, "\n--\n", &file, &nfile, &args, &nargs);
    ConfigInput in = {1, {(char *)fuzz_write_file(".conf", file, nfile)}};
    char *text = malloc(nargs + 1);
    memcpy(text, args, nargs);
    text[nargs] = '\0';
    for (char *line = strtok(text, "\n"); line && in.argc < MAX_ARGS; line = strtok(NULL, "\n"))
        in.argv[in.argc++] = line;
    fuzz_run(parse_config, &in);
    free(text);
    return 0;
}
