// train/plot_draw.c: the drawing helpers of bolt's figures (plot_draw.h): axes, ticks and
// labels, text, curves, legends, and writing PNG or SVG with Cairo. Without Cairo only
// plot_available is built (it says so).
#include "plot_draw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "plot.h"

#ifdef BOLT_CAIRO
#include <cairo-svg.h>

enum { MAX_TICKS = 32 };

bool plot_available(void) {
    return true;
}

// Whether path ends in suffix.
static bool ends_with(const char *path, const char *suffix) {
    size_t n = strlen(path), k = strlen(suffix);
    return n >= k && strcmp(path + n - k, suffix) == 0;
}

// ---- Axes: ranges, ticks, labels ---------------------------------------------------------

double panel_x(const Panel *p, double x) {
    double t =
        p->logx ? (log(x) - log(p->x0)) / (log(p->x1) - log(p->x0)) : (x - p->x0) / (p->x1 - p->x0);
    return p->left + t * p->width;
}

double panel_y(const Panel *p, double y) {
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
// tick's label takes its decimals from its own value); a log range too narrow for two
// such ticks (115k..165k) gets the linear ticks instead.
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
        if (n >= 2) return n;
        n = 0;
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

// Ticks at the powers of two in [lo, hi] (a log2 axis of sequence lengths), every
// stride-th one, stride the smallest power of two that leaves at most `fit` ticks; labels
// in binary units: "512", "2K", "1M" (K = 1024, M = 1024^2). Returns the count.
static int make_pow2_ticks(double lo, double hi, int fit, double *out, char (*labels)[32]) {
    int first = (int)ceil(log2(lo) - 1e-9), last = (int)floor(log2(hi) + 1e-9), stride = 1;
    while ((last - first) / stride + 1 > fit && stride < 64) stride *= 2;
    int n = 0;
    for (int e = first; e <= last && n < MAX_TICKS; e += stride) {
        double v = ldexp(1, e);
        out[n] = v;
        if (e >= 20)
            snprintf(labels[n], 32, "%gM", ldexp(1, e - 20));
        else if (e >= 10)
            snprintf(labels[n], 32, "%gK", ldexp(1, e - 10));
        else
            snprintf(labels[n], 32, "%g", v);
        n++;
    }
    return n;
}

// Pad the y range by 5% each side (in log space on a log axis) as matplotlib does; a
// flat curve gets a range around its value; from_zero: the axis starts at 0.
void pad_y_range(Panel *p, bool from_zero) {
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

void set_color(cairo_t *cr, unsigned rgb, double alpha) {
    cairo_set_source_rgba(cr, (rgb >> 16 & 255) / 255.0, (rgb >> 8 & 255) / 255.0,
                          (rgb & 255) / 255.0, alpha);
}

void set_font(cairo_t *cr, double size, bool bold) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

// Draw s (in the current font) anchored at (x, y): ax, ay in [0, 1] pick the anchor's
// place in the text's box (0, 0 top left; 0.5, 0.5 centre) measured with the height of
// a digit, so labels of one row share a baseline. vertical: rotated to read upwards.
void draw_text(cairo_t *cr, const char *s, double x, double y, double ax, double ay, bool vertical,
               unsigned color) {
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

void draw_line(cairo_t *cr, double x0, double y0, double x1, double y1, double width,
               unsigned color) {
    cairo_move_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
    cairo_set_line_width(cr, width);
    set_color(cr, color, 1);
    cairo_stroke(cr);
}

// A series as a polyline in the panel (clipped to it). Points on the same pixel column
// are thinned to that column's first, lowest and highest (spikes stay visible, and a
// million-step SVG stays small). Non-positive values break the line on a log axis.
void draw_series(cairo_t *cr, const Panel *p, const double *x, const double *y, int n, Style st,
                 double scale) {
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
    if (st.width > 0)
        cairo_stroke(cr);
    else
        cairo_new_path(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int i = 0; st.cross && i < n; i++)
        if (!p->logy || y[i] > 0)
            draw_cross(cr, panel_x(p, x[i]), panel_y(p, y[i]), 4 * scale, st.color, 2 * scale);
    for (int i = 0; st.markers && i < n; i++) {
        if (p->logy && y[i] <= 0) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, panel_x(p, x[i]), panel_y(p, y[i]), 3.5 * scale, 0, 2 * M_PI);
    }
    cairo_fill(cr);
    cairo_restore(cr);
}

void draw_cross(cairo_t *cr, double x, double y, double r, unsigned color, double width) {
    cairo_save(cr);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    draw_line(cr, x - r, y - r, x + r, y + r, width, color);
    draw_line(cr, x - r, y + r, x + r, y - r, width, color);
    cairo_restore(cr);
}

// ---- Panels -------------------------------------------------------------------------------

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
void place_panel(cairo_t *cr, Panel *p, const PanelText *t, double x, double y, double w, double h,
                 double fs) {
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
void draw_axes(cairo_t *cr, const Panel *p, const PanelText *t, double fs, double scale) {
    double ticks[MAX_TICKS], spacing, tick = 0.35 * fs, pad = 0.3 * fs;
    double right = p->left + p->width, bottom = p->top + p->height;
    char labels[MAX_TICKS][32];
    set_font(cr, fs, false);
    int target = y_tick_target(p->height, fs);
    int n = make_ticks(p->y0, p->y1, p->logy, target, 0, ticks, &spacing);
    format_ticks(ticks, n, spacing, labels);
    for (int i = 0; i < n; i++) {
        double y = panel_y(p, ticks[i]);
        draw_line(cr, p->left, y, right, y, 0.8 * scale, PLOT_GRID_COLOR);
        draw_line(cr, p->left - tick, y, p->left, y, scale, PLOT_SPINE_COLOR);
        draw_text(cr, labels[i], p->left - tick - pad, y, 1, 0.5, false, PLOT_TEXT_COLOR);
    }
    if (t->y2label) {
        n = make_ticks(p->y0 / M_LN2, p->y1 / M_LN2, p->logy, target, 0, ticks, &spacing);
        format_ticks(ticks, n, spacing, labels);
        for (int i = 0; i < n; i++) {
            double y = panel_y(p, ticks[i] * M_LN2);
            draw_line(cr, right, y, right + tick, y, scale, PLOT_SPINE_COLOR);
            draw_text(cr, labels[i], right + tick + pad, y, 0, 0.5, false, PLOT_TEXT_COLOR);
        }
    }
    if (p->logx) { // as many powers of two as fit side by side, "1M" the widest label
        int fit = (int)fmax(2, p->width / (text_width(cr, "512K") + 1.2 * fs));
        n = make_pow2_ticks(p->x0, p->x1, fit, ticks, labels);
    } else { // steps are whole numbers: ticks at least 1 apart
        n = make_ticks(p->x0, p->x1, false, p->width > 400 * scale ? 8 : 4, 1, ticks, &spacing);
        format_ticks(ticks, n, spacing, labels);
    }
    for (int i = 0; i < n; i++) {
        double x = panel_x(p, ticks[i]);
        draw_line(cr, x, p->top, x, bottom, 0.8 * scale, PLOT_GRID_COLOR);
        draw_line(cr, x, bottom, x, bottom + tick, scale, PLOT_SPINE_COLOR);
        draw_text(cr, labels[i], x, bottom + tick + pad, 0.5, 0, false, PLOT_TEXT_COLOR);
    }
    cairo_rectangle(cr, p->left, p->top, p->width, p->height);
    cairo_set_line_width(cr, scale);
    set_color(cr, PLOT_SPINE_COLOR, 1);
    cairo_stroke(cr);
    if (t->xlabel)
        draw_text(cr, t->xlabel, p->left + p->width / 2, bottom + tick + 1.9 * fs, 0.5, 0, false,
                  PLOT_TEXT_COLOR);
    if (t->ylabel) {
        double w = widest_tick(cr, p, 1, target);
        draw_text(cr, t->ylabel, p->left - tick - 2 * pad - w - 0.4 * fs, p->top + p->height / 2,
                  0.5, 1, true, PLOT_TEXT_COLOR);
    }
    if (t->y2label) {
        double w = widest_tick(cr, p, M_LN2, target);
        draw_text(cr, t->y2label, right + tick + 2 * pad + w + 0.4 * fs, p->top + p->height / 2,
                  0.5, 0, true, PLOT_TEXT_COLOR);
    }
    if (t->title) {
        set_font(cr, 1.05 * fs, false);
        draw_text(cr, t->title, p->left + p->width / 2, p->top - 0.7 * fs, 0.5, 1, false,
                  PLOT_TEXT_COLOR);
    }
}

void draw_legend(cairo_t *cr, const Panel *p, const LegendItem *items, int n, double fs,
                 double scale, bool upper_left) {
    set_font(cr, 0.95 * fs, false);
    double row = 1.5 * fs, swatch = 2.2 * fs, pad = 0.6 * fs, widest = 0;
    for (int i = 0; i < n; i++) widest = fmax(widest, text_width(cr, items[i].text));
    double w = pad + swatch + pad + widest + pad, h = pad + n * row;
    double x = upper_left ? p->left + pad : p->left + p->width - w - pad;
    double y = p->top + pad, r = 0.3 * fs;
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
        Panel box = {sx, cy - 1, swatch, 2, 0, 1, 0, 1, false, false};
        double xs[2] = {0, 1}, ys[2] = {0.5, 0.5};
        Style line_only = items[i].style;
        line_only.cross = false; // one cross in the middle, below
        draw_series(cr, &box, xs, ys, 2, line_only, scale);
        if (items[i].style.markers) {
            cairo_arc(cr, sx + swatch / 2, cy, 3.5 * scale, 0, 2 * M_PI);
            set_color(cr, items[i].style.color, items[i].style.alpha);
            cairo_fill(cr);
        }
        if (items[i].style.cross)
            draw_cross(cr, sx + swatch / 2, cy, 4 * scale, items[i].style.color, 2 * scale);
        draw_text(cr, items[i].text, sx + swatch + pad, cy, 0, 0.5, false, PLOT_TEXT_COLOR);
    }
}

// Cairo's output callback: append to the atomic file (dies naming it when the disk is full).
static cairo_status_t write_to_file(void *closure, const unsigned char *data, unsigned int n) {
    AtomicFile *af = closure;
    xfwrite(data, n, af->f, af->tmp_path);
    return CAIRO_STATUS_SUCCESS;
}

void figure_write(const char *out_path, int width, int height, DrawFigure draw, const void *ctx) {
    AtomicFile af = atomic_open(out_path);
    bool svg = ends_with(out_path, ".svg");
    cairo_surface_t *surface =
        svg ? cairo_svg_surface_create_for_stream(write_to_file, &af, width, height)
            : cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(surface);
    draw(cr, width, height, ctx);
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

#else // no Cairo

bool plot_available(void) {
    return false;
}

#endif
