// model/checkpoint_dirs.c: the step_%08lld directories of a run's out_dir: which are
// complete (their DONE marker written last), the newest one, the newest one whose files
// open, pruning old and incomplete ones, and resolving a checkpoint argument.
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/util.h"
#include "checkpoint.h"
#include "safetensors.h"

enum { PATH_CAP = 4096 };

typedef struct StepDir {
    int64_t step;
    char name[256];
} StepDir;

// "step_<digits>" -> step number, or -1.
static int64_t parse_step_name(const char *name) {
    if (strncmp(name, "step_", 5) != 0 || name[5] == '\0') return -1;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
    }
    errno = 0;
    long long v = strtoll(name + 5, NULL, 10);
    return errno ? -1 : (int64_t)v;
}

static int compare_steps(const void *a, const void *b) {
    const StepDir *x = a, *y = b;
    return x->step < y->step ? -1 : x->step > y->step;
}

// The complete (DONE-marked) step directories of out_dir, oldest first; *n gets the count.
static StepDir *list_complete(const char *out_dir, int *n) {
    *n = 0;
    DIR *d = opendir(out_dir);
    if (!d) return NULL;
    StepDir *list = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t step = parse_step_name(e->d_name);
        if (step < 0 || strlen(e->d_name) >= sizeof list->name) continue;
        char path[PATH_CAP], done[PATH_CAP];
        path_join(path, sizeof path, out_dir, e->d_name);
        path_join(done, sizeof done, path, "DONE");
        struct stat sb;
        if (stat(done, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        list = xrealloc(list, (size_t)(*n + 1) * sizeof *list);
        list[*n].step = step;
        snprintf(list[*n].name, sizeof list[*n].name, "%s", e->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n > 1) qsort(list, (size_t)*n, sizeof *list, compare_steps);
    return list;
}

bool checkpoint_latest(const char *out_dir, char *path, size_t cap) {
    int n;
    StepDir *list = list_complete(out_dir, &n);
    if (n == 0) {
        free(list);
        return false;
    }
    path_join(path, cap, out_dir, list[n - 1].name);
    free(list);
    return true;
}

// Whether a complete checkpoint's files open: config.json parses, and both safetensors
// files have valid headers whose tensors fit the file. Checked in a child process, since
// every loader ends a failure in die (whose one-line message names the problem).
static bool checkpoint_opens(const char *dir) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    check(pid >= 0, "%s: cannot fork to check the checkpoint (%s)", dir, strerror(errno));
    if (pid == 0) {
        ModelConfig cfg;
        char tok[PATH_CAP], path[PATH_CAP];
        model_config_load(&cfg, tok, sizeof tok, dir);
        path_join(path, sizeof path, dir, "model.safetensors");
        st_close(st_open(path));
        path_join(path, sizeof path, dir, "train_state.safetensors");
        st_close(st_open(path));
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool checkpoint_latest_valid(const char *out_dir, char *path, size_t cap) {
    int n;
    StepDir *list = list_complete(out_dir, &n);
    bool found = false;
    for (int i = n - 1; i >= 0 && !found; i--) {
        path_join(path, cap, out_dir, list[i].name);
        found = checkpoint_opens(path);
        if (!found)
            fprintf(stderr, "bolt: warning: %s is damaged (above); trying an older checkpoint\n",
                    path);
    }
    check(found || n == 0, "%s: none of its %d complete checkpoints can be read", out_dir, n);
    free(list);
    return found;
}

static void remove_checkpoint(const char *dir) {
    char path[PATH_CAP];
    path_join(path, sizeof path, dir, "DONE");
    check(unlink(path) == 0 || errno == ENOENT, "%s: cannot remove (%s)", path, strerror(errno));
    fsync_dir(dir);
    DIR *d = opendir(dir);
    check(d != NULL, "%s: cannot open directory (%s)", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        path_join(path, sizeof path, dir, e->d_name);
        check(unlink(path) == 0, "%s: cannot remove (%s)", path, strerror(errno));
    }
    closedir(d);
    check(rmdir(dir) == 0, "%s: cannot remove directory (%s)", dir, strerror(errno));
}

// Step directories without DONE older than the newest complete one: what a kill in the
// middle of a save or of pruning leaves behind. Nothing writes them any more.
static void remove_incomplete(const char *out_dir, int64_t newest) {
    DIR *d = opendir(out_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t step = parse_step_name(e->d_name);
        char dir[PATH_CAP], done[PATH_CAP];
        if (step < 0 || step >= newest) continue;
        path_join(dir, sizeof dir, out_dir, e->d_name);
        path_join(done, sizeof done, dir, "DONE");
        struct stat sb;
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || stat(done, &sb) == 0) continue;
        remove_checkpoint(dir);
    }
    closedir(d);
}

void checkpoint_prune(const char *out_dir, int keep) {
    int n;
    StepDir *list = list_complete(out_dir, &n);
    for (int i = 0; keep > 0 && i < n - keep; i++) {
        char dir[PATH_CAP];
        path_join(dir, sizeof dir, out_dir, list[i].name);
        remove_checkpoint(dir);
    }
    if (n > 0) remove_incomplete(out_dir, list[n - 1].step);
    free(list);
    fsync_dir(out_dir);
}

void checkpoint_resolve(const char *arg, char *dir, size_t cap) {
    struct stat st;
    check(stat(arg, &st) == 0 && S_ISDIR(st.st_mode), "%s: no such checkpoint directory", arg);
    if (!checkpoint_latest(arg, dir, cap)) {
        check(strlen(arg) < cap, "%s: path too long", arg);
        snprintf(dir, cap, "%s", arg);
    }
    char path[PATH_CAP];
    path_join(path, sizeof path, dir, "config.json");
    check(file_size(path) >= 0,
          "%s: no config.json (not a checkpoint, and no complete step_* in it)", dir);
}
