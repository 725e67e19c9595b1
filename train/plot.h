// train/plot.h: `bolt plot`: draw one or several runs' metrics.jsonl as a figure with
// Cairo (PNG, or SVG when the output name ends in .svg): a loss panel (train loss raw and
// smoothed, val loss; nats/token, and bits/byte for byte-level runs) over learning-rate,
// gradient-norm and tokens/s panels. Built without Cairo (make PLOT=0), each entry point
// says so in one line instead of drawing.
#pragma once
#include <stdbool.h>

// The curves' colours (0xRRGGBB, matplotlib's tab10 cycle): run k draws in colour k; a
// single run draws its train loss in PLOT_TRAIN_COLOR and its val loss in PLOT_VAL_COLOR.
enum {
    PLOT_BACKGROUND = 0xFFFFFF,
    PLOT_TRAIN_COLOR = 0x1F77B4, // blue
    PLOT_VAL_COLOR = 0xFF7F0E,   // orange
};
unsigned plot_run_color(int k);

typedef struct PlotOptions {
    int width, height; // pixels (points in an SVG)
    bool logy;         // loss and gradient norm on a log scale
} PlotOptions;

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

// `bolt plot RUN [RUN ...] [--out=FILE.png|FILE.svg] [--logy=1] [--width=W] [--height=H]`.
int plot_main(int argc, char **argv);
