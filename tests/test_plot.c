// tests/test_plot.c: `bolt plot`: render random loss curves, then read the PNG back with
// an independent decoder (signature, IHDR, every chunk's CRC, zlib header, stored deflate
// blocks, Adler-32, filter bytes) and check the pixels: white background, the train and
// val colours present, a falling curve drawn falling and a rising one rising. Bad
// inputs (missing, empty, no loss, malformed lines) die naming the file (and line).
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/util.h"
#include "../train/plot.h"
#include "testing.h"

// A decoded 8-bit RGB image.
typedef struct Image {
    int w, h;
    uint8_t *rgb;
} Image;

// Table-driven CRC-32, written independently of plot.c's bitwise one.
static uint32_t test_crc32(const uint8_t *p, size_t n) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Read and fully verify a PNG that uses stored deflate blocks; returns its pixels.
static Image read_png(const char *path) {
    size_t n;
    uint8_t *buf = (uint8_t *)read_file(path, &n);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    ck_assert_msg(n > 8 && memcmp(buf, sig, 8) == 0, "%s: bad PNG signature", path);
    Image im = {0, 0, NULL};
    uint8_t *z = NULL;
    size_t zn = 0, pos = 8;
    int chunks = 0;
    bool ended = false;
    while (!ended) {
        ck_assert_msg(pos + 12 <= n, "truncated chunk at %zu", pos);
        uint32_t len = be32(buf + pos);
        ck_assert_msg(pos + 12 + len <= n, "chunk length %u runs past the file", len);
        const uint8_t *type = buf + pos + 4, *data = buf + pos + 8;
        ck_assert_msg(be32(data + len) == test_crc32(type, len + 4), "bad CRC on chunk %.4s",
                      (const char *)type);
        if (chunks == 0) {
            ck_assert_msg(memcmp(type, "IHDR", 4) == 0 && len == 13, "first chunk is not IHDR");
            im.w = (int)be32(data);
            im.h = (int)be32(data + 4);
            ck_assert_int_eq(data[8], 8); // bit depth
            ck_assert_int_eq(data[9], 2); // colour type RGB
            ck_assert_int_eq(data[10] | data[11] | data[12], 0);
        } else if (memcmp(type, "IDAT", 4) == 0) {
            z = realloc(z, zn + len);
            memcpy(z + zn, data, len);
            zn += len;
        } else if (memcmp(type, "IEND", 4) == 0) {
            ck_assert_int_eq(len, 0);
            ended = true;
        }
        chunks++;
        pos += 12 + len;
    }
    ck_assert_msg(pos == n, "bytes after IEND");
    ck_assert_msg(zn > 6, "no IDAT data");
    ck_assert_msg((z[0] & 0x0F) == 8 && ((z[0] << 8) | z[1]) % 31 == 0 && !(z[1] & 0x20),
                  "bad zlib header %02x %02x", z[0], z[1]);
    // Inflate: only stored blocks are expected.
    size_t row = 1 + 3 * (size_t)im.w, want = row * im.h, got = 0, zp = 2;
    uint8_t *raw = malloc(want + 1);
    bool final = false;
    while (!final) {
        ck_assert_msg(zp + 5 <= zn, "truncated deflate block header");
        final = z[zp] & 1;
        ck_assert_msg((z[zp] >> 1 & 3) == 0, "block type %d is not stored", z[zp] >> 1 & 3);
        size_t len = z[zp + 1] | z[zp + 2] << 8, nlen = z[zp + 3] | z[zp + 4] << 8;
        ck_assert_msg((len ^ nlen) == 0xFFFF, "stored block NLEN mismatch");
        zp += 5;
        ck_assert_msg(zp + len <= zn && got + len <= want, "stored block too long");
        memcpy(raw + got, z + zp, len);
        got += len, zp += len;
    }
    ck_assert_msg(got == want, "inflated %zu bytes, want %zu", got, want);
    ck_assert_msg(zp + 4 == zn, "zlib stream length");
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < got; i++) a = (a + raw[i]) % 65521, b = (b + a) % 65521;
    ck_assert_msg(be32(z + zp) == (b << 16 | a), "bad Adler-32");
    im.rgb = malloc(3 * (size_t)im.w * im.h);
    for (int y = 0; y < im.h; y++) {
        ck_assert_msg(raw[y * row] == 0, "row %d filter %d", y, raw[y * row]);
        memcpy(im.rgb + (size_t)y * im.w * 3, raw + y * row + 1, row - 1);
    }
    free(raw);
    free(z);
    free(buf);
    return im;
}

static uint32_t pixel(const Image *im, int x, int y) {
    const uint8_t *p = im->rgb + 3 * ((size_t)y * im->w + x);
    return (uint32_t)p[0] << 16 | p[1] << 8 | p[2];
}

static int count_color(const Image *im, uint32_t color) {
    int n = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) n += pixel(im, x, y) == color;
    return n;
}

static int cmp_int(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

// Median row of `color` pixels in columns [x0, x1).
static double median_row(const Image *im, uint32_t color, int x0, int x1) {
    int *rows = malloc(sizeof(int) * (size_t)im->w * im->h), n = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = x0; x < x1; x++)
            if (pixel(im, x, y) == color) rows[n++] = y;
    ck_assert_msg(n > 0, "no pixels of colour %06x in columns [%d, %d)", color, x0, x1);
    qsort(rows, n, sizeof(int), cmp_int);
    double m = rows[n / 2];
    free(rows);
    return m;
}

// Columns spanned by `color` pixels.
static void color_columns(const Image *im, uint32_t color, int *x0, int *x1) {
    *x0 = im->w, *x1 = -1;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            if (pixel(im, x, y) == color) *x0 = x < *x0 ? x : *x0, *x1 = x > *x1 ? x : *x1;
}

// A random run's metrics, in train.c's format: steps 1..steps of a*exp-shaped loss
// (falling, or rising when `rising`) with noise, val every steps/10 and at the end.
// extra: also write a non-finite and a null loss mid-run. Returns the number of steps.
static int write_curve(const char *path, uint64_t seed, bool rising, bool extra) {
    Rng r = rng_seeded(seed);
    int steps = 300 + (int)(rng_next(&r) % 1200);
    double a = 1 + 2 * rng_uniform(&r), b = 2 + 4 * rng_uniform(&r);
    double tau = steps * (0.1 + 0.15 * rng_uniform(&r));
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int s = 1; s <= steps; s++) {
        double shape = exp(-s / tau), clean = a + b * (rising ? 1 - shape : shape);
        double loss = clean + 0.1 * rng_normal(&r);
        fprintf(f,
                "{\"step\": %d, \"loss\": %.6f, \"lr\": 3.0e-04, \"norm\": 0.8, \"tok_per_s\": "
                "1000.0, \"tokens\": %d, \"elapsed_s\": %.3f}\n",
                s, loss, s * 512, s * 0.01);
        if (extra && s == steps / 2) fprintf(f, "{\"step\": %d, \"loss\": 1e999}\n\n", s + 1);
        if (extra && s == steps / 3) fprintf(f, "{\"step\": %d, \"loss\": null}\n", s + 1);
        if (s % (steps / 10) == 0 || s == steps)
            fprintf(f, "{\"step\": %d, \"val_loss\": %.6f}\n", s, clean + 0.05);
    }
    fclose(f);
    return steps;
}

// Render a random curve and check the picture: returns the image for more checks.
static Image render_and_check(const char *dir, uint64_t seed, bool rising, bool extra) {
    char metrics[512], png[512];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/out.png", dir);
    write_curve(metrics, seed, rising, extra);
    plot_metrics(metrics, png, 800, 500);
    Image im = read_png(png);
    ck_assert_int_eq(im.w, 800);
    ck_assert_int_eq(im.h, 500);
    ck_assert_uint_eq(pixel(&im, 0, 0), PLOT_BACKGROUND);
    ck_assert_uint_eq(pixel(&im, im.w - 1, im.h - 1), PLOT_BACKGROUND);
    int white = count_color(&im, PLOT_BACKGROUND);
    ck_assert_msg(white > im.w * im.h / 2, "only %d white pixels", white);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_COLOR), 500);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_RAW_COLOR), 100);
    ck_assert_int_gt(count_color(&im, PLOT_VAL_COLOR), 50);
    int x0, x1;
    color_columns(&im, PLOT_TRAIN_COLOR, &x0, &x1);
    ck_assert_int_gt(x1 - x0, im.w / 2); // the curve spans the plot
    int quarter = (x1 - x0) / 4;
    double left = median_row(&im, PLOT_TRAIN_COLOR, x0, x0 + quarter);
    double right = median_row(&im, PLOT_TRAIN_COLOR, x1 - quarter, x1 + 1);
    if (rising)
        ck_assert_msg(left > right + 50, "rising: left row %g, right row %g", left, right);
    else
        ck_assert_msg(left + 50 < right, "falling: left row %g, right row %g", left, right);
    return im;
}

START_TEST(test_falling_curve) {
    char *dir = new_dir();
    Image im = render_and_check(dir, 1000 + (uint64_t)_i, false, false);
    free(im.rgb);
}
END_TEST

START_TEST(test_rising_curve) {
    char *dir = new_dir();
    Image im = render_and_check(dir, 2000 + (uint64_t)_i, true, false);
    free(im.rgb);
}
END_TEST

// An inf and a null loss are skipped: the y range still comes from the finite values,
// so the curve fills most of the plot's height instead of being squashed flat.
START_TEST(test_nonfinite_ignored) {
    char *dir = new_dir();
    Image im = render_and_check(dir, 3000, false, true);
    int top = im.h, bottom = -1;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++)
            if (pixel(&im, x, y) == PLOT_TRAIN_RAW_COLOR) {
                top = y < top ? y : top;
                bottom = y > bottom ? y : bottom;
            }
    ck_assert_msg(bottom - top > im.h / 2, "raw curve spans rows %d..%d", top, bottom);
    free(im.rgb);
}
END_TEST

// `bolt plot RUN_DIR --width --height` writes RUN_DIR/loss.png at that size; --out too.
START_TEST(test_plot_main_sizes) {
    char *dir = new_dir();
    char metrics[512], png[512], out_arg[600], other[512];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    write_curve(metrics, 4000, false, false);
    char *argv1[] = {dir, "--width=640", "--height=400"};
    ck_assert_int_eq(plot_main(3, argv1), 0);
    Image im = read_png(png);
    ck_assert_int_eq(im.w, 640);
    ck_assert_int_eq(im.h, 400);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_COLOR), 100);
    free(im.rgb);
    snprintf(other, sizeof other, "%s/other.png", dir);
    snprintf(out_arg, sizeof out_arg, "--out=%s", other);
    char *argv2[] = {metrics, out_arg, "--width=1500", "--height=950"};
    ck_assert_int_eq(plot_main(4, argv2), 0);
    im = read_png(other);
    ck_assert_int_eq(im.w, 1500);
    ck_assert_int_eq(im.h, 950);
    ck_assert_int_gt(count_color(&im, PLOT_VAL_COLOR), 100);
    free(im.rgb);
}
END_TEST

// The training hook never dies: no loss yet -> nothing written; a bad line is skipped.
START_TEST(test_run_dir_hook) {
    char *dir = new_dir();
    char metrics[512], png[512];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    plot_run_dir(dir); // no metrics file at all
    ck_assert_int_eq((int)file_size(png), -1);
    write_text(metrics, "{\"step\": 10, \"val_loss\": 3.5}\n");
    plot_run_dir(dir);
    ck_assert_int_eq((int)file_size(png), -1);
    write_text(metrics, "{\"step\": 1, \"loss\": 4.0}\n{\"step\": 2, \"loss\": nan}\n"
                        "{\"step\": 3, \"loss\": 3.0}\n{\"step\": 3, \"val_loss\": 3.2}\n");
    plot_run_dir(dir);
    Image im = read_png(png);
    ck_assert_int_eq(im.w, 800);
    ck_assert_int_eq(im.h, 500);
    ck_assert_int_gt(count_color(&im, PLOT_TRAIN_COLOR), 100);
    ck_assert_int_gt(count_color(&im, PLOT_VAL_COLOR), 10);
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
    plot_metrics(metrics, png, 800, 500);
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

// The error names file:line: run a bad file in a child and read its stderr.
START_TEST(test_error_names_line) {
    char *dir = new_dir();
    char metrics[512], png[512];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    write_text(metrics, "{\"step\": 1, \"loss\": 4.0}\n\n{\"step\": 2 \"loss\": 3.9}\n");
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        plot_metrics(metrics, png, 800, 500);
        _exit(0);
    }
    close(fds[1]);
    char msg[2048] = {0};
    size_t got = 0;
    ssize_t k;
    while ((k = read(fds[0], msg + got, sizeof msg - 1 - got)) > 0) got += (size_t)k;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    char want[600];
    snprintf(want, sizeof want, "%s:3:", metrics);
    ck_assert_msg(strstr(msg, want) != NULL, "message '%s' lacks '%s'", msg, want);
    ck_assert_int_eq((int)file_size(png), -1);
}
END_TEST

static Suite *plot_suite(void) {
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("render");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_falling_curve, 0, 3);
    tcase_add_loop_test(tc, test_rising_curve, 0, 2);
    tcase_add_test(tc, test_nonfinite_ignored);
    tcase_add_test(tc, test_plot_main_sizes);
    tcase_add_test(tc, test_run_dir_hook);
    tcase_add_test(tc, test_error_names_line);
    suite_add_tcase(s, tc);
    TCase *errors = tcase_create("errors");
    tcase_add_exit_test(errors, test_missing_file_dies, 1);
    tcase_add_exit_test(errors, test_empty_file_dies, 1);
    tcase_add_exit_test(errors, test_no_loss_dies, 1);
    tcase_add_exit_test(errors, test_bad_json_dies, 1);
    tcase_add_exit_test(errors, test_loss_string_dies, 1);
    tcase_add_exit_test(errors, test_bad_size_dies, 1);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    make_scratch_root("plot");
    SRunner *sr = srunner_create(plot_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_scratch_root();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
