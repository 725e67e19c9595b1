// tests/test_plot.c: `bolt plot`: render random loss curves, decode the PNG with libpng
// and check the picture (size, compressed, white background, the train and val colours
// present, a falling curve drawn falling and a rising one rising); several runs in one
// figure; the SVG's structure and its number of curves per colour; the metrics reader
// (header lines skipped, bits/byte runs recognised). Bad inputs (missing, empty, no loss,
// malformed lines) die naming the file (and line). `bolt plot --bench`: bench records
// read back (duplicates replaced, hand-written failures), the markdown table, the figure
// (two panels, one colour per setting, memory rising) and a malformed line named by
// file:line. In a bolt built without Cairo only the "built without Cairo" behaviour (and
// the readers and the table) are checked.
#include <check.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/util.h"
#include "../train/bench_file.h"
#include "../train/metrics_file.h"
#include "../train/plot.h"
#include "testing.h"

// A decoded 8-bit RGB image.
typedef struct Image {
    int w, h;
    uint8_t *rgb;
} Image;

// Decode a PNG with libpng into 8-bit RGB.
static Image read_png(const char *path) {
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    ck_assert_msg(png_image_begin_read_from_file(&png, path), "%s: %s", path, png.message);
    png.format = PNG_FORMAT_RGB;
    Image im = {(int)png.width, (int)png.height, malloc(PNG_IMAGE_SIZE(png))};
    ck_assert_msg(png_image_finish_read(&png, NULL, im.rgb, 0, NULL), "%s: %s", path, png.message);
    return im;
}

// Decode path and check its size, and that it is compressed (a figure is mostly flat
// colour: well under a byte per pixel, where raw RGB takes three).
static Image read_figure(const char *path, int w, int h) {
    Image im = read_png(path);
    ck_assert_int_eq(im.w, w);
    ck_assert_int_eq(im.h, h);
    int64_t bytes = file_size(path);
    ck_assert_msg(bytes > 1000 && bytes < (int64_t)w * h / 2, "%s: %lld bytes for %dx%d", path,
                  (long long)bytes, w, h);
    return im;
}

static uint32_t pixel(const Image *im, int x, int y) {
    const uint8_t *p = im->rgb + 3 * ((size_t)y * im->w + x);
    return (uint32_t)p[0] << 16 | p[1] << 8 | p[2];
}

// Whether a pixel is within `tol` of a colour in every channel (lines are antialiased:
// their centre pixels carry the colour, their edges a blend with the background).
static bool near(uint32_t got, uint32_t want, int tol) {
    for (int shift = 0; shift <= 16; shift += 8)
        if (abs((int)(got >> shift & 255) - (int)(want >> shift & 255)) > tol) return false;
    return true;
}

// Pixels near `color` in rows [y0, y1).
static int count_color(const Image *im, uint32_t color, int y0, int y1) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = 0; x < im->w; x++) n += near(pixel(im, x, y), color, 24);
    return n;
}

static int cmp_int(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

// Median row of pixels near `color` in columns [x0, x1) and rows [0, y1).
static double median_row(const Image *im, uint32_t color, int x0, int x1, int y1) {
    int *rows = malloc(sizeof(int) * (size_t)im->w * im->h), n = 0;
    for (int y = 0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (near(pixel(im, x, y), color, 24)) rows[n++] = y;
    ck_assert_msg(n > 0, "no pixels of colour %06x in columns [%d, %d)", color, x0, x1);
    qsort(rows, n, sizeof(int), cmp_int);
    double m = rows[n / 2];
    free(rows);
    return m;
}

// Columns and rows spanned by pixels near `color` in rows [0, y1).
static void color_box(const Image *im, uint32_t color, int y1, int *x0, int *x1, int *top,
                      int *bottom) {
    *x0 = im->w, *x1 = -1, *top = im->h, *bottom = -1;
    for (int y = 0; y < y1; y++)
        for (int x = 0; x < im->w; x++)
            if (near(pixel(im, x, y), color, 24)) {
                *x0 = x < *x0 ? x : *x0, *x1 = x > *x1 ? x : *x1;
                *top = y < *top ? y : *top, *bottom = y > *bottom ? y : *bottom;
            }
}

// A random run's metrics, in train.c's format: steps 1..steps of a*exp-shaped loss
// (falling, or rising when `rising`) with noise, val every steps/10 and at the end.
// extra: also write a non-finite and a null loss mid-run and a header line first.
static int write_curve(const char *path, uint64_t seed, bool rising, bool extra) {
    Rng r = rng_seeded(seed);
    int steps = 300 + (int)(rng_next(&r) % 1200);
    double a = 1 + 2 * rng_uniform(&r), b = 2 + 4 * rng_uniform(&r);
    double tau = steps * (0.1 + 0.15 * rng_uniform(&r));
    // Each run its own lr peak, norm and throughput level, so several runs' curves differ.
    double peak_lr = 1e-4 * (1 + 9 * rng_uniform(&r)), norm = 0.5 + 2 * rng_uniform(&r);
    double rate = 1000 * (1 + 9 * rng_uniform(&r));
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    if (extra) fprintf(f, "{\"run\": {\"version\": \"x\", \"tokenizer\": \"byte\"}}\n");
    for (int s = 1; s <= steps; s++) {
        double shape = exp(-s / tau), clean = a + b * (rising ? 1 - shape : shape);
        double loss = clean + 0.1 * rng_normal(&r);
        double lr = peak_lr * (s < 50 ? s / 50.0 : 0.5 + 0.5 * cos(M_PI * (s - 50) / steps));
        fprintf(f,
                "{\"step\": %d, \"loss\": %.6f, \"lr\": %.6e, \"norm\": %.4f, \"tok_per_s\": "
                "%.1f, \"mfu\": 0.0, \"tokens\": %d, \"elapsed_s\": %.3f}\n",
                s, loss, lr, norm * (0.5 + fabs(rng_normal(&r))), rate * (1 + 0.1 * rng_normal(&r)),
                s * 512, s * 0.01);
        if (extra && s == steps / 2) fprintf(f, "{\"step\": %d, \"loss\": 1e999}\n\n", s + 1);
        if (extra && s == steps / 3) fprintf(f, "{\"step\": %d, \"loss\": null}\n", s + 1);
        if (s % (steps / 10) == 0 || s == steps)
            fprintf(f, "{\"step\": %d, \"val_loss\": %.6f}\n", s, clean + 0.05);
    }
    fclose(f);
    return steps;
}

// Plot one metrics file with the default options.
static void plot_one(const char *metrics, const char *out, int w, int h, bool logy) {
    const char *paths[1] = {metrics};
    PlotOptions opt = {w, h, logy};
    plot_metrics(paths, 1, out, &opt);
}

// Render a random curve and check the picture: returns the image for more checks. The
// loss panel is the figure's upper half.
static Image render_and_check(const char *dir, uint64_t seed, bool rising, bool extra) {
    char *metrics = path_in(dir, "metrics.jsonl"), *png = path_in(dir, "out.png");
    write_curve(metrics, seed, rising, extra);
    plot_one(metrics, png, 1200, 860, seed % 2 == 1);
    Image im = read_figure(png, 1200, 860);
    ck_assert_uint_eq(pixel(&im, 0, 0), PLOT_BACKGROUND);
    ck_assert_uint_eq(pixel(&im, im.w - 1, im.h - 1), PLOT_BACKGROUND);
    int white = 0, half = im.h / 2;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) white += pixel(&im, x, y) == PLOT_BACKGROUND;
    ck_assert_msg(white > im.w * im.h / 2, "only %d white pixels", white);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_COLOR, 0, half), 1000);
    ck_assert_int_gt(count_color(&im, PLOT_VAL_COLOR, 0, half), 100);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_COLOR, half, im.h), 1000); // small panels
    int x0, x1, top, bottom;
    color_box(&im, PLOT_TRAIN_COLOR, half, &x0, &x1, &top, &bottom);
    ck_assert_int_gt(x1 - x0, im.w * 3 / 4); // the curve spans the panel
    int quarter = (x1 - x0) / 4;
    double left = median_row(&im, PLOT_TRAIN_COLOR, x0, x0 + quarter, half);
    double right = median_row(&im, PLOT_TRAIN_COLOR, x1 - quarter, x1 + 1, half);
    if (rising)
        ck_assert_msg(left > right + 50, "rising: left row %g, right row %g", left, right);
    else
        ck_assert_msg(left + 50 < right, "falling: left row %g, right row %g", left, right);
    free(metrics);
    free(png);
    return im;
}

START_TEST(test_falling_curve) {
    Image im = render_and_check(new_dir(), 1000 + (uint64_t)_i, false, false);
    free(im.rgb);
}
END_TEST

START_TEST(test_rising_curve) {
    Image im = render_and_check(new_dir(), 2000 + (uint64_t)_i, true, false);
    free(im.rgb);
}
END_TEST

// An inf and a null loss are skipped and the header line is read, not plotted: the y
// range still comes from the finite values, so the curve fills most of the panel.
START_TEST(test_nonfinite_ignored) {
    Image im = render_and_check(new_dir(), 3000, false, true);
    int x0, x1, top, bottom;
    color_box(&im, PLOT_TRAIN_COLOR, im.h / 2, &x0, &x1, &top, &bottom);
    ck_assert_msg(bottom - top > im.h / 3, "train curve spans rows %d..%d", top, bottom);
    free(im.rgb);
}
END_TEST

// The reader: header lines are skipped (their tokenizer says whether tokens are bytes),
// a resumed run's repeated steps replace the earlier ones.
START_TEST(test_metrics_reader) {
    char *dir = new_dir(), *metrics = path_in(dir, "metrics.jsonl");
    write_text(metrics, "{\"run\": {\"config\": {\"tokenizer\": \"byte\"}}}\n"
                        "{\"step\": 1, \"loss\": 4.0, \"lr\": 1e-3, \"norm\": 2.0}\n"
                        "{\"step\": 2, \"loss\": 3.0, \"tok_per_s\": 100.0}\n"
                        "{\"step\": 2, \"val_loss\": 3.5}\n"
                        "{\"step\": 2, \"loss\": 2.5}\n"
                        "{\"step\": 3, \"skipped\": \"non-finite loss\", \"bad_steps\": 1}\n");
    RunMetrics m;
    metrics_load(&m, metrics, true);
    ck_assert(m.bytes);
    ck_assert_str_eq(m.name, strrchr(dir, '/') + 1);
    ck_assert_int_eq(m.loss.n, 2);
    ck_assert(m.loss.y[1] == 2.5);
    ck_assert_int_eq(m.val_loss.n, 1);
    ck_assert_int_eq(m.lr.n, 1);
    ck_assert_int_eq(m.norm.n, 1);
    ck_assert_int_eq(m.tok_per_s.n, 1);
    metrics_free(&m);
    write_text(metrics,
               "{\"run\": {\"tokenizer\": \"gpt2.tiktoken\"}}\n{\"step\": 1, \"loss\": 4}\n");
    metrics_load(&m, metrics, true);
    ck_assert(!m.bytes);
    metrics_free(&m);
    char *named = path_in(dir, "baseline.jsonl");
    write_text(named, "{\"step\": 1, \"loss\": 4}\n");
    metrics_load(&m, named, true);
    ck_assert_str_eq(m.name, "baseline");
    metrics_free(&m);
}
END_TEST

// `bolt plot RUN_DIR --width --height` writes RUN_DIR/loss.png at that size; --out too.
START_TEST(test_plot_main_sizes) {
    char *dir = new_dir(), *metrics = path_in(dir, "metrics.jsonl");
    char *png = path_in(dir, "loss.png"), *other = path_in(dir, "other.png");
    write_curve(metrics, 4000, false, false);
    char *argv1[] = {dir, "--width=640", "--height=400"};
    ck_assert_int_eq(plot_main(3, argv1), 0);
    Image im = read_figure(png, 640, 400);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_COLOR, 0, 200), 150);
    free(im.rgb);
    char out_arg[600];
    snprintf(out_arg, sizeof out_arg, "--out=%s", other);
    char *argv2[] = {metrics, out_arg, "--width=1500", "--height=950", "--logy=1"};
    ck_assert_int_eq(plot_main(5, argv2), 0);
    im = read_figure(other, 1500, 950);
    ck_assert_int_gt(count_color(&im, PLOT_VAL_COLOR, 0, 475), 100);
    free(im.rgb);
}
END_TEST

// Three runs in one figure: each run's colour is in the loss panel and in the small ones.
START_TEST(test_several_runs) {
    char *dirs[3], *paths[3];
    for (int i = 0; i < 3; i++) {
        dirs[i] = new_dir();
        paths[i] = path_in(dirs[i], "metrics.jsonl");
        write_curve(paths[i], 5000 + (uint64_t)i, i == 2, false);
    }
    char *png = path_in(dirs[0], "compare.png"), out_arg[600];
    snprintf(out_arg, sizeof out_arg, "--out=%s", png);
    char *argv[] = {dirs[0], dirs[1], paths[2], out_arg};
    ck_assert_int_eq(plot_main(4, argv), 0);
    Image im = read_figure(png, 1200, 860);
    for (int i = 0; i < 3; i++) {
        int top = count_color(&im, plot_run_color(i), 0, im.h / 2);
        int bottom = count_color(&im, plot_run_color(i), im.h / 2, im.h);
        ck_assert_msg(top > 500 && bottom > 500, "run %d: %d and %d pixels", i, top, bottom);
    }
    free(im.rgb);
}
END_TEST

// The value of the first `key:...;` in a style attribute that starts at or after s.
static void style_value(const char *s, const char *end, const char *key, char *out, size_t cap) {
    out[0] = '\0';
    const char *k = strstr(s, key);
    if (!k || k > end) return;
    k += strlen(key);
    size_t n = strcspn(k, ";\"");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), k);
}

// The SVG's curves: <path> elements of at least 50 points (grid lines and ticks have 2),
// counted per stroke colour. Returns the number of colours; counts[c], colors[c] each.
static int count_curves(const char *svg, char colors[][64], int *counts, int cap) {
    int n_colors = 0;
    for (const char *p = strstr(svg, "<path"); p; p = strstr(p + 1, "<path")) {
        const char *end = strchr(p, '>');
        ck_assert_ptr_nonnull(end);
        int points = 0;
        for (const char *q = p; q < end; q++) points += *q == 'L';
        if (points < 50) continue;
        char color[64];
        style_value(p, end, "stroke:", color, sizeof color);
        int c = 0;
        while (c < n_colors && strcmp(colors[c], color) != 0) c++;
        if (c == n_colors) {
            ck_assert_int_lt(n_colors, cap);
            snprintf(colors[n_colors], 64, "%s", color);
            counts[n_colors++] = 0;
        }
        counts[c]++;
    }
    return n_colors;
}

// An SVG of one run and of two: XML with an <svg> root of the asked size, and per run
// colour the expected curves: train loss raw and smoothed, lr, norm raw and smoothed,
// tokens/s raw and smoothed (val has 11 points, under the count's threshold).
START_TEST(test_svg) {
    char *a = new_dir(), *b = new_dir();
    char *ma = path_in(a, "metrics.jsonl"), *mb = path_in(b, "metrics.jsonl");
    write_curve(ma, 6000, false, false);
    write_curve(mb, 6001, false, false);
    char *svg_path = path_in(a, "fig.svg");
    for (int runs = 1; runs <= 2; runs++) {
        const char *paths[2] = {ma, mb};
        PlotOptions opt = {1000, 700, false};
        plot_metrics(paths, runs, svg_path, &opt);
        char *svg = test_read_file(svg_path, NULL);
        ck_assert_msg(strncmp(svg, "<?xml", 5) == 0, "no XML declaration");
        ck_assert_ptr_nonnull(strstr(svg, "<svg"));
        ck_assert_ptr_nonnull(strstr(svg, "width=\"1000pt\" height=\"700pt\""));
        const char *close = strstr(svg, "</svg>");
        ck_assert_ptr_nonnull(close);
        ck_assert_int_eq(strspn(close + 6, "\n"), strlen(close + 6));
        char colors[8][64];
        int counts[8];
        int n_colors = count_curves(svg, colors, counts, 8);
        ck_assert_int_eq(n_colors, runs);
        for (int c = 0; c < n_colors; c++)
            ck_assert_msg(counts[c] == 7, "%d runs: colour %s has %d curves", runs, colors[c],
                          counts[c]);
        free(svg);
    }
}
END_TEST

// The training hook never dies: no loss yet -> nothing written; a bad line is skipped.
START_TEST(test_run_dir_hook) {
    char *dir = new_dir(), *metrics = path_in(dir, "metrics.jsonl");
    char *png = path_in(dir, "loss.png");
    plot_run_dir(dir); // no metrics file at all
    ck_assert_int_eq((int)file_size(png), -1);
    write_text(metrics, "{\"step\": 10, \"val_loss\": 3.5}\n");
    plot_run_dir(dir);
    ck_assert_int_eq((int)file_size(png), -1);
    write_text(metrics, "{\"step\": 1, \"loss\": 4.0}\n{\"step\": 2, \"loss\": nan}\n"
                        "{\"step\": 3, \"loss\": 3.0}\n{\"step\": 3, \"val_loss\": 3.2}\n");
    plot_run_dir(dir);
    Image im = read_figure(png, 1200, 860);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_COLOR, 0, im.h / 2), 100);
    ck_assert_int_gt(count_color(&im, PLOT_VAL_COLOR, 0, im.h / 2), 10);
    free(im.rgb);
}
END_TEST

// Write `text` to a fresh metrics file and plot it (the exit tests expect a die). The
// file is registered as a temp file, so the die removes it; NULL: a path that is absent.
static void plot_text(const char *text) {
    char metrics[64] = "/tmp/test_plot_XXXXXX.jsonl", png[80];
    int fd = mkstemps(metrics, 6);
    ck_assert_int_ge(fd, 0);
    close(fd);
    temp_register(metrics);
    if (text)
        write_text(metrics, text);
    else
        unlink(metrics);
    snprintf(png, sizeof png, "%s.png", metrics);
    plot_one(metrics, png, 800, 500, false);
}

START_TEST(test_missing_file_dies) {
    plot_text(NULL);
}
END_TEST

START_TEST(test_empty_file_dies) {
    plot_text("");
}
END_TEST

START_TEST(test_no_loss_dies) {
    plot_text("{\"step\": 1, \"loss\": null}\n{\"step\": 5, \"val_loss\": 3.0}\n\n");
}
END_TEST

START_TEST(test_bad_json_dies) {
    plot_text("{\"step\": 1, \"loss\": 4.0}\n{\"step\": 2, \"loss\": 3.9\n");
}
END_TEST

START_TEST(test_loss_string_dies) {
    plot_text("{\"step\": 1, \"loss\": \"4.0\"}\n");
}
END_TEST

START_TEST(test_bad_size_dies) {
    char *argv[] = {"/tmp", "--width=10"};
    plot_main(2, argv);
}
END_TEST

// Run fn(arg) in a child and return its stdout and stderr; *status gets its exit status.
static char *child_output(void (*fn)(const char *), const char *arg, int *status) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        fn(arg);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    char *msg = calloc(4096, 1);
    size_t got = 0;
    ssize_t k;
    while ((k = read(fds[0], msg + got, 4095 - got)) > 0) got += (size_t)k;
    close(fds[0]);
    waitpid(pid, status, 0);
    return msg;
}

// Plot arg's metrics.jsonl to its loss.png (for child_output).
static void plot_dir(const char *dir) {
    char metrics[512], png[512];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    plot_one(metrics, png, 800, 500, false);
}

// The error names file:line.
START_TEST(test_error_names_line) {
    char *dir = new_dir(), *metrics = path_in(dir, "metrics.jsonl");
    write_text(metrics, "{\"step\": 1, \"loss\": 4.0}\n\n{\"step\": 2 \"loss\": 3.9}\n");
    int status;
    char *msg = child_output(plot_dir, dir, &status);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    char want[600];
    snprintf(want, sizeof want, "%s:3:", metrics);
    ck_assert_msg(strstr(msg, want) != NULL, "message '%s' lacks '%s'", msg, want);
    ck_assert_int_eq((int)file_size(path_in(dir, "loss.png")), -1);
    free(msg);
}
END_TEST

// Built without Cairo: `bolt plot` exits 1 with one line saying so, and the training
// hook prints one line and writes nothing.
START_TEST(test_without_cairo) {
    char *dir = new_dir(), *metrics = path_in(dir, "metrics.jsonl");
    write_curve(metrics, 7000, false, false);
    int status;
    char *msg = child_output(plot_dir, dir, &status);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(msg, "built without Cairo") && strchr(msg, '\n') == msg + strlen(msg) - 1,
                  "message '%s'", msg);
    free(msg);
    msg = child_output(plot_run_dir, dir, &status);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(strstr(msg, "built without Cairo") && strchr(msg, '\n') == msg + strlen(msg) - 1,
                  "message '%s'", msg);
    ck_assert_int_eq((int)file_size(path_in(dir, "loss.png")), -1);
    free(msg);
}
END_TEST

// ---- bolt plot --bench ------------------------------------------------------------------

// Bench records as bench train writes them, for tnl-385m at seq_len 2K..1M without and
// with recompute: memory linear in T (6 GiB of weights and optimizer state plus 0.45 or
// 0.1 MB a token), tokens/s slowly falling; runs over 140 GiB are written as failed,
// as a user would by hand. Returns the number of lines.
static int write_bench(const char *path) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    int n = 0;
    for (int recompute = 0; recompute <= 1; recompute++)
        for (int e = 11; e <= 20; e++, n++) {
            double T = ldexp(1, e), mem = 385e6 * 16 + T * (recompute ? 0.1e6 : 0.45e6);
            double tok = (recompute ? 128000 : 165000) * (1 - 0.1 * (e - 11) / 9);
            if (mem > 140 * 1073741824.0) {
                fprintf(f,
                        "{\"name\": \"tnl-385m\", \"seq_len\": %.0f, \"batch_size\": 1, "
                        "\"recompute\": %s, \"ok\": false, \"error\": \"out of memory\"}\n",
                        T, recompute ? "true" : "false");
                continue;
            }
            fprintf(f,
                    "{\"bench\": \"train\", \"config\": \"configs/tnl-385m.conf\", \"name\": "
                    "\"tnl-385m\", \"family\": \"tnl\", \"params\": 385024000, \"seq_len\": "
                    "%.0f, \"batch_size\": 1, \"grad_accum\": 1, \"recompute\": %s, \"device\": "
                    "\"NVIDIA H200\", \"backend\": \"cuda\", \"bench_steps\": 10, "
                    "\"first_step_s\": 2.1, \"step_s\": %.6f, \"tok_per_s\": %.1f, \"mfu\": %.4f, "
                    "\"peak_mem_bytes\": %.0f, \"commit\": \"0123456789ab\", \"ok\": true}\n",
                    T, recompute ? "true" : "false", T / tok, tok, 0.3 * tok / 165000, mem);
        }
    fclose(f);
    return n;
}

// The reader: every line a record, a repeated run replacing the earlier one, a failed
// run without speed, the name from the config file, MFU null as unknown; the table has
// a row per run in config, seq_len, recompute order. bench_append adds a line break
// when the file lacks one, and its record reads back.
START_TEST(test_bench_reader) {
    char *dir = new_dir(), *path = path_in(dir, "bench.jsonl");
    ck_assert_int_eq(write_bench(path), 20);
    BenchFile b;
    bench_load(&b, path);
    ck_assert_int_eq(b.n, 20);
    ck_assert_str_eq(b.rec[0].name, "tnl-385m");
    ck_assert_int_eq(b.rec[0].seq_len, 2048);
    ck_assert(b.rec[0].ok && !b.rec[0].recompute && b.rec[10].recompute);
    ck_assert(!b.rec[9].ok && isnan(b.rec[9].tok_per_s));
    ck_assert_str_eq(b.rec[9].error, "out of memory");
    ck_assert(fabs(b.rec[0].mfu - 0.3) < 1e-9);
    char *table_path = path_in(dir, "table.md");
    FILE *f = fopen(table_path, "w");
    bench_print_table(&b, f);
    fclose(f);
    char *table = test_read_file(table_path, NULL);
    const char *rows[] = {"| tnl-385m | 2048 | 1 | no | 12.41 | 165,000 | 30.0% | 6.60 |",
                          "| tnl-385m | 2048 | 1 | yes |",
                          "| tnl-385m | 1048576 | 1 | no | failed: out of memory | - | - | - |",
                          "| tnl-385m | 1048576 | 1 | yes |"};
    const char *at = table;
    for (int i = 0; i < 4; i++) { // in this order
        const char *row = strstr(at, rows[i]);
        ck_assert_msg(row, "no row '%s' after:\n%s", rows[i], at);
        at = row + 1;
    }
    ck_assert_ptr_nonnull(strstr(table, "NVIDIA H200, commit 0123456789ab"));
    free(table);
    bench_free(&b);

    write_text(path, "{\"config\": \"x/tiny.conf\", \"seq_len\": 64, \"tok_per_s\": 10, "
                     "\"peak_mem_bytes\": 5, \"mfu\": null}\n\n"
                     "{\"config\": \"x/tiny.conf\", \"seq_len\": 64, \"tok_per_s\": 20, "
                     "\"peak_mem_bytes\": 6}"); // the same run again, no line break
    BenchRecord r = {.seq_len = 128,
                     .batch_size = 2,
                     .grad_accum = 1,
                     .recompute = true,
                     .ok = true,
                     .params = 1e6,
                     .first_step_s = 1,
                     .step_s = 0.5,
                     .tok_per_s = 512,
                     .mfu = NAN,
                     .peak_mem_bytes = 1e6};
    snprintf(r.config, sizeof r.config, "configs/tnl-tiny.conf");
    snprintf(r.family, sizeof r.family, "tnl");
    bench_append(path, &r);
    bench_load(&b, path);
    ck_assert_int_eq(b.n, 2);
    ck_assert_str_eq(b.rec[0].name, "tiny");
    ck_assert(b.rec[0].tok_per_s == 20 && isnan(b.rec[0].mfu) && b.rec[0].batch_size == 1);
    ck_assert_str_eq(b.rec[1].name, "tnl-tiny");
    ck_assert(b.rec[1].recompute && b.rec[1].seq_len == 128 && b.rec[1].tok_per_s == 512);
    ck_assert(isnan(b.rec[1].mfu) && b.rec[1].step_s == 0.5);
    bench_free(&b);
}
END_TEST

// Run `bolt plot --bench=ARG --out=ARG.png` (for child_output).
static void plot_bench_file(const char *path) {
    char bench[600], out[600];
    snprintf(bench, sizeof bench, "--bench=%s", path);
    snprintf(out, sizeof out, "--out=%s.png", path);
    char *argv[] = {bench, out};
    exit(plot_main(2, argv));
}

// The figure: a PNG of 1200x600 by default; both settings' colours in both panels (the
// left and right halves); the memory curve (blue, no recompute) rising left to right;
// the table on stdout. The default output is FILE's name with .png.
START_TEST(test_bench_figure) {
    char *dir = new_dir(), *path = path_in(dir, "bench.jsonl");
    write_bench(path);
    int status;
    char *out = child_output(plot_bench_file, path, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "output: %s", out);
    ck_assert_msg(strstr(out, "| tnl-385m | 4096 | 1 | yes |") && strstr(out, "wrote "),
                  "output: %s", out);
    char png_path[700];
    snprintf(png_path, sizeof png_path, "%s.png", path);
    char *png = test_read_file(png_path, NULL);
    ck_assert_int_eq(memcmp(png, "\x89PNG\r\n\x1a\n", 8), 0);
    Image im = read_figure(png_path, 1200, 600);
    for (int k = 0; k < 2; k++) {
        int left = 0, right = 0;
        for (int y = 0; y < im.h; y++)
            for (int x = 0; x < im.w; x++)
                if (near(pixel(&im, x, y), plot_run_color(k), 24))
                    *(x < im.w / 2 ? &left : &right) += 1;
        ck_assert_msg(left > 500 && right > 500, "setting %d: %d and %d pixels", k, left, right);
    }
    double low_t = median_row(&im, PLOT_TRAIN_COLOR, im.w / 20, im.w / 5, im.h);
    double high_t = median_row(&im, PLOT_TRAIN_COLOR, im.w * 3 / 10, im.w * 9 / 20, im.h);
    ck_assert_msg(low_t > high_t + 100, "memory: row %g at short, %g at long lengths", low_t,
                  high_t);
    free(im.rgb);
    snprintf(png_path, sizeof png_path, "--out=%s", path_in(dir, "small.svg"));
    char bench[700];
    snprintf(bench, sizeof bench, "--bench=%s", path);
    char *argv2[] = {bench, png_path, "--width=800", "--height=500", "--logy"};
    ck_assert_int_eq(plot_main(5, argv2), 0);
    char *svg = test_read_file(path_in(dir, "small.svg"), NULL);
    ck_assert_ptr_nonnull(strstr(svg, "width=\"800pt\" height=\"500pt\""));
    free(svg);
    free(png);
    free(out);
}
END_TEST

// A malformed line: one line naming file:line and what is wrong, exit 1, no figure.
START_TEST(test_bench_bad_line) {
    const char *bad[][2] = {
        {"{\"seq_len\": 2048, \"tok_per_s\": 1, \"peak_mem_bytes\": 1, \"name\": \"a\"",
         "not valid JSON"},
        {"{\"tok_per_s\": 1, \"peak_mem_bytes\": 1, \"name\": \"a\"}", "\"seq_len\" is missing"},
        {"{\"seq_len\": \"2K\", \"tok_per_s\": 1, \"peak_mem_bytes\": 1, \"name\": \"a\"}",
         "\"seq_len\" is not an integer"},
        {"{\"seq_len\": 2048, \"peak_mem_bytes\": 1, \"name\": \"a\"}", "\"tok_per_s\" is missing"},
        {"{\"seq_len\": 2048, \"tok_per_s\": 1, \"peak_mem_bytes\": 1}", "neither \"name\""},
        {"[1, 2]", "not a JSON object"},
    };
    for (int i = 0; i < 6; i++) {
        char *dir = new_dir(), *path = path_in(dir, "bench.jsonl"), text[400];
        snprintf(text, sizeof text,
                 "{\"name\": \"a\", \"seq_len\": 1024, \"tok_per_s\": 5, "
                 "\"peak_mem_bytes\": 9}\n\n%s\n",
                 bad[i][0]);
        write_text(path, text);
        int status;
        char *msg = child_output(plot_bench_file, path, &status);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        char want[700];
        snprintf(want, sizeof want, "bolt: error: %s:3: %s", path, bad[i][1]);
        ck_assert_msg(strstr(msg, want) == msg && strchr(msg, '\n') == msg + strlen(msg) - 1,
                      "message '%s' is not the one line '%s...'", msg, want);
        snprintf(want, sizeof want, "%s.png", path);
        ck_assert_int_eq((int)file_size(want), -1);
        free(msg);
    }
}
END_TEST

// Built without Cairo: the table still comes, then one line saying why there is no figure.
START_TEST(test_bench_without_cairo) {
    char *dir = new_dir(), *path = path_in(dir, "bench.jsonl");
    write_bench(path);
    int status;
    char *msg = child_output(plot_bench_file, path, &status);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(msg, "| tnl-385m | 2048 | 1 | no |") && strstr(msg, "built without Cairo"),
                  "message '%s'", msg);
    free(msg);
}
END_TEST

// bolt plot with neither a run nor --bench, or with both, is an error.
START_TEST(test_plot_no_input_dies) {
    char *argv[] = {"--width=800"};
    plot_main(1, argv);
}
END_TEST

START_TEST(test_plot_bench_and_run_dies) {
    char *argv[] = {"--bench=x.jsonl", "/tmp"};
    plot_main(2, argv);
}
END_TEST

static Suite *plot_suite(void) {
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("render");
    tcase_set_timeout(tc, 60);
    if (!plot_available()) {
        printf("bolt was built without Cairo: checking only that plotting says so\n");
        tcase_add_test(tc, test_without_cairo);
        tcase_add_test(tc, test_metrics_reader);
        tcase_add_test(tc, test_bench_reader);
        tcase_add_test(tc, test_bench_without_cairo);
        suite_add_tcase(s, tc);
        return s;
    }
    tcase_add_loop_test(tc, test_falling_curve, 0, 3);
    tcase_add_loop_test(tc, test_rising_curve, 0, 2);
    tcase_add_test(tc, test_nonfinite_ignored);
    tcase_add_test(tc, test_metrics_reader);
    tcase_add_test(tc, test_plot_main_sizes);
    tcase_add_test(tc, test_several_runs);
    tcase_add_test(tc, test_svg);
    tcase_add_test(tc, test_run_dir_hook);
    tcase_add_test(tc, test_error_names_line);
    tcase_add_test(tc, test_bench_reader);
    tcase_add_test(tc, test_bench_figure);
    tcase_add_test(tc, test_bench_bad_line);
    suite_add_tcase(s, tc);
    TCase *errors = tcase_create("errors");
    tcase_add_exit_test(errors, test_missing_file_dies, 1);
    tcase_add_exit_test(errors, test_empty_file_dies, 1);
    tcase_add_exit_test(errors, test_no_loss_dies, 1);
    tcase_add_exit_test(errors, test_bad_json_dies, 1);
    tcase_add_exit_test(errors, test_loss_string_dies, 1);
    tcase_add_exit_test(errors, test_bad_size_dies, 1);
    tcase_add_exit_test(errors, test_plot_no_input_dies, 1);
    tcase_add_exit_test(errors, test_plot_bench_and_run_dies, 1);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    make_scratch_root("plot");
    return run_suite(plot_suite());
}
