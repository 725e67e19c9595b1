// tests/fuzz/harness.c: the shared part of the fuzz targets (tests/fuzz/harness.h).
// While a reader runs, this thread's heap allocations are recorded through the
// sanitizer's malloc/free hooks, and fopen/open through the linker's --wrap (the Makefile
// links every target with -Wl,--wrap=fopen,--wrap=fclose,--wrap=open,--wrap=close). When
// the reader dies, die's hook longjmps to fuzz_run, which closes what is still open and
// frees what is still allocated, as the exit would have.
#include "harness.h"

#include <fcntl.h>
#include <sanitizer/allocator_interface.h>
#include <sanitizer/asan_interface.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/util.h"

FILE *__real_fopen(const char *path, const char *mode);
int __real_fclose(FILE *f);
int __real_open(const char *path, int flags, ...);
int __real_close(int fd);

// The live allocations of the running input: an open-addressing set of pointers (linear
// probing, deletion by backward shift, so it is empty again when they are all freed).
enum { LIVE_CAP = 1 << 16, LIVE_MAX = LIVE_CAP / 2, OPEN_MAX_TRACKED = 64 };
static uintptr_t live[LIVE_CAP], doomed[LIVE_MAX];
static size_t live_count;
static bool live_overflow;
static __thread bool tracking;  // only the thread that runs the input is tracked
static __thread bool releasing; // release_input's frees leave the set too

static FILE *open_files[OPEN_MAX_TRACKED];
static int open_fds[OPEN_MAX_TRACKED];
static int n_open_files, n_open_fds;

static jmp_buf on_die;
static char last_error[1024];

// The home slot of a pointer (Fibonacci hashing of its 16-byte granule).
static size_t slot_of(uintptr_t p) {
    return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 48) & (LIVE_CAP - 1);
}

// Record an allocation (past LIVE_MAX: note the overflow, which release_input reports).
static void live_add(uintptr_t p) {
    if (live_count >= LIVE_MAX) {
        live_overflow = true;
        return;
    }
    size_t i = slot_of(p);
    while (live[i] != 0) i = (i + 1) & (LIVE_CAP - 1);
    live[i] = p;
    live_count++;
}

// Forget an allocation (not recorded: nothing to do).
static void live_remove(uintptr_t p) {
    size_t i = slot_of(p);
    while (live[i] != 0 && live[i] != p) i = (i + 1) & (LIVE_CAP - 1);
    if (live[i] == 0) return;
    live[i] = 0;
    live_count--;
    // Backward shift: move later entries of the probe run into the hole where they belong.
    size_t hole = i;
    for (size_t j = (i + 1) & (LIVE_CAP - 1); live[j] != 0; j = (j + 1) & (LIVE_CAP - 1)) {
        size_t home = slot_of(live[j]);
        bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (between) continue;
        live[hole] = live[j];
        live[j] = 0;
        hole = j;
    }
}

// The sanitizer's allocator hooks (no allocation may happen in them).
static void on_malloc(const volatile void *p, size_t size) {
    (void)size;
    if (tracking && p) live_add((uintptr_t)p);
}

static void on_free(const volatile void *p) {
    if ((tracking || releasing) && p) live_remove((uintptr_t)p);
}

// fopen/fclose and open/close as the readers see them (the linker's --wrap): the files
// and descriptors an input opens are recorded until it closes them.
FILE *__wrap_fopen(const char *path, const char *mode) {
    FILE *f = __real_fopen(path, mode);
    if (tracking && f && n_open_files < OPEN_MAX_TRACKED) open_files[n_open_files++] = f;
    return f;
}

int __wrap_fclose(FILE *f) {
    for (int i = 0; i < n_open_files; i++) {
        if (open_files[i] == f) open_files[i] = open_files[--n_open_files];
    }
    return __real_fclose(f);
}

int __wrap_open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    int mode = (flags & O_CREAT) ? va_arg(ap, int) : 0;
    va_end(ap);
    int fd = __real_open(path, flags, mode);
    if (tracking && fd >= 0 && n_open_fds < OPEN_MAX_TRACKED) open_fds[n_open_fds++] = fd;
    return fd;
}

int __wrap_close(int fd) {
    for (int i = 0; i < n_open_fds; i++) {
        if (open_fds[i] == fd) open_fds[i] = open_fds[--n_open_fds];
    }
    return __real_close(fd);
}

// die's hook: keep the message, unwind to fuzz_run.
static void die_to_harness(const char *message) {
    snprintf(last_error, sizeof last_error, "%s", message);
    longjmp(on_die, 1);
}

// After a die: close the files and descriptors the reader opened, then free what it
// allocated (what the process exit would have released).
static void release_input(void) {
    releasing = true;
    while (n_open_files > 0) __wrap_fclose(open_files[n_open_files - 1]);
    while (n_open_fds > 0) __wrap_close(open_fds[n_open_fds - 1]);
    if (live_overflow) {
        fprintf(stderr, "fuzz harness: more than %d allocations live in one input\n", LIVE_MAX);
        abort();
    }
    size_t n = 0;
    for (size_t i = 0; i < LIVE_CAP; i++) {
        if (live[i]) doomed[n++] = live[i];
    }
    for (size_t i = 0; i < n; i++) free((void *)doomed[i]); // each leaves the set (on_free)
    releasing = false;
}

static bool hooks_installed;

bool fuzz_run(void (*fn)(void *), void *arg) {
    if (!hooks_installed) {
        // stdout's buffer is allocated at its first use, which may be inside an input
        // (--help): give it one that is not on the heap.
        static char stdout_buffer[1 << 16];
        setvbuf(stdout, stdout_buffer, _IOFBF, sizeof stdout_buffer);
        __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
        set_die_hook(die_to_harness);
        hooks_installed = true;
    }
    last_error[0] = '\0';
    live_overflow = false;
    bool finished;
    if (setjmp(on_die) == 0) {
        tracking = true;
        fn(arg);
        tracking = false;
        finished = true;
    } else {
        tracking = false;
        release_input();
        finished = false;
        if (getenv("BOLT_FUZZ_VERBOSE")) fprintf(stderr, "input refused: %s\n", last_error);
    }
    if (finished && (live_count > 0 || n_open_files > 0 || n_open_fds > 0)) {
        fprintf(stderr, "fuzz harness: an accepted input left %zu allocations and %d files open\n",
                live_count, n_open_files + n_open_fds);
        for (size_t i = 0; i < LIVE_CAP; i++) {
            if (live[i]) {
                __asan_describe_address((void *)live[i]);
                break;
            }
        }
        abort();
    }
    return finished;
}

const char *fuzz_last_error(void) {
    return last_error;
}

// The scratch directory and the files written in it (one per suffix).
static char scratch_dir[256], scratch_path[8][512], scratch_suffix[8][32];

// At exit: remove the scratch files and their directory.
static void remove_scratch(void) {
    for (int i = 0; i < 8; i++) {
        if (scratch_path[i][0]) unlink(scratch_path[i]);
    }
    rmdir(scratch_dir);
}

const char *fuzz_write_file(const char *suffix, const uint8_t *data, size_t n) {
    if (!scratch_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch_dir, sizeof scratch_dir, "%s/bolt_fuzz_%d", tmp && tmp[0] ? tmp : "/tmp",
                 (int)getpid());
        mkdir(scratch_dir, 0700);
        atexit(remove_scratch);
    }
    int slot = 0;
    while (slot < 7 && scratch_suffix[slot][0] && strcmp(scratch_suffix[slot], suffix) != 0) slot++;
    snprintf(scratch_suffix[slot], sizeof scratch_suffix[slot], "%s", suffix);
    snprintf(scratch_path[slot], sizeof scratch_path[slot], "%s/input%s", scratch_dir, suffix);
    FILE *f = __real_fopen(scratch_path[slot], "wb");
    if (!f || (n > 0 && fwrite(data, 1, n, f) != n) || __real_fclose(f) != 0) {
        fprintf(stderr, "fuzz harness: cannot write %s\n", scratch_path[slot]);
        abort();
    }
    return scratch_path[slot];
}

void fuzz_split(const uint8_t *data, size_t n, const char *sep, const uint8_t **a, size_t *na,
                const uint8_t **b, size_t *nb) {
    size_t m = strlen(sep);
    *a = data;
    *na = n;
    *b = data + n;
    *nb = 0;
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(data + i, sep, m) == 0) {
            *na = i;
            *b = data + i + m;
            *nb = n - i - m;
            return;
        }
    }
}
