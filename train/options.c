// train/options.c: the option-table machinery every command parses with (options.h).
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"

// Lower-case, with '-' read as '_', so "Batch-Size" is one edit-free step from batch_size.
static char fold_char(char ch) {
    return ch == '-' ? '_' : (char)tolower((unsigned char)ch);
}

// Edit distance (insertions, deletions, substitutions) between a and b, after fold_char.
static int edit_distance(const char *a, const char *b) {
    enum { MAX_LEN = 128 };
    int na = (int)strlen(a), nb = (int)strlen(b);
    if (na >= MAX_LEN || nb >= MAX_LEN) return INT_MAX;
    int prev[MAX_LEN], cur[MAX_LEN];
    for (int j = 0; j <= nb; j++) prev[j] = j;
    for (int i = 1; i <= na; i++) {
        cur[0] = i;
        for (int j = 1; j <= nb; j++) {
            int cost = fold_char(a[i - 1]) == fold_char(b[j - 1]) ? 0 : 1;
            int best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, sizeof(int) * (size_t)(nb + 1));
    }
    return prev[nb];
}

// How many edits still count as a typo of `candidate`: 1, plus one per 3 characters.
static bool close_enough(const char *name, const char *candidate, int distance) {
    size_t n = strlen(name) > strlen(candidate) ? strlen(name) : strlen(candidate);
    return distance <= 1 + (int)(n / 3);
}

const char *nearest_name(const char *name, const char *const *names, int n) {
    const char *best = NULL;
    int best_distance = INT_MAX;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, names[i]);
        if (d < best_distance && close_enough(name, names[i], d)) {
            best = names[i];
            best_distance = d;
        }
    }
    return best;
}

const char *option_nearest(const OptionTable *t, const char *name) {
    const char *best = NULL;
    int best_distance = INT_MAX;
    for (int i = 0; i < t->count; i++) {
        int d = edit_distance(name, t->options[i].name);
        if (d < best_distance && close_enough(name, t->options[i].name, d)) {
            best = t->options[i].name;
            best_distance = d;
        }
    }
    for (int i = 0; i < t->n_aliases; i++) {
        int d = edit_distance(name, t->aliases[i][0]);
        if (d < best_distance && close_enough(name, t->aliases[i][0], d)) {
            best = t->aliases[i][1];
            best_distance = d;
        }
    }
    return best;
}

const Option *option_find(const OptionTable *t, const char *name) {
    for (int i = 0; i < t->count; i++) {
        if (strcmp(t->options[i].name, name) == 0) return &t->options[i];
    }
    return NULL;
}

// The index of `value` among the '|'-separated `choices`, or -1.
static int choice_index(const char *value, const char *choices) {
    size_t n = strlen(value);
    const char *p = choices;
    for (int i = 0; *p; i++) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0) return i;
        if (!end) break;
        p = end + 1;
    }
    return -1;
}

// Choice `index` of "a|b|c" into out ("?" if there is no such choice).
static void choice_name(const char *choices, int index, char *out, size_t size) {
    const char *p = choices;
    for (int i = 0; i < index && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) {
        snprintf(out, size, "?");
        return;
    }
    const char *end = strchr(p, '|');
    snprintf(out, size, "%.*s", (int)(end ? (size_t)(end - p) : strlen(p)), p);
}

// "a|b|c" -> "a, b, c" for messages.
static void list_choices(const char *choices, char *out, size_t size) {
    size_t o = 0;
    for (const char *p = choices; *p && o + 3 < size; p++) {
        if (*p == '|') {
            out[o++] = ',';
            out[o++] = ' ';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

// Parse a whole base-10 integer (no leading space or sign games); false on junk or
// overflow.
static bool parse_integer(const char *s, long long *out) {
    if (s[0] == '\0' || isspace((unsigned char)s[0])) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno == ERANGE) return false;
    *out = v;
    return true;
}

// Parse a whole finite number (3e-4 style accepted); false on junk or overflow.
static bool parse_number(const char *s, double *out) {
    if (s[0] == '\0' || isspace((unsigned char)s[0])) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

// Parse a whole unsigned 64-bit integer (seeds); false on a sign, junk or overflow.
static bool parse_u64(const char *s, uint64_t *out) {
    if (!isdigit((unsigned char)s[0])) return false; // strtoull would accept "-1"
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE) return false;
    *out = (uint64_t)v;
    return true;
}

// Parse 1 / true / 0 / false.
static bool parse_bool(const char *s, bool *out) {
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

// How an option is named in messages: 'lr' in a config file, '--lr' on a command line.
typedef struct Naming {
    const char *origin; // "my.conf:3" or "sample"
    const char *dashes; // "" or "--"
    const char *noun;   // "key" or "option"
} Naming;

// Die with the standard bad-value message.
static _Noreturn void bad_value(const Naming *n, const char *name, const char *value,
                                const char *expected) {
    die("%s: bad value '%s' for %s '%s%s' (expected %s)", n->origin, value, n->noun, n->dashes,
        name, expected);
}

// The largest value an integer option's type holds.
static double type_max(OptionType type) {
    return type == OPT_INT ? (double)INT_MAX : (double)INT64_MAX;
}

// "an integer >= 1", "an integer in 0..1", "a number in [0, 1]": what a number must be.
static void describe_range(const Option *o, char *out, size_t size) {
    bool integer = o->type == OPT_INT || o->type == OPT_INT64;
    const char *what = integer ? "an integer" : "a number";
    if (o->min == 0 && o->max == 0) {
        snprintf(out, size, "%s", what);
    } else if (integer && o->max >= type_max(o->type)) {
        snprintf(out, size, "%s >= %.0f", what, o->min);
    } else if (integer) {
        snprintf(out, size, "%s in %.0f..%.0f", what, o->min, o->max);
    } else if (o->max >= 1e30) {
        snprintf(out, size, "%s >= %g", what, o->min);
    } else {
        snprintf(out, size, "%s in [%g, %g]", what, o->min, o->max);
    }
}

// True if a number is inside the option's range (or the option has none).
static bool in_range(const Option *o, double v) {
    return (o->min == 0 && o->max == 0) || (v >= o->min && v <= o->max);
}

// Parse `value` by the option's type and store it into the struct at base.
static void set_value(const Option *o, void *base, const char *value, const Naming *n) {
    char *field = (char *)base + o->offset;
    char expected[400];
    describe_range(o, expected, sizeof expected);
    switch (o->type) {
    case OPT_INT:
    case OPT_INT64: {
        long long v;
        double lo = o->type == OPT_INT ? (double)INT_MIN : (double)INT64_MIN;
        if (!parse_integer(value, &v) || (double)v < lo || (double)v > type_max(o->type) ||
            !in_range(o, (double)v))
            bad_value(n, o->name, value, expected);
        if (o->type == OPT_INT)
            *(int *)field = (int)v;
        else
            *(int64_t *)field = (int64_t)v;
        break;
    }
    case OPT_FLOAT:
    case OPT_DOUBLE: {
        double v;
        bool ok = parse_number(value, &v) && in_range(o, v);
        if (ok && o->type == OPT_FLOAT) ok = isfinite((float)v);
        if (!ok) bad_value(n, o->name, value, expected);
        if (o->type == OPT_FLOAT)
            *(float *)field = (float)v;
        else
            *(double *)field = v;
        break;
    }
    case OPT_BOOL: {
        bool v;
        if (!parse_bool(value, &v)) bad_value(n, o->name, value, "true, false, 1 or 0");
        *(bool *)field = v;
        break;
    }
    case OPT_U64: {
        uint64_t v;
        if (!parse_u64(value, &v)) bad_value(n, o->name, value, "a non-negative integer");
        *(uint64_t *)field = v;
        break;
    }
    case OPT_STRING:
    case OPT_CHOICE:
    case OPT_INDEX: {
        int index = o->type == OPT_STRING ? 0 : choice_index(value, o->choices);
        if (index < 0) {
            char list[256];
            list_choices(o->choices, list, sizeof list);
            snprintf(expected, sizeof expected, "one of: %s", list);
            bad_value(n, o->name, value, expected);
        }
        if (o->type == OPT_INDEX) {
            *(int *)field = index;
        } else if (o->size == 0) {
            *(const char **)field = value;
        } else {
            size_t len = strlen(value);
            if (len >= o->size) {
                snprintf(expected, sizeof expected, "at most %zu characters", o->size - 1);
                bad_value(n, o->name, value, expected);
            }
            memset(field, 0, o->size); // no stale bytes after the NUL: structs compare equal
            memcpy(field, value, len);
        }
        break;
    }
    }
}

// Die on an unknown option, naming the nearest valid one.
static _Noreturn void unknown_option(const OptionTable *t, const char *name, const Naming *n) {
    const char *near = option_nearest(t, name);
    if (near)
        die("%s: unknown %s '%s%s' (did you mean '%s%s'?)", n->origin, n->noun, n->dashes, name,
            n->dashes, near);
    die("%s: unknown %s '%s%s' (see bolt %s --help)", n->origin, n->noun, n->dashes, name,
        t->command);
}

// Set one option, or die naming the nearest valid one.
static void set_named(const OptionTable *t, void *base, const char *name, const char *value,
                      const Naming *n) {
    const Option *o = option_find(t, name);
    if (!o) unknown_option(t, name, n);
    set_value(o, base, value, n);
}

void option_set(const OptionTable *t, void *base, const char *name, const char *value,
                const char *origin) {
    Naming n = {origin, "", "key"};
    set_named(t, base, name, value, &n);
}

// Shortest text that reads back as exactly v (whole numbers without an exponent).
static void format_float(double v, bool single, char *buf, size_t size) {
    if (v == floor(v) && fabs(v) < 1e9) {
        snprintf(buf, size, "%.0f", v);
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)v : back == v) return;
    }
}

void option_format(const Option *o, const void *base, char *buf, size_t size) {
    const char *field = (const char *)base + o->offset;
    switch (o->type) {
    case OPT_INT:
        snprintf(buf, size, "%d", *(const int *)field);
        break;
    case OPT_INT64:
        snprintf(buf, size, "%lld", (long long)*(const int64_t *)field);
        break;
    case OPT_U64:
        snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case OPT_FLOAT:
        format_float(*(const float *)field, true, buf, size);
        break;
    case OPT_DOUBLE:
        format_float(*(const double *)field, false, buf, size);
        break;
    case OPT_BOOL:
        snprintf(buf, size, "%s", *(const bool *)field ? "true" : "false");
        break;
    case OPT_STRING:
    case OPT_CHOICE: {
        const char *s = o->size == 0 ? *(const char *const *)field : field;
        snprintf(buf, size, "%s", s ? s : "");
        break;
    }
    case OPT_INDEX:
        choice_name(o->choices, *(const int *)field, buf, size);
        break;
    }
}

// "--name=value" -> name into out and a pointer to value (NULL for a bare "--name").
static const char *split_option(const char *arg, char *name, size_t cap, const char *command) {
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
    check(n > 0 && n < cap, "%s: bad option '%s'", command, arg);
    memcpy(name, arg + 2, n);
    name[n] = '\0';
    return eq ? eq + 1 : NULL;
}

int options_scan(const OptionTable *t, const void *defaults, int argc, char **argv, char **args) {
    Naming naming = {t->command, "--", "option"};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            options_usage(t, defaults, stdout);
            return -1;
        }
    }
    int n_args = 0;
    const char *extra = NULL; // the first positional argument past max_args
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0) {
            char name[128];
            const char *value = split_option(a, name, sizeof name, t->command);
            const Option *o = option_find(t, name);
            if (!o) unknown_option(t, name, &naming);
            if (!value && o->type != OPT_BOOL)
                die("%s: '%s' has no value: write %s=VALUE ('--name value' is not supported)",
                    t->command, a, a);
        } else if (a[0] == '-' && a[1] != '\0') {
            die("%s: unknown option '%s' (options are --name=value; see bolt %s --help)",
                t->command, a, t->command);
        } else if (n_args < t->max_args) {
            args[n_args++] = argv[i];
        } else if (!extra) {
            extra = a;
        }
    }
    // Counted after every option name is known good, so a misspelt option is reported as
    // such wherever it stands.
    if (extra && t->max_args == 0)
        die("%s: unexpected argument '%s' (this command takes only --options)", t->command, extra);
    if (extra)
        die("%s: unexpected argument '%s' (expected %s; see bolt %s --help)", t->command, extra,
            t->args, t->command);
    if (n_args < t->min_args)
        die("%s: missing %s (usage: bolt %s %s [--option=value ...])", t->command, t->args,
            t->command, t->args);
    return n_args;
}

void options_apply(const OptionTable *t, void *base, int argc, char **argv) {
    Naming naming = {t->command, "--", "option"};
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) continue;
        char name[128];
        const char *value = split_option(argv[i], name, sizeof name, t->command);
        set_named(t, base, name, value ? value : "true", &naming);
    }
}

int options_parse(const OptionTable *t, void *base, int argc, char **argv, char **args) {
    int n = options_scan(t, base, argc, argv, args);
    if (n >= 0) options_apply(t, base, argc, argv);
    return n;
}

void options_check_ranges(const OptionTable *t, const void *base, const char *origin) {
    for (int i = 0; i < t->count; i++) {
        const Option *o = &t->options[i];
        if (o->type != OPT_INT) continue;
        int v = *(const int *)((const char *)base + o->offset);
        if (in_range(o, v)) continue;
        if (o->max >= INT_MAX) die("%s: %s = %d must be >= %.0f", origin, o->name, v, o->min);
        die("%s: %s = %d must be in %.0f..%.0f", origin, o->name, v, o->min, o->max);
    }
}

// Print `text` from column `column` on, wrapped at word boundaries before column 100,
// continuation lines indented to `column`.
static void print_wrapped(FILE *f, const char *text, int column) {
    enum { WIDTH = 100 };
    int at = column;
    const char *p = text;
    while (*p) {
        const char *word_end = strchr(p, ' ');
        int len = word_end ? (int)(word_end - p) : (int)strlen(p);
        if (at > column && at + 1 + len > WIDTH) {
            fprintf(f, "\n%*s", column, "");
            at = column;
        } else if (at > column) {
            fputc(' ', f);
            at++;
        }
        fprintf(f, "%.*s", len, p);
        at += len;
        p += len;
        while (*p == ' ') p++;
    }
    fputc('\n', f);
}

void options_usage(const OptionTable *t, const void *defaults, FILE *f) {
    fprintf(f, "usage: bolt %s%s%s [--option=value ...]\n\n%s\n", t->command, t->args[0] ? " " : "",
            t->args, t->about);
    if (t->count > 0) fprintf(f, "\noptions (--name=default):\n");
    char value[600], left[700], list[256], help[1024];
    for (int i = 0; i < t->count; i++) {
        const Option *o = &t->options[i];
        if (o->section) fprintf(f, "\n%s:\n", o->section);
        option_format(o, defaults, value, sizeof value);
        snprintf(left, sizeof left, "--%s=%s", o->name, value[0] ? value : "\"\"");
        snprintf(help, sizeof help, "%s", o->help);
        if (o->type == OPT_CHOICE || o->type == OPT_INDEX) {
            list_choices(o->choices, list, sizeof list);
            size_t n = strlen(help);
            snprintf(help + n, sizeof help - n, " (one of: %s)", list);
        }
        int width = fprintf(f, "  %-28s ", left);
        print_wrapped(f, help, width);
    }
}

void options_print(const OptionTable *t, const void *base, FILE *f) {
    char value[1024];
    for (int i = 0; i < t->count; i++) {
        const Option *o = &t->options[i];
        if (o->section) fprintf(f, "%s# %s\n", i ? "\n" : "", o->section);
        option_format(o, base, value, sizeof value);
        if (value[0])
            fprintf(f, "%s = %s\n", o->name, value);
        else
            fprintf(f, "%s =\n", o->name);
    }
}

// Compute commands default to one thread per online core that other work is not already
// using: the cores OpenMP may run on (the affinity mask, so taskset and mpirun binding
// count) minus the 1-minute load average, at least 1. OpenMP threads spin-wait at every
// barrier, so one more thread than there are free cores makes every parallel region wait
// for a descheduled thread: on a 2-core machine shared with one busy job, sampling with 2
// threads ran 90x slower than with 1. OMP_NUM_THREADS, when set, is respected as it is.
int default_threads(void) {
    int procs = omp_get_num_procs();
    double load[1];
    int busy = getloadavg(load, 1) == 1 ? (int)(load[0] + 0.5) : 0;
    int n = procs - busy;
    return n < 1 ? 1 : n;
}

void set_threads(int threads) {
    omp_set_dynamic(0); // exactly the threads asked for, every region
    if (threads > 0)
        omp_set_num_threads(threads);
    else if (!getenv("OMP_NUM_THREADS"))
        omp_set_num_threads(default_threads());
}
