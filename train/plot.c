// train/plot.c: `bolt plot`: runs' metrics drawn with Cairo as a matplotlib-style figure.
// Layout: the title (run names), a wide loss panel (train loss faint raw and smoothed,
// val loss with markers, a legend with the last values, nats/token on the left and
// bits/byte on the right for byte-level runs), and a row of learning-rate, gradient-norm
// and tokens/s panels over the same steps. Ticks sit at 1, 2 or 5 times a power of ten.
// Without Cairo (BOLT_CAIRO undefined) only the argument handling is built, and drawing
// says in one line that bolt was built without Cairo.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/util.h"
#include "metrics_file.h"
#include "options.h"
#include "plot.h"

#ifdef BOLT_CAIRO
#include <cairo-svg.h>
#include <cairo.h>
#endif

#define PLOT_MAX_SIDE 8192
#define PLOT_MAX_RUNS 16

unsigned plot_run_color(int k) {
    static const unsigned tab10[10] = {0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD,
                                       0x8C564B, 0xE377C2, 0x7F7F7F, 0xBCBD22, 0x17BECF};
    return tab10[k % 10];
}

#ifdef BOLT_CAIRO

#define GRID_COLOR 0xE5E5E5
#define SPINE_COLOR 0x333333
#define TEXT_COLOR 0x222222
#define MAX_TICKS 32

bool plot_available(void) {
    return true;
}

// Whether path ends in suffix.
static bool ends_with(const char *path, const char *suffix) {
    size_t n = strlen(path), k = strlen(suffix);
    return n >= k && strcmp(path + n - k, suffix) == 0;
}

// ---- Axes: ranges, ticks, labels ---------------------------------------------------------

// One panel: its plot area in pixels and the data range it shows.
typedef struct Panel {
    double left, top, width, height;
    double x0, x1, y0, y1;
    bool logy;
} Panel;

static double panel_x(const Panel *p, double x) {
    return p->left + (x - p->x0) / (p->x1 - p->x0) * p->width;
}

static double panel_y(const Panel *p, double y) {
    double t =
        p->logy ? (log(y) - log(p->y0)) / (log(p->y1) - log(p->y0)) : (y - p->y0) / (p->y1 - p->y0);
    return p->top + (1 - t) * p->height;
}

// A 1, 2 or 5 times a power of ten near range/target: about `target` ticks over range.
static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

// Tick values in [lo, hi] into out (at most MAX_TICKS), at least min_spacing apart;
// *spacing gets their distance. On a log axis: mantissas from the densest of a few sets
// ({1..9}, ..., {1}) x 10^k that gives at most target + 1 ticks, and *spacing 0 (each
// tick's label takes its decimals from its own value).
static int make_ticks(double lo, double hi, bool log_axis, int target, double min_spacing,
                      double *out, double *spacing) {
    int n = 0;
    if (log_axis) {
        static const double sets[6][10] = {{1, 2, 3, 4, 5, 6, 7, 8, 9},
                                           {1, 2, 3, 4, 5, 6, 8},
                                           {1, 2, 3, 5},
                                           {1, 2, 5},
                                           {1, 3},
                                           {1}};
        for (int set = 0; set < 6; set++) {
            n = 0;
            for (double e = floor(log10(lo)); e <= ceil(log10(hi)); e++)
                for (int k = 0; k < 10 && sets[set][k] > 0; k++) {
                    double v = sets[set][k] * pow(10, e);
                    if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && n < MAX_TICKS) out[n++] = v;
                }
            if (n <= target + 1) break;
        }
        *spacing = 0;
        return n;
    }
    double step = fmax(min_spacing, nice_step(hi - lo, target));
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step && n < MAX_TICKS; k++)
        out[n++] = k * step;
    *spacing = step;
    return n;
}

// An axis' tick labels: as many decimals as the spacing needs ("2.25", "0.0005"); every
// label in k or M when the largest tick reaches 10^4 or 10^6 ("12.5k"); "2e-06" for tiny
// spacings; spacing 0 (log decades): each label's decimals from its own value.
static void format_ticks(const double *ticks, int n, double spacing, char (*labels)[32]) {
    double top = 0;
    for (int i = 0; i < n; i++) top = fmax(top, fabs(ticks[i]));
    for (int i = 0; i < n; i++) {
        double v = ticks[i], s = spacing > 0 ? spacing : v;
        if (fabs(v) < s * 1e-6)
            snprintf(labels[i], 32, "0"); // no "-0.0"
        else if (top >= 1e6)
            snprintf(labels[i], 32, "%gM", v / 1e6);
        else if (top >= 1e4)
            snprintf(labels[i], 32, "%gk", v / 1e3);
        else if (s >= 1e-5)
            snprintf(labels[i], 32, "%.*f", (int)fmax(0, -floor(log10(s) + 1e-9)), v);
        else
            snprintf(labels[i], 32, "%g", v);
    }
}

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

// Pad the y range by 5% each side (in log space on a log axis) as matplotlib does; a
// flat curve gets a range around its value; from_zero: the axis starts at 0.
static void pad_y_range(Panel *p, bool from_zero) {
    if (!isfinite(p->y0)) p->y0 = p->logy ? 1 : 0, p->y1 = p->logy ? 10 : 1;
    if (p->logy) {
        double a = log(p->y0), b = log(p->y1), span = b - a < 1e-6 ? 0.2 : b - a;
        p->y0 = exp(a - 0.05 * span - (b - a < 1e-6 ? 0.1 : 0));
        p->y1 = exp(b + 0.05 * span + (b - a < 1e-6 ? 0.1 : 0));
        return;
    }
    if (from_zero) p->y0 = fmin(p->y0, 0);
    double span = p->y1 - p->y0;
    if (span <= 1e-9 * fmax(1, fabs(p->y1))) {
        span = fmax(1e-3, 0.2 * fabs(p->y1));
        p->y0 -= 0.5 * span, p->y1 += 0.5 * span;
        if (from_zero) p->y0 = fmin(0, p->y0 + 0.5 * span);
    }
    p->y1 += 0.05 * (p->y1 - p->y0);
    if (!from_zero) p->y0 -= 0.05 * (p->y1 - p->y0) / 1.05;
}

// ---- Drawing primitives -----------------------------------------------------------------

static void set_color(cairo_t *cr, unsigned rgb, double alpha) {
    cairo_set_source_rgba(cr, (rgb >> 16 & 255) / 255.0, (rgb >> 8 & 255) / 255.0,
                          (rgb & 255) / 255.0, alpha);
}

static void set_font(cairo_t *cr, double size, bool bold) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

// Draw s (in the current font) anchored at (x, y): ax, ay in [0, 1] pick the anchor's
// place in the text's box (0, 0 top left; 0.5, 0.5 centre) measured with the height of
// a digit, so labels of one row share a baseline. vertical: rotated to read upwards.
static void draw_text(cairo_t *cr, const char *s, double x, double y, double ax, double ay,
                      bool vertical, unsigned color) {
    cairo_text_extents_t digit;
    cairo_text_extents(cr, "0", &digit);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (vertical) cairo_rotate(cr, -M_PI / 2);
    cairo_move_to(cr, -ax * text_width(cr, s), -digit.y_bearing * (1 - ay));
    set_color(cr, color, 1);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static void line(cairo_t *cr, double x0, double y0, double x1, double y1, double width,
                 unsigned color) {
    cairo_move_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
    cairo_set_line_width(cr, width);
    set_color(cr, color, 1);
    cairo_stroke(cr);
}

// How a curve is drawn.
typedef struct Style {
    unsigned color;
    double alpha, width;
    bool dashed, markers;
} Style;

// A series as a polyline in the panel (clipped to it). Points on the same pixel column
// are thinned to that column's first, lowest and highest (spikes stay visible, and a
// million-step SVG stays small). Non-positive values break the line on a log axis.
static void draw_series(cairo_t *cr, const Panel *p, const double *x, const double *y, int n,
                        Style st, double scale) {
    cairo_save(cr);
    cairo_rectangle(cr, p->left, p->top, p->width, p->height);
    cairo_clip(cr);
    bool pen_down = false;
    for (int i = 0; i < n;) {
        int col = (int)floor(panel_x(p, x[i])), j = i, lo = i, hi = i;
        while (j < n && (int)floor(panel_x(p, x[j])) == col) {
            if (y[j] < y[lo]) lo = j;
            if (y[j] > y[hi]) hi = j;
            j++;
        }
        int keep[3] = {i, lo < hi ? lo : hi, lo < hi ? hi : lo};
        for (int k = 0; k < 3; k++) {
            if (k > 0 && keep[k] == keep[k - 1]) continue;
            if (p->logy && y[keep[k]] <= 0) {
                pen_down = false;
                continue;
            }
            double px = panel_x(p, x[keep[k]]), py = panel_y(p, y[keep[k]]);
            if (pen_down)
                cairo_line_to(cr, px, py);
            else
                cairo_move_to(cr, px, py);
            pen_down = true;
        }
        i = j;
    }
    double dash[2] = {6 * scale, 3 * scale};
    cairo_set_dash(cr, dash, st.dashed ? 2 : 0, 0);
    cairo_set_line_width(cr, st.width * scale);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    set_color(cr, st.color, st.alpha);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int i = 0; st.markers && i < n; i++) {
        if (p->logy && y[i] <= 0) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, panel_x(p, x[i]), panel_y(p, y[i]), 3.5 * scale, 0, 2 * M_PI);
    }
    cairo_fill(cr);
    cairo_restore(cr);
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

// ---- Panels -------------------------------------------------------------------------------

// What a panel shows besides its curves.
typedef struct PanelText {
    const char *title;   // above the plot area, or NULL
    const char *ylabel;  // left, rotated, or NULL
    const char *y2label; // right axis (bits/byte = nats / ln 2), or NULL
} PanelText;

// About how many y ticks a panel of this height gets: one per five lines of text.
static int y_tick_target(double height, double fs) {
    return (int)fmax(3, fmin(10, height / (5 * fs)));
}

// Widest label of the y ticks (scaled by y_scale) in the current font.
static double widest_tick(cairo_t *cr, const Panel *p, double y_scale, int target) {
    double ticks[MAX_TICKS], spacing, widest = 0;
    char labels[MAX_TICKS][32];
    int n = make_ticks(p->y0 / y_scale, p->y1 / y_scale, p->logy, target, 0, ticks, &spacing);
    format_ticks(ticks, n, spacing, labels);
    for (int i = 0; i < n; i++) widest = fmax(widest, text_width(cr, labels[i]));
    return widest;
}

// Fit the plot area into the box (x, y, w, h) beside its tick labels and axis labels.
static void place_panel(cairo_t *cr, Panel *p, const PanelText *t, double x, double y, double w,
                        double h, double fs) {
    set_font(cr, fs, false);
    double pad = 0.6 * fs, tick = 0.35 * fs;
    double top = t->title ? 2.0 * fs : pad, bottom = tick + pad + 2.8 * fs;
    p->top = y + top;
    p->height = fmax(10, h - top - bottom);
    int target = y_tick_target(p->height, fs); // as draw_axes will choose them
    double left = widest_tick(cr, p, 1, target) + tick + pad;
    double right = t->y2label ? widest_tick(cr, p, M_LN2, target) + tick + pad + 1.6 * fs : pad;
    if (t->ylabel) left += 1.6 * fs;
    p->left = x + left;
    p->width = fmax(10, w - left - right);
}

// Grid, spines, ticks and labels of a placed panel.
static void draw_axes(cairo_t *cr, const Panel *p, const PanelText *t, double fs, double scale) {
    double ticks[MAX_TICKS], spacing, tick = 0.35 * fs, pad = 0.3 * fs;
    double right = p->left + p->width, bottom = p->top + p->height;
    char labels[MAX_TICKS][32];
    set_font(cr, fs, false);
    int target = y_tick_target(p->height, fs);
    int n = make_ticks(p->y0, p->y1, p->logy, target, 0, ticks, &spacing);
    format_ticks(ticks, n, spacing, labels);
    for (int i = 0; i < n; i++) {
        double y = panel_y(p, ticks[i]);
        line(cr, p->left, y, right, y, 0.8 * scale, GRID_COLOR);
        line(cr, p->left - tick, y, p->left, y, scale, SPINE_COLOR);
        draw_text(cr, labels[i], p->left - tick - pad, y, 1, 0.5, false, TEXT_COLOR);
    }
    if (t->y2label) {
        n = make_ticks(p->y0 / M_LN2, p->y1 / M_LN2, p->logy, target, 0, ticks, &spacing);
        format_ticks(ticks, n, spacing, labels);
        for (int i = 0; i < n; i++) {
            double y = panel_y(p, ticks[i] * M_LN2);
            line(cr, right, y, right + tick, y, scale, SPINE_COLOR);
            draw_text(cr, labels[i], right + tick + pad, y, 0, 0.5, false, TEXT_COLOR);
        }
    }
    // Steps are whole numbers: ticks at least 1 apart.
    n = make_ticks(p->x0, p->x1, false, p->width > 400 * scale ? 8 : 4, 1, ticks, &spacing);
    format_ticks(ticks, n, spacing, labels);
    for (int i = 0; i < n; i++) {
        double x = panel_x(p, ticks[i]);
        line(cr, x, p->top, x, bottom, 0.8 * scale, GRID_COLOR);
        line(cr, x, bottom, x, bottom + tick, scale, SPINE_COLOR);
        draw_text(cr, labels[i], x, bottom + tick + pad, 0.5, 0, false, TEXT_COLOR);
    }
    cairo_rectangle(cr, p->left, p->top, p->width, p->height);
    cairo_set_line_width(cr, scale);
    set_color(cr, SPINE_COLOR, 1);
    cairo_stroke(cr);
    draw_text(cr, "step", p->left + p->width / 2, bottom + tick + 1.9 * fs, 0.5, 0, false,
              TEXT_COLOR);
    if (t->ylabel) {
        double w = widest_tick(cr, p, 1, target);
        draw_text(cr, t->ylabel, p->left - tick - 2 * pad - w - 0.4 * fs, p->top + p->height / 2,
                  0.5, 1, true, TEXT_COLOR);
    }
    if (t->y2label) {
        double w = widest_tick(cr, p, M_LN2, target);
        draw_text(cr, t->y2label, right + tick + 2 * pad + w + 0.4 * fs, p->top + p->height / 2,
                  0.5, 0, true, TEXT_COLOR);
    }
    if (t->title) {
        set_font(cr, 1.05 * fs, false);
        draw_text(cr, t->title, p->left + p->width / 2, p->top - 0.7 * fs, 0.5, 1, false,
                  TEXT_COLOR);
    }
}

// One legend entry: its text and how its swatch is drawn.
typedef struct LegendItem {
    char text[320];
    Style style;
} LegendItem;

// A matplotlib-style legend box in the panel's upper right corner.
static void draw_legend(cairo_t *cr, const Panel *p, const LegendItem *items, int n, double fs,
                        double scale) {
    set_font(cr, 0.95 * fs, false);
    double row = 1.5 * fs, swatch = 2.2 * fs, pad = 0.6 * fs, widest = 0;
    for (int i = 0; i < n; i++) widest = fmax(widest, text_width(cr, items[i].text));
    double w = pad + swatch + pad + widest + pad, h = pad + n * row;
    double x = p->left + p->width - w - pad, y = p->top + pad, r = 0.3 * fs;
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + w - r, y + r, r, -M_PI / 2, 0);
    cairo_arc(cr, x + w - r, y + h - r, r, 0, M_PI / 2);
    cairo_arc(cr, x + r, y + h - r, r, M_PI / 2, M_PI);
    cairo_arc(cr, x + r, y + r, r, M_PI, 1.5 * M_PI);
    cairo_close_path(cr);
    set_color(cr, PLOT_BACKGROUND, 0.85);
    cairo_fill_preserve(cr);
    cairo_set_line_width(cr, 0.8 * scale);
    set_color(cr, 0xCCCCCC, 1);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double cy = y + pad / 2 + (i + 0.5) * row, sx = x + pad;
        Panel box = {sx, cy - 1, swatch, 2, 0, 1, 0, 1, false};
        double xs[2] = {0, 1}, ys[2] = {0.5, 0.5};
        draw_series(cr, &box, xs, ys, 2, items[i].style, scale);
        if (items[i].style.markers) {
            cairo_arc(cr, sx + swatch / 2, cy, 3.5 * scale, 0, 2 * M_PI);
            set_color(cr, items[i].style.color, items[i].style.alpha);
            cairo_fill(cr);
        }
        draw_text(cr, items[i].text, sx + swatch + pad, cy, 0, 0.5, false, TEXT_COLOR);
    }
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
    PanelText t = {NULL, "loss (nats/token)", bytes ? "bits/byte" : NULL};
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
        Style faint = {train_color, 0.25, 1, false, false};
        Style train = {train_color, 1, 2, false, m->loss.n < 10}; // few points: dots too
        Style val = {val_color, 1, 2, f->n_runs > 1, m->val_loss.n <= 60};
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
    draw_legend(f->cr, &p, items, n_items, f->fs, f->pen);
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
    PanelText t = {title, NULL, NULL};
    place_panel(f->cr, &p, &t, x, y, w, h, 0.9 * f->fs);
    draw_axes(f->cr, &p, &t, 0.9 * f->fs, f->pen);
    for (int r = 0; r < f->n_runs; r++) {
        const Series *s = all[r];
        unsigned color = f->n_runs == 1 ? PLOT_TRAIN_COLOR : plot_run_color(r);
        bool noisy = which != PANEL_LR && s->n >= 20;
        Style faint = {color, 0.25, 1, false, false}, main = {color, 1, 1.6, false, false};
        if (noisy) draw_series(f->cr, &p, s->x, s->y, s->n, faint, f->pen);
        double *line_y = noisy ? smooth(s) : s->y;
        draw_series(f->cr, &p, s->x, line_y, s->n, main, f->pen);
        if (noisy) free(line_y);
    }
}

// The whole figure on cr, width x height pixels.
static void draw_figure(cairo_t *cr, const RunMetrics *runs, int n_runs, int width, int height,
                        bool logy) {
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
    draw_text(cr, title, width / 2.0, 1.0 * f.fs, 0.5, 0, false, TEXT_COLOR);

    double margin = 1.2 * f.fs, top = 3.0 * f.fs, split = top + 0.58 * (height - top);
    draw_loss_panel(&f, margin, top, width - 2 * margin, split - top);
    double gap = 1.5 * f.fs, w = (width - 2 * margin - 2 * gap) / 3;
    double y = split + 0.5 * f.fs, h = height - y - 0.3 * f.fs;
    draw_small_panel(&f, PANEL_LR, margin, y, w, h);
    draw_small_panel(&f, PANEL_NORM, margin + w + gap, y, w, h);
    draw_small_panel(&f, PANEL_TOKENS, margin + 2 * (w + gap), y, w, h);
}

// Cairo's output callback: append to the atomic file (dies naming it when the disk is full).
static cairo_status_t write_to_file(void *closure, const unsigned char *data, unsigned int n) {
    AtomicFile *af = closure;
    xfwrite(data, n, af->f, af->tmp_path);
    return CAIRO_STATUS_SUCCESS;
}

// Draw the runs into out_path: SVG when the name ends in .svg, else PNG.
static void write_figure(const RunMetrics *runs, int n_runs, const char *out_path,
                         const PlotOptions *opt) {
    AtomicFile af = atomic_open(out_path);
    bool svg = ends_with(out_path, ".svg");
    cairo_surface_t *surface =
        svg ? cairo_svg_surface_create_for_stream(write_to_file, &af, opt->width, opt->height)
            : cairo_image_surface_create(CAIRO_FORMAT_RGB24, opt->width, opt->height);
    cairo_t *cr = cairo_create(surface);
    draw_figure(cr, runs, n_runs, opt->width, opt->height, opt->logy);
    check(cairo_status(cr) == CAIRO_STATUS_SUCCESS, "%s: drawing failed (%s)", out_path,
          cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    cairo_status_t status =
        svg ? CAIRO_STATUS_SUCCESS : cairo_surface_write_to_png_stream(surface, write_to_file, &af);
    cairo_surface_finish(surface);
    if (status == CAIRO_STATUS_SUCCESS) status = cairo_surface_status(surface);
    check(status == CAIRO_STATUS_SUCCESS, "%s: cannot write the figure (%s)", out_path,
          cairo_status_to_string(status));
    cairo_surface_destroy(surface);
    atomic_commit(&af);
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
    if (ok) write_figure(runs, n, out_path, opt);
    for (int i = 0; i < n; i++) metrics_free(&runs[i]);
    free(runs);
    return ok;
}

#else // no Cairo: say so instead of drawing

bool plot_available(void) {
    return false;
}

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
    check(opt->width >= 400 && opt->width <= PLOT_MAX_SIDE && opt->height >= 300 &&
              opt->height <= PLOT_MAX_SIDE,
          "plot: size %dx%d out of range (400..%d x 300..%d)", opt->width, opt->height,
          PLOT_MAX_SIDE, PLOT_MAX_SIDE);
    render(paths, n, out_path, opt, true);
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
    const char *out;
    int width, height;
    bool logy;
} PlotArgs;

static const Option PLOT_OPTIONS[] = {
    {"out", OPT_STRING, offsetof(PlotArgs, out), 0, 0, 0, NULL, NULL,
     "PNG, or SVG when the name ends in .svg (default: loss.png beside the one run's "
     "metrics, compare.png for several)"},
    {"width", OPT_INT, offsetof(PlotArgs, width), 0, 400, PLOT_MAX_SIDE, NULL, NULL,
     "figure width in pixels"},
    {"height", OPT_INT, offsetof(PlotArgs, height), 0, 300, PLOT_MAX_SIDE, NULL, NULL,
     "figure height in pixels"},
    {"logy", OPT_BOOL, offsetof(PlotArgs, logy), 0, 0, 0, NULL, NULL,
     "loss and gradient norm on log scales"},
};

static const OptionTable PLOT_TABLE = {
    .command = "plot",
    .args = "RUN [RUN ...]",
    .min_args = 1,
    .max_args = PLOT_MAX_RUNS,
    .about = "Draws the loss (train raw and smoothed, val; nats/token, and bits/byte for\n"
             "byte-level runs) over learning-rate, gradient-norm and tokens/s panels. RUN is a\n"
             "run directory or a metrics.jsonl file; several runs share one figure.",
    .options = PLOT_OPTIONS,
    .count = sizeof PLOT_OPTIONS / sizeof PLOT_OPTIONS[0],
};

int plot_main(int argc, char **argv) {
    PlotArgs a = {.out = "", .width = 1200, .height = 860, .logy = false};
    char *inputs[PLOT_MAX_RUNS];
    int n = options_parse(&PLOT_TABLE, &a, argc, argv, inputs);
    if (n < 0) return 0;
    PlotOptions opt = {a.width, a.height, a.logy};
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
