// train/plot_bench.c: the figure of `bolt plot --bench=FILE`: bench train's records
// (train/bench_file.h) as two panels side by side, peak memory (GiB) and throughput
// (tokens/s) against the sequence length on a log2 axis (ticks 2K, 4K, ... 1M), one
// curve with markers per config, recompute setting, batch size and device, a legend in
// the memory panel and the device in the title. A failed run (a record with "ok": false,
// written by hand for a run that ran out of memory) is a cross on the top edge of both
// panels at its length: off the chart. Without Cairo, drawing says in one line that
// bolt was built without it.
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "plot.h"
#include "plot_draw.h"

enum { BENCH_MAX_CURVES = 16 };

#ifdef BOLT_CAIRO

// One curve: the records of one run setting, by sequence length.
typedef struct Curve {
    const BenchRecord *first; // the setting's first record (its key fields)
    char label[256];
    int n, n_failed;
    double *x, *mem_gib, *tok_per_s; // the successful runs, by seq_len
    double *failed_x;                // the failed runs' seq_len
} Curve;

// The figure's state while it is drawn.
typedef struct BenchFigure {
    const BenchFile *b;
    Curve curves[BENCH_MAX_CURVES];
    int n_curves;
    bool logy;
    char title[512], subtitle[512], failed_label[160];
    double x0, x1;  // the sequence lengths shown (both panels)
    double fs, pen; // font size and line-width unit, in pixels
} BenchFigure;

// Whether a and b are points of one curve: same config, recompute, batch, accumulation
// and device (a record without a device, written by hand, joins any).
static bool same_curve(const BenchRecord *a, const BenchRecord *b) {
    return strcmp(a->name, b->name) == 0 && a->recompute == b->recompute &&
           a->batch_size == b->batch_size && a->grad_accum == b->grad_accum &&
           bench_same_device(a, b);
}

// Whether the records disagree on a field: then the legend names it.
static bool differ(const BenchFile *b, bool (*same)(const BenchRecord *, const BenchRecord *)) {
    for (int i = 1; i < b->n; i++)
        if (!same(&b->rec[0], &b->rec[i])) return true;
    return false;
}

// The fields `differ` compares.
static bool same_batch(const BenchRecord *a, const BenchRecord *b) {
    return a->batch_size == b->batch_size && a->grad_accum == b->grad_accum;
}

static bool same_recompute(const BenchRecord *a, const BenchRecord *b) {
    return a->recompute == b->recompute;
}

// The value every record (every failed one: failed_only) that has one gives the string
// field at `offset` (device, commit, error): "" when none has one, NULL when two differ.
static const char *shared_text(const BenchFile *b, size_t offset, bool failed_only) {
    const char *shared = "";
    for (int i = 0; i < b->n; i++) {
        const char *s = (const char *)&b->rec[i] + offset;
        if (!s[0] || (failed_only && b->rec[i].ok)) continue;
        if (shared[0] && strcmp(shared, s) != 0) return NULL;
        shared = s;
    }
    return shared;
}

// qsort's order of records by sequence length.
static int by_seq_len(const void *pa, const void *pb) {
    const BenchRecord *a = *(const BenchRecord *const *)pa, *b = *(const BenchRecord *const *)pb;
    return (a->seq_len > b->seq_len) - (a->seq_len < b->seq_len);
}

// The curve of record r: an existing one of the same setting, or a new one (in file
// order, so colours follow the file) with its legend label. Dies naming path past
// BENCH_MAX_CURVES.
static int curve_of(BenchFigure *f, const BenchRecord *r, const char *path) {
    const BenchFile *b = f->b;
    int k = 0;
    while (k < f->n_curves && !same_curve(f->curves[k].first, r)) k++;
    if (k < f->n_curves) return k;
    check(k < BENCH_MAX_CURVES,
          "%s: more than %d settings (config, recompute, batch, device) to draw; split the file",
          path, BENCH_MAX_CURVES);
    Curve *c = &f->curves[f->n_curves++];
    c->first = r;
    c->x = xmalloc((size_t)b->n * sizeof(double));
    c->mem_gib = xmalloc((size_t)b->n * sizeof(double));
    c->tok_per_s = xmalloc((size_t)b->n * sizeof(double));
    c->failed_x = xmalloc((size_t)b->n * sizeof(double));
    const char *recompute = r->recompute                ? ", recompute"
                            : differ(b, same_recompute) ? ", no recompute"
                                                        : "";
    int len = snprintf(c->label, sizeof c->label, "%s%s", r->name, recompute);
    if (differ(b, same_batch) && len < (int)sizeof c->label)
        len += snprintf(c->label + len, sizeof c->label - (size_t)len, ", batch %d",
                        r->batch_size * r->grad_accum);
    if (!shared_text(b, offsetof(BenchRecord, device), false) && len < (int)sizeof c->label)
        snprintf(c->label + len, sizeof c->label - (size_t)len, " (%s)",
                 r->device[0] ? r->device : "device unknown");
    return k;
}

// Sort the records into curves, each by sequence length, and set the x range.
static void build_curves(BenchFigure *f, const char *path) {
    const BenchFile *b = f->b;
    for (int i = 0; i < b->n; i++) curve_of(f, &b->rec[i], path);
    const BenchRecord **sorted = xmalloc((size_t)b->n * sizeof(BenchRecord *));
    for (int i = 0; i < b->n; i++) sorted[i] = &b->rec[i];
    qsort(sorted, (size_t)b->n, sizeof(BenchRecord *), by_seq_len);
    f->x0 = INFINITY, f->x1 = -INFINITY;
    for (int i = 0; i < b->n; i++) {
        const BenchRecord *r = sorted[i];
        Curve *c = &f->curves[curve_of(f, r, path)];
        if (r->ok) {
            c->x[c->n] = r->seq_len;
            c->mem_gib[c->n] = r->peak_mem_bytes / (1024.0 * 1024 * 1024);
            c->tok_per_s[c->n++] = r->tok_per_s;
        } else {
            c->failed_x[c->n_failed++] = r->seq_len;
        }
        f->x0 = fmin(f->x0, r->seq_len), f->x1 = fmax(f->x1, r->seq_len);
    }
    free(sorted);
    f->x0 /= pow(2, 0.4), f->x1 *= pow(2, 0.4); // room for the end markers
}

// The title (configs and device) and subtitle (batch and commit when all runs share them).
static void make_titles(BenchFigure *f) {
    const BenchFile *b = f->b;
    const BenchRecord *r0 = &b->rec[0];
    int len = 0;
    for (int k = 0; k < f->n_curves && len < (int)sizeof f->title; k++) {
        bool seen = false;
        for (int j = 0; j < k; j++)
            seen = seen || strcmp(f->curves[j].first->name, f->curves[k].first->name) == 0;
        if (!seen)
            len += snprintf(f->title + len, sizeof f->title - (size_t)len, "%s%s", len ? ", " : "",
                            f->curves[k].first->name);
    }
    const char *device = shared_text(b, offsetof(BenchRecord, device), false);
    if (device && device[0] && len < (int)sizeof f->title)
        snprintf(f->title + len, sizeof f->title - (size_t)len, " on %s", device);
    len = snprintf(f->subtitle, sizeof f->subtitle,
                   "bolt bench train: peak memory and tokens/s by sequence length");
    if (!differ(b, same_batch) && len < (int)sizeof f->subtitle)
        len += snprintf(f->subtitle + len, sizeof f->subtitle - (size_t)len, ", batch %d",
                        r0->batch_size);
    if (!differ(b, same_batch) && r0->grad_accum > 1 && len < (int)sizeof f->subtitle)
        len += snprintf(f->subtitle + len, sizeof f->subtitle - (size_t)len, " x grad_accum %d",
                        r0->grad_accum);
    const char *commit = shared_text(b, offsetof(BenchRecord, commit), false);
    if (commit && commit[0] && len < (int)sizeof f->subtitle)
        snprintf(f->subtitle + len, sizeof f->subtitle - (size_t)len, ", commit %s", commit);
    const char *error = shared_text(b, offsetof(BenchRecord, error), true);
    snprintf(f->failed_label, sizeof f->failed_label, "run failed%s%s",
             error && error[0] ? ": " : "", error ? error : "");
}

// One panel: peak memory (memory) or tokens/s, every curve, the failed runs' crosses at
// the top, and in the memory panel the legend (upper left: memory grows to the right).
static void draw_panel(cairo_t *cr, const BenchFigure *f, bool memory, double x, double y, double w,
                       double h) {
    Panel p = {
        .x0 = f->x0, .x1 = f->x1, .y0 = INFINITY, .y1 = -INFINITY, .logy = f->logy, .logx = true};
    for (int k = 0; k < f->n_curves; k++) {
        const Curve *c = &f->curves[k];
        const double *v = memory ? c->mem_gib : c->tok_per_s;
        for (int i = 0; i < c->n; i++)
            if (!f->logy || v[i] > 0) p.y0 = fmin(p.y0, v[i]), p.y1 = fmax(p.y1, v[i]);
    }
    pad_y_range(&p, true);
    PanelText t = {memory ? "peak memory (GiB)" : "throughput (tokens/s)", NULL, NULL,
                   "sequence length (tokens)"};
    place_panel(cr, &p, &t, x, y, w, h, f->fs);
    draw_axes(cr, &p, &t, f->fs, f->pen);
    LegendItem items[BENCH_MAX_CURVES + 1];
    int n_items = 0, n_failing = 0;
    for (int k = 0; k < f->n_curves; k++) {
        const Curve *c = &f->curves[k];
        Style st = {plot_run_color(k), 1, 2, false, true, false};
        draw_series(cr, &p, c->x, memory ? c->mem_gib : c->tok_per_s, c->n, st, f->pen);
        snprintf(items[n_items].text, sizeof items[0].text, "%s", c->label);
        items[n_items++].style = st;
        if (c->n_failed == 0) continue;
        double row = p.top + 1.1 * n_failing++ * f->fs; // on the top spine, then a row each
        for (int i = 0; i < c->n_failed; i++)
            draw_cross(cr, panel_x(&p, c->failed_x[i]), row, 0.35 * f->fs, plot_run_color(k),
                       2 * f->pen);
    }
    if (!memory) return;
    if (n_failing > 0) {
        snprintf(items[n_items].text, sizeof items[0].text, "%s", f->failed_label);
        items[n_items++].style = (Style){PLOT_SPINE_COLOR, 1, 0, false, false, true};
    }
    draw_legend(cr, &p, items, n_items, f->fs, f->pen, true);
}

// The whole figure (a DrawFigure; ctx is the BenchFigure).
static void draw_bench(cairo_t *cr, int width, int height, const void *ctx) {
    const BenchFigure *f = ctx;
    set_color(cr, PLOT_BACKGROUND, 1);
    cairo_paint(cr);
    set_font(cr, 1.3 * f->fs, true);
    draw_text(cr, f->title, width / 2.0, 1.0 * f->fs, 0.5, 0, false, PLOT_TEXT_COLOR);
    set_font(cr, f->fs, false);
    draw_text(cr, f->subtitle, width / 2.0, 2.9 * f->fs, 0.5, 0, false, PLOT_SPINE_COLOR);
    double margin = 1.2 * f->fs, gap = 2.0 * f->fs, top = 4.6 * f->fs;
    double w = (width - 2 * margin - gap) / 2, h = height - top - 0.3 * f->fs;
    draw_panel(cr, f, true, margin, top, w, h);
    draw_panel(cr, f, false, margin + w + gap, top, w, h);
}

void plot_bench_figure(const BenchFile *b, const char *path, const char *out_path,
                       const PlotOptions *opt) {
    plot_check_size(opt);
    bool any_ok = false;
    for (int i = 0; i < b->n; i++) any_ok = any_ok || b->rec[i].ok;
    check(any_ok, "%s: every run in it failed: nothing to draw", path);
    BenchFigure *f = xcalloc(1, sizeof *f);
    f->b = b;
    f->logy = opt->logy;
    double scale = fmin(opt->width / 1200.0, opt->height / 600.0);
    f->fs = 13 * fmax(scale, 0.6), f->pen = fmax(scale, 0.6);
    build_curves(f, path);
    make_titles(f);
    figure_write(out_path, opt->width, opt->height, draw_bench, f);
    for (int k = 0; k < f->n_curves; k++) {
        free(f->curves[k].x);
        free(f->curves[k].mem_gib);
        free(f->curves[k].tok_per_s);
        free(f->curves[k].failed_x);
    }
    free(f);
}

#else // no Cairo: say so instead of drawing

void plot_bench_figure(const BenchFile *b, const char *path, const char *out_path,
                       const PlotOptions *opt) {
    die("plot: bolt was built without Cairo (install libcairo2-dev and rebuild): cannot draw %s; "
        "the table above is from %s",
        out_path, path);
}

#endif
