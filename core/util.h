// core/util.h: the one error path, checked allocation and file helpers, timing, RNG.
// Every failure that a user can cause ends in `die`: one line on stderr naming what is
// wrong, temp files removed, exit status 1.
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// Print "bolt: error: <message>" and exit(1), removing any registered temp file first.
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

// A test harness's way out of die (tests/fuzz/: one input that dies must not end the
// fuzzer): when set, die formats its message, removes the temp files and calls the hook
// with the message instead of exiting; the hook must not return (it longjmps back to the
// harness). bolt itself never sets it, so its error path is exit(1) as above.
typedef void (*DieHook)(const char *message);
void set_die_hook(DieHook hook);

// The checked-call helper: if `ok` is false, die with the message.
void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void *xmalloc(size_t bytes);                      // malloc or die
void *xcalloc(size_t count, size_t size);         // calloc or die
void *xrealloc(void *p, size_t bytes);            // realloc or die
char *xstrdup(const char *s);                     // strdup or die
FILE *xfopen(const char *path, const char *mode); // fopen or die naming the path

// Read exactly `bytes` from f or die naming `path` (truncated file).
void xfread(void *dst, size_t bytes, FILE *f, const char *path);
// Write exactly `bytes` or die naming `path` (disk full).
void xfwrite(const void *src, size_t bytes, FILE *f, const char *path);
// Read a whole file into a NUL-terminated buffer; *len gets its size. Dies on error.
char *read_file(const char *path, size_t *len);
// The next line of the text at *cursor (a buffer read_file made), NUL-terminated in place
// without its newline, and *cursor moved past it; NULL at the end of the text.
char *next_line(char **cursor);
int64_t file_size(const char *path); // -1 if it does not exist

// Atomic writes: open "<path>.tmp", write, then commit = fflush+fsync+close+rename.
// The temp path is registered so `die` removes it: a failed run leaves no partial file.
typedef struct AtomicFile {
    FILE *f;
    char *path;
    char *tmp_path;
} AtomicFile;
AtomicFile atomic_open(const char *path);
void atomic_commit(AtomicFile *af);
void fsync_dir(const char *dir);  // make a rename durable
void make_dirs(const char *path); // mkdir -p or die

// "dir/name" into out[cap], or die "DIR/NAME: path too long".
void path_join(char *out, size_t cap, const char *dir, const char *name);

// Command-line values. `what` names the option in the message, e.g. "eval: --seq_len".
// A whole decimal integer in [lo, hi], else die "WHAT: bad value 'TEXT' (expected an
// integer in LO..HI)".
long long parse_int_arg(const char *what, const char *text, long long lo, long long hi);
// A finite decimal number, else die "WHAT: bad value 'TEXT' (expected a number)".
double parse_float_arg(const char *what, const char *text);

// Wall-clock seconds (monotonic).
double now_seconds(void);

// Deterministic random numbers (xorshift64*), the only RNG bolt uses, so runs and
// resumes are reproducible and independent of the C library.
typedef struct Rng {
    uint64_t state;
} Rng;
Rng rng_seeded(uint64_t seed);
uint64_t rng_next(Rng *r);
float rng_uniform(Rng *r); // [0, 1)
float rng_normal(Rng *r);  // N(0, 1), Box-Muller
// The generator `steps` draws ahead (rng_next's update is linear over GF(2), so a jump is
// a few bit-matrix products).
Rng rng_jump(Rng r, uint64_t steps);
// x[i] = std * rng_normal of the stream starting at `start`: exactly what n calls of
// rng_normal would give, but filled in parallel chunks, each started by rng_jump.
// (Initialising a 385M-parameter model one value at a time takes seconds.)
void fill_normal_from(float *x, size_t n, float std, Rng start);
// The same from rng_seeded(seed).
void fill_normal(float *x, size_t n, float std, uint64_t seed);

// Temp-file registry (a small fixed table): `die`, and a SIGINT/SIGTERM once
// remove_temp_files_on_signal is installed, delete the registered files, so a failed or
// interrupted run leaves no partial file. atomic_open registers its temp file.
void temp_register(const char *path);
void temp_unregister(const char *path);
void remove_temp_files_on_signal(void);
// Training's graceful stop: the first SIGINT/SIGTERM only records itself (the training
// loop asks stop_requested between steps, saves a checkpoint and exits); a second one
// acts as remove_temp_files_on_signal does (temp files removed, the process ends at once).
void stop_gracefully_on_signal(void);
// The signal that asked for a stop (SIGINT or SIGTERM), or 0.
int stop_requested(void);

#ifdef __cplusplus
}
#endif
