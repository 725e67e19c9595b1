// tests/test_sample.c: the sampler draws from softmax(logits / temperature) restricted to
// the top k and the top p, greedy decoding is the argmax, and `bolt sample` rejects bad
// arguments.
#include <sys/wait.h>
#include <unistd.h>

#include "../train/commands.h"
#include "../train/sample.h"
#include "testing.h"

enum { V = 7, DRAWS = 40000 };

// Empirical frequencies of sample_token against the exact probabilities.
static void check_distribution(float temperature, int top_k) {
    const float logits[V] = {0.1f, -1.0f, 1.5f, 0.7f, -0.3f, 1.2f, -2.0f}; // max in the middle
    double p[V], sum = 0;
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++) { // rank by logit, descending
        for (int j = i + 1; j < V; j++) {
            if (logits[order[j]] > logits[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
    }
    for (int i = 0; i < V; i++) {
        int rank = 0;
        while (order[rank] != i) rank++;
        p[i] = (top_k <= 0 || rank < top_k) ? exp(logits[i] / temperature) : 0;
        sum += p[i];
    }
    int count[V] = {0};
    Rng rng = rng_seeded(3);
    for (int d = 0; d < DRAWS; d++) {
        float work[V];
        memcpy(work, logits, sizeof work);
        int t = sample_token(work, V, temperature, top_k, 1.0f, &rng);
        ck_assert(t >= 0 && t < V);
        count[t]++;
    }
    for (int i = 0; i < V; i++) {
        double expected = p[i] / sum, seen = (double)count[i] / DRAWS;
        // 5 standard deviations of a binomial frequency.
        double tol = 5 * sqrt(expected * (1 - expected) / DRAWS) + 1e-9;
        ck_assert_msg(fabs(seen - expected) <= tol, "T=%g k=%d token %d: %.4f vs %.4f", temperature,
                      top_k, i, seen, expected);
    }
}

START_TEST(test_softmax_sampling) {
    check_distribution(1.0f, 0);
}
END_TEST
START_TEST(test_temperature) {
    check_distribution(0.5f, 0);
}
END_TEST
START_TEST(test_top_k) {
    check_distribution(1.0f, 3);
}
END_TEST

// Top-p keeps the fewest most likely tokens whose probabilities reach p: softmax(logits)
// puts 0.37 on token 2 and 0.27 on token 5, so p = 0.45 keeps exactly those two.
START_TEST(test_top_p) {
    const float logits[V] = {0.1f, -1.0f, 1.5f, 0.7f, -0.3f, 1.2f, -2.0f};
    double p[V];
    for (int i = 0; i < V; i++) p[i] = exp(logits[i]);
    int count[V] = {0};
    Rng rng = rng_seeded(5);
    for (int d = 0; d < DRAWS; d++) {
        float work[V];
        memcpy(work, logits, sizeof work);
        count[sample_token(work, V, 1.0f, 0, 0.45f, &rng)]++;
    }
    // Tokens 2 and 5 only, in their relative proportions.
    double kept = p[2] + p[5];
    for (int i = 0; i < V; i++) {
        double expected = (i == 2 || i == 5) ? p[i] / kept : 0, seen = (double)count[i] / DRAWS;
        double tol = 5 * sqrt(expected * (1 - expected) / DRAWS) + 1e-9;
        ck_assert_msg(fabs(seen - expected) <= tol, "top_p token %d: %.4f vs %.4f", i, seen,
                      expected);
    }
}
END_TEST

START_TEST(test_greedy) {
    Rng rng = rng_seeded(1);
    float logits[V] = {0.1f, -1.0f, 1.5f, 0.7f, -0.3f, 1.2f, -2.0f};
    ck_assert_int_eq(sample_token(logits, V, 0.0f, 0, 1.0f, &rng), 2);
    float again[V] = {0.1f, -1.0f, 1.5f, 0.7f, -0.3f, 1.2f, -2.0f};
    ck_assert_int_eq(sample_token(again, V, 1.0f, 1, 1.0f, &rng), 2); // top-1 is greedy too
}
END_TEST

// Bad command lines die (exit 1) while the arguments are read, before any checkpoint is
// opened: a second positional argument, and values that are not numbers or out of range.
// The message is checked, since a missing checkpoint would also exit 1.
static const char *const BAD_ARGS[][3] = {
    {"ckpt_a", "ckpt_b", "unexpected argument 'ckpt_b'"},
    {"ckpt", "--tokens=abc", "bad value 'abc' for option '--tokens'"},
    {"ckpt", "--tokens=-1", "bad value '-1' for option '--tokens'"},
    {"ckpt", "--tokens=", "bad value '' for option '--tokens'"},
    {"ckpt", "--temperature=hot", "bad value 'hot' for option '--temperature'"},
    {"ckpt", "--temperature=nan", "bad value 'nan' for option '--temperature'"},
    {"ckpt", "--top_k=3x", "bad value '3x' for option '--top_k'"},
    {"ckpt", "--seed=-4", "bad value '-4' for option '--seed'"},
    {"ckpt", "--temperature=-1", "bad value '-1' for option '--temperature'"},
    {"ckpt", "--top_p=1.5", "bad value '1.5' for option '--top_p'"},
    {"ckpt", "--topk=3", "unknown option '--topk' (did you mean '--top_k'?)"},
};

START_TEST(test_bad_arguments) {
    char err[] = "/tmp/bolt_test_sample_err_XXXXXX";
    int fd = mkstemp(err);
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd, 2);
        char *argv[2] = {(char *)BAD_ARGS[_i][0], (char *)BAD_ARGS[_i][1]};
        _exit(sample_main(2, argv) == 0 ? 0 : 3);
    }
    close(fd);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    char *msg = test_read_file(err, NULL);
    unlink(err);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d, stderr '%s'", status,
                  msg);
    ck_assert_msg(strstr(msg, BAD_ARGS[_i][2]) != NULL, "stderr '%s' lacks '%s'", msg,
                  BAD_ARGS[_i][2]);
    free(msg);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("sample");
    tcase_add_test(tc, test_softmax_sampling);
    tcase_add_test(tc, test_temperature);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_greedy);
    tcase_add_loop_test(tc, test_bad_arguments, 0, (int)(sizeof BAD_ARGS / sizeof BAD_ARGS[0]));
    suite_add_tcase(s, tc);
    return run_suite(s);
}
