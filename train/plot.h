// train/plot.h: `bolt plot`: render a run's metrics.jsonl (train loss, and val loss when
// present) against step to a PNG, written by hand (stored-deflate zlib, no dependency).
#pragma once

// The chart's colours (0xRRGGBB), exported so tests can find the curves in the pixels.
enum {
    PLOT_BACKGROUND = 0xFFFFFF,
    PLOT_TRAIN_COLOR = 0x1F4E9C,     // train loss (its EMA when smoothed), dark blue
    PLOT_TRAIN_RAW_COLOR = 0xB4C8E8, // raw train loss under the EMA, faint blue
    PLOT_VAL_COLOR = 0xF28E2B,       // validation loss, orange
};

// Render metrics_path to png_path (width x height pixels, written atomically). Dies
// naming the file on a missing or empty file or one without a loss value, and naming
// file:line on a malformed line.
void plot_metrics(const char *metrics_path, const char *png_path, int width, int height);

// The training run's hook: render OUT_DIR/metrics.jsonl to OUT_DIR/loss.png at 800x500.
// Never stops a run over the chart: malformed lines are skipped, and nothing is written
// while there is no loss value yet.
void plot_run_dir(const char *out_dir);

// `bolt plot RUN_DIR|METRICS [--out=FILE.png] [--width=W] [--height=H]`.
int plot_main(int argc, char **argv);
