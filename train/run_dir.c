// train/run_dir.c: a run's out_dir (see run_dir.h).
#include "run_dir.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/util.h"
#include "commands.h"

enum { PATH_CAP = 4096 };

// The files bolt writes at the top of an out_dir (plots included), besides step_* dirs.
static const char *const RUN_FILES[] = {"metrics.jsonl", "config.conf", "loss.png", "loss.svg"};
enum { N_RUN_FILES = sizeof RUN_FILES / sizeof RUN_FILES[0] };
// TensorBoard event files (train/tensorboard.c): one per run start, this prefix.
static const char TB_PREFIX[] = "events.out.tfevents.";

// True for "step_" followed by digits only: a checkpoint directory's name.
static bool is_step_name(const char *name) {
    if (strncmp(name, "step_", 5) != 0 || name[5] == '\0') return false;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9') return false;
    }
    return true;
}

bool run_dir_holds_run(const char *out_dir) {
    char path[PATH_CAP];
    path_join(path, sizeof path, out_dir, "metrics.jsonl");
    if (file_size(path) >= 0) return true;
    DIR *d = opendir(out_dir);
    if (!d) return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) found = is_step_name(e->d_name);
    closedir(d);
    return found;
}

// Remove a step directory and the plain files in it (a checkpoint holds nothing else).
static void remove_step_dir(const char *dir) {
    DIR *d = opendir(dir);
    check(d != NULL, "%s: cannot open directory (%s)", dir, strerror(errno));
    struct dirent *e;
    char path[PATH_CAP];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        path_join(path, sizeof path, dir, e->d_name);
        check(unlink(path) == 0, "%s: cannot remove (%s)", path, strerror(errno));
    }
    closedir(d);
    check(rmdir(dir) == 0, "%s: cannot remove directory (%s)", dir, strerror(errno));
}

void run_dir_clear(const char *out_dir) {
    char path[PATH_CAP];
    for (int i = 0; i < N_RUN_FILES; i++) {
        path_join(path, sizeof path, out_dir, RUN_FILES[i]);
        check(unlink(path) == 0 || errno == ENOENT, "%s: cannot remove (%s)", path,
              strerror(errno));
    }
    DIR *d = opendir(out_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        path_join(path, sizeof path, out_dir, e->d_name);
        struct stat sb;
        if (is_step_name(e->d_name)) {
            if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_step_dir(path);
        } else if (strncmp(e->d_name, TB_PREFIX, strlen(TB_PREFIX)) == 0) {
            check(unlink(path) == 0, "%s: cannot remove (%s)", path, strerror(errno));
        }
    }
    closedir(d);
    fsync_dir(out_dir);
}

void run_dir_write_config(const char *out_dir, const Config *c) {
    Config saved = *c;
    saved.resume = false;
    saved.overwrite = false;
    char path[PATH_CAP];
    path_join(path, sizeof path, out_dir, "config.conf");
    AtomicFile af = atomic_open(path);
    fprintf(af.f,
            "# The resolved config of the run in this directory: `bolt train %s\n"
            "# --resume=1` continues it.\n",
            path);
    config_print(&saved, af.f);
    atomic_commit(&af);
}

void metrics_write_header(FILE *f, const RunHeader *h) {
    size_t cap = 16, len = 0;
    for (int i = 0; i < h->argc; i++) cap += strlen(h->argv[i]) + 1;
    char *command = xmalloc(cap);
    len = (size_t)snprintf(command, cap, "bolt train");
    for (int i = 0; i < h->argc; i++)
        len += (size_t)snprintf(command + len, cap - len, " %s", h->argv[i]);
    char started[32];
    time_t now = time(NULL);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON *line = cJSON_CreateObject(), *run = cJSON_AddObjectToObject(line, "run");
    cJSON_AddStringToObject(run, "bolt", bolt_version());
    cJSON_AddStringToObject(run, "commit", bolt_commit());
    cJSON_AddStringToObject(run, "command", command);
    cJSON_AddStringToObject(run, "device", h->device);
    cJSON_AddNumberToObject(run, "params", h->params);
    cJSON_AddNumberToObject(run, "tokens_per_step", h->tokens_per_step);
    cJSON_AddNumberToObject(run, "world", h->world);
    cJSON_AddNumberToObject(run, "start_step", (double)h->start_step);
    cJSON_AddStringToObject(run, "started", started);
    char *text = cJSON_PrintUnformatted(line);
    check(text != NULL, "metrics.jsonl: cannot format the run header");
    fprintf(f, "%s\n", text);
    fflush(f);
    free(text);
    cJSON_Delete(line);
    free(command);
}

void metrics_truncate(const char *path, int64_t step) {
    if (file_size(path) < 0) return;
    size_t len;
    char *text = read_file(path, &len);
    AtomicFile af = atomic_open(path);
    for (char *line = text; line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        size_t n = end ? (size_t)(end - line) + 1 : (size_t)(text + len - line);
        const char *key = strstr(line, "\"step\": "); // step records only; headers stay
        bool keep = !key || key > line + n || strtoll(key + 8, NULL, 10) <= step;
        if (keep) xfwrite(line, n, af.f, af.tmp_path);
        line += n;
    }
    atomic_commit(&af);
    free(text);
}

bool skip_non_finite_step(int *bad_steps, FILE *metrics, int64_t step, int steps, float loss,
                          double norm, int max_bad, const char *advice) {
    if (isfinite(loss) && isfinite(norm)) {
        *bad_steps = 0;
        return false;
    }
    (*bad_steps)++;
    const char *what = isfinite(loss) ? "gradient" : "loss";
    if (metrics) {
        printf("step %lld/%d | non-finite %s, step skipped (%d in a row)\n", (long long)(step + 1),
               steps, what, *bad_steps);
        fprintf(metrics, "{\"step\": %lld, \"skipped\": \"non-finite %s\", \"bad_steps\": %d}\n",
                (long long)(step + 1), what, *bad_steps);
        fflush(metrics);
    }
    check(*bad_steps < max_bad, "%d non-finite steps in a row (last at step %lld): stopping; %s",
          *bad_steps, (long long)(step + 1), advice);
    return true;
}

void check_steps_and_schedule(const Config *c, int64_t start_step) {
    check(start_step <= c->steps,
          "steps = %d is below the checkpoint's step %lld in %s: nothing to train (raise "
          "--steps to continue the run, or start a new one)",
          c->steps, (long long)start_step, c->out_dir);
    if (start_step == c->steps)
        printf("note: the checkpoint is already at step %d = steps: nothing to train\n", c->steps);
    if (c->warmup >= c->steps)
        fprintf(stderr,
                "bolt: warning: warmup = %d >= steps = %d: the learning rate %s and the %s "
                "schedule never decays (lower warmup)\n",
                c->warmup, c->steps,
                c->warmup == c->steps ? "reaches lr only at the last step" : "never reaches lr",
                c->schedule);
    else if (strcmp(c->schedule, "wsd") == 0 &&
             c->warmup + lround((double)c->decay_frac * c->steps) > c->steps)
        fprintf(stderr,
                "bolt: warning: wsd: warmup = %d plus the decay (decay_frac %g of %d steps) is "
                "longer than the run: there is no stable phase at lr\n",
                c->warmup, c->decay_frac, c->steps);
}
