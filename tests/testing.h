// tests/testing.h: helpers shared by the Check suites (header-only): random tensors,
// relative errors, a finite-difference gradient checker, a bf16 reference, scratch
// directories and files, and tensors in a backend's memory for the op tests.
#pragma once
#include <check.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/util.h"
#include "../kernels/ops.h"

// Memory for the length of one test: each Check test runs in a forked process of its own,
// so the scratch paths and tensors the helpers below hand out live until that process
// exits. They are listed here so they stay reachable (LeakSanitizer reports only memory
// nothing points to) without each test freeing every path_in(...) written inline. A test
// may still free one early (its list entry is then never used).
static inline void *test_owned(void *p) {
    static void **list;
    static size_t n, cap;
    if (n == cap) {
        cap = cap ? 2 * cap : 256;
        list = xrealloc(list, cap * sizeof *list);
    }
    list[n++] = p;
    return p;
}

// A fresh tensor of n values drawn from N(0, std^2).
static inline float *rand_tensor(Rng *rng, long n, float std) {
    float *x = test_owned(xmalloc((size_t)n * sizeof(float)));
    for (long i = 0; i < n; i++) x[i] = std * rng_normal(rng);
    return x;
}

static inline float *zeros(long n) {
    return test_owned(xcalloc((size_t)n, sizeof(float)));
}

static inline float *copy_tensor(const float *x, long n) {
    float *y = test_owned(xmalloc((size_t)n * sizeof(float)));
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

// ||a - b|| / max(||b||, tiny): the measure every comparison in the suites uses.
static inline double rel_error(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (isnan(num)) return INFINITY;
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

static inline double dot_double(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

// Finite-difference gradient check. `loss` recomputes a scalar from the current inputs
// (typically dot(forward output, fixed random weights)); `x` is one input tensor, and
// `analytic` its gradient from the backward pass. Perturbs `samples` random entries
// (all of them if samples >= n) by +-eps and returns the relative error
// ||numeric - analytic|| / ||numeric|| over those entries.
typedef double (*LossFn)(void *ctx);
static inline double grad_check(LossFn loss, void *ctx, float *x, const float *analytic, long n,
                                int samples, float eps, Rng *rng) {
    double num = 0, den = 0;
    int count = samples >= n ? (int)n : samples;
    for (int s = 0; s < count; s++) {
        long i = samples >= n ? s : (long)(rng_next(rng) % (uint64_t)n);
        float saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double numeric = (lp - lm) / (2.0 * eps);
        double d = numeric - analytic[i];
        num += d * d;
        den += numeric * numeric;
    }
    return sqrt(num) / fmax(sqrt(den), 1e-12);
}

// ---- bit views and a bf16 reference ---------------------------------------------------

// The bits of a float, and the float of some bits.
static inline uint32_t float_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static inline float bits_float(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// bf16 nearest to x (ties to even), by comparing the two bf16 neighbours in double: a
// reference independent of the converters under test.
static inline float ref_bf16(float x) {
    uint32_t lo = float_bits(x) & 0xffff0000u, hi = lo + 0x10000u;
    double dlo = fabs((double)x - (double)bits_float(lo));
    double dhi = fabs((double)bits_float(hi) - (double)x);
    if (dlo < dhi) return bits_float(lo);
    if (dhi < dlo) return bits_float(hi);
    return (lo & 0x10000u) ? bits_float(hi) : bits_float(lo);
}

// The bolt binary the suites run: $BOLT_BIN (make test sets it; make sanitize points it at
// the sanitized build's binary), else ./bolt.
static inline const char *bolt_binary(void) {
    const char *bin = getenv("BOLT_BIN");
    return bin && bin[0] ? bin : "./bolt";
}

// read_file (core/util.h) for a test: the text is the test's own (test_owned).
static inline char *test_read_file(const char *path, size_t *len) {
    return test_owned(read_file(path, len));
}

// Under make sanitize, Open MPI's plugins (dlopened, then dlclosed) leave allocations that
// LeakSanitizer reports with no module to suppress them by. A suite that starts ranks with
// mpirun calls this once and puts mpirun_asan_option() on mpirun's command line: those
// ranks run with leak detection off (ASan and UBSan stay on); other processes keep it.
static inline void mpirun_ranks_without_leak_checks(void) {
    const char *asan = getenv("ASAN_OPTIONS");
    char options[1024];
    snprintf(options, sizeof options, "%s%sdetect_leaks=0", asan ? asan : "", asan ? ":" : "");
    setenv("BOLT_RANK_ASAN_OPTIONS", options, 1);
}

// mpirun's option that gives its ranks the ASAN_OPTIONS set above (expanded by the shell).
static inline const char *mpirun_asan_option(void) {
    return "-x ASAN_OPTIONS=\"$BOLT_RANK_ASAN_OPTIONS\"";
}

// ---- scratch directories and files ----------------------------------------------------
// A suite that writes files makes one scratch root in main before its tests run (they run
// in forked children, so the root must exist first) and removes it with everything in it
// after; each test takes fresh subdirectories of it with new_dir.

// The scratch root of this test program ("" until make_scratch_root).
static inline char *scratch_root(void) {
    static char root[256];
    return root;
}

// Make the scratch root /tmp/bolt_test_<name>_XXXXXX (dies if it cannot).
static inline void make_scratch_root(const char *name) {
    snprintf(scratch_root(), 256, "/tmp/bolt_test_%s_XXXXXX", name);
    check(mkdtemp(scratch_root()) != NULL, "%s: cannot make a scratch directory", scratch_root());
}

static inline int remove_scratch_entry(const char *path, const struct stat *sb, int flag,
                                       struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

// Remove the scratch root and everything under it (files before their directories).
static inline void remove_scratch_root(void) {
    if (scratch_root()[0]) nftw(scratch_root(), remove_scratch_entry, 16, FTW_DEPTH | FTW_PHYS);
}

// A command line for running a bolt command in-process, built one formatted argument at a
// time: args_add(&a, "--steps=%d", 40); ... train_main(a.n, args_argv(&a)).
enum { MAX_TEST_ARGS = 24, TEST_ARG_LEN = 700 };
typedef struct Args {
    int n;
    char text[MAX_TEST_ARGS][TEST_ARG_LEN];
    char *argv[MAX_TEST_ARGS];
} Args;

static inline void args_add(Args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void args_add(Args *a, const char *fmt, ...) {
    ck_assert_int_lt(a->n, MAX_TEST_ARGS);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(a->text[a->n], TEST_ARG_LEN, fmt, ap);
    va_end(ap);
    ck_assert_int_lt(len, TEST_ARG_LEN);
    a->n++;
}

// The arguments as argv (valid while a lives).
static inline char **args_argv(Args *a) {
    for (int i = 0; i < a->n; i++) a->argv[i] = a->text[i];
    return a->argv;
}

// main's end: run suite s, remove the scratch root if make_scratch_root made one, and
// return the exit status (0 if every test passed).
static inline int run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_scratch_root();
    return failed ? 1 : 0;
}

// A fresh, empty directory under the scratch root.
static inline char *new_dir(void) {
    char *dir = test_owned(xmalloc(512));
    snprintf(dir, 512, "%s/tXXXXXX", scratch_root());
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

// "dir/name", newly allocated.
static inline char *path_in(const char *dir, const char *name) {
    char *p = test_owned(xmalloc(strlen(dir) + strlen(name) + 2));
    sprintf(p, "%s/%s", dir, name);
    return p;
}

// Write n bytes to a new file at path (replacing any).
static inline void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = xfopen(path, "wb");
    xfwrite(data, n, f, path);
    fclose(f);
}

// Write a string to a new file at path (replacing any).
static inline void write_text(const char *path, const char *text) {
    FILE *f = xfopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

// Read a child's output from pipe fd into out[cap] (NUL-terminated, cut at cap - 1 bytes),
// close fd, wait for the child pid and return its wait status.
static inline int read_child(int fd, pid_t pid, char *out, size_t cap) {
    size_t used = 0;
    ssize_t got;
    while (used + 1 < cap && (got = read(fd, out + used, cap - 1 - used)) > 0) used += (size_t)got;
    out[used] = '\0';
    close(fd);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

// Fork a child whose stderr (with both, its stdout too) goes into a pipe: returns the
// child's pid (0 in the child) and sets *fd to the read end for read_child.
static inline pid_t fork_capturing(bool both, int *fd) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (both) dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        return 0;
    }
    close(fds[1]);
    *fd = fds[0];
    return pid;
}

// Run fn(arg) in a child with its stderr captured into msg[cap]; returns the wait status.
// For the one-line errors of bad input.
static inline int capture_stderr(void (*fn)(const char *), const char *arg, char *msg, size_t cap) {
    int fd;
    pid_t pid = fork_capturing(false, &fd);
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    return read_child(fd, pid, msg, cap);
}

// ---- tensors in a backend's memory (tests/test_backend_*.c) ---------------------------
// The op tests keep every tensor twice: in backend memory, and on the host as exactly the
// values the backend holds (activations are read back after the conversion to the
// backend's compute type, so a bf16 backend and the fp32 reference see the same inputs).

// n fp32 values copied to new backend memory.
static inline float *be_f32(Backend *be, const float *host, long n) {
    float *dev = be->ops->alloc(be, (size_t)n * sizeof(float) + 4);
    if (n > 0) be->ops->upload(be, dev, host, (size_t)n * sizeof(float));
    return dev;
}

// n ints copied to new backend memory (tokens, targets, positions, sequence offsets).
static inline int *be_ints(Backend *be, const int *host, long n) {
    int *dev = be->ops->alloc(be, (size_t)n * sizeof(int) + 4);
    if (n > 0) be->ops->upload(be, dev, host, (size_t)n * sizeof(int));
    return dev;
}

// Backend fp32 memory back in a new host array.
static inline float *be_read_f32(Backend *be, const float *dev, long n) {
    float *host = xmalloc((size_t)n * sizeof(float) + 4);
    if (n > 0) be->ops->download(be, host, dev, (size_t)n * sizeof(float));
    return host;
}

// Backend activations back in a new host array, as fp32.
static inline float *be_read_act(Backend *be, const Act *dev, long n) {
    float *tmp = be->ops->alloc(be, (size_t)n * sizeof(float) + 4);
    if (n > 0) be->ops->act_to_float(be, tmp, dev, n);
    float *host = be_read_f32(be, tmp, n);
    be->ops->free(be, tmp);
    return host;
}

// New backend activations from host[0..n); host is overwritten with the values the
// backend holds (rounded to its compute type).
static inline Act *be_act(Backend *be, float *host, long n) {
    float *tmp = be_f32(be, host, n);
    Act *dev = be->ops->alloc(be, (size_t)n * be->act_size + 4);
    if (n > 0) {
        be->ops->float_to_act(be, dev, tmp, n);
        be->ops->act_to_float(be, tmp, dev, n);
        be->ops->download(be, host, tmp, (size_t)n * sizeof(float));
    }
    be->ops->free(be, tmp);
    return dev;
}

// A random activation tensor N(0, std^2) in backend memory; *host gets its values.
static inline Act *be_rand_act(Backend *be, Rng *rng, long n, float std, float **host) {
    *host = rand_tensor(rng, n, std);
    return be_act(be, *host, n);
}

// New backend memory of `bytes` filled with 0xFF bytes, a NaN in fp32 and in bf16: an
// output the op fails to write fails its comparison.
static inline void *be_poison(Backend *be, size_t bytes) {
    void *dev = be->ops->alloc(be, bytes + 4);
    void *host = xmalloc(bytes + 4);
    memset(host, 0xFF, bytes + 4);
    be->ops->upload(be, dev, host, bytes + 4);
    free(host);
    return dev;
}

// got ~ want: ||got - want|| / ||want|| < tol, and no NaN or infinity in got where want
// is finite (a NaN never passes, whatever the tolerance).
static inline void be_expect_close(const float *got, const float *want, long n, double tol,
                                   const char *what) {
    for (long i = 0; i < n; i++) {
        if (isfinite(want[i]) && !isfinite(got[i]))
            ck_abort_msg("%s: element %ld is %g (expected %g)", what, i, (double)got[i],
                         (double)want[i]);
    }
    double err = rel_error(got, want, n);
    ck_assert_msg(err < tol, "%s: rel error %g (tolerance %g)", what, err, tol);
}

// Column block [col, col + width) of `rows` rows that are ld apart, as a new contiguous
// array [rows, width].
static inline float *cols_of(const float *x, long ld, long rows, long col, long width) {
    float *y = xmalloc((size_t)(rows * width > 0 ? rows * width : 1) * sizeof(float));
    for (long r = 0; r < rows; r++)
        memcpy(y + r * width, x + r * ld + col, (size_t)width * sizeof(float));
    return y;
}

// Every element of x[0..n) is NaN (the poison an op must not have overwritten).
static inline bool all_nan(const float *x, long n) {
    for (long i = 0; i < n; i++)
        if (!isnan(x[i])) return false;
    return true;
}

// The device the op tests run on: $BOLT_TEST_DEVICE ("cpu" when unset). "cuda" without a
// visible GPU says the CUDA tests are skipped and gives "cpu". The GPU is looked for in a
// child process, so this one never initialises CUDA (a CUDA context does not survive fork)
// and every forked test makes its own backend: an op that dies fails only its own test.
static inline const char *be_test_device(const char *prog) {
    const char *device = getenv("BOLT_TEST_DEVICE");
    if (!device || !*device) device = "cpu";
    if (strcmp(device, "cuda") == 0) {
        pid_t pid = fork();
        check(pid >= 0, "%s: fork failed", prog);
        if (pid == 0) _exit(cuda_available() ? 0 : 1);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("%s: no GPU visible, CUDA op tests skipped\n", prog);
            device = "cpu";
        }
    }
    return device;
}
