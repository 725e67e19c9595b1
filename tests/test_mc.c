// tests/test_mc.c: multiple-choice evaluation: llm.c's eval file read back exactly as a
// writer that follows llm.c's layout wrote it, the jsonl form tokenized as llm.c joins
// context and ending, bad files stop with one line naming the file and the example, and
// each ending's score equals its loss computed token by token through the recurrent form.
#include <cjson/cJSON.h>

#include "../train/mc_eval.h"
#include "model_testing.h"

// One example as the test writer takes it.
typedef struct TestExample {
    int label, n_endings, ctx_len;
    int ctx[40];
    int ending_len[MC_MAX_ENDINGS];
    int endings[MC_MAX_ENDINGS][12];
} TestExample;

// Append a little-endian uint16 to buf at *n.
static void put16(unsigned char *buf, size_t *n, int x) {
    buf[(*n)++] = (unsigned char)(x & 0xff);
    buf[(*n)++] = (unsigned char)(x >> 8);
}

// Write examples in llm.c's write_evalfile layout: 256 int32 header (magic, version,
// count, longest example bytes), then per example 65535, its bytes, index, label, number
// of completions, context length + tokens, each completion's length + tokens.
static void write_evalfile(const char *path, const TestExample *ex, int n) {
    unsigned char *buf = xcalloc(1024 + (size_t)n * 2048, 1);
    size_t at = 1024;
    int longest = 0;
    for (int i = 0; i < n; i++) {
        size_t start = at;
        put16(buf, &at, 65535);
        put16(buf, &at, 0); // the size, filled in below
        put16(buf, &at, i);
        put16(buf, &at, ex[i].label);
        put16(buf, &at, ex[i].n_endings);
        put16(buf, &at, ex[i].ctx_len);
        for (int t = 0; t < ex[i].ctx_len; t++) put16(buf, &at, ex[i].ctx[t]);
        for (int e = 0; e < ex[i].n_endings; e++) {
            put16(buf, &at, ex[i].ending_len[e]);
            for (int t = 0; t < ex[i].ending_len[e]; t++) put16(buf, &at, ex[i].endings[e][t]);
        }
        int bytes = (int)(at - start);
        size_t size_at = start + 2;
        put16(buf, &size_at, bytes);
        if (bytes > longest) longest = bytes;
    }
    int header[4] = {20240522, 1, n, longest};
    for (int h = 0; h < 4; h++)
        for (int b = 0; b < 4; b++)
            buf[4 * h + b] = (unsigned char)((unsigned)header[h] >> (8 * b));
    write_bytes(path, buf, at);
    free(buf);
}

// Random examples with token ids below V.
static void random_examples(TestExample *ex, int n, int V, uint64_t seed) {
    Rng rng = rng_seeded(seed);
    for (int i = 0; i < n; i++) {
        TestExample *e = &ex[i];
        memset(e, 0, sizeof *e);
        e->n_endings = 2 + (int)(rng_next(&rng) % 3);
        e->label = (int)(rng_next(&rng) % (uint64_t)e->n_endings);
        e->ctx_len = 1 + (int)(rng_next(&rng) % 30);
        for (int t = 0; t < e->ctx_len; t++) e->ctx[t] = 1 + (int)(rng_next(&rng) % (V - 1));
        for (int k = 0; k < e->n_endings; k++) {
            e->ending_len[k] = 1 + (int)(rng_next(&rng) % 10);
            for (int t = 0; t < e->ending_len[k]; t++)
                e->endings[k][t] = 1 + (int)(rng_next(&rng) % (V - 1));
        }
    }
}

START_TEST(test_evalfile_round_trip) {
    TestExample ex[7];
    random_examples(ex, 7, 200, 5);
    char *path = path_in(new_dir(), "set.bin");
    write_evalfile(path, ex, 7);
    Tokenizer tok = tokenizer_load("byte");
    McSet s = mc_read(path, &tok, 256);
    ck_assert_int_eq(s.n, 7);
    for (int i = 0; i < 7; i++) {
        const McExample *got = &s.examples[i];
        ck_assert_int_eq(got->index, i);
        ck_assert_int_eq(got->label, ex[i].label);
        ck_assert_int_eq(got->n_endings, ex[i].n_endings);
        ck_assert_int_eq(got->ctx_len, ex[i].ctx_len);
        ck_assert_mem_eq(got->tokens, ex[i].ctx, (size_t)ex[i].ctx_len * sizeof(int));
        for (int e = 0; e < ex[i].n_endings; e++) {
            int start = got->ending_start[e], len = got->ending_start[e + 1] - start;
            ck_assert_int_eq(len, ex[i].ending_len[e]);
            ck_assert_mem_eq(got->tokens + start, ex[i].endings[e], (size_t)len * sizeof(int));
            ck_assert_int_eq(got->ending_bytes[e], len); // byte tokens: one byte each
        }
    }
    mc_free(&s);
    tokenizer_free(&tok);
}
END_TEST

// The jsonl form: the context as is, each ending as " " + ending.
START_TEST(test_jsonl_tokenized) {
    char *path = path_in(new_dir(), "set.jsonl");
    write_text(path,
               "{\"ctx\": \"The cat\", \"endings\": [\"sat.\", \"ran away\"], \"label\": 1}\n\n"
               "{\"ctx\": \"A\", \"endings\": [\"b\", \"c\", \"d\"], \"label\": 0}\n");
    Tokenizer tok = tokenizer_load("byte");
    McSet s = mc_read(path, &tok, 256);
    ck_assert_int_eq(s.n, 2);
    const McExample *e = &s.examples[0];
    ck_assert_int_eq(e->label, 1);
    ck_assert_int_eq(e->ctx_len, 7);
    ck_assert_int_eq(e->tokens[0], 'T');
    ck_assert_int_eq(e->ending_start[0], 7);
    ck_assert_int_eq(e->ending_start[1], 12);
    ck_assert_int_eq(e->ending_start[2], 21);
    ck_assert_int_eq(e->tokens[7], ' ');
    ck_assert_int_eq(e->tokens[12], ' ');
    ck_assert_int_eq(e->tokens[13], 'r');
    ck_assert_int_eq(e->ending_bytes[1], 9);
    ck_assert_int_eq(s.examples[1].n_endings, 3);
    mc_free(&s);
    tokenizer_free(&tok);
}
END_TEST

// Run mc_read on a file holding `bytes` in a child; it must exit 1 with one line on
// stderr that names the file and holds `want`.
static void expect_read_error(const void *bytes, size_t n, const char *name, int V,
                              const char *want) {
    char *dir = new_dir();
    char *path = path_in(dir, name), *err = path_in(dir, "stderr.txt");
    write_bytes(path, bytes, n);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ck_assert_ptr_nonnull(freopen(err, "w", stderr));
        Tokenizer tok = tokenizer_load("byte");
        mc_read(path, &tok, V);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    size_t len;
    char *text = read_file(err, &len);
    ck_assert_msg(strstr(text, path) && strstr(text, want), "message: %s", text);
    ck_assert_ptr_eq(strchr(text, '\n'), text + len - 1); // one line
    free(text);
}

// The bytes of a valid file of three examples, for corrupting.
static unsigned char *valid_file(size_t *n) {
    TestExample ex[3];
    random_examples(ex, 3, 100, 9);
    char *path = path_in(new_dir(), "ok.bin");
    write_evalfile(path, ex, 3);
    return (unsigned char *)test_read_file(path, n);
}

// Offset of example i's first byte in a file from valid_file.
static size_t example_offset(const unsigned char *b, int i) {
    size_t at = 1024;
    for (int k = 0; k < i; k++) at += (size_t)(b[at + 2] | b[at + 3] << 8);
    return at;
}

START_TEST(test_bad_magic) {
    size_t n;
    unsigned char *b = valid_file(&n);
    b[0] ^= 1;
    expect_read_error(b, n, "set.bin", 256, "bad magic");
}
END_TEST

START_TEST(test_truncated_example) {
    size_t n;
    unsigned char *b = valid_file(&n);
    expect_read_error(b, example_offset(b, 2) + 10, "set.bin", 256, "example 2: truncated");
}
END_TEST

START_TEST(test_label_out_of_range) {
    size_t n;
    unsigned char *b = valid_file(&n);
    size_t at = example_offset(b, 1);
    b[at + 6] = b[at + 8]; // label = number of completions
    expect_read_error(b, n, "set.bin", 256, "example 1: label");
}
END_TEST

START_TEST(test_token_out_of_vocab) {
    size_t n;
    unsigned char *b = valid_file(&n);
    size_t at = example_offset(b, 2);
    b[at + 12] = 120; // the first context token, >= the vocab of 100 below
    expect_read_error(b, n, "set.bin", 100, "example 2: token id 120 >= vocab size 100");
}
END_TEST

START_TEST(test_jsonl_bad_label) {
    const char *text = "{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 0}\n"
                       "{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 2}\n";
    expect_read_error(text, strlen(text), "set.jsonl", 256, "example 1: label 2 out of range");
}
END_TEST

// The loss of `ids[from..n)` given what precedes them, token by token through the
// recurrent form (a path that shares nothing with the batched scoring).
static double recurrent_loss(Model *m, const int *ids, int n, int from) {
    int V = m->cfg.vocab_size;
    float *logits = xmalloc((size_t)V * sizeof(float));
    DecodeState *st = decode_state_new(m, n);
    double loss = 0;
    for (int i = 0; i + 1 < n; i++) {
        model_decode_step(m, st, ids[i], logits);
        if (i + 1 < from) continue;
        double max = logits[0], sum = 0;
        for (int v = 1; v < V; v++) max = fmax(max, logits[v]);
        for (int v = 0; v < V; v++) sum += exp(logits[v] - max);
        loss += log(sum) + max - logits[ids[i + 1]];
    }
    decode_state_free(st);
    free(logits);
    return loss;
}

// Each ending's scored loss = its tokens' loss after [EOT, context] (every family).
static void check_scores(Family family, const char *mixers) {
    Model m;
    ModelConfig c = tiny_config(family, mixers, false);
    model_create(&m, &c, cpu_backend());
    spread_weights(&m, 3);
    TestExample ex[3];
    random_examples(ex, 3, c.vocab_size, 17);
    char *path = path_in(new_dir(), "set.bin");
    write_evalfile(path, ex, 3);
    Tokenizer tok = tokenizer_load("byte");
    McSet s = mc_read(path, &tok, c.vocab_size);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    McResult r = mc_evaluate(&m, &s, out);
    fclose(out);
    ck_assert_int_eq(r.n, 3);
    char *line = text;
    for (int i = 0; i < 3; i++) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_ptr_nonnull(j);
        const cJSON *loss = cJSON_GetObjectItem(j, "loss");
        for (int e = 0; e < ex[i].n_endings; e++) {
            int ids[64], n = 0;
            ids[n++] = c.eot_token;
            for (int t = 0; t < ex[i].ctx_len; t++) ids[n++] = ex[i].ctx[t];
            for (int t = 0; t < ex[i].ending_len[e]; t++) ids[n++] = ex[i].endings[e][t];
            double want = recurrent_loss(&m, ids, n, 1 + ex[i].ctx_len);
            double got = cJSON_GetArrayItem(loss, e)->valuedouble;
            ck_assert_msg(fabs(got - want) < 1e-3 * fmax(1, fabs(want)), "ex %d end %d: %g vs %g",
                          i, e, got, want);
        }
        cJSON_Delete(j);
        line = strchr(line, '\n') + 1;
    }
    free(text);
    mc_free(&s);
    tokenizer_free(&tok);
    model_free(&m);
}

START_TEST(test_scores_llama) {
    check_scores(FAMILY_LLAMA, NULL);
}
END_TEST
START_TEST(test_scores_hybrid) {
    check_scores(FAMILY_LLAMA, "lightning,gla");
}
END_TEST

int main(void) {
    make_scratch_root("mc");
    Suite *s = suite_create("mc");
    TCase *tc = tcase_create("mc");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_evalfile_round_trip);
    tcase_add_test(tc, test_jsonl_tokenized);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_truncated_example);
    tcase_add_test(tc, test_label_out_of_range);
    tcase_add_test(tc, test_token_out_of_vocab);
    tcase_add_test(tc, test_jsonl_bad_label);
    tcase_add_test(tc, test_scores_llama);
    tcase_add_test(tc, test_scores_hybrid);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
