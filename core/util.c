// core/util.c: the one error path, checked allocation and files, timing and RNG.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// Temp files to remove if we die or are interrupted. Fixed buffers rather than heap
// strings, so the signal handler reads only memory that is never freed: a slot's path is
// complete before its `used` flag is set, and the flag is cleared before the slot is reused.
enum { MAX_TEMP_FILES = 16, TEMP_PATH_LEN = 4200 };
static char temp_files[MAX_TEMP_FILES][TEMP_PATH_LEN];
static volatile sig_atomic_t temp_used[MAX_TEMP_FILES];

void temp_register(const char *path) {
    for (int i = 0; i < MAX_TEMP_FILES; i++) {
        if (!temp_used[i]) {
            snprintf(temp_files[i], TEMP_PATH_LEN, "%s", path);
            atomic_signal_fence(memory_order_seq_cst);
            temp_used[i] = 1;
            return;
        }
    }
}

void temp_unregister(const char *path) {
    for (int i = 0; i < MAX_TEMP_FILES; i++) {
        if (temp_used[i] && strcmp(temp_files[i], path) == 0) temp_used[i] = 0;
    }
}

static void remove_temp_files(void) {
    for (int i = 0; i < MAX_TEMP_FILES; i++) {
        if (temp_used[i]) unlink(temp_files[i]);
    }
}

// SIGINT/SIGTERM: remove the temp files, then die of the same signal (installed with
// SA_RESETHAND, so the re-raised signal takes the default action). Only
// async-signal-safe calls.
static void on_interrupt(int sig) {
    remove_temp_files();
    static const char msg[] = "\nbolt: interrupted (no partial file left)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    raise(sig);
}

void remove_temp_files_on_signal(void) {
    struct sigaction on_signal = {.sa_handler = on_interrupt, .sa_flags = SA_RESETHAND};
    sigemptyset(&on_signal.sa_mask);
    sigaction(SIGINT, &on_signal, NULL);
    sigaction(SIGTERM, &on_signal, NULL);
}

// The signal that asked a graceful stop (0: none yet).
static volatile sig_atomic_t stop_signal;

// The first SIGINT/SIGTERM only records itself; the handler then becomes on_interrupt, so
// a second one removes the temp files and ends the process at once.
static void on_stop_request(int sig) {
    stop_signal = sig;
    struct sigaction again = {.sa_handler = on_interrupt, .sa_flags = SA_RESETHAND};
    sigemptyset(&again.sa_mask);
    sigaction(SIGINT, &again, NULL);
    sigaction(SIGTERM, &again, NULL);
}

void stop_gracefully_on_signal(void) {
    struct sigaction on_signal = {.sa_handler = on_stop_request};
    sigemptyset(&on_signal.sa_mask);
    sigaction(SIGINT, &on_signal, NULL);
    sigaction(SIGTERM, &on_signal, NULL);
}

int stop_requested(void) {
    return stop_signal;
}

// NULL in bolt; a test harness's hook (set_die_hook) otherwise.
static DieHook die_hook;

void set_die_hook(DieHook hook) {
    die_hook = hook;
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (die_hook) {
        char message[1024];
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        remove_temp_files();
        die_hook(message);
        abort(); // a hook that returns is a bug in the harness
    }
    fflush(stdout);
    fprintf(stderr, "bolt: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    remove_temp_files();
    exit(1);
}

void check(bool ok, const char *fmt, ...) {
    if (ok) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    die("%s", msg);
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    check(p != NULL, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    check(p != NULL, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    check(q != NULL, "out of memory allocating %zu bytes", bytes);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

FILE *xfopen(const char *path, const char *mode) {
    FILE *f = fopen(path, mode);
    check(f != NULL, "%s: cannot open (%s)", path, strerror(errno));
    return f;
}

void xfread(void *dst, size_t bytes, FILE *f, const char *path) {
    size_t got = fread(dst, 1, bytes, f);
    check(got == bytes, "%s: truncated (wanted %zu more bytes, got %zu)", path, bytes, got);
}

void xfwrite(const void *src, size_t bytes, FILE *f, const char *path) {
    size_t put = fwrite(src, 1, bytes, f);
    check(put == bytes, "%s: write failed (%s)", path, strerror(errno));
}

char *read_file(const char *path, size_t *len) {
    FILE *f = xfopen(path, "rb");
    struct stat st;
    check(fstat(fileno(f), &st) == 0, "%s: cannot stat (%s)", path, strerror(errno));
    check(S_ISREG(st.st_mode), "%s: not a regular file (%s)", path,
          S_ISDIR(st.st_mode) ? "a directory" : "a device, pipe or socket");
    check(fseeko(f, 0, SEEK_END) == 0, "%s: cannot seek", path);
    off_t size = ftello(f);
    check(size >= 0, "%s: cannot tell size", path);
    rewind(f);
    char *buf = xmalloc((size_t)size + 1);
    xfread(buf, (size_t)size, f, path);
    buf[size] = '\0';
    fclose(f);
    if (len) *len = (size_t)size;
    return buf;
}

char *next_line(char **cursor) {
    char *line = *cursor;
    if (!*line) return NULL;
    char *end = strchr(line, '\n');
    if (end) {
        *end = '\0';
        *cursor = end + 1;
    } else {
        *cursor = line + strlen(line);
    }
    return line;
}

int64_t file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (int64_t)st.st_size;
}

AtomicFile atomic_open(const char *path) {
    AtomicFile af;
    af.path = xstrdup(path);
    af.tmp_path = xmalloc(strlen(path) + 8);
    sprintf(af.tmp_path, "%s.tmp", path);
    temp_register(af.tmp_path);
    af.f = xfopen(af.tmp_path, "wb");
    return af;
}

// Directory part of a path ("." if none), for fsync after rename.
static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
    } else {
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
        if (out[0] == '\0') snprintf(out, cap, "/");
    }
}

void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

void atomic_commit(AtomicFile *af) {
    check(fflush(af->f) == 0, "%s: write failed (%s)", af->tmp_path, strerror(errno));
    check(fsync(fileno(af->f)) == 0, "%s: fsync failed (%s)", af->tmp_path, strerror(errno));
    check(fclose(af->f) == 0, "%s: close failed (%s)", af->tmp_path, strerror(errno));
    check(rename(af->tmp_path, af->path) == 0, "%s: rename failed (%s)", af->path, strerror(errno));
    temp_unregister(af->tmp_path);
    size_t cap = strlen(af->path) + 2; // the directory part is never longer than the path
    char *dir = xmalloc(cap);
    dir_of(af->path, dir, cap);
    fsync_dir(dir);
    free(dir);
    free(af->path);
    free(af->tmp_path);
    af->f = NULL;
}

void make_dirs(const char *path) {
    char *buf = xstrdup(path); // any length: each prefix is cut in place
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0) {
        int err = errno;
        struct stat st;
        // EEXIST is fine only for a directory that is there (some file systems, /proc,
        // answer EEXIST for names they will not create).
        if (err == EEXIST && stat(buf, &st) == 0)
            check(S_ISDIR(st.st_mode), "%s: exists and is not a directory", path);
        else
            die("%s: cannot create directory (%s)", path,
                err == EEXIST ? "the file system refuses it" : strerror(err));
    }
    free(buf);
}

void path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    check(n >= 0 && (size_t)n < cap, "%s/%s: path too long", dir, name);
}

long long parse_int_arg(const char *what, const char *text, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    bool whole = text[0] != '\0' && !isspace((unsigned char)text[0]) && *end == '\0';
    check(whole && errno == 0 && x >= lo && x <= hi,
          "%s: bad value '%s' (expected an integer in %lld..%lld)", what, text, lo, hi);
    return x;
}

double parse_float_arg(const char *what, const char *text) {
    char *end;
    errno = 0;
    double x = strtod(text, &end);
    bool whole = text[0] != '\0' && !isspace((unsigned char)text[0]) && *end == '\0';
    check(whole && errno == 0 && isfinite(x), "%s: bad value '%s' (expected a number)", what, text);
    return x;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Rng rng_seeded(uint64_t seed) {
    Rng r = {seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL};
    if (r.state == 0) r.state = 1;
    return r;
}

uint64_t rng_next(Rng *r) {
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

float rng_uniform(Rng *r) {
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

float rng_normal(Rng *r) {
    float u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

// The state update of rng_next is linear over GF(2): a 64x64 bit matrix, stored as the
// images of the 64 unit vectors. jump[j] is the update applied 2^j times.
typedef struct BitMatrix {
    uint64_t col[64];
} BitMatrix;

static uint64_t bit_apply(const BitMatrix *m, uint64_t x) {
    uint64_t y = 0;
    for (int i = 0; i < 64; i++) {
        if (x >> i & 1) y ^= m->col[i];
    }
    return y;
}

static const BitMatrix *rng_jump_table(void) {
    static BitMatrix jump[64];
    static int ready;
    if (ready) return jump;
    for (int i = 0; i < 64; i++) {
        Rng r = {1ULL << i};
        rng_next(&r);
        jump[0].col[i] = r.state;
    }
    for (int j = 1; j < 64; j++) {
        for (int i = 0; i < 64; i++) jump[j].col[i] = bit_apply(&jump[j - 1], jump[j - 1].col[i]);
    }
    ready = 1;
    return jump;
}

Rng rng_jump(Rng r, uint64_t steps) {
    const BitMatrix *jump = rng_jump_table();
    for (int j = 0; j < 64; j++) {
        if (steps >> j & 1) r.state = bit_apply(&jump[j], r.state);
    }
    return r;
}

void fill_normal_from(float *x, size_t n, float std, Rng start) {
    enum { CHUNK = 1 << 16 };
    long chunks = (long)((n + CHUNK - 1) / CHUNK);
    rng_jump_table(); // built before the threads read it
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++) {
        Rng r = rng_jump(start, 2 * (uint64_t)CHUNK * (uint64_t)c); // two draws per value
        size_t end = (size_t)(c + 1) * CHUNK < n ? (size_t)(c + 1) * CHUNK : n;
        for (size_t i = (size_t)c * CHUNK; i < end; i++) x[i] = std * rng_normal(&r);
    }
}

void fill_normal(float *x, size_t n, float std, uint64_t seed) {
    fill_normal_from(x, n, std, rng_seeded(seed));
}
