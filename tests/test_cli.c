// tests/test_cli.c: one CLI. Every command's option table: --help exits 0 showing its
// options with their defaults, an unknown option exits 1 naming the nearest one, a bad
// value exits 1 naming the option; the bolt binary's dispatch (bolt help CMD, --version,
// "did you mean" for commands); `bolt sample` stopping at the end-of-text token; and
// `bolt bench train --json=FILE` appending records that read back.
#include <sys/wait.h>
#include <unistd.h>

#include "../model/checkpoint.h"
#include "../train/bench_file.h"
#include "../train/commands.h"
#include "../train/sample.h"
#include "train_testing.h"

typedef struct CommandCase {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *shown;   // an option --help must list with its default
    const char *typo;    // a misspelt option...
    const char *nearest; // ...and the suggestion it must get
    const char *bad;     // an option with a bad value
    int n_args;          // positional arguments to give (0 where one would be a config file)
} CommandCase;

static const CommandCase COMMANDS[] = {
    {"train", train_main, "--lr=0.003", "--lerning_rate=1", "--lr", "--steps=0", 0},
    {"sample", sample_main, "--temperature=0.8", "--temprature=1", "--temperature",
     "--temperature=-1", 1},
    {"eval", eval_main, "--seq_len=0", "--seqlen=8", "--seq_len", "--batch_size=0", 1},
    {"prep", prep_main, "--val_fraction=0.01", "--tokenzier=byte", "--tokenizer",
     "--val_fraction=1", 1},
    {"import", import_main, "--dtype=f32", "--dtyp=bf16", "--dtype", "--dtype=f16", 2},
    {"export", export_main, "--dtype=f32", "--dtyp=bf16", "--dtype", "--dtype=f16", 2},
    {"bench loader", bench_loader_main, "--seq_len=1024", "--batchsize=2", "--batch_size",
     "--batches=0", 1},
    {"bench attn", bench_attn_main, "--kind=all", "--head-dim=8", "--head_dim", "--kind=mamba", 0},
    {"bench train", bench_train_main, "--bench_steps=10", "--lrr=1", "--lr", "--bench_steps=0", 0},
    {"plot", plot_main, "--width=1200", "--widht=800", "--width", "--width=10", 1},
    {"bench tokenizer", bench_tokenizer_main, "TOKENIZER FILE", "--threads=2", NULL, NULL, 2},
};
enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

// Run fn(argv) in a child with stdout and stderr captured together into out; returns the
// exit status (-1 if it did not exit).
static int run_captured(int (*fn)(int, char **), int argc, char **argv, char *out, size_t cap) {
    int fd;
    pid_t pid = fork_capturing(true, &fd);
    if (pid == 0) {
        int rc = fn(argc, argv);
        fflush(stdout);
        _exit(rc);
    }
    int status = read_child(fd, pid, out, cap);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_help) {
    const CommandCase *c = &COMMANDS[_i];
    char out[32768], usage[64];
    char *argv[] = {"--help"};
    ck_assert_int_eq(run_captured(c->main, 1, argv, out, sizeof out), 0);
    snprintf(usage, sizeof usage, "usage: bolt %s", c->name);
    ck_assert_msg(strstr(out, usage), "%s --help: no usage line in:\n%s", c->name, out);
    ck_assert_msg(strstr(out, c->shown), "%s --help lacks '%s':\n%s", c->name, c->shown, out);
}
END_TEST

START_TEST(test_unknown_option) {
    const CommandCase *c = &COMMANDS[_i];
    char out[8192], want[128];
    char *argv[] = {(char *)c->typo, "arg1", "arg2"};
    int rc = run_captured(c->main, 3, argv, out, sizeof out);
    ck_assert_msg(rc == 1, "%s %s: exit %d", c->name, c->typo, rc);
    if (c->nearest)
        snprintf(want, sizeof want, "(did you mean '%s'?)", c->nearest);
    else
        snprintf(want, sizeof want, "unknown option '%.*s'", (int)strcspn(c->typo, "="), c->typo);
    ck_assert_msg(strstr(out, want), "%s %s: no '%s' in: %s", c->name, c->typo, want, out);
    ck_assert_ptr_null(strchr(strchr(out, '\n') + 1, '\n')); // one line
}
END_TEST

START_TEST(test_bad_value) {
    const CommandCase *c = &COMMANDS[_i];
    if (!c->bad) return;
    char out[8192], want[128];
    char *argv[] = {(char *)c->bad, "arg1", "arg2"};
    ck_assert_int_eq(run_captured(c->main, 1 + c->n_args, argv, out, sizeof out), 1);
    const char *eq = strchr(c->bad, '=');
    snprintf(want, sizeof want, "bad value '%s' for option '%.*s'", eq + 1, (int)(eq - c->bad),
             c->bad);
    ck_assert_msg(strstr(out, want), "%s %s: no '%s' in: %s", c->name, c->bad, want, out);
}
END_TEST

// The bolt binary (built by make test before the suites run).
static int bolt(const char *args, char *out, size_t cap) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bolt_binary(), args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_dispatch) {
    char out[32768];
    ck_assert_int_eq(bolt("--version", out, sizeof out), 0);
    ck_assert_msg(strstr(out, "bolt ") && strstr(out, "(commit "), "got: %s", out);
    ck_assert_int_eq(bolt("trian", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "unknown command 'trian' (did you mean 'train'?)"), "got: %s", out);
    ck_assert_int_eq(bolt("bench atn", out, sizeof out), 1);
    ck_assert_msg(strstr(out, "(did you mean 'attn'?)"), "got: %s", out);
    const char *helps[][2] = {{"help sample", "usage: bolt sample"},
                              {"sample --help", "usage: bolt sample"},
                              {"help bench attn", "usage: bolt bench attn"},
                              {"bench loader -h", "usage: bolt bench loader"},
                              {"help", "usage: bolt COMMAND"},
                              {"--help", "usage: bolt COMMAND"}};
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(bolt(helps[i][0], out, sizeof out) == 0, "bolt %s: not 0", helps[i][0]);
        ck_assert_msg(strstr(out, helps[i][1]), "bolt %s: got %s", helps[i][0], out);
    }
    // bench tokenizer takes the byte tokenizer like every other command.
    ck_assert_int_eq(bolt("bench tokenizer byte README.md", out, sizeof out), 0);
    ck_assert_msg(strstr(out, "1.00 bytes per token"), "got: %s", out);
}
END_TEST

// A model trained on "ab" documents (EOT a b EOT a b ...) continues the prompt "ab" with
// EOT: sampling stops there by default, and with stop_at_eot off shows the break and the
// next document.
START_TEST(test_sample_stops_at_eot) {
    char *dir = new_dir();
    enum { N = 30000 };
    uint32_t *tok = xmalloc(N * sizeof(uint32_t));
    for (int i = 0; i < N; i++) tok[i] = i % 3 == 0 ? 0 : (uint32_t)('a' + i % 3 - 1);
    char path[600], data[700], out[700];
    snprintf(path, sizeof path, "%s/ab_train_000000.bin", dir);
    shard_write(path, tok, N, false, false);
    free(tok);
    snprintf(data, sizeof data, "--train_data=%s/ab_train_*.bin", dir);
    snprintf(out, sizeof out, "--out_dir=%s/run", dir);
    char *argv[] = {data,           out,           "--steps=40",     "--dim=32",
                    "--n_layers=1", "--n_heads=2", "--batch_size=4", "--seq_len=32",
                    "--lr=1e-2",    "--warmup=2",  "--device=cpu",   "--log_every=100"};
    ck_assert_int_eq(train_main(12, argv), 0);

    char ckpt[700], spec[64];
    snprintf(path, sizeof path, "%s/run", dir);
    checkpoint_resolve(path, ckpt, sizeof ckpt);
    Backend *be = backend_create("cpu");
    Model m;
    model_load(&m, ckpt, be, spec, sizeof spec);
    Tokenizer t = tokenizer_load("byte");
    Rng rng = rng_seeded(1);
    SampleSettings s = {.max_tokens = 7, .temperature = 0, .top_p = 1, .stop_at_eot = true};
    int generated;
    char *text = generate_text(&m, &t, "ab", &s, &rng, &generated);
    ck_assert_str_eq(text, "");
    ck_assert_int_eq(generated, 1);
    free(text);
    s.stop_at_eot = false;
    text = generate_text(&m, &t, "ab", &s, &rng, &generated);
    ck_assert_str_eq(text, EOT_MARKER "ab" EOT_MARKER "ab" EOT_MARKER);
    ck_assert_int_eq(generated, 7);
    free(text);
    tokenizer_free(&t);
    model_free(&m);
    backend_free(be);
}
END_TEST

// bench train on the CPU for tnl-tiny at a small length, twice (the second with
// recompute): --json appends one line per run, which bench_load reads back with the
// config's name, family, shape, device, timings, memory, commit and MFU null (the CPU's
// peak is unknown).
START_TEST(test_bench_train_json) {
    char *dir = new_dir(), *path = path_in(dir, "bench.jsonl"), json[700];
    snprintf(json, sizeof json, "--json=%s", path);
    for (int recompute = 0; recompute <= 1; recompute++) {
        char *argv[] = {"configs/tnl-tiny.conf",
                        "--device=cpu",
                        "--seq_len=32",
                        "--batch_size=2",
                        "--threads=2",
                        "--bench_steps=2",
                        json,
                        recompute ? "--recompute=1" : "--recompute=0"};
        ck_assert_int_eq(bench_train_main(8, argv), 0);
    }
    char *text = test_read_file(path, NULL);
    ck_assert_msg(strstr(text, "\"mfu\":null") && strstr(text, "\"ok\":true"), "got: %s", text);
    BenchFile b;
    bench_load(&b, path);
    ck_assert_int_eq(b.n, 2);
    for (int i = 0; i < 2; i++) {
        const BenchRecord *r = &b.rec[i];
        ck_assert_str_eq(r->config, "configs/tnl-tiny.conf");
        ck_assert_str_eq(r->name, "tnl-tiny");
        ck_assert_str_eq(r->family, "tnl");
        ck_assert_str_eq(r->backend, "cpu");
        ck_assert_str_eq(r->commit, bolt_commit());
        ck_assert(r->device[0] != '\0');
        ck_assert_int_eq(r->seq_len, 32);
        ck_assert_int_eq(r->batch_size, 2);
        ck_assert_int_eq(r->grad_accum, 1);
        ck_assert_int_eq(r->bench_steps, 2);
        ck_assert(r->ok && r->recompute == (i == 1));
        ck_assert(r->params > 1e5 && r->params < 1e7);
        ck_assert(r->step_s > 0 && r->first_step_s > 0); // no order: timings vary with load
        ck_assert(fabs(r->tok_per_s - 64 / r->step_s) < 1e-6 * r->tok_per_s);
        ck_assert(isnan(r->mfu));
        ck_assert(r->peak_mem_bytes > r->params * 4);
    }
    bench_free(&b);
    free(text);
}
END_TEST

int main(void) {
    make_scratch_root("cli");
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_help, 0, N_COMMANDS);
    tcase_add_loop_test(tc, test_unknown_option, 0, N_COMMANDS);
    tcase_add_loop_test(tc, test_bad_value, 0, N_COMMANDS);
    tcase_add_test(tc, test_dispatch);
    tcase_add_test(tc, test_sample_stops_at_eot);
    tcase_add_test(tc, test_bench_train_json);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
