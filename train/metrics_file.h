// train/metrics_file.h: read a run's metrics.jsonl (the records train.c writes) into
// curves of (step, value) points, for `bolt plot`.
#pragma once
#include <stdbool.h>

// One curve: steps and values, in step order.
typedef struct Series {
    double *x, *y;
    int n, cap;
} Series;

// Everything a plot shows of one run.
typedef struct RunMetrics {
    char name[256]; // the run's name: its directory's (or the file's, without .jsonl)
    Series loss, val_loss, lr, norm, tok_per_s, mfu;
    bool bytes; // one token is one byte (byte tokenizer): the loss is also bits/byte
} RunMetrics;

// Read path into m. Lines without a "step" key (a run header) are skipped, except that a
// header's "tokenizer" is read. strict: die on a missing or empty file or a malformed line
// (naming file:line); otherwise a missing file reads as empty and bad lines are skipped.
// Whether the tokens are bytes comes from the header's tokenizer, else from the newest
// checkpoint beside the file.
void metrics_load(RunMetrics *m, const char *path, bool strict);
void metrics_free(RunMetrics *m);
