// train/main.c: the `bolt` binary: dispatch to a subcommand (one row per command below).
#include <stdio.h>
#include <string.h>

#include "../core/util.h"
#include "commands.h"
#include "options.h"

typedef struct Command {
    const char *name;
    int (*main)(int argc, char **argv); // NULL: "bench", whose subcommands are BENCHES
    const char *args;                   // its arguments, for the overview
    const char *about;                  // what it does, for the overview
} Command;

static const Command COMMANDS[] = {
    {"train", train_main, "CONFIG [--key=value ...]", "pretrain or continue training a model"},
    {"distill", distill_main, "CONFIG [--key=value ...]", "distil a softmax teacher into linear"},
    {"sample", sample_main, "CKPT [--prompt=...]", "generate text (recurrent form)"},
    {"eval", eval_main, "CKPT --data=GLOB|--text=|--mc=", "loss, bits per byte, accuracy"},
    {"prep", prep_main, "--tokenizer=T --out=DIR IN...", "tokenize text/jsonl into shards"},
    {"import", import_main, "HF_DIR OUT", "Hugging Face checkpoint -> bolt"},
    {"export", export_main, "CKPT HF_DIR", "bolt checkpoint -> Hugging Face"},
    {"plot", plot_main, "RUN [RUN ...] | --bench=FILE", "loss, lr, norm, tok/s; bench by length"},
    {"bench", NULL, "tokenizer|loader|attn|train", "benchmarks (bolt bench NAME --help)"},
};
enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

static const Command BENCHES[] = {
    {"tokenizer", bench_tokenizer_main, "TOKENIZER FILE", "tokenizer encode speed"},
    {"loader", bench_loader_main, "GLOB", "loader tokens/s"},
    {"attn", bench_attn_main, "[--kind=...]", "token-mixing ops, fwd and fwd+bwd"},
    {"train", bench_train_main, "CONFIG [--k=v]", "training step: first step, tok/s, MFU, memory"},
};
enum { N_BENCHES = sizeof BENCHES / sizeof BENCHES[0] };

// "bolt 0.1.0 (commit 1a2b3c4d5e6f)": the version and the commit it was built from.
static void print_version(void) {
    printf("bolt %s (commit %s)\n", bolt_version(), bolt_commit());
}

// The overview of every command (bolt, bolt --help, bolt help).
static void usage(void) {
    printf("bolt %s: train linear-attention language models (TNL/Lightning, GLA, hybrids)\n\n"
           "usage: bolt COMMAND [args]   (bolt COMMAND --help, or bolt help COMMAND, for each)\n\n",
           bolt_version());
    for (int i = 0; i < N_COMMANDS; i++)
        printf("  %-7s %-31s %s\n", COMMANDS[i].name, COMMANDS[i].args, COMMANDS[i].about);
    printf("\n  bolt --version   the version and the git commit it was built from\n");
}

// The benchmarks' overview (bolt bench, bolt bench --help).
static void bench_usage(void) {
    printf("usage: bolt bench NAME [args]   (bolt bench NAME --help for each)\n\n");
    for (int i = 0; i < N_BENCHES; i++)
        printf("  bench %-10s %-16s %s\n", BENCHES[i].name, BENCHES[i].args, BENCHES[i].about);
}

// The entry of `name` in table[n], or die naming the nearest one ("did you mean").
static const Command *find_command(const Command *table, int n, const char *name,
                                   const char *what) {
    const char *names[16];
    for (int i = 0; i < n; i++) {
        if (strcmp(table[i].name, name) == 0) return &table[i];
        names[i] = table[i].name;
    }
    const char *near = nearest_name(name, names, n);
    if (near) die("unknown %s '%s' (did you mean '%s'?)", what, name, near);
    die("unknown %s '%s' (see bolt --help)", what, name);
}

// Run command `argv[0]` (a bench's name after "bench") with the arguments after it.
static int run_command(int argc, char **argv) {
    const Command *c = find_command(COMMANDS, N_COMMANDS, argv[0], "command");
    if (c->main) return c->main(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        bench_usage();
        return argc < 2 ? 2 : 0;
    }
    const Command *b = find_command(BENCHES, N_BENCHES, argv[1], "benchmark");
    return b->main(argc - 2, argv + 2);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 ||
        (strcmp(first, "help") == 0 && argc == 2)) {
        usage();
        return 0;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "version") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(first, "help") == 0) { // bolt help CMD [BENCH]: CMD [BENCH] --help
        char *help_argv[4] = {argv[2], argc > 3 ? argv[3] : "--help", "--help", NULL};
        return run_command(argc > 3 ? 3 : 2, help_argv);
    }
    return run_command(argc - 1, argv + 1);
}
