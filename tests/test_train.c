// tests/test_train.c: `bolt train` end to end on tiny models: the loss falls, a resumed
// run is bit-identical to an uninterrupted one (every family and a hybrid), non-finite
// steps are skipped and then stop the run, bad checkpoints and configs are clear errors.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../data/shard.h"
#include "../train/commands.h"
#include "train_testing.h"

static char *workdir; // this test's directory under the scratch root

// This test's corpus (tests/train_testing.h).
static void write_corpus(void) {
    workdir = write_word_corpus();
}

// Run `bolt train` in-process with the given overrides (NULL-terminated list).
static int run_train(const char *family, const char *mixers, const char *out, int steps,
                     const char *extra) {
    Args a = {0};
    args_add(&a, "--model=%s", family);
    args_add(&a, "--train_data=%s/c_train_*.bin", workdir);
    args_add(&a, "--val_data=%s/c_val_*.bin", workdir);
    args_add(&a, "--out_dir=%s/%s", workdir, out);
    args_add(&a, "--steps=%d", steps);
    args_add(&a, "--mixers=%s", mixers);
    args_add(&a, "--dim=32");
    args_add(&a, "--n_layers=2");
    args_add(&a, "--n_heads=2");
    args_add(&a, "--batch_size=4");
    args_add(&a, "--seq_len=32");
    args_add(&a, "--log_every=20");
    args_add(&a, "%s", extra ? extra : "--val_every=0");
    return train_main(a.n, args_argv(&a));
}

// First and last training loss in a run's metrics.jsonl.
static void read_losses(const char *out, float *first, float *last) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", workdir, out);
    FILE *f = xfopen(path, "r");
    char line[1024];
    *first = *last = NAN;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_ptr_nonnull(j);
        cJSON *loss = cJSON_GetObjectItem(j, "loss");
        if (loss) {
            if (isnan(*first)) *first = (float)loss->valuedouble;
            *last = (float)loss->valuedouble;
        }
        cJSON_Delete(j);
    }
    fclose(f);
}

START_TEST(test_loss_falls) {
    write_corpus();
    ck_assert_int_eq(run_train("tnl", "", "falls", 60, "--lr=1e-2"), 0);
    float first, last;
    read_losses("falls", &first, &last);
    ck_assert_msg(first > 4.5f, "first loss %.3f should be near log(256)", first);
    ck_assert_msg(last < first - 2.0f, "loss did not fall: %.3f -> %.3f", first, last);
}
END_TEST

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

// Train 6 steps saving at 3 and 6; copy the run, drop step 6, resume: step 6 must match
// byte for byte (weights, Adam moments, loader position).
static void check_resume(const char *family, const char *mixers) {
    write_corpus();
    ck_assert_int_eq(run_train(family, mixers, "a", 6, "--save_every=3"), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r %s/a %s/b && rm -rf %s/b/step_00000006", workdir, workdir,
             workdir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(run_train(family, mixers, "b", 6, "--resume=1"), 0);
    const char *files[] = {"model.safetensors", "train_state.safetensors"};
    for (int i = 0; i < 2; i++) {
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/a/step_00000006/%s", workdir, files[i]);
        snprintf(pb, sizeof pb, "%s/b/step_00000006/%s", workdir, files[i]);
        ck_assert_msg(same_file(pa, pb), "%s: resumed %s differs", family, files[i]);
    }
}

START_TEST(test_resume_tnl) {
    check_resume("tnl", "");
}
END_TEST
START_TEST(test_resume_gla) {
    check_resume("gla", "");
}
END_TEST
START_TEST(test_resume_llama) {
    check_resume("llama", "");
}
END_TEST
START_TEST(test_resume_hybrid) {
    check_resume("tnl", "lightning,softmax");
}
END_TEST

// --init_from starts from a saved model: its first loss is the trained model's, far below
// a fresh model's.
START_TEST(test_init_from) {
    write_corpus();
    ck_assert_int_eq(run_train("gla", "", "base", 40, "--lr=1e-2"), 0);
    float first, last, fresh, unused;
    read_losses("base", &fresh, &last);
    char arg[600];
    snprintf(arg, sizeof arg, "--init_from=%s/base/step_00000040", workdir);
    ck_assert_int_eq(run_train("gla", "", "init", 2, arg), 0);
    read_losses("init", &first, &unused);
    ck_assert_msg(first < fresh - 1.0f && fabsf(first - last) < 0.5f,
                  "init_from: first loss %.3f, trained %.3f, fresh %.3f", first, last, fresh);
}
END_TEST

// An absurd learning rate makes every step non-finite: the run stops with exit 1.
START_TEST(test_nan_guard) {
    write_corpus();
    run_train("tnl", "", "nan", 50, "--lr=1e30");
}
END_TEST

// A truncated checkpoint is a clear error on resume, not a crash.
START_TEST(test_truncated_checkpoint) {
    write_corpus();
    ck_assert_int_eq(run_train("tnl", "", "t", 2, "--save_every=2"), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/t/step_00000002/model.safetensors", workdir);
    ck_assert_int_eq(truncate(path, file_size(path) / 2), 0);
    run_train("tnl", "", "t", 4, "--resume=1");
}
END_TEST

// A damaged newest checkpoint (DONE present, model file truncated) is skipped with a
// warning, and the run resumes from the newest one that opens.
START_TEST(test_resume_falls_back) {
    write_corpus();
    ck_assert_int_eq(run_train("tnl", "", "fb", 4, "--save_every=2"), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/fb/step_00000004/model.safetensors", workdir);
    ck_assert_int_eq(truncate(path, file_size(path) / 2), 0);
    ck_assert_int_eq(run_train("tnl", "", "fb", 6, "--resume=1"), 0);
    snprintf(path, sizeof path, "%s/fb/step_00000006/DONE", workdir);
    ck_assert_msg(file_size(path) >= 0, "the resumed run did not reach step 6");
}
END_TEST

// Overwrite the last float of a file (the last value of its last tensor).
static void poison_last_float(const char *path, float value) {
    FILE *f = xfopen(path, "r+b");
    ck_assert_int_eq(fseek(f, -4, SEEK_END), 0);
    ck_assert_int_eq(fwrite(&value, 4, 1, f), 1);
    fclose(f);
}

// A checkpoint holding an Inf weight is refused on resume (it used to train on with every
// step skipped and save the Inf weights again).
START_TEST(test_inf_weights_refused) {
    write_corpus();
    ck_assert_int_eq(run_train("tnl", "", "inf", 2, "--save_every=2"), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/inf/step_00000002/model.safetensors", workdir);
    poison_last_float(path, INFINITY);
    run_train("tnl", "", "inf", 4, "--resume=1");
}
END_TEST

// Negative second moments in the optimizer state are refused on resume (they turned every
// weight to NaN at the next step).
START_TEST(test_negative_adam_v_refused) {
    write_corpus();
    ck_assert_int_eq(run_train("tnl", "", "adam", 2, "--save_every=2"), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/adam/step_00000002/train_state.safetensors", workdir);
    poison_last_float(path, -1.0f); // adam_v is the last tensor
    run_train("tnl", "", "adam", 4, "--resume=1");
}
END_TEST

// Skipped steps are recorded in metrics.jsonl with the reason, and a run whose last steps
// were all skipped exits non-zero instead of reporting "done".
START_TEST(test_skipped_steps_recorded) {
    write_corpus();
    // In a child process of its own: die() ends the process it runs in.
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s train --model=tnl --train_data='%s/c_train_*.bin' --val_data='%s/c_val_*.bin' "
             "--out_dir=%s/skip --steps=3 --dim=32 --n_layers=2 --n_heads=2 --batch_size=4 "
             "--seq_len=32 --lr=1e30 --max_bad_steps=100 --device=cpu >/dev/null 2>&1",
             bolt_binary(), workdir, workdir, workdir);
    int status = system(cmd);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
                  "a run ending in skipped steps must exit 1 (status %d)", status);
    char path[600], line[1024];
    snprintf(path, sizeof path, "%s/skip/metrics.jsonl", workdir);
    FILE *f = xfopen(path, "r");
    int skipped = 0;
    while (fgets(line, sizeof line, f))
        skipped += strstr(line, "\"skipped\": \"non-finite") != NULL;
    fclose(f);
    ck_assert_msg(skipped >= 1, "no skipped step recorded in metrics.jsonl");
}
END_TEST

// After a resume, metrics.jsonl holds each step once: the records a killed run wrote
// after its last checkpoint are dropped, not repeated.
START_TEST(test_resume_truncates_metrics) {
    write_corpus();
    ck_assert_int_eq(run_train("tnl", "", "m", 4, "--save_every=2"), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/m/step_00000004/DONE", workdir);
    ck_assert_int_eq(unlink(path), 0); // as if killed before step 4's checkpoint completed
    ck_assert_int_eq(run_train("tnl", "", "m", 4, "--resume=1"), 0);
    snprintf(path, sizeof path, "%s/m/metrics.jsonl", workdir);
    FILE *f = xfopen(path, "r");
    char line[1024];
    int seen[5] = {0};
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_ptr_nonnull(j);
        cJSON *step = cJSON_GetObjectItem(j, "step");
        if (step && cJSON_GetObjectItem(j, "loss") && step->valueint >= 1 && step->valueint <= 4)
            seen[step->valueint]++;
        cJSON_Delete(j);
    }
    fclose(f);
    for (int s = 1; s <= 4; s++) ck_assert_msg(seen[s] == 1, "step %d logged %d times", s, seen[s]);
}
END_TEST

START_TEST(test_unknown_key) {
    write_corpus();
    run_train("tnl", "", "k", 2, "--lerning_rate=3");
}
END_TEST

// Launched as one of several processes by a launcher bolt does not serve (torchrun's
// WORLD_SIZE), it refuses to start rather than train the same model twice. (mpirun and
// srun launches are tested in test_dist.c.)
START_TEST(test_refuses_multiprocess) {
    write_corpus();
    setenv("WORLD_SIZE", "2", 1);
    run_train("tnl", "", "mp", 2, NULL);
}
END_TEST

// vocab_size left unset takes the tokenizer's: a GPT-2-style ranks file gives 50257.
START_TEST(test_vocab_from_tokenizer) {
    write_corpus();
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char tok[600], arg[700];
    snprintf(tok, sizeof tok, "%s/tiny-gpt2.tiktoken", workdir);
    FILE *f = xfopen(tok, "wb");
    for (int byte = 0; byte < 256; byte++) // one byte -> two chars + "=="
        fprintf(f, "%c%c== %d\n", b64[byte >> 2], b64[(byte & 3) << 4], byte);
    fclose(f);
    snprintf(arg, sizeof arg, "--tokenizer=%s", tok);
    ck_assert_int_eq(run_train("tnl", "", "gpt2vocab", 2, arg), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/gpt2vocab/step_00000002/config.json", workdir);
    char *text = read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "vocab_size")->valueint, 50257);
    cJSON_Delete(j);
    free(text);
}
END_TEST

START_TEST(test_missing_data) {
    char *argv[] = {"--train_data=/nonexistent/x_*.bin", "--steps=1"};
    train_main(2, argv);
}
END_TEST

// val_data with fewer windows than one batch (124 windows of 32+1 tokens, batches of 200)
// stops the run at startup instead of validating on wrapped-around data.
START_TEST(test_val_smaller_than_batch) {
    write_corpus();
    run_train("tnl", "", "v", 1, "--batch_size=200");
}
END_TEST

int main(void) {
    make_scratch_root("train");
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_loss_falls);
    tcase_add_test(tc, test_resume_tnl);
    tcase_add_test(tc, test_resume_gla);
    tcase_add_test(tc, test_resume_llama);
    tcase_add_test(tc, test_resume_hybrid);
    tcase_add_test(tc, test_init_from);
    tcase_add_exit_test(tc, test_nan_guard, 1);
    tcase_add_exit_test(tc, test_truncated_checkpoint, 1);
    tcase_add_exit_test(tc, test_inf_weights_refused, 1);
    tcase_add_exit_test(tc, test_negative_adam_v_refused, 1);
    tcase_add_test(tc, test_skipped_steps_recorded);
    tcase_add_test(tc, test_resume_truncates_metrics);
    tcase_add_test(tc, test_resume_falls_back);
    tcase_add_exit_test(tc, test_unknown_key, 1);
    tcase_add_test(tc, test_vocab_from_tokenizer);
    tcase_add_exit_test(tc, test_missing_data, 1);
    tcase_add_exit_test(tc, test_refuses_multiprocess, 1);
    tcase_add_exit_test(tc, test_val_smaller_than_batch, 1);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
