// train/plot.h: `bolt plot`: draw one or several runs' metrics.jsonl as a figure with
// Cairo (PNG, or SVG when the output name ends in .svg): a loss panel (train loss raw and
// smoothed, val loss; nats/token, and bits/byte for byte-level runs) over learning-rate,
// gradient-norm and tokens/s panels; `bolt plot --bench=FILE`: the records of
// `bolt bench train --json=FILE` as a table and a figure of peak memory and tokens/s
// against the sequence length (train/plot_bench.c). Built without Cairo (make PLOT=0),
// each entry point says so in one line instead of drawing.
#pragma once
#include <stdbool.h>

#include "bench_file.h"

// The curves' colours (0xRRGGBB, matplotlib's tab10 cycle): run k draws in colour k; a
// single run draws its train loss in PLOT_TRAIN_COLOR and its val loss in PLOT_VAL_COLOR.
enum {
    PLOT_BACKGROUND = 0xFFFFFF,
    PLOT_TRAIN_COLOR = 0x1F77B4, // blue
    PLOT_VAL_COLOR = 0xFF7F0E,   // orange
};
unsigned plot_run_color(int k);

enum { PLOT_MAX_SIDE = 8192 }; // the largest figure side, in pixels

typedef struct PlotOptions {
    int width, height; // pixels (points in an SVG)
    bool logy;         // loss and gradient norm (a bench figure: both panels) on a log scale
} PlotOptions;

// Die unless the figure's size is one bolt draws (400..PLOT_MAX_SIDE x 300..PLOT_MAX_SIDE).
void plot_check_size(const PlotOptions *opt);

// Whether this bolt can draw (was built with Cairo).
bool plot_available(void);

// Draw the runs whose metrics files are paths[0..n) into out_path, written atomically.
// Dies naming the file on a missing or empty file or one without a loss value, naming
// file:line on a malformed line, and saying so when bolt was built without Cairo.
void plot_metrics(const char *const *paths, int n, const char *out_path, const PlotOptions *opt);

// The training run's hook: OUT_DIR/metrics.jsonl to OUT_DIR/loss.png. Never stops a run
// over the figure: malformed lines are skipped, nothing is written while there is no loss
// value yet, and without Cairo it prints one line saying so.
void plot_run_dir(const char *out_dir);

// The bench records b (read from `path`, named in messages) as a figure in out_path: peak
// memory (GiB) and tokens/s against the sequence length on a log2 axis, one curve per
// config, recompute setting, batch size and device, failed runs marked with a cross.
// Dies when no record ran or, built without Cairo, saying so.
void plot_bench_figure(const BenchFile *b, const char *path, const char *out_path,
                       const PlotOptions *opt);

// `bolt plot RUN [RUN ...] [--out=FILE.png|FILE.svg] [--logy=1] [--width=W] [--height=H]`,
// or `bolt plot --bench=FILE [--out=...]`: the table on stdout, then the figure.
int plot_main(int argc, char **argv);
