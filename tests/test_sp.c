// tests/test_sp.c: sequence parallelism (dist/seq_parallel.h, model/slice.c). The prefix
// and suffix combines against the sequential recurrence they replace; then this program
// run as its own worker under mpirun (2 ranks sp 2, 4 ranks sp 4, 4 ranks dp 2 x sp 2):
// every rank builds the same tiny model, computes its slice of its data-parallel group's
// rows, and compares with one process on the whole global batch that it also runs
// itself: per-token losses (the forward outputs), the loss, and every tensor's gradient
// within 1e-5 relative, for TNL, GLA, a TNL hybrid with a softmax layer (also with
// recompute) and Llama (softmax layers with GQA), with doc_reset off and on (documents
// that start inside a slice, at a slice boundary, and rows with none). For GLA the gradient of a
// gate bias (whose gates decay every slice) is also checked by finite differences of the
// sliced loss. Skipped, saying so, when mpirun or this build's MPI is missing.
#include <math.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../dist/comm.h"
#include "../dist/dist.h"
#include "../dist/seq_parallel.h"
#include "model_testing.h"

enum { T = 32, ROWS = 2, EOT = 0 }; // tokens per row; rows per data-parallel group

static char self_path[512]; // this program, for mpirun

// ---- the combines ----------------------------------------------------------------------

// Random states and log decays for `ranks` ranks, some decays -INFINITY (a reset).
static void random_exchange(Rng *rng, float *states, float *log_pass, size_t stride, int ranks,
                            int rows, int HK, int V) {
    for (int j = 0; j < ranks; j++) {
        for (size_t i = 0; i < (size_t)rows * HK * V; i++) states[j * stride + i] = rng_normal(rng);
        for (size_t i = 0; i < (size_t)rows * HK; i++)
            log_pass[j * stride + i] =
                rng_next(rng) % 5 == 0 ? -INFINITY : -0.5f * rng_uniform(rng);
    }
}

// Every rank's prefix combine equals the forward recurrence acc = P_j acc + C_j run over
// ranks 0 .. r-1, and its suffix combine the backward one g = dS_j + P_j g run from the
// last rank down to r+1.
START_TEST(test_combines_match_recurrence) {
    enum { RANKS = 5, ROWS_ = 3, HK = 4, V = 3 };
    size_t states = (size_t)ROWS_ * HK * V, stride = states + (size_t)ROWS_ * HK;
    float *buf = xcalloc(RANKS * stride, sizeof(float));
    float out[ROWS_ * HK * V], want[ROWS_ * HK * V];
    Rng rng = rng_seeded(7);
    random_exchange(&rng, buf, buf + states, stride, RANKS, ROWS_, HK, V);
    for (int r = 0; r < RANKS; r++) {
        memset(want, 0, sizeof want);
        for (int j = 0; j < r; j++)
            for (size_t i = 0; i < states; i++)
                want[i] = expf(buf[j * stride + states + i / V]) * want[i] + buf[j * stride + i];
        seq_parallel_prefix_combine(out, buf, buf + states, stride, r, ROWS_, HK, V);
        ck_assert_msg(rel_error(out, want, (long)states) < 1e-6, "prefix, rank %d", r);
        memset(want, 0, sizeof want);
        for (int j = RANKS - 1; j > r; j--)
            for (size_t i = 0; i < states; i++)
                want[i] = buf[j * stride + i] + expf(buf[j * stride + states + i / V]) * want[i];
        seq_parallel_suffix_combine(out, buf, buf + states, stride, r, RANKS, ROWS_, HK, V);
        ck_assert_msg(rel_error(out, want, (long)states) < 1e-6, "suffix, rank %d", r);
    }
    free(buf);
}
END_TEST

// ---- the worker (under mpirun) ---------------------------------------------------------

// The global batch: random tokens and targets; with documents, EOTs inside slices, at
// slice boundaries (positions 8 and 16) and none in the last row.
static void global_batch(int *tokens, int *targets, int rows, bool docs) {
    Rng rng = rng_seeded(11);
    random_tokens(&rng, tokens, targets, rows * T, 23);
    for (int i = 0; i < rows * T; i++) {
        if (tokens[i] == EOT) tokens[i] = 1;
    }
    if (!docs) return;
    int eot_at[][3] = {{5, 16, 27}, {8, 13, 30}, {3, 24, 20}};
    for (int b = 0; b + 1 < rows; b++)
        for (int e = 0; e < 3; e++) tokens[b * T + eot_at[b % 3][e]] = EOT;
}

// The largest per-tensor relative difference between two gradient buffers.
static double worst_tensor_error(const Model *m, const float *got, const float *want) {
    double worst = 0;
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        double e = rel_error(got + p->offset, want + p->offset, (long)p->numel);
        if (e > worst) worst = e;
    }
    return worst;
}

// One model (family, mixers or NULL, recompute) and doc_reset setting on this rank;
// returns the number of failed checks.
static int check_case(const Dist *d, Comm *world, Comm *group, Family family, const char *mixers,
                      bool recompute, LightningQk qk, bool docs) {
    Backend *be = cpu_backend();
    ModelConfig cfg = tiny_config(family, mixers, false);
    cfg.lightning_qk = qk;
    cfg.recompute = recompute;
    cfg.doc_reset = docs;
    cfg.eot_token = EOT;
    int rows = ROWS * d->dp, Tl = T / d->sp, off = d->sp_rank * Tl;
    int *tokens = xcalloc((size_t)rows * T, sizeof(int)), *targets = xcalloc((size_t)rows * T, 4);
    global_batch(tokens, targets, rows, docs);

    // The reference: one process, the whole global batch.
    Model ref;
    model_create(&ref, &cfg, be);
    spread_weights(&ref, 5);
    model_refresh_compute_weights(&ref);
    model_zero_grad(&ref);
    model_forward_backward(&ref, tokens, targets, rows, T, 1.0f);
    float ref_loss, norm;
    model_read_stats(&ref, &ref_loss, &norm);
    float *ref_losses = xcalloc((size_t)rows * T, sizeof(float));
    model_token_losses(&ref, ref_losses, rows * T);

    // This rank's slice of its group's rows; gradients and loss summed over all ranks.
    Model m;
    model_create(&m, &cfg, be);
    spread_weights(&m, 5);
    model_refresh_compute_weights(&m);
    SeqParallel sp;
    seq_parallel_init(&sp, &m, group, d->sp_rank, d->sp);
    const int *my_tokens = tokens + (size_t)d->dp_rank * ROWS * T;
    const int *my_targets = targets + (size_t)d->dp_rank * ROWS * T;
    model_zero_grad(&m);
    model_forward_backward(&m, my_tokens, my_targets, ROWS, T, 1.0f / (float)d->dp);
    float *losses = xcalloc((size_t)ROWS * Tl, sizeof(float)), want[ROWS * T];
    model_token_losses(&m, losses, ROWS * Tl);
    for (int b = 0; b < ROWS; b++)
        memcpy(want + b * Tl, ref_losses + (size_t)(d->dp_rank * ROWS + b) * T + off,
               (size_t)Tl * sizeof(float));
    double token_err = rel_error(losses, want, ROWS * Tl);
    float loss;
    model_read_stats(&m, &loss, &norm);
    comm_all_reduce_sum_host(world, &loss, 1);
    comm_all_reduce_sum(world, m.grads, m.n_weights);
    double loss_err = fabs(loss - ref_loss) / fabs(ref_loss);
    double grad_err = worst_tensor_error(&m, m.grads, ref.grads);
    int failed = token_err > 1e-5 || loss_err > 1e-5 || grad_err > 1e-5;

    // GLA: the gradient of a gate bias by central differences of the sliced loss.
    double fd_err = 0;
    if (family == FAMILY_GLA) {
        int bias = m.layer_params[0].mixer[6]; // gk_proj.1.bias
        size_t at = m.params[bias].offset + 1;
        float w0 = m.weights[at], h = 1e-2f, l[2];
        for (int s = 0; s < 2; s++) {
            m.weights[at] = w0 + (s ? -h : h);
            model_refresh_compute_weights(&m);
            l[s] = model_loss(&m, my_tokens, my_targets, ROWS, T) / (float)d->dp;
            comm_all_reduce_sum_host(world, &l[s], 1);
        }
        m.weights[at] = w0;
        double fd = ((double)l[0] - l[1]) / (2 * h), g = m.grads[at];
        fd_err = fabs(fd - g) / fmax(fabs(g), 1e-3);
        failed += fd_err > 1e-2;
    }
    printf("rank %d (dp %d x sp %d) %s%s%s%s doc_reset %d: token losses %.2e | loss %.2e | "
           "worst gradient %.2e%s\n",
           d->rank, d->dp, d->sp, family_name(family), mixers ? " " : "", mixers ? mixers : "",
           recompute ? " recompute" : "", docs, token_err, loss_err, grad_err,
           failed ? " | FAILED" : "");
    if (family == FAMILY_GLA && d->rank == 0)
        printf("  gate bias gradient vs finite differences: %.2e relative\n", fd_err);
    seq_parallel_free(&sp);
    model_free(&m);
    model_free(&ref);
    free(tokens);
    free(targets);
    free(ref_losses);
    free(losses);
    return failed;
}

// Every case on this rank of an mpirun job with sequence-parallel groups of `sp`; the
// exit status is the number of failures over all ranks.
static int worker(int sp) {
    Dist d = dist_init();
    Backend *be = cpu_backend();
    dist_set_sp(&d, sp);
    Comm *world = comm_create(&d, be, 60);
    Comm *group = comm_split(world, d.dp_rank, d.sp_rank, d.sp_rank, d.sp);
    float failed = 0;
    struct {
        Family family;
        const char *mixers;
        bool recompute;
        LightningQk qk;
    } cases[] = {{FAMILY_TNL, NULL, false, LIGHTNING_QK_SILU},
                 {FAMILY_GLA, NULL, false, LIGHTNING_QK_SILU},
                 {FAMILY_TNL, "lightning,softmax", false, LIGHTNING_QK_SILU},
                 {FAMILY_TNL, "softmax,lightning", true, LIGHTNING_QK_SILU},
                 {FAMILY_LLAMA, NULL, false, LIGHTNING_QK_SILU},
                 {FAMILY_LLAMA, "lightning,softmax", false, LIGHTNING_QK_ROPE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int docs = 0; docs < 2; docs++)
            failed += (float)check_case(&d, world, group, cases[i].family, cases[i].mixers,
                                        cases[i].recompute, cases[i].qk, docs);
    comm_all_reduce_sum_host(world, &failed, 1);
    comm_free(group);
    comm_free(world);
    dist_finalize(&d);
    return failed > 0 ? 1 : 0;
}

// ---- the suite -------------------------------------------------------------------------

// mpirun -np np of this program as workers with groups of sp; its exit status.
static int run_workers(int np, int sp) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "mpirun --oversubscribe --allow-run-as-root %s -np %d %s --worker %d 2>&1 | "
             "grep -v '^$'",
             mpirun_asan_option(), np, self_path, sp);
    printf("%s\n", cmd);
    fflush(stdout);
    // The pipe hides mpirun's status: the workers' verdict comes through PIPESTATUS.
    char full[1400];
    snprintf(full, sizeof full, "bash -c '%s; exit ${PIPESTATUS[0]}'", cmd);
    int status = system(full);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

START_TEST(test_sp2) {
    ck_assert_int_eq(run_workers(2, 2), 0);
}
END_TEST

START_TEST(test_sp4) {
    ck_assert_int_eq(run_workers(4, 4), 0);
}
END_TEST

START_TEST(test_dp2_sp2) {
    ck_assert_int_eq(run_workers(4, 2), 0);
}
END_TEST

// mpirun on PATH?
static bool have_mpirun(void) {
    return system("command -v mpirun > /dev/null 2>&1") == 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--worker") == 0) return worker(atoi(argv[2]));
    check(realpath(argv[0], self_path) != NULL, "realpath %s", argv[0]);
    Suite *s = suite_create("sp");
    TCase *tc = tcase_create("sp");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_combines_match_recurrence);
    if (!have_mpirun() || !dist_has_mpi()) {
        printf("test_sp: %s, sequence-parallel runs skipped\n",
               dist_has_mpi() ? "mpirun not found" : "this build has no MPI");
    } else {
        setenv("OMP_NUM_THREADS", "1", 1);
        setenv("OMP_WAIT_POLICY", "passive", 1);
        setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
        mpirun_ranks_without_leak_checks();
        tcase_add_test(tc, test_sp2);
        tcase_add_test(tc, test_sp4);
        tcase_add_test(tc, test_dp2_sp2);
    }
    suite_add_tcase(s, tc);
    return run_suite(s);
}
