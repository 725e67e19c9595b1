// tests/test_run_dir.c: a run's out_dir: a fresh run into a directory holding a run is
// refused and --overwrite=1 clears only bolt's files; SIGINT saves a complete checkpoint
// that resumes; steps below a checkpoint's step is an error; config.conf reloads as the
// config trained (the checkpoint's architecture on resume) and metrics.jsonl starts with
// a run header.
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../model/checkpoint.h"
#include "../train/commands.h"
#include "../train/config.h"
#include "train_testing.h"

static char *corpus; // this test's corpus directory (tests/train_testing.h)

// The arguments of a tiny TNL run into corpus/OUT for `steps` steps, then the extra
// arguments (NULL-terminated).
static void train_args(Args *a, const char *out, int steps, va_list extra) {
    args_add(a, "--train_data=%s/c_train_*.bin", corpus);
    args_add(a, "--out_dir=%s/%s", corpus, out);
    args_add(a, "--steps=%d", steps);
    const char *fixed[] = {"--dim=32",     "--n_layers=2",    "--n_heads=2", "--batch_size=4",
                           "--seq_len=32", "--log_every=100", "--warmup=2",  "--device=cpu"};
    for (int i = 0; i < 8; i++) args_add(a, "%s", fixed[i]);
    for (const char *e = va_arg(extra, const char *); e; e = va_arg(extra, const char *))
        args_add(a, "%s", e);
}

// Run `bolt train` in this process (it must not die); returns its exit status.
static int train(const char *out, int steps, ...) {
    Args a = {0};
    va_list ap;
    va_start(ap, steps);
    train_args(&a, out, steps, ap);
    va_end(ap);
    return train_main(a.n, args_argv(&a));
}

// Run `bolt train` in a child process with stderr captured into err; returns the raw
// wait status.
static int train_child(char *err, size_t cap, const char *out, int steps, ...) {
    Args a = {0};
    va_list ap;
    va_start(ap, steps);
    train_args(&a, out, steps, ap);
    va_end(ap);
    int fd;
    pid_t pid = fork_capturing(false, &fd);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(99);
        _exit(train_main(a.n, args_argv(&a)));
    }
    return read_child(fd, pid, err, cap);
}

// corpus/out/name as a path (static buffer).
static const char *run_path(const char *out, const char *name) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s/%s", corpus, out, name);
    return path;
}

static bool exists(const char *path) {
    return file_size(path) >= 0;
}

// The number of step records (lines with "loss") in out/metrics.jsonl.
static int count_steps(const char *out) {
    FILE *f = xfopen(run_path(out, "metrics.jsonl"), "r");
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, "\"loss\"") != NULL;
    fclose(f);
    return n;
}

// A second fresh run into the directory of a finished one is refused with one line naming
// the directory and both ways out, and the old run is untouched.
START_TEST(test_refuses_existing_run) {
    corpus = write_word_corpus();
    ck_assert_int_eq(train("r", 4, NULL), 0);
    size_t before_len;
    char *before = test_read_file(run_path("r", "metrics.jsonl"), &before_len);
    char err[4096];
    int status = train_child(err, sizeof err, "r", 2, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d: %s", status, err);
    ck_assert_msg(strstr(err, "already holds a run") && strstr(err, "--resume=1") &&
                      strstr(err, "--overwrite=1") && strstr(err, "/r already"),
                  "got: %s", err);
    ck_assert(exists(run_path("r", "step_00000004/DONE")));
    size_t after_len;
    char *after = test_read_file(run_path("r", "metrics.jsonl"), &after_len);
    ck_assert(before_len == after_len && memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
}
END_TEST

// --overwrite=1 removes the old run's checkpoints and metrics, and nothing else.
START_TEST(test_overwrite) {
    corpus = write_word_corpus();
    ck_assert_int_eq(train("o", 4, NULL), 0);
    write_text(run_path("o", "notes.txt"), "mine");
    ck_assert_int_eq(train("o", 2, "--overwrite=1", NULL), 0);
    ck_assert(!exists(run_path("o", "step_00000004")));
    ck_assert(exists(run_path("o", "step_00000002/DONE")));
    ck_assert(exists(run_path("o", "notes.txt")));
    ck_assert_int_eq(count_steps("o"), 2);
}
END_TEST

// SIGINT during training: the run saves a complete checkpoint at the step it reached,
// exits 130, and a resumed run continues from it.
START_TEST(test_sigint_saves_checkpoint) {
    corpus = write_word_corpus();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(99);
        _exit(train("sig", 1000000, NULL));
    }
    // Wait until a few steps are logged, then interrupt.
    double t0 = now_seconds();
    while (now_seconds() - t0 < 60) {
        if (exists(run_path("sig", "metrics.jsonl")) && count_steps("sig") >= 3) break;
        usleep(20000);
    }
    ck_assert_int_eq(kill(pid, SIGINT), 0);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
    char ckpt[700];
    char dir[700];
    snprintf(dir, sizeof dir, "%s/sig", corpus);
    ck_assert(checkpoint_latest(dir, ckpt, sizeof ckpt));
    int step = atoi(strrchr(ckpt, '_') + 1);
    ck_assert_int_ge(step, 3);
    ck_assert_int_eq(count_steps("sig"), step); // saved at the last step it logged
    char want[64];
    ck_assert_int_eq(train("sig", step + 2, "--resume=1", NULL), 0);
    snprintf(want, sizeof want, "step_%08d/DONE", step + 2);
    ck_assert_msg(exists(run_path("sig", want)), "no %s after resuming", want);
}
END_TEST

// Resuming with steps below the checkpoint's step is an error naming both numbers.
START_TEST(test_steps_below_checkpoint) {
    corpus = write_word_corpus();
    ck_assert_int_eq(train("b", 4, NULL), 0);
    char err[4096];
    int status = train_child(err, sizeof err, "b", 2, "--resume=1", NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    ck_assert_msg(strstr(err, "steps = 2 is below the checkpoint's step 4"), "got: %s", err);
    // A warmup the run never finishes is a warning, and the run goes on.
    status = train_child(err, sizeof err, "w", 3, "--warmup=10", NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    ck_assert_msg(strstr(err, "warning: warmup = 10 >= steps = 3"), "got: %s", err);
}
END_TEST

// config.conf reloads (bolt train's own loader) as the config that ran; metrics.jsonl opens
// with a run header; a resume with another architecture records the checkpoint's.
START_TEST(test_config_conf_and_header) {
    corpus = write_word_corpus();
    ck_assert_int_eq(train("c", 2, "--mixers=lightning,softmax", NULL), 0);
    Config c;
    config_defaults(&c);
    config_load_file(&c, run_path("c", "config.conf"));
    config_finalize(&c);
    ck_assert_int_eq(c.model.dim, 32);
    ck_assert_int_eq(c.steps, 2);
    ck_assert_int_eq(c.model.mixer[1], MIXER_SOFTMAX);
    ck_assert(!c.resume && !c.overwrite);

    FILE *f = xfopen(run_path("c", "metrics.jsonl"), "r");
    char line[4096];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    cJSON *j = cJSON_Parse(line), *run = cJSON_GetObjectItem(j, "run");
    ck_assert_ptr_nonnull(run);
    ck_assert_ptr_null(cJSON_GetObjectItem(j, "step"));
    const char *keys[] = {"bolt", "commit", "command", "device"};
    for (int i = 0; i < 4; i++) ck_assert(cJSON_IsString(cJSON_GetObjectItem(run, keys[i])));
    ck_assert(
        strstr(cJSON_GetObjectItem(run, "command")->valuestring, "--mixers=lightning,softmax"));
    ck_assert_double_gt(cJSON_GetObjectItem(run, "params")->valuedouble, 1000);
    ck_assert_double_eq(cJSON_GetObjectItem(run, "tokens_per_step")->valuedouble, 4 * 32);
    cJSON_Delete(j);

    // Resume asking for another width: the checkpoint's model trains, and config.conf says so.
    ck_assert_int_eq(train("c", 3, "--resume=1", "--dim=64", "--mixers=", NULL), 0);
    config_defaults(&c);
    config_load_file(&c, run_path("c", "config.conf"));
    config_finalize(&c);
    ck_assert_int_eq(c.model.dim, 32);
    ck_assert_int_eq(c.model.mixer[1], MIXER_SOFTMAX);
    ck_assert_int_eq(count_steps("c"), 3);
}
END_TEST

int main(void) {
    make_scratch_root("run_dir");
    Suite *s = suite_create("run_dir");
    TCase *tc = tcase_create("run_dir");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_refuses_existing_run);
    tcase_add_test(tc, test_overwrite);
    tcase_add_test(tc, test_sigint_saves_checkpoint);
    tcase_add_test(tc, test_steps_below_checkpoint);
    tcase_add_test(tc, test_config_conf_and_header);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
