// tests/test_dist.c: `bolt train` as several processes under mpirun, on the CPU backend
// (MPI collectives). Data parallel on 2 and 4 ranks (and on 2 over TCP), ZeRO-1 on 2 and
// 3 ranks, and gradient accumulation against one process with the same global batch: the
// loader gives rank r of n the stream windows r, r+n, r+2n, ..., so n ranks with batch B
// see exactly the rows of one process with batch n*B, and the losses (every step), the
// validation loss and the final weights must agree to 1e-6. A 2-rank checkpoint resumes on
// 1 and on 4 ranks; a killed or a frozen rank ends the whole job, non-zero, in well under
// 60 s, and the newest complete checkpoint still resumes. Skipped, saying so, when mpirun
// or this build's MPI is missing.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../data/shard.h"
#include "../dist/dist.h"
#include "../model/checkpoint.h"
#include "../model/safetensors.h"
#include "train_testing.h"

enum { STEPS = 20, GLOBAL_BATCH = 12, MAX_STEPS = 64 };

static char *workdir;                // this test's directory under the scratch root
static char bolt[512];               // the bolt binary, absolute
static const char *mpi_options = ""; // extra mpirun options

// This test's corpus (tests/train_testing.h).
static void write_corpus(void) {
    workdir = write_word_corpus();
}

// The command line of `bolt train` on `np` ranks (1: a plain launch, no mpirun) with
// batch_size `batch` per rank, writing to workdir/out; `extra` adds options.
// adam_eps is 1e-6, not 1e-8: ranks sum a gradient in another order than one process, and
// for a weight whose gradient is ~1e-8 (rounding noise) Adam's first steps move it by ~lr
// in the direction of that noise, so with 1e-8 the runs differ by ~1e-5 in a few weights
// (fp32 noise amplified, not a difference of the data-parallel arithmetic).
static void train_command(char *cmd, size_t cap, int np, const char *out, int batch, int steps,
                          const char *extra) {
    char launcher[256] = "";
    if (np > 1)
        snprintf(launcher, sizeof launcher,
                 "mpirun --oversubscribe --allow-run-as-root %s %s -np %d ", mpirun_asan_option(),
                 mpi_options, np);
    snprintf(cmd, cap,
             "%s%s train --model=tnl --train_data=%s/c_train_*.bin --val_data=%s/c_val_*.bin "
             "--out_dir=%s/%s --steps=%d --dim=32 --n_layers=2 --n_heads=2 --seq_len=32 "
             "--batch_size=%d --lr=3e-3 --adam_eps=1e-6 --warmup=2 --log_every=%d --val_batches=4 "
             "--threads=1 "
             "--device=cpu %s",
             launcher, bolt, workdir, workdir, workdir, out, steps, batch, STEPS, extra);
}

// Run `bolt train` to completion (output in workdir/out.log); returns its exit status.
static int run_train(int np, const char *out, int batch, int steps, const char *extra) {
    char cmd[2048];
    train_command(cmd, sizeof cmd, np, out, batch, steps, extra);
    char full[2600];
    snprintf(full, sizeof full, "%s > %s/%s.log 2>&1", cmd, workdir, out);
    int status = system(full);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// The training losses of steps 1..STEPS in a run's metrics.jsonl (NaN where missing) and
// the last validation loss.
static void read_metrics(const char *out, double *loss, double *val) {
    for (int i = 0; i <= MAX_STEPS; i++) loss[i] = NAN;
    *val = NAN;
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", workdir, out);
    FILE *f = xfopen(path, "r");
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_ptr_nonnull(j);
        cJSON *s = cJSON_GetObjectItem(j, "step");
        if (!s) { // the run header
            cJSON_Delete(j);
            continue;
        }
        int step = s->valueint;
        cJSON *l = cJSON_GetObjectItem(j, "loss"), *v = cJSON_GetObjectItem(j, "val_loss");
        if (l && step >= 1 && step <= MAX_STEPS) loss[step] = l->valuedouble;
        if (v && cJSON_IsNumber(v)) *val = v->valuedouble;
        cJSON_Delete(j);
    }
    fclose(f);
}

// All weights of a run's checkpoint at `step`, concatenated in name order; *n their count.
static float *read_weights(const char *out, int step, long *n) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/step_%08d/model.safetensors", workdir, out, step);
    SafeTensors *st = st_open(path);
    long total = 0;
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor(st, i);
        long numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (long)t->shape[d];
        total += numel;
    }
    float *w = xmalloc((size_t)total * sizeof(float)), *at = w;
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor(st, i);
        st_read_f32(st, t, at);
        long numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (long)t->shape[d];
        at += numel;
    }
    st_close(st);
    *n = total;
    return w;
}

// Run `got` matches run `want`: training losses of steps [from, STEPS] and (if check_val:
// both validated on the same windows, i.e. with the same global batch per micro-batch) the
// final validation loss within tol relative, and the weights at step STEPS within tol.
static void expect_close_run(const char *got, const char *want, int from, bool check_val,
                             double tol) {
    double lg[MAX_STEPS + 1], lw[MAX_STEPS + 1], vg, vw;
    read_metrics(got, lg, &vg);
    read_metrics(want, lw, &vw);
    for (int s = from; s <= STEPS; s++) {
        ck_assert_msg(isfinite(lg[s]) && isfinite(lw[s]), "%s vs %s: step %d has no loss", got,
                      want, s);
        ck_assert_msg(fabs(lg[s] - lw[s]) <= tol * fabs(lw[s]),
                      "%s vs %s: step %d loss %.6f vs %.6f", got, want, s, lg[s], lw[s]);
    }
    ck_assert_msg(!check_val || fabs(vg - vw) <= tol * fabs(vw), "%s vs %s: val loss %.6f vs %.6f",
                  got, want, vg, vw);
    long ng, nw;
    float *wg = read_weights(got, STEPS, &ng), *ww = read_weights(want, STEPS, &nw);
    ck_assert_int_eq(ng, nw);
    double err = rel_error(wg, ww, nw);
    ck_assert_msg(err < tol, "%s vs %s: weights differ by %g (relative)", got, want, err);
    printf("%s vs %s: weights within %.1e relative\n", got, want, err);
    free(wg);
    free(ww);
}

// The same within 1e-6: data parallel and ZeRO-1 only sum gradients in another order.
static void expect_same_run(const char *got, const char *want, int from, bool check_val) {
    expect_close_run(got, want, from, check_val, 1e-6);
}

// The reference: one process with the whole global batch.
static void run_single(void) {
    ck_assert_int_eq(run_train(1, "single", GLOBAL_BATCH, STEPS, ""), 0);
}

// Plain data parallel on 2 ranks (one all-reduce per layer), on 4 (layers merged into
// buckets of 0.01 MB), and on 2 talking over TCP equals one process.
START_TEST(test_data_parallel) {
    write_corpus();
    run_single();
    ck_assert_int_eq(run_train(2, "dp2", GLOBAL_BATCH / 2, STEPS, "--bucket_mb=0"), 0);
    expect_same_run("dp2", "single", 1, true);
    ck_assert_int_eq(run_train(4, "dp4", GLOBAL_BATCH / 4, STEPS, "--bucket_mb=0.01"), 0);
    expect_same_run("dp4", "single", 1, true);
    // Over TCP sockets instead of shared memory, as between two nodes.
    mpi_options = "--mca pml ob1 --mca btl tcp,self";
    ck_assert_int_eq(run_train(2, "tcp2", GLOBAL_BATCH / 2, STEPS, ""), 0);
    expect_same_run("tcp2", "single", 1, true);
}
END_TEST

// ZeRO-1 (sharded AdamW) on 2 ranks, and on 3 with gradient accumulation (the model's
// 75776 weights do not split into 3 equal shards: the last is padded); plain data
// parallel with accumulation on 2. All equal one process.
START_TEST(test_zero_and_accumulation) {
    write_corpus();
    run_single();
    ck_assert_int_eq(run_train(2, "zero2", GLOBAL_BATCH / 2, STEPS, "--zero=1"), 0);
    expect_same_run("zero2", "single", 1, true);
    ck_assert_int_eq(run_train(3, "zero3", GLOBAL_BATCH / 6, STEPS, "--zero=1 --grad_accum=2"), 0);
    expect_same_run("zero3", "single", 1, false);
    ck_assert_int_eq(run_train(2, "acc2", GLOBAL_BATCH / 4, STEPS, "--grad_accum=2"), 0);
    expect_same_run("acc2", "single", 1, false);
}
END_TEST

// The word corpus with documents: an EOT (the byte tokenizer's 0) before every 10 to 69
// tokens, so with doc_reset many documents start inside a sequence's slices.
static void write_document_corpus(void) {
    write_corpus();
    const char *names[2] = {"c_train_000000.bin", "c_val_000000.bin"};
    for (int f = 0; f < 2; f++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", workdir, names[f]);
        int64_t n = 0;
        uint32_t *tok = shard_read(path, &n);
        Rng rng = rng_seeded(3 + f);
        for (int64_t i = 0; i < n; i += 10 + (int64_t)(rng_next(&rng) % 60)) tok[i] = 0;
        shard_write(path, tok, n, false, false);
        free(tok);
    }
}

// Sequence parallel: each sequence of the same global batch split over 2 ranks, over 4,
// and dp 2 x sp 2 on 4 ranks, equals one process: losses every step, the validation loss
// and the weights after 20 steps within 1e-5 relative (the slices' states are summed in
// another order), for TNL and GLA, with doc_reset on a corpus of short documents, and for
// a hybrid with a softmax layer (its keys and values gathered over the group) on 2 and on
// 4 ranks and dp 2 x sp 2, with doc_reset.
START_TEST(test_sequence_parallel) {
    write_document_corpus();
    const char *docs = "--doc_reset=1";
    ck_assert_int_eq(run_train(1, "single", GLOBAL_BATCH, STEPS, ""), 0);
    ck_assert_int_eq(run_train(2, "sp2", GLOBAL_BATCH, STEPS, "--sp=2"), 0);
    expect_close_run("sp2", "single", 1, true, 1e-5);
    ck_assert_int_eq(run_train(4, "dp2sp2", GLOBAL_BATCH / 2, STEPS, "--sp=2 --bucket_mb=0"), 0);
    expect_close_run("dp2sp2", "single", 1, true, 1e-5);
    ck_assert_int_eq(run_train(1, "single_docs", GLOBAL_BATCH, STEPS, docs), 0);
    ck_assert_int_eq(run_train(4, "sp4_docs", GLOBAL_BATCH, STEPS, "--sp=4 --doc_reset=1"), 0);
    expect_close_run("sp4_docs", "single_docs", 1, true, 1e-5);
    const char *gla = "--model=gla --doc_reset=1";
    ck_assert_int_eq(run_train(1, "gla", GLOBAL_BATCH, STEPS, gla), 0);
    ck_assert_int_eq(run_train(4, "gla_dp2sp2", GLOBAL_BATCH / 2, STEPS,
                               "--model=gla --doc_reset=1 --sp=2 --zero=1"),
                     0);
    expect_close_run("gla_dp2sp2", "gla", 1, true, 1e-5);
    const char *hybrid = "--mixers=lightning,softmax --doc_reset=1";
    ck_assert_int_eq(run_train(1, "hybrid", GLOBAL_BATCH, STEPS, hybrid), 0);
    ck_assert_int_eq(run_train(2, "hybrid_sp2", GLOBAL_BATCH, STEPS,
                               "--mixers=lightning,softmax --doc_reset=1 --sp=2"),
                     0);
    expect_close_run("hybrid_sp2", "hybrid", 1, true, 1e-5);
    ck_assert_int_eq(run_train(4, "hybrid_sp4", GLOBAL_BATCH, STEPS,
                               "--mixers=lightning,softmax --doc_reset=1 --sp=4"),
                     0);
    expect_close_run("hybrid_sp4", "hybrid", 1, true, 1e-5);
    ck_assert_int_eq(run_train(4, "hybrid_dp2sp2", GLOBAL_BATCH / 2, STEPS,
                               "--mixers=lightning,softmax --doc_reset=1 --sp=2 --bucket_mb=0"),
                     0);
    expect_close_run("hybrid_dp2sp2", "hybrid", 1, true, 1e-5);
}
END_TEST

// A copy of run `from` with its checkpoint at step STEPS and its metrics removed, resumed
// from step STEPS/2 on np ranks (batch per rank from the global batch).
static void resume_copy(const char *from, const char *to, int np, const char *extra) {
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "cp -r %s/%s %s/%s && rm -rf %s/%s/step_%08d %s/%s/metrics.jsonl",
             workdir, from, workdir, to, workdir, to, STEPS, workdir, to);
    ck_assert_int_eq(system(cmd), 0);
    char opts[256];
    snprintf(opts, sizeof opts, "--resume=1 --save_every=%d %s", STEPS / 2, extra);
    ck_assert_int_eq(run_train(np, to, GLOBAL_BATCH / np, STEPS, opts), 0);
}

// A 2-rank run checkpointed halfway continues on 1 rank, and on 4 ranks with ZeRO-1 (the
// full moments are resharded), exactly as the uninterrupted 2-rank run.
START_TEST(test_resume_other_rank_count) {
    write_corpus();
    char opts[64];
    snprintf(opts, sizeof opts, "--save_every=%d", STEPS / 2);
    ck_assert_int_eq(run_train(2, "two", GLOBAL_BATCH / 2, STEPS, opts), 0);
    resume_copy("two", "on1", 1, "");
    expect_same_run("on1", "two", STEPS / 2 + 1, true);
    resume_copy("two", "on4", 4, "--zero=1");
    expect_same_run("on4", "two", STEPS / 2 + 1, true);
}
END_TEST

// The pid of the process whose parent is `parent` and whose environment says it is rank
// `rank` (OMPI_COMM_WORLD_RANK under mpirun, BOLT_RANK under --nproc); -1 if there is none
// (yet).
static pid_t find_rank(pid_t parent, const char *var, int rank) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    struct dirent *e;
    pid_t found = -1;
    char want[64];
    snprintf(want, sizeof want, "%s=%d", var, rank);
    while (found < 0 && (e = readdir(d)) != NULL) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int ppid = -1;
        char state;
        if (fscanf(f, "%*d (%*[^)]) %c %d", &state, &ppid) != 2) ppid = -1;
        fclose(f);
        if (ppid != parent) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", pid);
        f = fopen(path, "r");
        if (!f) continue;
        size_t n;
        char *env = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&env, &len);
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, mem);
        fclose(f);
        fclose(mem);
        for (size_t i = 0; i < len; i += strlen(env + i) + 1)
            if (strcmp(env + i, want) == 0) found = pid;
        free(env);
    }
    closedir(d);
    return found;
}

// True if pid is gone (or a zombie nobody has reaped yet).
static bool process_gone(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return true;
    char state = '?';
    if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1) state = '?';
    fclose(f);
    return state == 'Z' || state == 'X';
}

// True once a run's metrics.jsonl holds a step record (its first line is the run header).
static bool logged_a_step(const char *metrics) {
    if (file_size(metrics) <= 0) return false;
    char *text = read_file(metrics, NULL);
    bool yes = strstr(text, "\"step\"") != NULL;
    free(text);
    return yes;
}

static void fault_with(int sig, const char *extra, const char *says, bool nproc,
                       bool after_checkpoint);

// Start a 2-rank run that would train for a long time, wait until it has logged a step,
// send `sig` to rank 1, and require the whole job to end non-zero within 60 s with a
// message in its output that contains `says`.
static void fault(int sig, const char *extra, const char *says) {
    fault_with(sig, extra, says, false, false);
}

// fault() with the ranks started by mpirun, or (nproc) by bolt itself: rank 1 is then a
// child of the supervising bolt process. after_checkpoint: strike only once a complete
// checkpoint exists (a step's record is written before its checkpoint).
static void fault_with(int sig, const char *extra, const char *says, bool nproc,
                       bool after_checkpoint) {
    write_corpus();
    char cmd[2048], log[600], opts[600];
    snprintf(opts, sizeof opts, "%s%s", extra, nproc ? " --nproc=2" : "");
    train_command(cmd, sizeof cmd, nproc ? 1 : 2, "fault", GLOBAL_BATCH / 2, 100000, opts);
    snprintf(log, sizeof log, "%s/fault.log", workdir);
    pid_t mpirun = fork();
    ck_assert_int_ge(mpirun, 0);
    if (mpirun == 0) {
        check(freopen(log, "w", stdout) != NULL && dup2(fileno(stdout), 2) >= 0, "redirect");
        char full[2100];
        snprintf(full, sizeof full, "exec %s", cmd);
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    // Wait for the first logged step (rank 0 appends to metrics.jsonl after each step).
    char metrics[600];
    snprintf(metrics, sizeof metrics, "%s/fault/metrics.jsonl", workdir);
    double t0 = now_seconds();
    pid_t victim = -1;
    char out_dir[600], ckpt[700];
    snprintf(out_dir, sizeof out_dir, "%s/fault", workdir);
    while (now_seconds() - t0 < 30 &&
           (victim < 0 || !logged_a_step(metrics) ||
            (after_checkpoint && !checkpoint_latest(out_dir, ckpt, sizeof ckpt)))) {
        if (victim < 0) victim = find_rank(mpirun, nproc ? "BOLT_RANK" : "OMPI_COMM_WORLD_RANK", 1);
        usleep(50000);
    }
    ck_assert_msg(victim > 0 && logged_a_step(metrics), "the job did not start training");
    double t_fault = now_seconds();
    kill(victim, sig);
    int status = 0;
    pid_t done = 0;
    while ((done = waitpid(mpirun, &status, WNOHANG)) == 0 && now_seconds() - t_fault < 60)
        usleep(50000);
    if (done == 0) {
        kill(victim, SIGKILL);
        kill(mpirun, SIGKILL);
        waitpid(mpirun, &status, 0);
        ck_abort_msg("the job still ran 60 s after rank 1 got signal %d", sig);
    }
    double took = now_seconds() - t_fault;
    ck_assert_msg(!(WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "the job exited 0 after rank 1 got signal %d", sig);
    for (int i = 0; i < 100 && !process_gone(victim); i++) usleep(50000);
    bool gone = process_gone(victim);
    if (!gone) kill(victim, SIGKILL);
    ck_assert_msg(gone, "rank 1 (pid %d) outlived the job", victim);
    size_t len;
    char *text = test_read_file(log, &len);
    ck_assert_msg(strstr(text, says) != NULL, "the job's output does not say '%s':\n%s", says,
                  text);
    free(text);
    printf("test_dist: rank 1 got signal %d; the job ended in %.1f s\n", sig, took);
}

// A killed rank: mpirun ends the others and names the rank. The run checkpoints every
// step, so the kill may land mid-checkpoint: the newest complete one still resumes.
START_TEST(test_killed_rank) {
    fault_with(SIGKILL, "--save_every=1", "rank 1", false, true);
    char out[600], ckpt[700];
    snprintf(out, sizeof out, "%s/fault", workdir);
    ck_assert_msg(checkpoint_latest(out, ckpt, sizeof ckpt), "no complete checkpoint in %s", out);
    int step = atoi(strrchr(ckpt, '_') + 1);
    ck_assert_int_eq(run_train(1, "fault", GLOBAL_BATCH, step + 1, "--resume=1"), 0);
}
END_TEST

// A frozen rank (SIGSTOP): rank 0's watchdog finds its collective stuck after
// collective_timeout seconds and ends the job.
START_TEST(test_hung_rank) {
    fault(SIGSTOP, "--collective_timeout=5", "did not finish within collective_timeout");
}
END_TEST

// SIGTERM to one rank (as a scheduler's preemption or Ctrl-C would send): the ranks agree
// to stop after the same step, rank 0 saves a complete checkpoint of it and says so, and
// the job ends non-zero; the checkpoint resumes.
START_TEST(test_interrupted_rank) {
    fault(SIGTERM, "", "stopped at step");
    char out[600], ckpt[700];
    snprintf(out, sizeof out, "%s/fault", workdir);
    ck_assert_msg(checkpoint_latest(out, ckpt, sizeof ckpt), "no complete checkpoint in %s", out);
    int step = atoi(strrchr(ckpt, '_') + 1);
    char log[600], want[64];
    snprintf(log, sizeof log, "%s/fault.log", workdir);
    snprintf(want, sizeof want, "stopped at step %d of", step);
    char *text = read_file(log, NULL);
    ck_assert_msg(strstr(text, want) != NULL, "the checkpoint is step %d but the log says:\n%s",
                  step, text);
    free(text);
    ck_assert_int_eq(run_train(2, "fault", GLOBAL_BATCH / 2, step + 1, "--resume=1"), 0);
}
END_TEST

// bolt's own launcher: --nproc=2 (ranks talking through shared memory) equals one process,
// and so do --nproc=3 with ZeRO-1 and gradient accumulation (the shared-memory
// reduce-scatter and all-gather) and --nproc=4 with sp = 2 (groups split from it).
START_TEST(test_nproc) {
    write_corpus();
    run_single();
    ck_assert_int_eq(run_train(1, "np2", GLOBAL_BATCH / 2, STEPS, "--nproc=2"), 0);
    expect_same_run("np2", "single", 1, true);
    ck_assert_int_eq(
        run_train(1, "np3", GLOBAL_BATCH / 6, STEPS, "--nproc=3 --zero=1 --grad_accum=2"), 0);
    expect_same_run("np3", "single", 1, false);
    // dp 2 x sp 2: the sequence-parallel groups split from the shared-memory communicator.
    ck_assert_int_eq(run_train(1, "np4sp2", GLOBAL_BATCH / 2, STEPS, "--nproc=4 --sp=2"), 0);
    expect_close_run("np4sp2", "single", 1, true, 1e-5);
}
END_TEST

// A killed --nproc rank: the supervisor ends the job and names the rank.
START_TEST(test_nproc_killed_rank) {
    fault_with(SIGKILL, "", "rank 1 of 2 was killed by signal 9", true, false);
}
END_TEST

// A frozen --nproc rank: rank 0's watchdog ends it, and the supervisor the rest.
START_TEST(test_nproc_hung_rank) {
    fault_with(SIGSTOP, "--collective_timeout=5", "did not finish within collective_timeout", true,
               false);
}
END_TEST

// SIGTERM to one --nproc rank: both stop after the same step with a checkpoint that
// resumes, as under mpirun.
START_TEST(test_nproc_interrupted_rank) {
    fault_with(SIGTERM, "", "stopped at step", true, false);
    char out[600], ckpt[700];
    snprintf(out, sizeof out, "%s/fault", workdir);
    ck_assert_msg(checkpoint_latest(out, ckpt, sizeof ckpt), "no complete checkpoint in %s", out);
    int step = atoi(strrchr(ckpt, '_') + 1);
    ck_assert_int_eq(run_train(1, "fault", GLOBAL_BATCH / 2, step + 1, "--resume=1 --nproc=2"), 0);
}
END_TEST

// mpirun on PATH?
static bool have_mpirun(void) {
    return system("command -v mpirun > /dev/null 2>&1") == 0;
}

int main(void) {
    // An absolute path: mpirun may start the ranks in another directory.
    char *absolute = realpath(bolt_binary(), NULL);
    snprintf(bolt, sizeof bolt, "%s", absolute ? absolute : bolt_binary());
    free(absolute);
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("dist");
    tcase_set_timeout(tc, 120);
    // One thread per rank (2 cores are shared by up to 4 ranks); ranks do not use the
    // kernel's cross-memory attach, which containers often forbid.
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    mpirun_ranks_without_leak_checks();
    make_scratch_root("dist");
    if (file_size(bolt) < 0) {
        printf("test_dist: %s not built, distributed tests skipped\n", bolt);
    } else {
        tcase_add_test(tc, test_nproc); // bolt's own launcher needs no MPI
        tcase_add_test(tc, test_nproc_killed_rank);
        tcase_add_test(tc, test_nproc_hung_rank);
        tcase_add_test(tc, test_nproc_interrupted_rank);
    }
    if (!have_mpirun() || !dist_has_mpi()) {
        printf("test_dist: %s, mpirun tests skipped\n",
               dist_has_mpi() ? "mpirun not found" : "this build has no MPI");
    } else if (file_size(bolt) >= 0) {
        tcase_add_test(tc, test_data_parallel);
        tcase_add_test(tc, test_zero_and_accumulation);
        tcase_add_test(tc, test_sequence_parallel);
        tcase_add_test(tc, test_resume_other_rank_count);
        tcase_add_test(tc, test_killed_rank);
        tcase_add_test(tc, test_hung_rank);
        tcase_add_test(tc, test_interrupted_rank);
    }
    suite_add_tcase(s, tc);
    return run_suite(s);
}
