// dist/launch.c: the --nproc launcher and supervisor (see launch.h).
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/util.h"

enum { SLOT_BYTES = 16 << 20 }; // each rank's share of the segment

// The supervisor's pending signal (SIGINT or SIGTERM), to pass on to the ranks.
static volatile sig_atomic_t pending_signal;

static void remember_signal(int sig) {
    pending_signal = sig;
}

// True if another launcher (mpirun, srun, a PMI) started this process.
static bool under_other_launcher(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("SLURM_STEP_NUM_TASKS") || getenv("PMI_SIZE");
}

// The child's side of fork: its own process group (the terminal's Ctrl-C goes to the
// supervisor alone, which passes it on once), death with the supervisor, its place in the
// job, then bolt itself.
static void become_rank(int rank, int nproc, const char *shm, pid_t supervisor, char *exe,
                        char **args) {
    setpgid(0, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != supervisor) _exit(1); // the supervisor is already gone
    char v[32];
    snprintf(v, sizeof v, "%d", rank);
    setenv("BOLT_RANK", v, 1);
    snprintf(v, sizeof v, "%d", nproc);
    setenv("BOLT_WORLD", v, 1);
    setenv("BOLT_SHM", shm, 1);
    execv(exe, args);
    fprintf(stderr, "bolt: --nproc: cannot start %s (%s)\n", exe, strerror(errno));
    _exit(127);
}

// Wait for every rank; at the first failure kill the rest. A rank that exits 130 or 143
// stopped on request (after saving), which is not a failure.
static int supervise(pid_t *pids, int nproc) {
    int live = nproc, status = 0, forwarded = 0;
    bool failed = false;
    while (live > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno != EINTR) break;
            int sig = pending_signal;
            pending_signal = 0;
            if (sig && forwarded < 2) { // the second one makes the ranks quit at once
                for (int r = 0; r < nproc; r++)
                    if (pids[r] > 0) kill(pids[r], sig);
                forwarded++;
            }
            continue;
        }
        int r = 0;
        while (r < nproc && pids[r] != pid) r++;
        if (r == nproc) continue;
        pids[r] = 0;
        live--;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
        if (WIFEXITED(st) &&
            (WEXITSTATUS(st) == 128 + SIGINT || WEXITSTATUS(st) == 128 + SIGTERM)) {
            status = WEXITSTATUS(st);
            continue;
        }
        if (failed) continue;
        failed = true;
        if (WIFSIGNALED(st))
            fprintf(stderr, "bolt: rank %d of %d was killed by signal %d (%s); ending the job\n", r,
                    nproc, WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            fprintf(stderr, "bolt: rank %d of %d exited with status %d; ending the job\n", r, nproc,
                    WEXITSTATUS(st));
        for (int q = 0; q < nproc; q++)
            if (pids[q] > 0) kill(pids[q], SIGKILL);
    }
    return failed ? 1 : status;
}

int launch_ranks(int nproc, const char *command, int argc, char **argv) {
    check(!under_other_launcher(),
          "--nproc=%d: this process is already one rank of a job started by mpirun or srun; "
          "give the process count to one launcher only",
          nproc);
    char name[64];
    snprintf(name, sizeof name, "/bolt-%d", (int)getpid());
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    check(fd >= 0, "--nproc: cannot create shared memory %s (%s)", name, strerror(errno));
    size_t bytes = SHM_HEADER_BYTES + (size_t)nproc * SLOT_BYTES;
    check(ftruncate(fd, (off_t)bytes) == 0,
          "--nproc: cannot size shared memory %s to %zu bytes (%s)", name, bytes, strerror(errno));
    ShmSegment *seg = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    check(seg != MAP_FAILED, "--nproc: cannot map shared memory %s (%s)", name, strerror(errno));
    atomic_init(&seg->arrived, 0);
    atomic_init(&seg->generation, 0);
    seg->ranks = nproc;
    seg->slot_bytes = SLOT_BYTES;

    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    check(len > 0, "--nproc: cannot find this program (/proc/self/exe: %s)", strerror(errno));
    exe[len] = '\0';
    char **args = xcalloc((size_t)argc + 3, sizeof(char *));
    args[0] = exe;
    args[1] = (char *)command;
    for (int i = 0; i < argc; i++) args[i + 2] = argv[i];

    struct sigaction sa = {0};
    sa.sa_handler = remember_signal; // no SA_RESTART: waitpid returns EINTR
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fflush(stdout);
    fflush(stderr);
    pid_t supervisor = getpid();
    pid_t *pids = xcalloc((size_t)nproc, sizeof(pid_t));
    for (int r = 0; r < nproc; r++) {
        pid_t pid = fork();
        if (pid < 0) {
            for (int q = 0; q < r; q++) kill(pids[q], SIGKILL);
            shm_unlink(name);
            die("--nproc: cannot start rank %d (%s)", r, strerror(errno));
        }
        if (pid == 0) become_rank(r, nproc, name, supervisor, exe, args);
        pids[r] = pid;
    }
    int status = supervise(pids, nproc);
    munmap(seg, bytes);
    shm_unlink(name);
    free(pids);
    free(args);
    return status;
}

ShmSegment *launch_attach(int *rank, int *world) {
    const char *name = getenv("BOLT_SHM");
    if (!name || !*name) return NULL;
    const char *r = getenv("BOLT_RANK"), *w = getenv("BOLT_WORLD");
    check(r && w, "BOLT_SHM is set but BOLT_RANK / BOLT_WORLD are not (start ranks with --nproc)");
    *world = (int)parse_int_arg("BOLT_WORLD", w, 1, 1 << 20);
    *rank = (int)parse_int_arg("BOLT_RANK", r, 0, *world - 1);
    int fd = shm_open(name, O_RDWR, 0);
    check(fd >= 0, "rank %d: cannot open the job's shared memory %s (%s)", *rank, name,
          strerror(errno));
    struct stat sb;
    check(fstat(fd, &sb) == 0 && (size_t)sb.st_size >= SHM_HEADER_BYTES,
          "rank %d: shared memory %s is too small", *rank, name);
    ShmSegment *seg = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    check(seg != MAP_FAILED, "rank %d: cannot map shared memory %s (%s)", *rank, name,
          strerror(errno));
    check(seg->ranks == *world &&
              (size_t)sb.st_size >= SHM_HEADER_BYTES + (size_t)*world * seg->slot_bytes,
          "rank %d: shared memory %s is for %d ranks, not %d", *rank, name, seg->ranks, *world);
    return seg;
}
