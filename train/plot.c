// train/plot.c: `bolt plot`: the loss curve of a run as a PNG. Reads metrics.jsonl
// ({"step": N, "loss": X, ...} and {"step": N, "val_loss": X} lines), draws a line chart
// into an RGB canvas (grid at "nice" ticks, a 5x7 bitmap font for labels) and writes it
// as a PNG with stored (uncompressed) deflate blocks, so bolt needs no image library.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/util.h"
#include "plot.h"

#define PLOT_MAX_SIDE 8192
#define GRID_COLOR 0xE4E4E4
#define AXIS_COLOR 0x404040
#define TEXT_COLOR 0x202020

// One curve: steps and values, in step order.
typedef struct Series {
    double *x, *y;
    int n, cap;
} Series;

typedef struct Canvas {
    uint8_t *rgb; // h rows of w pixels, 3 bytes each
    int w, h;
} Canvas;

// Add a point. A resumed run appends steps the file already holds: the newer lines win,
// so earlier points at or after this step are dropped. Non-finite values only truncate.
static void series_add(Series *s, double x, double y) {
    while (s->n > 0 && s->x[s->n - 1] >= x) s->n--;
    if (!isfinite(y)) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->x = xrealloc(s->x, (size_t)s->cap * sizeof(double));
        s->y = xrealloc(s->y, (size_t)s->cap * sizeof(double));
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

// A line's "loss"/"val_loss" value: a number (1e999 parses as inf and is dropped later),
// null (dropped), or absent. Returns false for any other type.
static bool json_value(const cJSON *obj, const char *key, bool *present, double *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *present = it != NULL;
    *v = NAN;
    if (!it || cJSON_IsNull(it)) return true;
    if (!cJSON_IsNumber(it)) return false;
    *v = it->valuedouble;
    return true;
}

// Parse one metrics line into the series. Returns NULL, or what is wrong with it.
static const char *parse_line(const char *line, Series *train, Series *val) {
    cJSON *obj = cJSON_Parse(line);
    if (!obj) return "not valid JSON";
    const char *err = NULL;
    bool has_loss, has_val;
    double loss, val_loss;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(obj, "step");
    if (!cJSON_IsObject(obj))
        err = "not a JSON object";
    else if (!json_value(obj, "loss", &has_loss, &loss))
        err = "\"loss\" is not a number";
    else if (!json_value(obj, "val_loss", &has_val, &val_loss))
        err = "\"val_loss\" is not a number";
    else if ((has_loss || has_val) && !cJSON_IsNumber(step))
        err = "no numeric \"step\"";
    if (!err && has_loss) series_add(train, step->valuedouble, loss);
    if (!err && has_val) series_add(val, step->valuedouble, val_loss);
    cJSON_Delete(obj);
    return err;
}

// Read the metrics file. strict: die on a missing/empty file or a malformed line (naming
// file:line); otherwise a missing file reads as empty and bad lines are skipped.
static void load_metrics(const char *path, bool strict, Series *train, Series *val) {
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    int64_t size = file_size(path);
    if (!strict && size <= 0) return;
    check(size >= 0, "%s: no such metrics file", path);
    check(size > 0, "%s: metrics file is empty", path);
    char *text = read_file(path, NULL);
    int lineno = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        char *next = end ? end + 1 : line + strlen(line);
        if (end) *end = '\0';
        lineno++;
        if (strspn(line, " \t\r") != strlen(line)) {
            const char *err = parse_line(line, train, val);
            if (err && strict) die("%s:%d: %s", path, lineno, err);
        }
        line = next;
    }
    free(text);
}

// ---- Canvas drawing -------------------------------------------------------------------

static void set_pixel(Canvas *c, int x, int y, uint32_t color) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->rgb + 3 * ((size_t)y * c->w + x);
    p[0] = (uint8_t)(color >> 16);
    p[1] = (uint8_t)(color >> 8);
    p[2] = (uint8_t)color;
}

static void fill_rect(Canvas *c, int x0, int y0, int w, int h, uint32_t color) {
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++) set_pixel(c, x, y, color);
}

// Bresenham's line, each point stamped as a thick x thick square.
static void draw_line(Canvas *c, int x0, int y0, int x1, int y1, int thick, uint32_t color) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    int half = (thick - 1) / 2;
    for (;;) {
        fill_rect(c, x0 - half, y0 - half, thick, thick, color);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

static void fill_circle(Canvas *c, int cx, int cy, int r, uint32_t color) {
    for (int y = -r; y <= r; y++)
        for (int x = -r; x <= r; x++)
            if (x * x + y * y <= r * r + r) set_pixel(c, cx + x, cy + y, color);
}

// ---- Text: a 5x7 bitmap font with just the characters the chart uses -------------------

typedef struct Glyph {
    char ch;
    uint8_t rows[7]; // top to bottom; bit 4 is the leftmost column
} Glyph;

static const Glyph FONT[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'-', {0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
    {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}},
    {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E}},
    {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
};

// Width in pixels of s drawn at `scale` (6 columns a character, no trailing gap).
static int text_width(const char *s, int scale) {
    int n = (int)strlen(s);
    return n ? (6 * n - 1) * scale : 0;
}

// Draw s with its top-left corner at (x, y); characters not in the font are blanks.
static void draw_text(Canvas *c, int x, int y, const char *s, int scale, uint32_t color) {
    for (; *s; s++, x += 6 * scale) {
        const Glyph *g = NULL;
        for (size_t i = 0; i < sizeof FONT / sizeof FONT[0]; i++)
            if (FONT[i].ch == *s) g = &FONT[i];
        if (!g) continue;
        for (int row = 0; row < 7; row++)
            for (int col = 0; col < 5; col++)
                if (g->rows[row] & (0x10 >> col))
                    fill_rect(c, x + col * scale, y + row * scale, scale, scale, color);
    }
}

// ---- Axes ---------------------------------------------------------------------------

// A 1, 2 or 5 times a power of ten near range/target: about `target` ticks over range.
static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

// A step tick label: "500", "2.5k", "1.2M".
static void format_step(double v, double hi, char *buf, size_t cap) {
    if (v == 0)
        snprintf(buf, cap, "0");
    else if (hi >= 1e7)
        snprintf(buf, cap, "%gM", v / 1e6);
    else if (hi >= 1e4)
        snprintf(buf, cap, "%gk", v / 1e3);
    else
        snprintf(buf, cap, "%.0f", v);
}

// A loss tick label with as many decimals as the tick spacing needs.
static void format_loss(double v, double tick, char *buf, size_t cap) {
    int decimals = (int)fmax(0, -floor(log10(tick) + 1e-9));
    if (fabs(v) < tick * 1e-6) v = 0; // no "-0.0"
    if (decimals > 6 || fabs(v) >= 1e6)
        snprintf(buf, cap, "%.3g", v);
    else
        snprintf(buf, cap, "%.*f", decimals, v);
}

// The plot area and the data range it shows.
typedef struct Frame {
    int left, top, width, height; // plot area in pixels
    double x0, x1, y0, y1;        // data range
} Frame;

static int frame_px(const Frame *f, double x) {
    return f->left + (int)lround((x - f->x0) / (f->x1 - f->x0) * (f->width - 1));
}
static int frame_py(const Frame *f, double y) {
    return f->top + (int)lround((f->y1 - y) / (f->y1 - f->y0) * (f->height - 1));
}

// Data range over both series, padded; a flat curve gets a range around its value.
static void frame_range(Frame *f, const Series *train, const Series *val) {
    f->x0 = f->y0 = INFINITY;
    f->x1 = f->y1 = -INFINITY;
    const Series *all[2] = {train, val};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < all[k]->n; i++) {
            f->x0 = fmin(f->x0, all[k]->x[i]), f->x1 = fmax(f->x1, all[k]->x[i]);
            f->y0 = fmin(f->y0, all[k]->y[i]), f->y1 = fmax(f->y1, all[k]->y[i]);
        }
    if (f->x0 > 0 && f->x0 <= 0.2 * f->x1) f->x0 = 0; // a run from its start: axis from 0
    if (f->x1 - f->x0 < 1) f->x0 -= 1, f->x1 += 1;
    double span = f->y1 - f->y0;
    if (span <= 1e-9 * fmax(1, fabs(f->y1))) span = fmax(1e-3, 0.2 * fabs(f->y1));
    double mid = 0.5 * (f->y0 + f->y1);
    f->y0 = fmin(f->y0, mid - 0.5 * span) - 0.05 * span;
    f->y1 = fmax(f->y1, mid + 0.5 * span) + 0.05 * span;
}

// Grid lines and labels at nice ticks, the axes box, the axis titles.
static void draw_axes(Canvas *c, const Frame *f, int scale) {
    char label[32];
    int right = f->left + f->width - 1, bottom = f->top + f->height - 1;
    double ty = nice_step(f->y1 - f->y0, 6);
    for (double k = ceil(f->y0 / ty); k * ty <= f->y1; k++) {
        double v = k * ty;
        int y = frame_py(f, v);
        draw_line(c, f->left, y, right, y, 1, GRID_COLOR);
        format_loss(v, ty, label, sizeof label);
        draw_text(c, f->left - 6 * scale - text_width(label, scale), y - 3 * scale, label, scale,
                  TEXT_COLOR);
    }
    double tx = fmax(1, nice_step(f->x1 - f->x0, 8)); // steps are whole numbers
    for (double k = ceil(f->x0 / tx); k * tx <= f->x1; k++) {
        double v = k * tx;
        int x = frame_px(f, v);
        draw_line(c, x, f->top, x, bottom, 1, GRID_COLOR);
        draw_line(c, x, bottom, x, bottom + 3 * scale, 1, AXIS_COLOR);
        format_step(v, f->x1, label, sizeof label);
        draw_text(c, x - text_width(label, scale) / 2, bottom + 6 * scale, label, scale,
                  TEXT_COLOR);
    }
    draw_line(c, f->left, f->top, right, f->top, 1, AXIS_COLOR);
    draw_line(c, f->left, bottom, right, bottom, 1, AXIS_COLOR);
    draw_line(c, f->left, f->top, f->left, bottom, 1, AXIS_COLOR);
    draw_line(c, right, f->top, right, bottom, 1, AXIS_COLOR);
    draw_text(c, f->left + f->width / 2 - text_width("step", scale) / 2, bottom + 18 * scale,
              "step", scale, TEXT_COLOR);
    draw_text(c, 6 * scale, f->top - 14 * scale, "loss", scale, TEXT_COLOR);
}

// A series as a polyline (when thick > 0) and dots at each point (when dot_radius > 0).
static void draw_series(Canvas *c, const Frame *f, const double *x, const double *y, int n,
                        int thick, int dot_radius, uint32_t color) {
    for (int i = 0; i < n; i++) {
        int px = frame_px(f, x[i]), py = frame_py(f, y[i]);
        if (i > 0 && thick > 0)
            draw_line(c, frame_px(f, x[i - 1]), frame_py(f, y[i - 1]), px, py, thick, color);
        if (dot_radius > 0) fill_circle(c, px, py, dot_radius, color);
    }
}

// Exponential moving average with bias correction (no pull toward 0 at the start), over
// a window of n/200 points (at least 2): smooths noise with a lag of a few pixels.
static double *ema(const Series *s) {
    double window = fmax(2.0, s->n / 200.0), beta = 1.0 - 1.0 / window, m = 0, weight = 0;
    double *out = xmalloc((size_t)s->n * sizeof(double));
    for (int i = 0; i < s->n; i++) {
        m = beta * m + (1 - beta) * s->y[i];
        weight = beta * weight + (1 - beta);
        out[i] = m / weight;
    }
    return out;
}

// One legend entry, right to left from *x: a swatch and the text; *x moves left past it.
static void draw_legend_item(Canvas *c, int *x, int y, const char *text, int scale, uint32_t color,
                             bool dot) {
    *x -= text_width(text, scale);
    draw_text(c, *x, y, text, scale, TEXT_COLOR);
    *x -= 24 * scale;
    if (dot)
        fill_circle(c, *x + 8 * scale, y + 3 * scale, 3 * scale, color);
    else
        draw_line(c, *x, y + 3 * scale, *x + 16 * scale, y + 3 * scale, 2 * scale, color);
    *x -= 16 * scale;
}

// The whole chart.
static void draw_chart(Canvas *c, const Series *train, const Series *val) {
    memset(c->rgb, 0xFF, (size_t)c->w * c->h * 3); // PLOT_BACKGROUND
    int scale = c->w >= 1400 && c->h >= 900 ? 2 : 1;
    Frame f;
    frame_range(&f, train, val);
    int label_w = 0; // widest y tick label sets the left margin
    char label[32];
    double ty = nice_step(f.y1 - f.y0, 6);
    for (double k = ceil(f.y0 / ty); k * ty <= f.y1; k++) {
        format_loss(k * ty, ty, label, sizeof label);
        label_w = label_w > text_width(label, scale) ? label_w : text_width(label, scale);
    }
    f.left = label_w + 12 * scale;
    f.top = 24 * scale;
    f.width = c->w - f.left - 16 * scale;
    f.height = c->h - f.top - 32 * scale;
    draw_axes(c, &f, scale);

    bool smooth = train->n >= 100;
    double *line = smooth ? ema(train) : train->y;
    if (smooth) draw_series(c, &f, train->x, train->y, train->n, 1, 0, PLOT_TRAIN_RAW_COLOR);
    draw_series(c, &f, val->x, val->y, val->n, 2 * scale, 0, PLOT_VAL_COLOR);
    draw_series(c, &f, train->x, line, train->n, 2 * scale, 0, PLOT_TRAIN_COLOR);
    if (val->n <= 200) draw_series(c, &f, val->x, val->y, val->n, 0, 3 * scale, PLOT_VAL_COLOR);

    int x = f.left + f.width - 4 * scale, y = f.top - 14 * scale;
    char text[64];
    if (val->n > 0) {
        snprintf(text, sizeof text, "val %.4f", val->y[val->n - 1]);
        draw_legend_item(c, &x, y, text, scale, PLOT_VAL_COLOR, true);
    }
    snprintf(text, sizeof text, "%s %.4f", smooth ? "train (EMA)" : "train", line[train->n - 1]);
    draw_legend_item(c, &x, y, text, scale, PLOT_TRAIN_COLOR, false);
    if (smooth) free(line);
}

// ---- PNG ------------------------------------------------------------------------------

// CRC-32 (polynomial 0xEDB88320) continued from crc over n more bytes; start from 0.
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t adler32(const uint8_t *p, size_t n) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return (b << 16) | a;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// One chunk: length, type, data, CRC of type and data.
static void write_chunk(AtomicFile *af, const char *type, const uint8_t *data, size_t n) {
    uint8_t head[8], tail[4];
    put_be32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    put_be32(tail, crc32_update(crc32_update(0, head + 4, 4), data, n));
    xfwrite(head, 8, af->f, af->tmp_path);
    if (n) xfwrite(data, n, af->f, af->tmp_path);
    xfwrite(tail, 4, af->f, af->tmp_path);
}

// The canvas as an 8-bit RGB PNG: every row filter 0, one zlib stream of stored blocks.
static void write_png(const Canvas *c, const char *path) {
    size_t row = 1 + 3 * (size_t)c->w, raw_n = row * c->h;
    uint8_t *raw = xmalloc(raw_n);
    for (int y = 0; y < c->h; y++) {
        raw[y * row] = 0;
        memcpy(raw + y * row + 1, c->rgb + (size_t)y * c->w * 3, row - 1);
    }
    size_t blocks = (raw_n + 65534) / 65535;
    uint8_t *z = xmalloc(2 + raw_n + 5 * blocks + 4), *p = z;
    *p++ = 0x78, *p++ = 0x01; // deflate, 32K window, no dictionary; (0x7801 % 31 == 0)
    for (size_t off = 0; off < raw_n; off += 65535) {
        size_t len = raw_n - off < 65535 ? raw_n - off : 65535;
        *p++ = off + len == raw_n; // BFINAL on the last, BTYPE 00 (stored)
        *p++ = (uint8_t)len, *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)~len, *p++ = (uint8_t)(~len >> 8);
        memcpy(p, raw + off, len);
        p += len;
    }
    put_be32(p, adler32(raw, raw_n));
    p += 4;

    uint8_t ihdr[13] = {0};
    put_be32(ihdr, (uint32_t)c->w);
    put_be32(ihdr + 4, (uint32_t)c->h);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type RGB; compression, filter, interlace all 0
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    AtomicFile af = atomic_open(path);
    xfwrite(signature, 8, af.f, af.tmp_path);
    write_chunk(&af, "IHDR", ihdr, sizeof ihdr);
    write_chunk(&af, "IDAT", z, (size_t)(p - z));
    write_chunk(&af, "IEND", NULL, 0);
    atomic_commit(&af);
    free(raw);
    free(z);
}

// Load, draw, write. Returns false (writing nothing) when there is no loss value and
// strict is off; strict dies instead.
static bool render(const char *metrics_path, const char *png_path, int width, int height,
                   bool strict) {
    check(width >= 200 && width <= PLOT_MAX_SIDE && height >= 150 && height <= PLOT_MAX_SIDE,
          "plot: size %dx%d out of range (200..%d x 150..%d)", width, height, PLOT_MAX_SIDE,
          PLOT_MAX_SIDE);
    Series train, val;
    load_metrics(metrics_path, strict, &train, &val);
    bool ok = train.n > 0;
    if (strict) check(ok, "%s: no finite \"loss\" values to plot", metrics_path);
    if (ok) {
        Canvas c = {xmalloc((size_t)width * height * 3), width, height};
        draw_chart(&c, &train, &val);
        write_png(&c, png_path);
        free(c.rgb);
    }
    free(train.x), free(train.y), free(val.x), free(val.y);
    return ok;
}

void plot_metrics(const char *metrics_path, const char *png_path, int width, int height) {
    render(metrics_path, png_path, width, height, true);
}

void plot_run_dir(const char *out_dir) {
    char metrics[4096], png[4096];
    path_join(metrics, sizeof metrics, out_dir, "metrics.jsonl");
    path_join(png, sizeof png, out_dir, "loss.png");
    render(metrics, png, 800, 500, false);
}

static void plot_usage(void) {
    printf("usage: bolt plot RUN_DIR|METRICS.jsonl [--out=FILE.png] [--width=800] "
           "[--height=500]\n"
           "  Draws the train loss (an EMA over the faint raw curve when there are 100+\n"
           "  points) and the validation loss (orange) against step. Default output:\n"
           "  loss.png next to metrics.jsonl.\n");
}

int plot_main(int argc, char **argv) {
    const char *input = NULL, *out = NULL;
    int width = 800, height = 500;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            plot_usage();
            return 0;
        } else if (strncmp(s, "--out=", 6) == 0)
            out = s + 6;
        else if (strncmp(s, "--width=", 8) == 0)
            width = (int)parse_int_arg("plot: --width", s + 8, 1, PLOT_MAX_SIDE);
        else if (strncmp(s, "--height=", 9) == 0)
            height = (int)parse_int_arg("plot: --height", s + 9, 1, PLOT_MAX_SIDE);
        else if (strncmp(s, "--", 2) == 0)
            die("plot: unknown option '%s' (see --help)", s);
        else if (!input)
            input = s;
        else
            die("plot: unexpected argument '%s' (see --help)", s);
    }
    if (!input) {
        plot_usage();
        return 2;
    }
    check(!out || out[0], "plot: --out is empty");
    char metrics[4096], png[4096];
    struct stat sb;
    bool is_dir = stat(input, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (is_dir) {
        path_join(metrics, sizeof metrics, input, "metrics.jsonl");
    } else {
        check(strlen(input) < sizeof metrics, "%s: path too long", input);
        snprintf(metrics, sizeof metrics, "%s", input);
    }
    if (out) {
        check(strlen(out) < sizeof png, "%s: path too long", out);
        snprintf(png, sizeof png, "%s", out);
    } else {
        char *slash = strrchr(metrics, '/');
        if (slash) {
            *slash = '\0'; // metrics' directory, for a moment
            path_join(png, sizeof png, metrics, "loss.png");
            *slash = '/';
        } else {
            snprintf(png, sizeof png, "loss.png");
        }
    }
    plot_metrics(metrics, png, width, height);
    printf("wrote %s (%dx%d)\n", png, width, height);
    return 0;
}
