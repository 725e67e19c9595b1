// train/plot_draw.h: the drawing helpers bolt's figures share (train/plot.c's training
// curves, train/plot_bench.c's benchmark figure): a panel with linear or log axes (log10
// ticks on y, powers of two on x), matplotlib-style ticks, text, curves and legends, and
// writing a figure as PNG or SVG. Everything but plot_available needs Cairo and is built
// only with it (BOLT_CAIRO).
#pragma once
#include <stdbool.h>

#ifdef BOLT_CAIRO
#include <cairo.h>

enum {
    PLOT_GRID_COLOR = 0xE5E5E5,
    PLOT_SPINE_COLOR = 0x333333,
    PLOT_TEXT_COLOR = 0x222222,
};

// One panel: its plot area in pixels and the data range it shows. logx: a log axis with
// ticks at powers of two (sequence lengths); otherwise x is linear with whole-number ticks
// (steps). logy: a log axis with ticks at 1, 2, 5 times powers of ten.
typedef struct Panel {
    double left, top, width, height;
    double x0, x1, y0, y1;
    bool logy, logx;
} Panel;

// Pixel column and row of a data point.
double panel_x(const Panel *p, double x);
double panel_y(const Panel *p, double y);

// Pad the y range by 5% each side (in log space on a log axis) as matplotlib does; a
// flat curve gets a range around its value; from_zero: the axis starts at 0.
void pad_y_range(Panel *p, bool from_zero);

void set_color(cairo_t *cr, unsigned rgb, double alpha); // 0xRRGGBB
void set_font(cairo_t *cr, double size, bool bold);      // DejaVu Sans, in pixels
double text_width(cairo_t *cr, const char *s);           // in the current font
// Draw s (in the current font) anchored at (x, y): ax, ay in [0, 1] pick the anchor's
// place in the text's box (0, 0 top left; 0.5, 0.5 centre) measured with the height of
// a digit, so labels of one row share a baseline. vertical: rotated to read upwards.
void draw_text(cairo_t *cr, const char *s, double x, double y, double ax, double ay, bool vertical,
               unsigned color);
void draw_line(cairo_t *cr, double x0, double y0, double x1, double y1, double width,
               unsigned color);

// How a curve is drawn: a line of `width` (0: none), dashed or not, with dot markers,
// or with x-shaped markers (cross).
typedef struct Style {
    unsigned color;
    double alpha, width;
    bool dashed, markers, cross;
} Style;

// A series as a polyline in the panel (clipped to it), thinned to a few points per pixel
// column. Non-positive values break the line on a log axis.
void draw_series(cairo_t *cr, const Panel *p, const double *x, const double *y, int n, Style st,
                 double scale);
// One x-shaped marker of radius r centred at (x, y).
void draw_cross(cairo_t *cr, double x, double y, double r, unsigned color, double width);

// What a panel shows besides its curves.
typedef struct PanelText {
    const char *title;   // above the plot area, or NULL
    const char *ylabel;  // left, rotated, or NULL
    const char *y2label; // right axis (bits/byte = nats / ln 2), or NULL
    const char *xlabel;  // below the x tick labels, or NULL
} PanelText;

// Fit the plot area into the box (x, y, w, h) beside its tick labels and axis labels
// (the data range must be set: the y tick labels' width depends on it).
void place_panel(cairo_t *cr, Panel *p, const PanelText *t, double x, double y, double w, double h,
                 double fs);
// Grid, spines, ticks and labels of a placed panel.
void draw_axes(cairo_t *cr, const Panel *p, const PanelText *t, double fs, double scale);

// One legend entry: its text and how its swatch is drawn.
typedef struct LegendItem {
    char text[320];
    Style style;
} LegendItem;

// A matplotlib-style legend box in the panel's upper right corner, or its upper left.
void draw_legend(cairo_t *cr, const Panel *p, const LegendItem *items, int n, double fs,
                 double scale, bool upper_left);

// Draws a whole figure of width x height pixels on cr.
typedef void (*DrawFigure)(cairo_t *cr, int width, int height, const void *ctx);
// Draw into out_path, written atomically: SVG when the name ends in .svg, else PNG. Dies
// naming the file when drawing or writing fails.
void figure_write(const char *out_path, int width, int height, DrawFigure draw, const void *ctx);

#endif
