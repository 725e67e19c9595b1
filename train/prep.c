// train/prep.c: `bolt prep`: tokenize text files and jsonl into llm.c shards, with the last
// documents held out as a validation split.
//
// Every text file is one document; every non-blank line of a .jsonl file is one document
// (the string in field --text_field). Like llm.c, an EOT token goes before each document.
// The inputs are read twice: a first pass counts (and validates) the documents, so a bad
// jsonl line stops the run before any shard is written and the split point is known; the
// second pass tokenizes and streams tokens into shards of at most --shard_tokens tokens.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../core/util.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "commands.h"

typedef struct PrepArgs {
    const char *tokenizer;
    const char *out;
    const char *name; // NULL: basename of the first input without extension
    double val_fraction;
    int64_t shard_tokens;
    bool zstd;
    const char *text_field;
    int ninputs;
    char **inputs;
} PrepArgs;

static void prep_usage(FILE *f) {
    fprintf(f, "usage: bolt prep --tokenizer=byte|FILE --out=DIR [options] INPUTS...\n"
               "\n"
               "Tokenize documents into llm.c token shards: DIR/NAME_train_000000.bin, ...\n"
               "and DIR/NAME_val_000000.bin. Each text file is one document; each line of a\n"
               ".jsonl file is one JSON object holding a document. An end-of-text token is\n"
               "written before every document. The last documents form the validation split.\n"
               "\n"
               "  --tokenizer=SPEC      byte (vocab 256, EOT 0), a tokenizer.json (or a\n"
               "                        directory holding one) or a .tiktoken ranks file\n"
               "  --out=DIR             output directory (created if missing)\n"
               "  --name=NAME           shard name prefix (default: first input's basename\n"
               "                        without extension)\n"
               "  --val_fraction=F      fraction of documents for validation, 0 <= F < 1\n"
               "                        (default 0.01; at least 1 document when F > 0 and\n"
               "                        there are 2 or more)\n"
               "  --shard_tokens=N      at most N tokens per shard (default 100000000)\n"
               "  --zstd                write zstd-compressed shards (.bin.zst)\n"
               "  --text_field=KEY      jsonl field holding the text (default text)\n"
               "  --help                show this help\n");
}

// The value of "--key=value" if arg is that option, else NULL.
static const char *option_value(const char *arg, const char *key) {
    size_t n = strlen(key);
    if (strncmp(arg, key, n) == 0 && arg[n] == '=') return arg + n + 1;
    return NULL;
}

static double parse_fraction(const char *flag, const char *s) {
    char *end;
    double v = strtod(s, &end);
    check(*s != '\0' && *end == '\0', "prep: %s: '%s' is not a number", flag, s);
    check(v >= 0 && v < 1, "prep: %s: %s must be in [0, 1)", flag, s);
    return v;
}

static int64_t parse_count(const char *flag, const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    check(*s != '\0' && *end == '\0', "prep: %s: '%s' is not an integer", flag, s);
    check(v >= 1, "prep: %s: %s must be at least 1", flag, s);
    return (int64_t)v;
}

// Fill `a` from argv (the arguments after "prep"); false if --help was asked for.
static bool parse_args(int argc, char **argv, PrepArgs *a) {
    *a = (PrepArgs){.val_fraction = 0.01, .shard_tokens = 100000000, .text_field = "text"};
    a->inputs = xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof(char *));
    const char *v;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return false;
        if ((v = option_value(arg, "--tokenizer"))) {
            a->tokenizer = v;
        } else if ((v = option_value(arg, "--out"))) {
            a->out = v;
        } else if ((v = option_value(arg, "--name"))) {
            a->name = v;
        } else if ((v = option_value(arg, "--val_fraction"))) {
            a->val_fraction = parse_fraction("--val_fraction", v);
        } else if ((v = option_value(arg, "--shard_tokens"))) {
            a->shard_tokens = parse_count("--shard_tokens", v);
        } else if ((v = option_value(arg, "--text_field"))) {
            a->text_field = v;
        } else if (strcmp(arg, "--zstd") == 0) {
            a->zstd = true;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            die("prep: unknown option '%s' (see bolt prep --help)", arg);
        } else {
            a->inputs[a->ninputs++] = argv[i];
        }
    }
    check(a->tokenizer != NULL, "prep: --tokenizer=byte|FILE is required (see bolt prep --help)");
    check(a->out != NULL && a->out[0] != '\0', "prep: --out=DIR is required");
    check(a->ninputs > 0, "prep: no input files given");
    check(a->text_field[0] != '\0', "prep: --text_field must not be empty");
    check(a->name == NULL || (a->name[0] != '\0' && !strchr(a->name, '/')),
          "prep: --name must be a non-empty file name without '/'");
    return true;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// "dir/corpus.txt" -> "corpus" (written into out).
static void default_name(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
    if (out[0] == '\0') snprintf(out, cap, "data");
}

// Where the token stream goes: the current split's partial shard and the counters.
typedef struct Prep {
    const PrepArgs *args;
    const char *name;
    Tokenizer tok;
    bool force_wide;       // vocab > 65536: uint32 shards for every file, never a mix
    int64_t ndocs, ntrain; // documents in all; documents in the train split
    int64_t doc;           // documents tokenized so far
    int split;             // 0 train, 1 val
    int shard_index;       // next shard number of the split
    uint32_t *buf;         // tokens of the shard being filled
    int64_t nbuf, capbuf;
    uint32_t *ids; // scratch for one document's ids
    size_t nids, capids;
    int64_t text_bytes;
    int64_t split_tokens[2];
    int files;
} Prep;

static const char *split_names[2] = {"train", "val"};

// Write the buffered tokens as the split's next shard.
static void flush_shard(Prep *p) {
    if (p->nbuf == 0) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s_%06d.bin%s", p->args->out, p->name, split_names[p->split],
             p->shard_index, p->args->zstd ? ".zst" : "");
    shard_write(path, p->buf, p->nbuf, p->force_wide, p->args->zstd);
    printf("prep: wrote %s (%lld tokens)\n", path, (long long)p->nbuf);
    p->split_tokens[p->split] += p->nbuf;
    p->shard_index++;
    p->files++;
    p->nbuf = 0;
}

// Append tokens to the current split, starting a new shard whenever one is full.
static void push_tokens(Prep *p, const uint32_t *ids, size_t n) {
    for (size_t i = 0; i < n;) {
        if (p->nbuf == p->args->shard_tokens) flush_shard(p);
        if (p->nbuf == p->capbuf) {
            int64_t cap = p->capbuf ? 2 * p->capbuf : 1 << 16;
            if (cap > p->args->shard_tokens) cap = p->args->shard_tokens;
            p->buf = xrealloc(p->buf, (size_t)cap * sizeof(uint32_t));
            p->capbuf = cap;
        }
        int64_t room = p->capbuf - p->nbuf;
        int64_t m = (int64_t)(n - i) < room ? (int64_t)(n - i) : room;
        memcpy(p->buf + p->nbuf, ids + i, (size_t)m * sizeof(uint32_t));
        p->nbuf += m;
        i += (size_t)m;
    }
}

// One document: EOT, then its tokens; the first validation document switches the split.
static void add_document(Prep *p, const char *text, size_t len) {
    if (p->doc == p->ntrain && p->split == 0) {
        flush_shard(p);
        p->split = 1;
        p->shard_index = 0;
    }
    p->nids = 0;
    uint32_t eot = (uint32_t)p->tok.eot;
    push_tokens(p, &eot, 1);
    tokenizer_encode(&p->tok, text, len, &p->ids, &p->nids, &p->capids);
    push_tokens(p, p->ids, p->nids);
    p->text_bytes += (int64_t)len;
    p->doc++;
}

// Visit every document of every input (p == NULL: only count and validate); returns the
// number of documents.
static int64_t visit_documents(const PrepArgs *a, Prep *p) {
    int64_t count = 0;
    for (int i = 0; i < a->ninputs; i++) {
        const char *path = a->inputs[i];
        if (!has_suffix(path, ".jsonl")) {
            if (p) {
                size_t len;
                char *text = read_file(path, &len);
                add_document(p, text, len);
                free(text);
            } else {
                check(file_size(path) >= 0, "%s: input file not found", path);
            }
            count++;
            continue;
        }
        FILE *f = xfopen(path, "rb");
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        long long lineno = 0;
        while ((len = getline(&line, &cap, f)) >= 0) {
            lineno++;
            size_t n = (size_t)len;
            bool blank = true;
            for (size_t k = 0; k < n && blank; k++) blank = isspace((unsigned char)line[k]);
            if (blank) continue;
            cJSON *obj = cJSON_ParseWithLength(line, n);
            check(obj != NULL, "%s:%lld: not valid JSON", path, lineno);
            cJSON *field = cJSON_GetObjectItemCaseSensitive(obj, a->text_field);
            check(cJSON_IsObject(obj) && cJSON_IsString(field) && field->valuestring,
                  "%s:%lld: no string field \"%s\"", path, lineno, a->text_field);
            if (p) add_document(p, field->valuestring, strlen(field->valuestring));
            cJSON_Delete(obj);
            count++;
        }
        check(!ferror(f), "%s: read error", path);
        free(line);
        fclose(f);
    }
    return count;
}

int prep_main(int argc, char **argv) {
    PrepArgs a;
    if (!parse_args(argc, argv, &a)) {
        prep_usage(stdout);
        free(a.inputs);
        return 0;
    }
    double t0 = now_seconds();
    char name[1024];
    if (a.name)
        snprintf(name, sizeof name, "%s", a.name);
    else
        default_name(a.inputs[0], name, sizeof name);

    Prep p = {.args = &a, .name = name};
    p.ndocs = visit_documents(&a, NULL);
    check(p.ndocs > 0, "prep: the inputs hold no documents");
    int64_t nval = 0;
    if (a.val_fraction > 0 && p.ndocs >= 2) {
        nval = (int64_t)(a.val_fraction * (double)p.ndocs + 0.5);
        if (nval < 1) nval = 1;
        if (nval > p.ndocs - 1) nval = p.ndocs - 1;
    }
    p.ntrain = p.ndocs - nval;

    p.tok = tokenizer_load(a.tokenizer);
    p.force_wide = p.tok.vocab_size > 65536;
    make_dirs(a.out);
    visit_documents(&a, &p);
    flush_shard(&p);

    double seconds = now_seconds() - t0;
    int64_t tokens = p.split_tokens[0] + p.split_tokens[1];
    printf("prep: %lld documents (%lld train, %lld val), %lld bytes -> %lld tokens (train "
           "%lld, val %lld), %d files in %s, %.2f s, %.1f MB/s\n",
           (long long)p.ndocs, (long long)p.ntrain, (long long)nval, (long long)p.text_bytes,
           (long long)tokens, (long long)p.split_tokens[0], (long long)p.split_tokens[1], p.files,
           a.out, seconds, seconds > 0 ? (double)p.text_bytes / seconds / 1e6 : 0.0);
    if (a.val_fraction > 0 && nval == 0)
        printf("prep: note: a single document, so no validation split was written\n");
    tokenizer_free(&p.tok);
    free(p.buf);
    free(p.ids);
    free(a.inputs);
    return 0;
}
