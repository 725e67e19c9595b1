// train/options.h: one option table per command. A table lists every option with its
// type, its place in the command's options struct, its range or choices, its default (the
// struct's value before parsing) and its help; parsing `--name=value`, config files,
// --help, range checks, printing and "did you mean" suggestions all walk the table, so an
// option is added in one place (one row in the command's own file).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum OptionType {
    OPT_INT,    // int
    OPT_INT64,  // int64_t
    OPT_U64,    // uint64_t (seeds)
    OPT_FLOAT,  // float, finite
    OPT_DOUBLE, // double, finite
    OPT_BOOL,   // bool: 1 / 0 / true / false; a bare --name means true
    OPT_STRING, // char[size] when size > 0, else a const char * into the parsed text (argv)
    OPT_CHOICE, // OPT_STRING holding one of `choices`
    OPT_INDEX,  // an int-sized enum: the index of the value in `choices`
} OptionType;

typedef struct Option {
    const char *name;
    OptionType type;
    size_t offset;       // of the field in the options struct
    size_t size;         // OPT_STRING / OPT_CHOICE: buffer size (0: a const char *)
    double min, max;     // numbers: allowed range, checked unless both are 0
    const char *choices; // OPT_CHOICE / OPT_INDEX: "a|b|c"
    const char *section; // non-NULL on the first option of a section (help and printing)
    const char *help;
} Option;

typedef struct OptionTable {
    const char *command;    // "sample", "bench loader": names the command in messages
    const char *args;       // the positional arguments for the usage line ("CKPT")
    int min_args, max_args; // how many positional arguments there may be
    const char *about;      // what the command does (--help)
    const Option *options;
    int count;
    const char *const (*aliases)[2]; // other tools' names -> ours, for suggestions only
    int n_aliases;
} OptionTable;

// The option called `name`, or NULL.
const Option *option_find(const OptionTable *t, const char *name);
// The option nearest to a misspelt name (edit distance, aliases included), or NULL if
// none is close enough to be a plausible typo.
const char *option_nearest(const OptionTable *t, const char *name);
// Set option `name` of the struct at `base` from text, as a config file line: errors
// read "ORIGIN: unknown key 'x' (did you mean 'y'?)" and "ORIGIN: bad value ...".
void option_set(const OptionTable *t, void *base, const char *name, const char *value,
                const char *origin);
// The option's current value as text that option_set reads back.
void option_format(const Option *o, const void *base, char *buf, size_t size);

// First pass over a command line: checks every option's syntax and name, and stores the
// positional arguments in args[] (room for max_args; NULL when that is 0). Returns their count, or
// -1 after printing the help (--help or -h; `defaults` is the struct before parsing).
int options_scan(const OptionTable *t, const void *defaults, int argc, char **argv, char **args);
// Second pass: apply every --name=value in order.
void options_apply(const OptionTable *t, void *base, int argc, char **argv);
// Both passes: the usual entry point of a command. Returns the positional count or -1
// (help printed: the command returns 0).
int options_parse(const OptionTable *t, void *base, int argc, char **argv, char **args);
// Die if an integer option of `base` is outside its range (values set by code).
void options_check_ranges(const OptionTable *t, const void *base, const char *origin);

// --help: usage line, about text, every option with its default, choices and help.
void options_usage(const OptionTable *t, const void *defaults, FILE *f);
// Every option as `name = value`, in the form option_set reads back (config files).
void options_print(const OptionTable *t, const void *base, FILE *f);

// The nearest of `n` names to `name` (for subcommands), or NULL if none is close.
const char *nearest_name(const char *name, const char *const *names, int n);

// The default thread count of compute commands (see options.c for why).
int default_threads(void);
// Set OpenMP's thread count: `threads` > 0 as given, 0 the default above.
void set_threads(int threads);
