// tests/test_util.c: the shared command-line value parsers (parse_int_arg, parse_float_arg:
// good values round trip, garbage and out-of-range values die with one clear message) and
// path_join (joins, dies when the result does not fit).
#include <limits.h>
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

// Random integers in random ranges, printed and parsed back; the range ends are accepted.
START_TEST(test_parse_int_good) {
    Rng rng = rng_seeded(41);
    for (int i = 0; i < 2000; i++) {
        long long lo = (long long)(rng_next(&rng) >> 1) - (long long)(rng_next(&rng) >> 1);
        long long span = (long long)(rng_next(&rng) >> (2 + rng_next(&rng) % 60));
        long long hi = lo > LLONG_MAX - span ? LLONG_MAX : lo + span;
        long long x = lo + (long long)(rng_next(&rng) % ((unsigned long long)(hi - lo) + 1));
        long long picks[3] = {x, lo, hi};
        for (int k = 0; k < 3; k++) {
            char text[32];
            snprintf(text, sizeof text, "%lld", picks[k]);
            ck_assert_int_eq(parse_int_arg("test: --n", text, lo, hi), picks[k]);
        }
    }
    ck_assert_int_eq(parse_int_arg("test: --n", "+7", 0, 10), 7);
    ck_assert_int_eq(parse_int_arg("test: --n", "-0", 0, 10), 0);
    ck_assert_int_eq(parse_int_arg("test: --n", "9223372036854775807", 0, LLONG_MAX), LLONG_MAX);
}
END_TEST

// Each of these must die (exit 1): not a whole decimal integer, or outside [-5, 100].
static const char *const BAD_INTS[] = {
    "",
    "abc",
    "12abc",
    " 5",
    "5 ",
    "0x10",
    "1e3",
    "1.0",
    "--3",
    "101",
    "-6",
    "99999999999999999999",
    "-99999999999999999999",
};

START_TEST(test_parse_int_bad) {
    parse_int_arg("test: --n", BAD_INTS[_i], -5, 100);
}
END_TEST

// Random doubles printed with round-trip precision parse back exactly.
START_TEST(test_parse_float_good) {
    Rng rng = rng_seeded(43);
    for (int i = 0; i < 2000; i++) {
        double x = (double)rng_normal(&rng) * pow(10.0, (double)(rng_next(&rng) % 40) - 20.0);
        char text[64];
        snprintf(text, sizeof text, "%.17g", x);
        ck_assert(parse_float_arg("test: --x", text) == x);
    }
    ck_assert(parse_float_arg("test: --x", ".5") == 0.5);
    ck_assert(parse_float_arg("test: --x", "-2e-3") == -2e-3);
    ck_assert(parse_float_arg("test: --x", "7") == 7.0);
}
END_TEST

static const char *const BAD_FLOATS[] = {"",    "abc", "1.5x", " 1",    "1 ",
                                         "nan", "inf", "-inf", "1e999", "0.5.5"};

START_TEST(test_parse_float_bad) {
    parse_float_arg("test: --x", BAD_FLOATS[_i]);
}
END_TEST

// What fn writes to stderr before it exits with status 1 (run in a child process: die
// ends the process it runs in).
static char *die_message(void (*fn)(void)) {
    char *err = path_in(new_dir(), "err.txt");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(err, "w", stderr)) _exit(3);
        fn();
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    return test_read_file(err, NULL);
}

static void parse_bad_seq_len(void) {
    parse_int_arg("eval: --seq_len", "12x", 1, 16777216);
}

// The message names the option and the value, and the accepted range, on one line.
START_TEST(test_parse_message) {
    ck_assert_str_eq(die_message(parse_bad_seq_len),
                     "bolt: error: eval: --seq_len: bad value '12x' (expected an integer "
                     "in 1..16777216)\n");
}
END_TEST

static void make_dir_in_proc(void) {
    make_dirs("/proc/bolt_out");
}

// A file system that refuses a name (/proc: EEXIST on some kernels though nothing is
// there, ENOENT on others) is never reported as "File exists".
START_TEST(test_make_dirs_refused) {
    char *msg = die_message(make_dir_in_proc);
    const char *want = "bolt: error: /proc/bolt_out: cannot create directory (";
    ck_assert_msg(strncmp(msg, want, strlen(want)) == 0, "got: %s", msg);
    ck_assert_msg(strstr(msg, "File exists") == NULL, "got: %s", msg);
}
END_TEST

// Joins of random lengths: exactly "dir/name", up to a result that fills the buffer.
START_TEST(test_path_join_fits) {
    Rng rng = rng_seeded(47);
    for (int i = 0; i < 500; i++) {
        char dir[256], name[256], out[256];
        size_t nd = 1 + rng_next(&rng) % 200, nn = 1 + rng_next(&rng) % 100;
        if (nd + nn + 1 >= sizeof out) nn = sizeof out - nd - 2; // the longest that fits
        for (size_t k = 0; k < nd; k++) dir[k] = (char)('a' + rng_next(&rng) % 26);
        for (size_t k = 0; k < nn; k++) name[k] = (char)('A' + rng_next(&rng) % 26);
        dir[nd] = name[nn] = '\0';
        path_join(out, sizeof out, dir, name);
        ck_assert_uint_eq(strlen(out), nd + 1 + nn);
        ck_assert(memcmp(out, dir, nd) == 0 && out[nd] == '/');
        ck_assert_str_eq(out + nd + 1, name);
    }
}
END_TEST

// One byte too long for the buffer: dies instead of truncating.
START_TEST(test_path_join_too_long) {
    char out[16];
    path_join(out, sizeof out, "abcdefg", "hijklmnp"); // 16 characters + NUL
}
END_TEST

// rng_jump(r, n) is n calls of rng_next, for small and large n.
START_TEST(test_rng_jump) {
    const uint64_t steps[] = {0, 1, 2, 63, 64, 1000, 131072, 1234567};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        Rng walk = rng_seeded(42 + s), jumped = rng_jump(walk, steps[s]);
        for (uint64_t i = 0; i < steps[s]; i++) rng_next(&walk);
        ck_assert_msg(walk.state == jumped.state, "jump of %llu steps",
                      (unsigned long long)steps[s]);
    }
}
END_TEST

// fill_normal_from gives exactly the sequential rng_normal stream (across chunk edges),
// whatever the number of threads.
START_TEST(test_fill_normal_matches_sequential) {
    size_t n = 200003; // several 65536-value chunks and a ragged end
    float *seq = xmalloc(n * sizeof(float)), *par = xmalloc(n * sizeof(float));
    Rng r = rng_seeded(7);
    rng_next(&r); // an odd starting point
    Rng start = r;
    for (size_t i = 0; i < n; i++) seq[i] = 0.02f * rng_normal(&r);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        memset(par, 0, n * sizeof(float));
        fill_normal_from(par, n, 0.02f, start);
        ck_assert_msg(memcmp(seq, par, n * sizeof(float)) == 0, "%d threads: values differ",
                      threads);
    }
    free(seq);
    free(par);
}
END_TEST

// A directory given where a file is read is named as such (it used to ask for 2^63 bytes).
START_TEST(test_read_file_directory) {
    read_file(new_dir(), NULL);
}
END_TEST

// A path under a regular file cannot become a directory: the error says why.
START_TEST(test_make_dirs_under_file) {
    char *dir = new_dir();
    char *file = path_in(dir, "f");
    write_bytes(file, "x", 1);
    make_dirs(path_in(file, "sub"));
}
END_TEST

// next_line splits in place, keeps empty lines, and needs no final newline.
START_TEST(test_next_line) {
    const char *cases[][5] = {
        {"a\n\nb", "a", "", "b", NULL}, {"x\n", "x", NULL}, {"", NULL}, {"\n\n", "", "", NULL}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *text = xstrdup(cases[c][0]), *cursor = text, *line;
        int i = 1;
        while ((line = next_line(&cursor))) {
            ck_assert_ptr_nonnull(cases[c][i]);
            ck_assert_str_eq(line, cases[c][i]);
            i++;
        }
        ck_assert_ptr_null(cases[c][i]);
        free(text);
    }
}
END_TEST

int main(void) {
    make_scratch_root("util");
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_parse_int_good);
    tcase_add_loop_exit_test(tc, test_parse_int_bad, 1, 0,
                             (int)(sizeof BAD_INTS / sizeof BAD_INTS[0]));
    tcase_add_test(tc, test_parse_float_good);
    tcase_add_loop_exit_test(tc, test_parse_float_bad, 1, 0,
                             (int)(sizeof BAD_FLOATS / sizeof BAD_FLOATS[0]));
    tcase_add_test(tc, test_parse_message);
    tcase_add_test(tc, test_path_join_fits);
    tcase_add_test(tc, test_rng_jump);
    tcase_add_test(tc, test_fill_normal_matches_sequential);
    tcase_add_exit_test(tc, test_path_join_too_long, 1);
    tcase_add_exit_test(tc, test_read_file_directory, 1);
    tcase_add_exit_test(tc, test_make_dirs_under_file, 1);
    tcase_add_test(tc, test_make_dirs_refused);
    tcase_add_test(tc, test_next_line);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
