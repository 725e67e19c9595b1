// tests/test_prep.c: `bolt prep`: the train/val split, shard naming and sizes, jsonl and
// .jsonl.zst inputs (round trip, corrupt and truncated zstd), inputs that must fail before
// any shard is written (a directory, a corrupt or truncated .txt.zst), --text_field, identical
// shards for every --threads, the unigram entropy in the summary, the progress bar, and an
// interrupted run that must leave only complete shards and no temp file. Arguments and
// inputs that stop prep at once: tests/test_prep_args.c.
#include <glob.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "../data/shard.h"
#include "../train/commands.h"
#include "testing.h"

static int run_prep(int argc, const char **argv) {
    return prep_main(argc, (char **)argv);
}

// Run prep in a child process with stdout and stderr sent to files (NULL: /dev/null);
// returns the wait status.
static int run_prep_child(int argc, const char **argv, const char *out_path, const char *err_path) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(out_path ? out_path : "/dev/null", "w", stdout)) _exit(3);
        if (!freopen(err_path ? err_path : "/dev/null", "w", stderr)) _exit(3);
        int rc = run_prep(argc, argv); // a failure exits 1 through die first
        fflush(stdout);
        fflush(stderr);
        _exit(rc == 0 ? 0 : 2);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

// A growable byte buffer for building inputs.
typedef struct Buf {
    char *p;
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const void *src, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void buf_puts(Buf *b, const char *s) {
    buf_put(b, s, strlen(s));
}

// A random document of about `len` bytes: words of printable ASCII with spaces, newlines,
// tabs, quotes, backslashes, control bytes and 2-byte UTF-8 ("\xc3\xa9"), never NUL.
static void random_doc(Rng *rng, size_t len, Buf *out) {
    out->n = 0;
    buf_puts(out, "");
    while (out->n < len) {
        uint64_t r = rng_next(rng) % 100;
        if (r < 70) {
            char c = (char)('a' + rng_next(rng) % 26);
            buf_put(out, &c, 1);
        } else if (r < 82) {
            buf_puts(out, " ");
        } else if (r < 86) {
            buf_puts(out, "\n");
        } else if (r < 88) {
            buf_puts(out, "\t");
        } else if (r < 90) {
            buf_puts(out, "\"");
        } else if (r < 92) {
            buf_puts(out, "\\");
        } else if (r < 93) {
            char c = (char)(1 + rng_next(rng) % 31); // a control byte
            buf_put(out, &c, 1);
        } else if (r < 97) {
            buf_puts(out, "\xc3\xa9");
        } else {
            char c = (char)(32 + rng_next(rng) % 95);
            buf_put(out, &c, 1);
        }
    }
}

// `s` as a JSON string (written independently of cJSON); "\xc3\xa9" becomes \u00e9 at random.
static void put_json_string(Buf *b, const char *s, size_t n, Rng *rng) {
    buf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"') {
            buf_puts(b, "\\\"");
        } else if (c == '\\') {
            buf_puts(b, "\\\\");
        } else if (c == '\n') {
            buf_puts(b, "\\n");
        } else if (c == '\t') {
            buf_puts(b, "\\t");
        } else if (c < 32) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_puts(b, esc);
        } else if (c == 0xC3 && i + 1 < n && (unsigned char)s[i + 1] == 0xA9 && rng_next(rng) % 2) {
            buf_puts(b, "\\u00e9");
            i++;
        } else {
            buf_put(b, &s[i], 1);
        }
    }
    buf_puts(b, "\"");
}

// A corpus of random documents and its jsonl text ({"id": i, "text": doc}, with blank
// lines here and there); docs[i] and lens[i] are what prep must tokenize.
typedef struct Corpus {
    int ndocs;
    char **docs;
    size_t *lens;
    Buf jsonl;
} Corpus;

static Corpus random_corpus(Rng *rng, int ndocs, size_t max_len, const char *field) {
    Corpus c = {.ndocs = ndocs};
    c.docs = xmalloc((size_t)ndocs * sizeof(char *));
    c.lens = xmalloc((size_t)ndocs * sizeof(size_t));
    Buf doc = {0};
    for (int i = 0; i < ndocs; i++) {
        random_doc(rng, (size_t)(rng_next(rng) % max_len), &doc);
        c.docs[i] = xmalloc(doc.n + 1);
        memcpy(c.docs[i], doc.p, doc.n + 1);
        c.lens[i] = doc.n;
        char head[64];
        snprintf(head, sizeof head, "{\"id\": %d, \"%s\": ", i, field);
        buf_puts(&c.jsonl, head);
        put_json_string(&c.jsonl, doc.p, doc.n, rng);
        buf_puts(&c.jsonl, rng_next(rng) % 10 == 0 ? "}\r\n\n" : "}\n");
    }
    free(doc.p);
    return c;
}

static void free_corpus(Corpus *c) {
    for (int i = 0; i < c->ndocs; i++) free(c->docs[i]);
    free(c->docs);
    free(c->lens);
    free(c->jsonl.p);
}

// zstd-compress n bytes into path as two frames (cut at n/3), with checksums.
static void write_zstd(const char *path, const char *src, size_t n) {
    size_t cut = n / 3, cap = ZSTD_compressBound(n) + ZSTD_compressBound(0) * 2;
    char *dst = xmalloc(cap);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    size_t a = ZSTD_compress2(cctx, dst, cap, src, cut);
    ck_assert(!ZSTD_isError(a));
    size_t b = ZSTD_compress2(cctx, dst + a, cap - a, src + cut, n - cut);
    ck_assert(!ZSTD_isError(b));
    write_bytes(path, dst, a + b);
    ZSTD_freeCCtx(cctx);
    free(dst);
}

// Concatenated tokens of the shards matching pattern (sorted), and how many files.
static uint32_t *read_split(const char *pattern, int64_t *n, int *files, int64_t max_shard) {
    glob_t g;
    *n = 0;
    *files = 0;
    uint32_t *all = NULL;
    if (glob(pattern, 0, NULL, &g) != 0) return NULL;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int64_t m;
        uint32_t *t = shard_read(g.gl_pathv[i], &m);
        if (i + 1 < g.gl_pathc) ck_assert_int_eq(m, max_shard); // only the last is short
        ck_assert_int_le(m, max_shard);
        all = xrealloc(all, (size_t)(*n + m) * sizeof(uint32_t));
        memcpy(all + *n, t, (size_t)m * sizeof(uint32_t));
        *n += m;
        free(t);
    }
    *files = (int)g.gl_pathc;
    globfree(&g);
    return all;
}

// The expected byte-tokenizer stream of documents: EOT (0), then each non-NUL byte.
static uint32_t *expected_stream(const char *const *docs, const size_t *lens, int ndocs,
                                 int64_t *n) {
    size_t total = 0;
    for (int i = 0; i < ndocs; i++) total += 1 + lens[i];
    uint32_t *out = xmalloc((total + 1) * sizeof(uint32_t));
    *n = 0;
    for (int i = 0; i < ndocs; i++) {
        out[(*n)++] = 0;
        for (size_t k = 0; k < lens[i]; k++)
            if (docs[i][k] != 0) out[(*n)++] = (unsigned char)docs[i][k];
    }
    return out;
}

static void check_split(const char *pattern, const char *const *docs, const size_t *lens, int ndocs,
                        int64_t shard_tokens, int want_files) {
    int64_t n, m;
    int files;
    uint32_t *got = read_split(pattern, &n, &files, shard_tokens);
    uint32_t *want = expected_stream(docs, lens, ndocs, &m);
    if (want_files >= 0) ck_assert_int_eq(files, want_files);
    ck_assert_int_eq(n, m);
    ck_assert(n == 0 || memcmp(got, want, (size_t)n * sizeof(uint32_t)) == 0);
    free(got);
    free(want);
}

// ---------------------------------------------------------------------------------------
// Split, naming and errors

START_TEST(test_prep_split) {
    const char *dir = new_dir();
    char *a = path_in(dir, "alpha.txt"), *b = path_in(dir, "beta.txt");
    char *j = path_in(dir, "docs.jsonl");
    const char doc_a[] = "Hello, world!\nA second line.\n";
    const char doc_b[] = {'n', 'u', 'l', 0, 'l', '\n', (char)0xC3, (char)0xA9};
    write_bytes(a, doc_a, strlen(doc_a));
    write_bytes(b, doc_b, sizeof doc_b);
    const char *jsonl = "{\"text\": \"first json doc\", \"id\": 1}\n"
                        "\n"
                        "{\"id\": 2, \"text\": \"line\\nwith \\\"quotes\\\" and \\u00e9\"}\r\n"
                        "{\"text\": \"last one\"}";
    write_bytes(j, jsonl, strlen(jsonl));
    const char *docs[5] = {doc_a, doc_b, "first json doc", "line\nwith \"quotes\" and \xc3\xa9",
                           "last one"};
    size_t lens[5] = {strlen(doc_a), sizeof doc_b, 14, strlen(docs[3]), 8};
    for (int zstd = 0; zstd < 2; zstd++) {
        char out[300];
        snprintf(out, sizeof out, "%s/out%d", dir, zstd);
        char out_flag[320];
        snprintf(out_flag, sizeof out_flag, "--out=%s", out);
        const char *argv[] = {"--tokenizer=byte",
                              out_flag,
                              "--val_fraction=0.4",
                              "--shard_tokens=16",
                              a,
                              b,
                              j,
                              zstd ? "--zstd" : "--name=alpha"};
        ck_assert_int_eq(run_prep(8, argv), 0);
        // 5 documents, 40% -> the last 2 are validation; default name = "alpha".
        int64_t train_tokens = 0;
        for (int i = 0; i < 3; i++) train_tokens += 1 + (int64_t)lens[i] - (i == 1);
        int train_files = (int)((train_tokens + 15) / 16);
        char pattern[400];
        snprintf(pattern, sizeof pattern, "%s/alpha_train_*.bin%s", out, zstd ? ".zst" : "");
        check_split(pattern, docs, lens, 3, 16, train_files);
        snprintf(pattern, sizeof pattern, "%s/alpha_val_*.bin%s", out, zstd ? ".zst" : "");
        check_split(pattern, docs + 3, lens + 3, 2, 16, (int)((1 + lens[3] + 1 + 8 + 15) / 16));
        char first[400];
        snprintf(first, sizeof first, "%s/alpha_train_000000.bin%s", out, zstd ? ".zst" : "");
        ck_assert_int_ge(file_size(first), 0);
    }
    free(a);
    free(b);
    free(j);
}
END_TEST

// A small fraction still holds out one document; no fraction holds out none.
START_TEST(test_prep_val_count) {
    const char *dir = new_dir();
    char *j = path_in(dir, "many.jsonl");
    char text[4096] = "";
    const char *docs[20];
    size_t lens[20];
    char bodies[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(bodies[i], sizeof bodies[i], "doc %d", i);
        docs[i] = bodies[i];
        lens[i] = strlen(bodies[i]);
        char line[64];
        snprintf(line, sizeof line, "{\"body\": \"%s\"}\n", bodies[i]);
        strcat(text, line);
    }
    write_bytes(j, text, strlen(text));
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte", out_flag, "--val_fraction=0.001", "--text_field=body",
                          j};
    ck_assert_int_eq(run_prep(5, argv), 0);
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/o/many_val_*.bin", dir);
    check_split(pattern, docs + 19, lens + 19, 1, 100000000, 1);
    snprintf(pattern, sizeof pattern, "%s/o/many_train_*.bin", dir);
    check_split(pattern, docs, lens, 19, 100000000, 1);
    snprintf(out_flag, sizeof out_flag, "--out=%s/p", dir);
    const char *argv0[] = {"--tokenizer=byte", out_flag, "--val_fraction=0", "--text_field=body",
                           j};
    ck_assert_int_eq(run_prep(5, argv0), 0);
    snprintf(pattern, sizeof pattern, "%s/p/many_train_*.bin", dir);
    check_split(pattern, docs, lens, 20, 100000000, 1);
    snprintf(pattern, sizeof pattern, "%s/p/many_val_*.bin", dir);
    glob_t g;
    ck_assert_int_eq(glob(pattern, 0, NULL, &g), GLOB_NOMATCH);
    free(j);
}
END_TEST

// A bad jsonl line dies (exit 1) before any shard is written.
START_TEST(test_prep_bad_jsonl_writes_nothing) {
    const char *dir = new_dir();
    char *good = path_in(dir, "good.txt"), *bad = path_in(dir, "bad.jsonl");
    write_bytes(good, "fine", 4);
    const char *jsonl = "{\"text\": \"ok\"}\n{\"text\": \"broken\"\n";
    write_bytes(bad, jsonl, strlen(jsonl));
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte", out_flag, "--shard_tokens=2", good, bad};
    int status = run_prep_child(5, argv, NULL, NULL);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/o/*", dir);
    glob_t g;
    ck_assert_int_eq(glob(pattern, 0, NULL, &g), GLOB_NOMATCH);
    free(good);
    free(bad);
}
END_TEST

START_TEST(test_prep_help) {
    const char *argv[] = {"--help"};
    ck_assert_int_eq(run_prep(1, argv), 0);
}
END_TEST

// ---------------------------------------------------------------------------------------
// jsonl.zst, --text_field, threads

// Random documents through .jsonl.zst (two frames, one document longer than a batch and
// than the first line buffer) come back token for token; the name drops ".jsonl.zst".
START_TEST(test_prep_jsonl_zst_roundtrip) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(101);
    Corpus c = random_corpus(&rng, 300, 3000, "text");
    Buf big = {0};
    random_doc(&rng, 1500000, &big);
    free(c.docs[150]); // one long document in the middle
    c.docs[150] = big.p;
    c.lens[150] = big.n;
    c.jsonl.n = 0;
    for (int i = 0; i < c.ndocs; i++) {
        buf_puts(&c.jsonl, "{\"text\": ");
        put_json_string(&c.jsonl, c.docs[i], c.lens[i], &rng);
        buf_puts(&c.jsonl, "}\n");
    }
    char *input = path_in(dir, "corpus.jsonl.zst");
    write_zstd(input, c.jsonl.p, c.jsonl.n);
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte",     out_flag,      "--val_fraction=0.1",
                          "--shard_tokens=70000", "--threads=2", input};
    ck_assert_int_eq(run_prep(6, argv), 0);
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/o/corpus_train_*.bin", dir);
    check_split(pattern, (const char *const *)c.docs, c.lens, 270, 70000, -1);
    snprintf(pattern, sizeof pattern, "%s/o/corpus_val_*.bin", dir);
    check_split(pattern, (const char *const *)c.docs + 270, c.lens + 270, 30, 70000, 1);
    free_corpus(&c);
    free(input);
}
END_TEST

// A jsonl.zst file whose middle was overwritten with garbage dies (exit 1).
START_TEST(test_prep_zstd_corrupt) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(7);
    Corpus c = random_corpus(&rng, 200, 2000, "text");
    char *input = path_in(dir, "bad.jsonl.zst");
    write_zstd(input, c.jsonl.p, c.jsonl.n);
    size_t len;
    char *bytes = test_read_file(input, &len);
    for (size_t i = len / 2; i < len / 2 + 64 && i < len; i++) bytes[i] = (char)rng_next(&rng);
    write_bytes(input, bytes, len);
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte", out_flag, input};
    run_prep(3, argv);
}
END_TEST

// Run prep on a good text input of 1.5 MB followed by `second` (one thread, so the first
// input is a batch of its own and an encode pass would write its 15 shards before it
// reached `second`): it must exit 1 naming `second` with `want` in the message, and leave
// no output at all.
static void prep_fails_before_writing(const char *dir, const char *second, const char *want) {
    char *good = path_in(dir, "good.txt"), *err = path_in(dir, "err.txt");
    Rng rng = rng_seeded(29);
    Buf text = {0};
    random_doc(&rng, 1500000, &text);
    write_bytes(good, text.p, text.n);
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte", out_flag, "--shard_tokens=100000",
                          "--threads=1",      good,     second};
    int status = run_prep_child(6, argv, NULL, err);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    char *msg = test_read_file(err, NULL);
    ck_assert_msg(strstr(msg, second) != NULL, "'%s' does not name %s", msg, second);
    ck_assert_msg(strstr(msg, want) != NULL, "'%s' lacks '%s'", msg, want);
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/o/*", dir);
    glob_t g;
    ck_assert_int_eq(glob(pattern, 0, NULL, &g), GLOB_NOMATCH);
    free(msg);
    free(text.p);
    free(good);
    free(err);
}

// A truncated jsonl.zst file (after a good input) dies with exit 1, naming the file, and
// writes no shard.
START_TEST(test_prep_zstd_truncated) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(8);
    Corpus c = random_corpus(&rng, 200, 2000, "text");
    char *input = path_in(dir, "cut.jsonl.zst");
    write_zstd(input, c.jsonl.p, c.jsonl.n);
    ck_assert_int_eq(truncate(input, file_size(input) - 100), 0);
    prep_fails_before_writing(dir, input, "truncated zstd");
    free(input);
    free_corpus(&c);
}
END_TEST

// --text_field picks the field: lines hold a different "text" as a decoy.
START_TEST(test_prep_text_field) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(9);
    Corpus c = random_corpus(&rng, 50, 500, "content");
    Buf jsonl = {0};
    const char *p = c.jsonl.p;
    for (int i = 0; i < c.ndocs; i++) { // {"id": i, "content": ...} -> {"text": "decoy", ...}
        const char *nl = strchr(p, '\n');
        buf_puts(&jsonl, "{\"text\": \"decoy\", ");
        buf_put(&jsonl, p + 1, (size_t)(nl + 1 - (p + 1)));
        p = nl + 1;
        while (*p == '\n') p++;
    }
    char *input = path_in(dir, "c.jsonl");
    write_bytes(input, jsonl.p, jsonl.n);
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte", out_flag, "--val_fraction=0", "--text_field=content",
                          input};
    ck_assert_int_eq(run_prep(5, argv), 0);
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/o/c_train_*.bin", dir);
    check_split(pattern, (const char *const *)c.docs, c.lens, c.ndocs, 100000000, 1);
    free(jsonl.p);
    free(input);
    free_corpus(&c);
}
END_TEST

// Every file of directory `a` exists in `b` with the same bytes; returns the file count.
static int compare_dirs(const char *a, const char *b) {
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/*", a);
    glob_t ga;
    ck_assert_int_eq(glob(pattern, 0, NULL, &ga), 0);
    snprintf(pattern, sizeof pattern, "%s/*", b);
    glob_t gb;
    ck_assert_int_eq(glob(pattern, 0, NULL, &gb), 0);
    ck_assert_uint_eq(ga.gl_pathc, gb.gl_pathc);
    for (size_t i = 0; i < ga.gl_pathc; i++) {
        ck_assert_str_eq(strrchr(ga.gl_pathv[i], '/'), strrchr(gb.gl_pathv[i], '/'));
        size_t na, nb;
        char *x = test_read_file(ga.gl_pathv[i], &na), *y = test_read_file(gb.gl_pathv[i], &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert(memcmp(x, y, na) == 0);
        free(x);
        free(y);
    }
    int n = (int)ga.gl_pathc;
    globfree(&ga);
    globfree(&gb);
    return n;
}

// Several batches from three kinds of input: --threads=1, 2 and 4 write byte-identical
// shards, and their tokens are the documents in order.
START_TEST(test_prep_threads_identical) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(11);
    Corpus a = random_corpus(&rng, 3000, 2500, "text"); // ~3.8 MB: four batches
    Corpus z = random_corpus(&rng, 400, 1500, "text");
    Buf text = {0};
    random_doc(&rng, 100000, &text);
    char *pa = path_in(dir, "a.jsonl"), *pt = path_in(dir, "t.txt");
    char *pz = path_in(dir, "z.jsonl.zst");
    write_bytes(pa, a.jsonl.p, a.jsonl.n);
    write_bytes(pt, text.p, text.n);
    write_zstd(pz, z.jsonl.p, z.jsonl.n);
    const char *threads[3] = {"--threads=1", "--threads=2", "--threads=4"};
    for (int i = 0; i < 3; i++) {
        char out_flag[320];
        snprintf(out_flag, sizeof out_flag, "--out=%s/o%d", dir, i);
        const char *argv[] = {"--tokenizer=byte",
                              out_flag,
                              "--zstd",
                              "--shard_tokens=100003",
                              "--val_fraction=0.2",
                              threads[i],
                              pa,
                              pt,
                              pz};
        ck_assert_int_eq(run_prep_child(9, argv, NULL, NULL), 0);
    }
    char o0[300], o1[300], o2[300];
    snprintf(o0, sizeof o0, "%s/o0", dir);
    snprintf(o1, sizeof o1, "%s/o1", dir);
    snprintf(o2, sizeof o2, "%s/o2", dir);
    int files = compare_dirs(o0, o1);
    ck_assert_int_eq(compare_dirs(o0, o2), files);
    ck_assert_int_ge(files, 10);
    // The documents in input order: a's, the text file, z's; the last 20% are validation.
    int n = a.ndocs + 1 + z.ndocs, nval = (int)(0.2 * n + 0.5);
    const char **docs = xmalloc((size_t)n * sizeof(char *));
    size_t *lens = xmalloc((size_t)n * sizeof(size_t));
    for (int i = 0; i < a.ndocs; i++) docs[i] = a.docs[i], lens[i] = a.lens[i];
    docs[a.ndocs] = text.p, lens[a.ndocs] = text.n;
    for (int i = 0; i < z.ndocs; i++)
        docs[a.ndocs + 1 + i] = z.docs[i], lens[a.ndocs + 1 + i] = z.lens[i];
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/o1/a_train_*.bin.zst", dir);
    check_split(pattern, docs, lens, n - nval, 100003, -1);
    snprintf(pattern, sizeof pattern, "%s/o1/a_val_*.bin.zst", dir);
    check_split(pattern, docs + n - nval, lens + n - nval, nval, 100003, -1);
    free(docs);
    free(lens);
    free(text.p);
    free(pa);
    free(pt);
    free(pz);
    free_corpus(&a);
    free_corpus(&z);
}
END_TEST

// A directory among the inputs dies before anything is written.
START_TEST(test_prep_directory_input) {
    const char *dir = new_dir();
    char *sub = path_in(dir, "a_directory");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    prep_fails_before_writing(dir, sub, "not a regular file");
    free(sub);
}
END_TEST

// A corrupt or truncated .txt.zst second input dies in the scan pass: no shard of the
// good first input is written.
START_TEST(test_prep_bad_text_zst_input) {
    Rng rng = rng_seeded(23);
    Buf text = {0};
    random_doc(&rng, 200000, &text);
    for (int truncated = 0; truncated < 2; truncated++) {
        const char *dir = new_dir();
        char *input = path_in(dir, "bad.txt.zst");
        write_zstd(input, text.p, text.n);
        size_t len;
        char *bytes = test_read_file(input, &len);
        if (truncated) {
            len -= 1 + rng_next(&rng) % 50;
        } else {
            for (size_t i = len / 2; i < len / 2 + 64 && i < len; i++)
                bytes[i] = (char)rng_next(&rng);
        }
        write_bytes(input, bytes, len);
        prep_fails_before_writing(dir, input, truncated ? "truncated zstd" : "zstd");
        free(bytes);
        free(input);
    }
    free(text.p);
}
END_TEST

// ---------------------------------------------------------------------------------------
// Summary and progress

// The summary's unigram entropy equals -sum p log p over the expected token stream.
START_TEST(test_prep_entropy) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(13);
    Corpus c = random_corpus(&rng, 120, 800, "text");
    char *input = path_in(dir, "e.jsonl"), *out = path_in(dir, "stdout.txt");
    write_bytes(input, c.jsonl.p, c.jsonl.n);
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s/o", dir);
    const char *argv[] = {"--tokenizer=byte", out_flag, "--shard_tokens=5000", input};
    ck_assert_int_eq(run_prep_child(4, argv, out, NULL), 0);
    size_t len;
    char *printed = test_read_file(out, &len);
    const char *at = strstr(printed, "unigram entropy ");
    ck_assert_ptr_nonnull(at);
    double got;
    ck_assert_int_eq(sscanf(at, "unigram entropy %lf nats/token", &got), 1);
    int64_t n;
    uint32_t *stream = expected_stream((const char *const *)c.docs, c.lens, c.ndocs, &n);
    double counts[256] = {0}, want = 0;
    for (int64_t i = 0; i < n; i++) counts[stream[i]] += 1;
    for (int k = 0; k < 256; k++)
        if (counts[k] > 0) want -= counts[k] / (double)n * log(counts[k] / (double)n);
    ck_assert_double_eq_tol(got, want, 6e-5); // printed with 4 decimals
    ck_assert(want > 1.0);
    free(stream);
    free(printed);
    free(input);
    free(out);
    free_corpus(&c);
}
END_TEST

// --progress=1 draws the bar on stderr; without it, a stderr that is a file gets none.
START_TEST(test_prep_progress) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(17);
    Corpus c = random_corpus(&rng, 50, 500, "text");
    char *input = path_in(dir, "p.jsonl"), *err = path_in(dir, "err.txt");
    write_bytes(input, c.jsonl.p, c.jsonl.n);
    for (int forced = 0; forced < 2; forced++) {
        char out_flag[320];
        snprintf(out_flag, sizeof out_flag, "--out=%s/o%d", dir, forced);
        const char *argv[] = {"--tokenizer=byte", out_flag, input, "--progress=1"};
        ck_assert_int_eq(run_prep_child(3 + forced, argv, NULL, err), 0);
        size_t len;
        char *msg = test_read_file(err, &len);
        if (forced) {
            ck_assert_ptr_nonnull(strstr(msg, "50 docs"));
            ck_assert_ptr_nonnull(strstr(msg, "tokens"));
            ck_assert_ptr_nonnull(strstr(msg, "MB/s"));
            ck_assert_ptr_nonnull(strstr(msg, "ETA"));
            ck_assert_ptr_nonnull(strstr(msg, "100%"));
        } else {
            ck_assert_uint_eq(len, 0);
        }
        free(msg);
    }
    free(input);
    free(err);
    free_corpus(&c);
}
END_TEST

// ---------------------------------------------------------------------------------------
// Interrupts

// SIGINT while a shard is being written: prep dies of the signal, the temp file is gone,
// and every shard left is complete and holds the right tokens.
START_TEST(test_prep_interrupt) {
    const char *dir = new_dir();
    Rng rng = rng_seeded(19);
    size_t len = 16 << 20;
    char *text = xmalloc(len);
    for (size_t i = 0; i < len; i++) text[i] = (char)(32 + rng_next(&rng) % 95);
    char *input = path_in(dir, "big.txt"), *out = path_in(dir, "o");
    write_bytes(input, text, len);
    char out_flag[320];
    snprintf(out_flag, sizeof out_flag, "--out=%s", out);
    const int64_t shard = 500000;
    fflush(stdout);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGINT, SIG_DFL); // a plain process: not Check's handlers
        signal(SIGTERM, SIG_DFL);
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        const char *argv[] = {"--tokenizer=byte", out_flag, "--zstd", "--shard_tokens=500000",
                              input};
        _exit(run_prep(5, argv) == 0 ? 0 : 2);
    }
    // Wait until a temp file appears, then interrupt.
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/*.tmp", out);
    bool sent = false;
    int status = 0;
    for (int tries = 0; tries < 200000 && !sent; tries++) {
        glob_t g;
        if (glob(pattern, 0, NULL, &g) == 0) {
            ck_assert_int_eq(kill(pid, SIGINT), 0);
            sent = true;
            globfree(&g);
            break;
        }
        ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0); // still running
        usleep(100);
    }
    ck_assert(sent);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGINT);
    glob_t g;
    ck_assert_int_eq(glob(pattern, 0, NULL, &g), GLOB_NOMATCH);
    // Whatever shards were finished are valid (shard_read dies otherwise) and hold the
    // expected tokens: shard k is tokens [k * shard, (k + 1) * shard) of EOT + text.
    snprintf(pattern, sizeof pattern, "%s/*", out);
    int found = glob(pattern, 0, NULL, &g);
    size_t files = found == 0 ? g.gl_pathc : 0;
    ck_assert_uint_lt(files, (len + 1) / (size_t)shard); // it was stopped before the end
    for (size_t i = 0; i < files; i++) {
        char want[400];
        snprintf(want, sizeof want, "%s/big_train_%06zu.bin.zst", out, i);
        ck_assert_str_eq(g.gl_pathv[i], want);
        int64_t n;
        uint32_t *tokens = shard_read(g.gl_pathv[i], &n);
        ck_assert_int_eq(n, shard);
        for (int64_t k = 0; k < n; k++) {
            int64_t pos = (int64_t)i * shard + k; // 0 is the EOT
            uint32_t expect = pos == 0 ? 0 : (unsigned char)text[pos - 1];
            if (tokens[k] != expect) ck_abort_msg("shard %zu token %lld differs", i, (long long)k);
        }
        free(tokens);
    }
    if (found == 0) globfree(&g);
    free(text);
    free(input);
    free(out);
}
END_TEST

// ---------------------------------------------------------------------------------------

static Suite *prep_suite(void) {
    Suite *s = suite_create("prep");
    TCase *tc = tcase_create("split");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_prep_split);
    tcase_add_test(tc, test_prep_val_count);
    tcase_add_test(tc, test_prep_bad_jsonl_writes_nothing);
    tcase_add_test(tc, test_prep_help);
    suite_add_tcase(s, tc);

    tc = tcase_create("inputs_threads");
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, test_prep_jsonl_zst_roundtrip);
    tcase_add_exit_test(tc, test_prep_zstd_corrupt, 1);
    tcase_add_test(tc, test_prep_zstd_truncated);
    tcase_add_test(tc, test_prep_text_field);
    tcase_add_test(tc, test_prep_directory_input);
    tcase_add_test(tc, test_prep_bad_text_zst_input);
    tcase_add_test(tc, test_prep_threads_identical);
    suite_add_tcase(s, tc);

    tc = tcase_create("summary_interrupt");
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, test_prep_entropy);
    tcase_add_test(tc, test_prep_progress);
    tcase_add_test(tc, test_prep_interrupt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    make_scratch_root("prep");
    return run_suite(prep_suite());
}
