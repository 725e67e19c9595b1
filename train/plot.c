// train/plot.c: `bolt plot`: runs' metrics drawn with Cairo as a matplotlib-style figure.
// Layout: the title (run names), a wide loss panel (train loss faint raw and smoothed,
// val loss with markers, a legend with the last values, nats/token on the left and
// bits/byte on the right for byte-level runs), and a row of learning-rate, gradient-norm
// and tokens/s panels over the same steps. Ticks sit at 1, 2 or 5 times a power of ten.
// The drawing helpers (axes, text, curves, legends, PNG/SVG output) are plot_draw.c's;
// `bolt plot --bench=FILE` hands over to bench_file.c (the table) and plot_bench.c (the
// figure). Without Cairo (BOLT_CAIRO undefined) only the argument handling is built, and
// drawing says in one line that bolt was built without Cairo.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/util.h"
#include "metrics_file.h"
#include "options.h"
#include "plot.h"
#include "plot_draw.h"

#define PLOT_MAX_RUNS 16

unsigned plot_run_color(int k) {
    static const unsigned tab10[10] = {0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD,
                                       0x8C564B, 0xE377C2, 0x7F7F7F, 0xBCBD22, 0x17BECF};
    return tab10[k % 10];
}

#ifdef BOLT_CAIRO

// Data range of some series, or (inf, -inf) when they are empty.
static void series_range(const Series *const *s, int n, double *x0, double *x1, double *y0,
                         double *y1, bool positive_only) {
    *x0 = *y0 = INFINITY;
    *x1 = *y1 = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < s[k]->n; i++) {
            if (positive_only && s[k]->y[i] <= 0) continue;
            *x0 = fmin(*x0, s[k]->x[i]), *x1 = fmax(*x1, s[k]->x[i]);
            *y0 = fmin(*y0, s[k]->y[i]), *y1 = fmax(*y1, s[k]->y[i]);
        }
}

// A moving average over i - h .. i + h, h = max(2, n/100): the trend through per-step
// noise without the lag of an exponential average. Near the start the window shrinks to
// stay centred (the steep early drop is drawn where it is); near the end it keeps its
// left half, so the last point is the mean of the last h + 1 values, not one noisy value.
static double *smooth(const Series *s) {
    int half = s->n / 100 > 2 ? s->n / 100 : 2;
    double *prefix = xmalloc((size_t)(s->n + 1) * sizeof(double));
    double *out = xmalloc((size_t)(s->n > 0 ? s->n : 1) * sizeof(double));
    prefix[0] = 0;
    for (int i = 0; i < s->n; i++) prefix[i + 1] = prefix[i] + s->y[i];
    for (int i = 0; i < s->n; i++) {
        int left = half < i ? half : i;
        int right = left < s->n - 1 - i ? left : s->n - 1 - i;
        out[i] = (prefix[i + right + 1] - prefix[i - left]) / (left + right + 1);
    }
    free(prefix);
    return out;
}

// The figure's whole state while it is drawn.
typedef struct Figure {
    cairo_t *cr;
    const RunMetrics *runs;
    int n_runs;
    double x0, x1;  // steps shown (every panel)
    double fs, pen; // font size and line-width unit, in pixels
    bool logy;
} Figure;

// The train and val loss panel with its legend.
static void draw_loss_panel(Figure *f, double x, double y, double w, double h) {
    const Series *all[2 * PLOT_MAX_RUNS] = {NULL};
    bool bytes = true;
    for (int r = 0; r < f->n_runs; r++) {
        all[2 * r] = &f->runs[r].loss;
        all[2 * r + 1] = &f->runs[r].val_loss;
        bytes = bytes && f->runs[r].bytes;
    }
    Panel p = {.x0 = f->x0, .x1 = f->x1, .logy = f->logy};
    double ignore0, ignore1;
    series_range(all, 2 * f->n_runs, &ignore0, &ignore1, &p.y0, &p.y1, f->logy);
    pad_y_range(&p, false);
    PanelText t = {NULL, "loss (nats/token)", bytes ? "bits/byte" : NULL, "step"};
    place_panel(f->cr, &p, &t, x, y, w, h, f->fs);
    draw_axes(f->cr, &p, &t, f->fs, f->pen);
    LegendItem items[3 * PLOT_MAX_RUNS];
    int n_items = 0;
    for (int r = 0; r < f->n_runs; r++) {
        const RunMetrics *m = &f->runs[r];
        unsigned train_color = f->n_runs == 1 ? PLOT_TRAIN_COLOR : plot_run_color(r);
        unsigned val_color = f->n_runs == 1 ? PLOT_VAL_COLOR : plot_run_color(r);
        const char *prefix = f->n_runs == 1 ? "" : m->name;
        const char *space = f->n_runs == 1 ? "" : " ";
        bool raw = m->loss.n >= 20;
        double *line_y = raw ? smooth(&m->loss) : m->loss.y;
        Style faint = {train_color, 0.25, 1, false, false, false};
        Style train = {train_color, 1, 2, false, m->loss.n < 10, false}; // few points: dots too
        Style val = {val_color, 1, 2, f->n_runs > 1, m->val_loss.n <= 60, false};
        if (raw) draw_series(f->cr, &p, m->loss.x, m->loss.y, m->loss.n, faint, f->pen);
        if (raw && f->n_runs == 1) {
            snprintf(items[n_items].text, sizeof items[0].text, "train (raw)");
            items[n_items++].style = faint;
        }
        if (m->loss.n > 0) {
            draw_series(f->cr, &p, m->loss.x, line_y, m->loss.n, train, f->pen);
            snprintf(items[n_items].text, sizeof items[0].text, "%s%strain%s: %.3f", prefix, space,
                     raw ? " (smoothed)" : "", line_y[m->loss.n - 1]);
            items[n_items++].style = train;
        }
        if (m->val_loss.n > 0) {
            draw_series(f->cr, &p, m->val_loss.x, m->val_loss.y, m->val_loss.n, val, f->pen);
            double last = m->val_loss.y[m->val_loss.n - 1];
            int k = snprintf(items[n_items].text, sizeof items[0].text, "%s%sval: %.3f", prefix,
                             space, last);
            if (m->bytes && k > 0 && k < (int)sizeof items[0].text)
                snprintf(items[n_items].text + k, sizeof items[0].text - (size_t)k,
                         " (%.3f bits/byte)", last / M_LN2);
            items[n_items++].style = val;
        }
        if (raw) free(line_y);
    }
    draw_legend(f->cr, &p, items, n_items, f->fs, f->pen, false);
}

// Which curve a small panel shows.
typedef enum { PANEL_LR, PANEL_NORM, PANEL_TOKENS } SmallPanel;

// The learning-rate, gradient-norm or tokens/s panel: every run's curve (noisy ones
// faint, with their smoothed line over them).
static void draw_small_panel(Figure *f, SmallPanel which, double x, double y, double w, double h) {
    const Series *all[PLOT_MAX_RUNS] = {NULL};
    double mfu_sum = 0;
    int mfu_n = 0;
    for (int r = 0; r < f->n_runs; r++) {
        const RunMetrics *m = &f->runs[r];
        all[r] = which == PANEL_LR ? &m->lr : which == PANEL_NORM ? &m->norm : &m->tok_per_s;
        for (int i = m->mfu.n / 2; i < m->mfu.n; i++) mfu_sum += m->mfu.y[i], mfu_n++;
    }
    bool log_axis = which == PANEL_NORM && f->logy;
    Panel p = {.x0 = f->x0, .x1 = f->x1, .logy = log_axis};
    double ignore0, ignore1;
    series_range(all, f->n_runs, &ignore0, &ignore1, &p.y0, &p.y1, log_axis);
    pad_y_range(&p, which == PANEL_TOKENS);
    char title[96] = "learning rate";
    if (which == PANEL_NORM) snprintf(title, sizeof title, "gradient norm (before clipping)");
    if (which == PANEL_TOKENS) snprintf(title, sizeof title, "throughput (tokens/s)");
    if (which == PANEL_TOKENS && f->n_runs == 1 && mfu_n > 0 && mfu_sum > 0)
        snprintf(title, sizeof title, "throughput (tokens/s; MFU %.1f%%)", 100 * mfu_sum / mfu_n);
    PanelText t = {title, NULL, NULL, "step"};
    place_panel(f->cr, &p, &t, x, y, w, h, 0.9 * f->fs);
    draw_axes(f->cr, &p, &t, 0.9 * f->fs, f->pen);
    for (int r = 0; r < f->n_runs; r++) {
        const Series *s = all[r];
        unsigned color = f->n_runs == 1 ? PLOT_TRAIN_COLOR : plot_run_color(r);
        bool noisy = which != PANEL_LR && s->n >= 20;
        Style faint = {color, 0.25, 1, false, false, false};
        Style main = {color, 1, 1.6, false, false, false};
        if (noisy) draw_series(f->cr, &p, s->x, s->y, s->n, faint, f->pen);
        double *line_y = noisy ? smooth(s) : s->y;
        draw_series(f->cr, &p, s->x, line_y, s->n, main, f->pen);
        if (noisy) free(line_y);
    }
}

// What draw_figure draws: the runs, and whether loss and norm are on log scales.
typedef struct RunsFigure {
    const RunMetrics *runs;
    int n_runs;
    bool logy;
} RunsFigure;

// The whole figure on cr, width x height pixels (a DrawFigure; ctx is a RunsFigure).
static void draw_figure(cairo_t *cr, int width, int height, const void *ctx) {
    const RunsFigure *rf = ctx;
    const RunMetrics *runs = rf->runs;
    int n_runs = rf->n_runs;
    bool logy = rf->logy;
    double scale = fmin(width / 1200.0, height / 860.0);
    Figure f = {cr,  runs, n_runs, INFINITY, -INFINITY, 13 * fmax(scale, 0.6), fmax(scale, 0.6),
                logy};
    for (int r = 0; r < n_runs; r++) {
        const Series *all[5] = {&runs[r].loss, &runs[r].val_loss, &runs[r].lr, &runs[r].norm,
                                &runs[r].tok_per_s};
        double x0, x1, y0, y1;
        series_range(all, 5, &x0, &x1, &y0, &y1, false);
        f.x0 = fmin(f.x0, x0), f.x1 = fmax(f.x1, x1);
    }
    if (f.x0 > 0 && f.x0 <= 0.2 * f.x1) f.x0 = 0; // a run from its start: axis from 0
    if (f.x1 - f.x0 < 1) f.x0 -= 1, f.x1 += 1;
    f.x1 += 0.02 * (f.x1 - f.x0); // room for the last point's marker

    set_color(cr, PLOT_BACKGROUND, 1);
    cairo_paint(cr);
    char title[512] = "";
    for (int r = 0; r < n_runs; r++) {
        size_t k = strlen(title);
        snprintf(title + k, sizeof title - k, "%s%s", r ? " vs " : "", runs[r].name);
    }
    set_font(cr, 1.3 * f.fs, true);
    draw_text(cr, title, width / 2.0, 1.0 * f.fs, 0.5, 0, false, PLOT_TEXT_COLOR);

    double margin = 1.2 * f.fs, top = 3.0 * f.fs, split = top + 0.58 * (height - top);
    draw_loss_panel(&f, margin, top, width - 2 * margin, split - top);
    double gap = 1.5 * f.fs, w = (width - 2 * margin - 2 * gap) / 3;
    double y = split + 0.5 * f.fs, h = height - y - 0.3 * f.fs;
    draw_small_panel(&f, PANEL_LR, margin, y, w, h);
    draw_small_panel(&f, PANEL_NORM, margin + w + gap, y, w, h);
    draw_small_panel(&f, PANEL_TOKENS, margin + 2 * (w + gap), y, w, h);
}

// Load, draw, write. Returns false (writing nothing) when a run has no loss value and
// strict is off; strict dies instead.
static bool render(const char *const *paths, int n, const char *out_path, const PlotOptions *opt,
                   bool strict) {
    RunMetrics *runs = xcalloc((size_t)n, sizeof(RunMetrics));
    bool ok = true;
    for (int i = 0; i < n; i++) {
        metrics_load(&runs[i], paths[i], strict);
        if (strict) check(runs[i].loss.n > 0, "%s: no finite \"loss\" values to plot", paths[i]);
        ok = ok && runs[i].loss.n > 0;
    }
    RunsFigure rf = {runs, n, opt->logy};
    if (ok) figure_write(out_path, opt->width, opt->height, draw_figure, &rf);
    for (int i = 0; i < n; i++) metrics_free(&runs[i]);
    free(runs);
    return ok;
}

#else // no Cairo: say so instead of drawing

// Without Cairo: one line saying why there is no figure; strict (bolt plot) dies with it.
static bool render(const char *const *paths, int n, const char *out_path, const PlotOptions *opt,
                   bool strict) {
    const char *why = "bolt was built without Cairo (install libcairo2-dev and rebuild)";
    if (strict) die("plot: %s: cannot draw %s; the metrics are in %s", why, out_path, paths[0]);
    printf("note: %s: no %s; the metrics are in %s\n", why, out_path, paths[0]);
    return false;
}

#endif

void plot_metrics(const char *const *paths, int n, const char *out_path, const PlotOptions *opt) {
    check(n >= 1 && n <= PLOT_MAX_RUNS, "plot: %d runs (1 to %d can share a figure)", n,
          PLOT_MAX_RUNS);
    plot_check_size(opt);
    render(paths, n, out_path, opt, true);
}

void plot_check_size(const PlotOptions *opt) {
    check(opt->width >= 400 && opt->width <= PLOT_MAX_SIDE && opt->height >= 300 &&
              opt->height <= PLOT_MAX_SIDE,
          "plot: size %dx%d out of range (400..%d x 300..%d)", opt->width, opt->height,
          PLOT_MAX_SIDE, PLOT_MAX_SIDE);
}

void plot_run_dir(const char *out_dir) {
    char metrics[4096], png[4096];
    path_join(metrics, sizeof metrics, out_dir, "metrics.jsonl");
    path_join(png, sizeof png, out_dir, "loss.png");
    const char *paths[1] = {metrics};
    PlotOptions opt = {1200, 860, false};
    render(paths, 1, png, &opt, false);
}

// bolt plot's options.
typedef struct PlotArgs {
    const char *out, *bench;
    int width, height;
    bool logy;
} PlotArgs;

static const Option PLOT_OPTIONS[] = {
    {"out", OPT_STRING, offsetof(PlotArgs, out), 0, 0, 0, NULL, NULL,
     "PNG, or SVG when the name ends in .svg (default: loss.png beside the one run's "
     "metrics, compare.png for several; with --bench, FILE's name with .png for .jsonl)"},
    {"bench", OPT_STRING, offsetof(PlotArgs, bench), 0, 0, 0, NULL, NULL,
     "instead of runs: the records `bolt bench train --json=FILE` appended to FILE, printed "
     "as a markdown table (config, seq_len, batch, recompute, step ms, tok/s, MFU, peak GiB) "
     "and drawn as peak memory and tokens/s against the sequence length (log2 axis), one "
     "curve per config and recompute setting; records with \"ok\": false (added by hand for "
     "runs that ran out of memory) show as failed"},
    {"width", OPT_INT, offsetof(PlotArgs, width), 0, 400, PLOT_MAX_SIDE, NULL, NULL,
     "figure width in pixels"},
    {"height", OPT_INT, offsetof(PlotArgs, height), 0, 0, PLOT_MAX_SIDE, NULL, NULL,
     "figure height in pixels (0: 860, or 600 with --bench)"},
    {"logy", OPT_BOOL, offsetof(PlotArgs, logy), 0, 0, 0, NULL, NULL,
     "loss and gradient norm on log scales (with --bench: memory and tokens/s)"},
};

static const OptionTable PLOT_TABLE = {
    .command = "plot",
    .args = "RUN [RUN ...] | --bench=FILE",
    .max_args = PLOT_MAX_RUNS,
    .about = "Draws the loss (train raw and smoothed, val; nats/token, and bits/byte for\n"
             "byte-level runs) over learning-rate, gradient-norm and tokens/s panels. RUN is a\n"
             "run directory or a metrics.jsonl file; several runs share one figure.\n"
             "With --bench=FILE: bench train's records as a table and a figure by sequence\n"
             "length (bolt bench train --help).",
    .options = PLOT_OPTIONS,
    .count = sizeof PLOT_OPTIONS / sizeof PLOT_OPTIONS[0],
};

// bolt plot --bench=FILE: the table on stdout, then the figure (out, or FILE's name with
// .png for .jsonl).
static int plot_bench_main(const char *path, const char *out, const PlotOptions *opt) {
    char out_path[4096];
    size_t n = strlen(path);
    if (n > 6 && strcmp(path + n - 6, ".jsonl") == 0) n -= 6;
    int len = out[0] ? snprintf(out_path, sizeof out_path, "%s", out)
                     : snprintf(out_path, sizeof out_path, "%.*s.png", (int)n, path);
    check(len < (int)sizeof out_path, "%s: path too long", out[0] ? out : path);
    BenchFile b;
    bench_load(&b, path);
    bench_print_table(&b, stdout);
    fflush(stdout);
    plot_bench_figure(&b, path, out_path, opt);
    printf("\nwrote %s (%dx%d)\n", out_path, opt->width, opt->height);
    bench_free(&b);
    return 0;
}

int plot_main(int argc, char **argv) {
    PlotArgs a = {.out = "", .bench = "", .width = 1200, .height = 0, .logy = false};
    char *inputs[PLOT_MAX_RUNS];
    int n = options_parse(&PLOT_TABLE, &a, argc, argv, inputs);
    if (n < 0) return 0;
    PlotOptions opt = {a.width, a.height ? a.height : a.bench[0] ? 600 : 860, a.logy};
    check(!a.bench[0] || n == 0, "plot: --bench=%s draws the bench file alone (no RUN '%s')",
          a.bench, n ? inputs[0] : "");
    if (a.bench[0]) return plot_bench_main(a.bench, a.out, &opt);
    check(n > 0, "plot: missing RUN (usage: bolt plot RUN [RUN ...] [--option=value ...], or "
                 "bolt plot --bench=FILE)");
    const char *out = a.out[0] ? a.out : NULL;
    char metrics[PLOT_MAX_RUNS][4096], out_path[4096];
    const char *paths[PLOT_MAX_RUNS];
    for (int i = 0; i < n; i++) {
        struct stat sb;
        if (stat(inputs[i], &sb) == 0 && S_ISDIR(sb.st_mode))
            path_join(metrics[i], sizeof metrics[i], inputs[i], "metrics.jsonl");
        else if (strchr(inputs[i], '/'))
            snprintf(metrics[i], sizeof metrics[i], "%s", inputs[i]);
        else // "./NAME": its directory is the one before the last slash
            path_join(metrics[i], sizeof metrics[i], ".", inputs[i]);
        check(strlen(metrics[i]) < sizeof metrics[i] - 1, "%s: path too long", inputs[i]);
        paths[i] = metrics[i];
    }
    if (out) {
        check(strlen(out) < sizeof out_path, "%s: path too long", out);
        snprintf(out_path, sizeof out_path, "%s", out);
    } else if (n == 1) {
        char *slash = strrchr(metrics[0], '/');
        *slash = '\0'; // the metrics file's directory, for a moment
        path_join(out_path, sizeof out_path, metrics[0], "loss.png");
        *slash = '/';
    } else {
        snprintf(out_path, sizeof out_path, "compare.png");
    }
    plot_metrics(paths, n, out_path, &opt);
    printf("wrote %s (%dx%d)\n", out_path, opt.width, opt.height);
    return 0;
}
