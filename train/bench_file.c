// train/bench_file.c: write, read and tabulate bench train's records (bench_file.h).
#include "bench_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/util.h"
#include "commands.h"

// Whether path exists, is not empty and does not end in a line break (a hand edit's
// last line): the next record must start on a line of its own.
static bool needs_line_break(const char *path) {
    if (file_size(path) <= 0) return false;
    FILE *f = xfopen(path, "rb");
    int last = fseek(f, -1, SEEK_END) == 0 ? getc(f) : '\n';
    fclose(f);
    return last != '\n';
}

// A record without a name gets its config's ("configs/tnl-385m.conf": "tnl-385m"), or
// without a config file its family's.
static void fill_name(BenchRecord *r) {
    if (r->name[0]) return;
    const char *slash = strrchr(r->config, '/'), *base = slash ? slash + 1 : r->config;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".conf") == 0) n -= 5;
    snprintf(r->name, sizeof r->name, "%.*s", (int)n, n ? base : r->family);
}

// A number, or null when it is not finite (unknown MFU, a missing time).
static void add_number(cJSON *obj, const char *key, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

void bench_append(const char *path, const BenchRecord *record) {
    BenchRecord named = *record, *r = &named;
    fill_name(r);
    char now[32];
    time_t t = time(NULL);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "bench", "train");
    cJSON_AddStringToObject(o, "config", r->config);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "family", r->family);
    add_number(o, "params", r->params);
    cJSON_AddNumberToObject(o, "seq_len", r->seq_len);
    cJSON_AddNumberToObject(o, "batch_size", r->batch_size);
    cJSON_AddNumberToObject(o, "grad_accum", r->grad_accum);
    cJSON_AddBoolToObject(o, "recompute", r->recompute);
    cJSON_AddStringToObject(o, "device", r->device);
    cJSON_AddStringToObject(o, "backend", r->backend);
    cJSON_AddNumberToObject(o, "bench_steps", r->bench_steps);
    add_number(o, "first_step_s", r->first_step_s);
    add_number(o, "step_s", r->step_s);
    add_number(o, "tok_per_s", r->tok_per_s);
    add_number(o, "mfu", r->mfu);
    add_number(o, "peak_mem_bytes", r->peak_mem_bytes);
    cJSON_AddStringToObject(o, "bolt", bolt_version());
    cJSON_AddStringToObject(o, "commit", r->commit);
    cJSON_AddStringToObject(o, "time", now);
    cJSON_AddBoolToObject(o, "ok", r->ok);
    if (!r->ok) cJSON_AddStringToObject(o, "error", r->error);
    char *text = cJSON_PrintUnformatted(o);
    check(text != NULL, "%s: cannot format the bench record", path);
    bool line_break = needs_line_break(path);
    FILE *f = xfopen(path, "a");
    if (line_break) xfwrite("\n", 1, f, path);
    xfwrite(text, strlen(text), f, path);
    xfwrite("\n", 1, f, path);
    check(fclose(f) == 0, "%s: cannot write (%s)", path, strerror(errno));
    free(text);
    cJSON_Delete(o);
}

// ---- Reading --------------------------------------------------------------------------

// What a line's number keys must be: a number within [lo, hi] (hi: no limit in practice
// but for the integers), a whole one when `integer`.
typedef struct NumberKey {
    const char *key;
    bool required, integer;
    double lo, hi;
} NumberKey;

// obj's number `k->key` into *v (def when absent or null and not required). Returns
// false with the reason in err when it is missing but required, or not a number in range.
static bool read_number(const cJSON *obj, const NumberKey *k, double def, double *v, char *err,
                        size_t cap) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, k->key);
    *v = def;
    if ((!it || cJSON_IsNull(it)) && !k->required) return true;
    if (!it || cJSON_IsNull(it)) {
        snprintf(err, cap, "\"%s\" is missing", k->key);
        return false;
    }
    bool whole = cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble);
    if (!cJSON_IsNumber(it) || (k->integer && !whole) || it->valuedouble < k->lo ||
        it->valuedouble > k->hi) {
        if (k->integer)
            snprintf(err, cap, "\"%s\" is not an integer in %.0f..%.0f", k->key, k->lo, k->hi);
        else
            snprintf(err, cap, "\"%s\" is not a number >= %g", k->key, k->lo);
        return false;
    }
    *v = it->valuedouble;
    return true;
}

// obj's string `key` into out[cap] ("" when absent). False when it is not a string.
static bool read_string(const cJSON *obj, const char *key, char *out, size_t cap, char *err,
                        size_t err_cap) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    out[0] = '\0';
    if (!it || cJSON_IsNull(it)) return true;
    if (!cJSON_IsString(it)) {
        snprintf(err, err_cap, "\"%s\" is not a string", key);
        return false;
    }
    snprintf(out, cap, "%s", it->valuestring);
    return true;
}

// obj's boolean `key` (true/false, or 0/1) into *v (def when absent). False otherwise.
static bool read_bool(const cJSON *obj, const char *key, bool def, bool *v, char *err, size_t cap) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *v = def;
    if (!it) return true;
    if (cJSON_IsBool(it)) {
        *v = cJSON_IsTrue(it);
        return true;
    }
    if (cJSON_IsNumber(it) && (it->valuedouble == 0 || it->valuedouble == 1)) {
        *v = it->valuedouble == 1;
        return true;
    }
    snprintf(err, cap, "\"%s\" is not true or false", key);
    return false;
}

// Parse one line into r. Returns false with what is wrong in err[cap].
static bool parse_record(const char *line, BenchRecord *r, char *err, size_t cap) {
    memset(r, 0, sizeof *r);
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o)) {
        snprintf(err, cap, "%s", o ? "not a JSON object" : "not valid JSON");
        cJSON_Delete(o);
        return false;
    }
    double big = 1e300, v[10];
    NumberKey keys[10] = {
        {"seq_len", true, true, 1, 1 << 30},     {"batch_size", false, true, 1, 1 << 30},
        {"grad_accum", false, true, 1, 1 << 30}, {"bench_steps", false, true, 0, 1 << 30},
        {"params", false, false, 0, big},        {"first_step_s", false, false, 0, big},
        {"step_s", false, false, 0, big},        {"mfu", false, false, 0, big},
        {"tok_per_s", true, false, 0, big},      {"peak_mem_bytes", true, false, 0, big}};
    double defaults[10] = {0, 1, 1, 0, NAN, NAN, NAN, NAN, NAN, NAN};
    bool ok = read_bool(o, "ok", true, &r->ok, err, cap) &&
              read_bool(o, "recompute", false, &r->recompute, err, cap) &&
              read_string(o, "config", r->config, sizeof r->config, err, cap) &&
              read_string(o, "name", r->name, sizeof r->name, err, cap) &&
              read_string(o, "family", r->family, sizeof r->family, err, cap) &&
              read_string(o, "device", r->device, sizeof r->device, err, cap) &&
              read_string(o, "backend", r->backend, sizeof r->backend, err, cap) &&
              read_string(o, "commit", r->commit, sizeof r->commit, err, cap) &&
              read_string(o, "error", r->error, sizeof r->error, err, cap);
    if (!r->ok) keys[8].required = keys[9].required = false; // a failed run: no speed, memory
    for (int i = 0; i < 10 && ok; i++) ok = read_number(o, &keys[i], defaults[i], &v[i], err, cap);
    cJSON_Delete(o);
    if (!ok) return false;
    fill_name(r);
    if (!r->name[0]) {
        snprintf(err, cap, "neither \"name\", \"config\" nor \"family\" names the run");
        return false;
    }
    r->seq_len = (int)v[0], r->batch_size = (int)v[1], r->grad_accum = (int)v[2];
    r->bench_steps = (int)v[3], r->params = v[4], r->first_step_s = v[5], r->step_s = v[6];
    r->mfu = v[7], r->tok_per_s = v[8], r->peak_mem_bytes = v[9];
    return true;
}

// Whether a and b measure the same run (a later record replaces an earlier one).
static bool same_run(const BenchRecord *a, const BenchRecord *b) {
    return strcmp(a->name, b->name) == 0 && a->seq_len == b->seq_len &&
           a->batch_size == b->batch_size && a->grad_accum == b->grad_accum &&
           a->recompute == b->recompute && bench_same_device(a, b);
}

bool bench_same_device(const BenchRecord *a, const BenchRecord *b) {
    return !a->device[0] || !b->device[0] || strcmp(a->device, b->device) == 0;
}

void bench_load(BenchFile *b, const char *path) {
    memset(b, 0, sizeof *b);
    check(file_size(path) >= 0, "%s: no such bench file", path);
    char *text = read_file(path, NULL);
    int lineno = 0, cap = 0;
    char *line, *cursor = text;
    while ((line = next_line(&cursor))) {
        lineno++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        BenchRecord r;
        char err[160];
        if (!parse_record(line, &r, err, sizeof err)) die("%s:%d: %s", path, lineno, err);
        int i = 0;
        while (i < b->n && !same_run(&b->rec[i], &r)) i++;
        if (i == b->n && b->n == cap) {
            cap = cap ? 2 * cap : 64;
            b->rec = xrealloc(b->rec, (size_t)cap * sizeof(BenchRecord));
        }
        b->rec[i] = r;
        if (i == b->n) b->n++;
    }
    free(text);
    check(b->n > 0, "%s: no bench records (write them with bolt bench train --json=%s)", path,
          path);
}

void bench_free(BenchFile *b) {
    free(b->rec);
    memset(b, 0, sizeof *b);
}

// ---- The table ------------------------------------------------------------------------

// A record's place in the table: its config's first appearance, then seq_len, batch size
// and recompute.
typedef struct RowKey {
    int config, seq_len, batch_size, recompute, index;
} RowKey;

// qsort's order of RowKeys.
static int compare_rows(const void *pa, const void *pb) {
    const RowKey *a = pa, *b = pb;
    int d[5] = {a->config - b->config, a->seq_len - b->seq_len, a->batch_size - b->batch_size,
                a->recompute - b->recompute, a->index - b->index};
    for (int i = 0; i < 5; i++)
        if (d[i]) return d[i] < 0 ? -1 : 1;
    return 0;
}

// v rounded to a whole number with thousands separators: "166,504".
static void with_commas(double v, char *out, size_t cap) {
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    int n = (int)strlen(digits), o = 0;
    for (int i = 0; i < n && o + 2 < (int)cap; i++) {
        out[o++] = digits[i];
        if (i < n - 1 && (n - 1 - i) % 3 == 0) out[o++] = ',';
    }
    out[o] = '\0';
}

// The distinct non-empty values of one string field, joined by ", ", into out[cap].
static void distinct(const BenchFile *b, size_t offset, char *out, size_t cap, int *count) {
    out[0] = '\0';
    *count = 0;
    for (int i = 0; i < b->n; i++) {
        const char *s = (const char *)&b->rec[i] + offset;
        bool seen = !s[0];
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(s, (const char *)&b->rec[j] + offset) == 0;
        if (seen) continue;
        size_t k = strlen(out);
        snprintf(out + k, cap - k, "%s%s", *count ? ", " : "", s);
        (*count)++;
    }
}

void bench_print_table(const BenchFile *b, FILE *f) {
    char devices[512], commits[256];
    int n_devices, n_commits;
    distinct(b, offsetof(BenchRecord, device), devices, sizeof devices, &n_devices);
    distinct(b, offsetof(BenchRecord, commit), commits, sizeof commits, &n_commits);
    fprintf(f, "bench train on %s%s%s\n\n", n_devices ? devices : "an unrecorded device",
            n_commits ? ", commit " : "", commits);
    RowKey *rows = xmalloc((size_t)b->n * sizeof(RowKey));
    for (int i = 0; i < b->n; i++) {
        int first = 0;
        while (strcmp(b->rec[first].name, b->rec[i].name) != 0) first++;
        rows[i] = (RowKey){first, b->rec[i].seq_len, b->rec[i].batch_size, b->rec[i].recompute, i};
    }
    qsort(rows, (size_t)b->n, sizeof(RowKey), compare_rows);
    bool device_column = n_devices > 1;
    fprintf(f, "| config |%s seq_len | batch | recompute | step ms | tok/s | MFU | peak GiB |\n",
            device_column ? " device |" : "");
    fprintf(f, "|---|%s---:|---:|---|---:|---:|---:|---:|\n", device_column ? "---|" : "");
    for (int i = 0; i < b->n; i++) {
        const BenchRecord *r = &b->rec[rows[i].index];
        fprintf(f, "| %s |", r->name);
        if (device_column) fprintf(f, " %s |", r->device);
        fprintf(f, " %d | %d", r->seq_len, r->batch_size);
        if (r->grad_accum > 1) fprintf(f, " x %d", r->grad_accum); // accumulated micro-batches
        fprintf(f, " | %s |", r->recompute ? "yes" : "no");
        if (!r->ok) {
            fprintf(f, " failed%s%s | - | - | - |\n", r->error[0] ? ": " : "", r->error);
            continue;
        }
        char step[32] = "-", tok[32], mfu[32] = "-";
        if (isfinite(r->step_s)) snprintf(step, sizeof step, "%.2f", r->step_s * 1e3);
        with_commas(r->tok_per_s, tok, sizeof tok);
        if (isfinite(r->mfu)) snprintf(mfu, sizeof mfu, "%.1f%%", 100 * r->mfu);
        fprintf(f, " %s | %s | %s | %.2f |\n", step, tok, mfu,
                r->peak_mem_bytes / (1024.0 * 1024 * 1024));
    }
    free(rows);
}
