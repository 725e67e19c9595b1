// train/metrics_file.c: read metrics.jsonl ({"step": N, "loss": X, "lr": ..., ...},
// {"step": N, "val_loss": X} and a header line without "step") into curves.
#include "metrics_file.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/util.h"
#include "../model/checkpoint.h"

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

// A record's value for key: a number (1e999 parses as inf and is dropped later), null
// (dropped), or absent. Returns false for any other type.
static bool json_value(const cJSON *obj, const char *key, bool *present, double *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *present = it != NULL;
    *v = NAN;
    if (!it || cJSON_IsNull(it)) return true;
    if (!cJSON_IsNumber(it)) return false;
    *v = it->valuedouble;
    return true;
}

// A tokenizer spec that makes one token one byte ("" is what old checkpoints stored).
static bool is_byte_tokenizer(const char *spec) {
    return strcmp(spec, "byte") == 0 || spec[0] == '\0';
}

// A header line ({"run": {...}}): its tokenizer, directly or in a "config" object.
static void read_header(const cJSON *obj, RunMetrics *m, bool *known) {
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(obj, "run");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(run, "config");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(run, "tokenizer");
    if (!cJSON_IsString(tok)) tok = cJSON_GetObjectItemCaseSensitive(config, "tokenizer");
    if (!cJSON_IsString(tok)) return;
    m->bytes = is_byte_tokenizer(tok->valuestring);
    *known = true;
}

// The keys of a step record and the curves they go to.
typedef struct Field {
    const char *key;
    Series *series;
} Field;

// Parse one line into m. Returns false with what is wrong with it in err[cap].
static bool parse_line(const char *line, RunMetrics *m, bool *tokenizer_known, char *err,
                       size_t cap) {
    cJSON *obj = cJSON_Parse(line);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(obj, "step");
    if (!cJSON_IsObject(obj)) {
        snprintf(err, cap, "%s", obj ? "not a JSON object" : "not valid JSON");
        cJSON_Delete(obj);
        return false;
    }
    if (!step) {
        read_header(obj, m, tokenizer_known);
        cJSON_Delete(obj);
        return true;
    }
    Field fields[] = {{"loss", &m->loss}, {"val_loss", &m->val_loss},   {"lr", &m->lr},
                      {"norm", &m->norm}, {"tok_per_s", &m->tok_per_s}, {"mfu", &m->mfu}};
    int n_fields = (int)(sizeof fields / sizeof fields[0]);
    bool present[6];
    double value[6];
    bool ok = true;
    for (int i = 0; i < n_fields && ok; i++) {
        ok = json_value(obj, fields[i].key, &present[i], &value[i]);
        if (!ok) snprintf(err, cap, "\"%s\" is not a number", fields[i].key);
    }
    if (ok && !cJSON_IsNumber(step)) {
        snprintf(err, cap, "\"step\" is not a number");
        ok = false;
    }
    for (int i = 0; i < n_fields && ok; i++)
        if (present[i]) series_add(fields[i].series, step->valuedouble, value[i]);
    cJSON_Delete(obj);
    return ok;
}

// Whether the newest checkpoint in dir was trained with the byte tokenizer (its
// config.json's "bolt" object names the tokenizer). False when there is none to read.
static bool checkpoint_uses_bytes(const char *dir) {
    char ckpt[4096], path[4200];
    if (!checkpoint_latest(dir, ckpt, sizeof ckpt)) return false;
    snprintf(path, sizeof path, "%s/config.json", ckpt);
    if (file_size(path) <= 0) return false;
    char *text = read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *bolt = cJSON_GetObjectItemCaseSensitive(j, "bolt");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(bolt, "tokenizer");
    bool bytes = cJSON_IsString(tok) && is_byte_tokenizer(tok->valuestring);
    cJSON_Delete(j);
    return bytes;
}

// The run's name and directory from the metrics path: ".../NAME/metrics.jsonl" is NAME,
// ".../NAME.jsonl" is NAME.
static void run_name(const char *path, char *name, size_t cap, char *dir, size_t dir_cap) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dir_len = slash ? (int)(slash - path) : 1;
    snprintf(dir, dir_cap, "%.*s", dir_len, slash ? path : ".");
    if (strcmp(base, "metrics.jsonl") == 0 && slash) {
        const char *start = path + dir_len;
        while (start > path && start[-1] != '/') start--;
        snprintf(name, cap, "%.*s", (int)(path + dir_len - start), start);
    } else {
        size_t n = strlen(base);
        if (n > 6 && strcmp(base + n - 6, ".jsonl") == 0) n -= 6;
        snprintf(name, cap, "%.*s", (int)n, base);
    }
    if (name[0] == '\0' || strcmp(name, ".") == 0) {
        char cwd[4096];
        const char *last = getcwd(cwd, sizeof cwd) ? strrchr(cwd, '/') : NULL;
        snprintf(name, cap, "%s", last && last[1] ? last + 1 : "run");
    }
}

void metrics_load(RunMetrics *m, const char *path, bool strict) {
    memset(m, 0, sizeof *m);
    char dir[4096];
    run_name(path, m->name, sizeof m->name, dir, sizeof dir);
    int64_t size = file_size(path);
    if (!strict && size <= 0) return;
    check(size >= 0, "%s: no such metrics file", path);
    check(size > 0, "%s: metrics file is empty", path);
    char *text = read_file(path, NULL);
    bool tokenizer_known = false;
    int lineno = 0;
    char *line, *cursor = text;
    while ((line = next_line(&cursor))) {
        lineno++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        char err[128];
        if (!parse_line(line, m, &tokenizer_known, err, sizeof err) && strict)
            die("%s:%d: %s", path, lineno, err);
    }
    free(text);
    if (!tokenizer_known) m->bytes = checkpoint_uses_bytes(dir);
}

void metrics_free(RunMetrics *m) {
    Series *all[] = {&m->loss, &m->val_loss, &m->lr, &m->norm, &m->tok_per_s, &m->mfu};
    for (int i = 0; i < 6; i++) {
        free(all[i]->x);
        free(all[i]->y);
    }
    memset(m, 0, sizeof *m);
}
