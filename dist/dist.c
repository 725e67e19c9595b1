// dist/dist.c: process start and topology (see dist.h).
#include "dist.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef BOLT_MPI
#include <mpi.h>
#endif

#include "../core/util.h"
#include "launch.h"

// What the launcher's environment says: the number of processes it started (1: none or
// a plain launch), this one's rank, and the launcher's name.
typedef struct Launch {
    int world, rank;
    const char *name;
} Launch;

// An environment variable as an int, or `fallback` if unset or empty.
static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    return (int)parse_int_arg(name, v, 0, 1 << 30);
}

// Read the launcher from the environment: OpenMPI's mpirun, SLURM's srun (its step
// variables, which an sbatch script alone does not set), or another PMI launcher.
static Launch detect_launch(void) {
    if (getenv("BOLT_SHM"))
        return (Launch){env_int("BOLT_WORLD", 1), env_int("BOLT_RANK", 0), "bolt"};
    if (getenv("OMPI_COMM_WORLD_SIZE"))
        return (Launch){env_int("OMPI_COMM_WORLD_SIZE", 1), env_int("OMPI_COMM_WORLD_RANK", 0),
                        "mpirun"};
    if (getenv("SLURM_STEP_NUM_TASKS") && getenv("SLURM_PROCID"))
        return (Launch){env_int("SLURM_STEP_NUM_TASKS", 1), env_int("SLURM_PROCID", 0), "srun"};
    if (getenv("PMI_SIZE")) return (Launch){env_int("PMI_SIZE", 1), env_int("PMI_RANK", 0), "pmi"};
    int torch = env_int("WORLD_SIZE", 1);
    check(torch <= 1,
          "started as one of %d processes by a torchrun-style launcher (WORLD_SIZE), which bolt "
          "does not use: start it with mpirun -np N or srun (see README, Multi-GPU and "
          "multi-node)",
          torch);
    return (Launch){1, 0, "none"};
}

// BOLT_COMM: "" or "auto" (MPI only when several processes run), "mpi" (MPI even for one
// process) or "nccl" (an NCCL communicator even for one process; see comm.c).
static bool mpi_requested(void) {
    const char *v = getenv("BOLT_COMM");
    if (!v || !*v || strcmp(v, "auto") == 0 || strcmp(v, "nccl") == 0) return false;
    check(strcmp(v, "mpi") == 0, "BOLT_COMM = '%s': expected auto, mpi or nccl", v);
    return true;
}

// One GPU per local rank: BOLT_CUDA_DEVICE = local rank, unless the user chose one. When
// the launcher already gave each process a single visible GPU (CUDA_VISIBLE_DEVICES with
// one entry, as srun --gpus-per-task=1 does), that GPU is device 0.
static void choose_gpu(const Dist *d) {
    if (d->local_size <= 1 || getenv("BOLT_CUDA_DEVICE")) return;
    int device = d->local_rank;
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (visible && *visible && !strchr(visible, ',')) device = 0;
    char buf[16];
    snprintf(buf, sizeof buf, "%d", device);
    setenv("BOLT_CUDA_DEVICE", buf, 1);
}

#ifdef BOLT_MPI
static bool mpi_up, mpi_done; // MPI_Init called / MPI_Finalize called
static int my_rank, my_world;

// At exit without dist_finalize (die() on any rank): end the whole job, naming this rank,
// rather than leave the other ranks waiting in a collective.
static void abort_unfinished(void) {
    if (!mpi_up || mpi_done) return;
    char host[256] = "?";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    fprintf(stderr, "bolt: rank %d of %d (host %s) failed; ending the job\n", my_rank, my_world,
            host);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

// Die naming the rank if an MPI call failed.
static void mpi_check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    die("rank %d: %s failed: %s", my_rank, what, msg);
}

// MPI start: ranks from MPI_COMM_WORLD, local ranks from a shared-memory split.
static void init_mpi(Dist *d, const Launch *l) {
    int provided = 0;
    check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
          "MPI_Init failed (launched by %s as rank %d of %d)", l->name, l->rank, l->world);
    mpi_up = true;
    atexit(abort_unfinished);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &d->rank), "MPI_Comm_rank");
    mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &d->world), "MPI_Comm_size");
    my_rank = d->rank;
    my_world = d->world;
    check(l->world <= 1 || d->world == l->world,
          "%s started %d processes but MPI sees %d (is bolt built against the MPI of this "
          "launcher? srun needs --mpi=pmix or pmi2)",
          l->name, l->world, d->world);
    MPI_Comm local;
    mpi_check(
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local),
        "MPI_Comm_split_type");
    mpi_check(MPI_Comm_rank(local, &d->local_rank), "MPI_Comm_rank");
    mpi_check(MPI_Comm_size(local, &d->local_size), "MPI_Comm_size");
    MPI_Comm_free(&local);
    int leader = d->local_rank == 0;
    mpi_check(MPI_Allreduce(&leader, &d->nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
    d->mpi = true;
}
#endif

Dist dist_init(void) {
    Launch l = detect_launch();
    Dist d = {.rank = 0, .world = 1, .local_rank = 0, .local_size = 1, .nodes = 1};
    snprintf(d.launcher, sizeof d.launcher, "%s", l.name);
    snprintf(d.backend, sizeof d.backend, "?");
    snprintf(d.transport, sizeof d.transport, "none");
    if (strcmp(l.name, "bolt") == 0) { // a rank of --nproc: one node, shared memory
        d.shm = launch_attach(&d.rank, &d.world);
        d.local_rank = d.rank;
        d.local_size = d.world;
        check(!mpi_requested(), "BOLT_COMM = mpi, but --nproc ranks have no MPI job (use mpirun)");
    } else if (l.world > 1 || mpi_requested()) {
#ifdef BOLT_MPI
        init_mpi(&d, &l);
#else
        die("started as rank %d of %d processes by %s, but this build of bolt has no MPI: "
            "install an MPI (libopenmpi-dev) and rebuild (make)",
            l.rank, l.world, l.name);
#endif
    }
    dist_set_sp(&d, 1);
    choose_gpu(&d);
    return d;
}

void dist_set_sp(Dist *d, int sp) {
    check(sp >= 1 && d->world % sp == 0,
          "sp = %d does not divide the %d ranks of this job (world = dp x sp)", sp, d->world);
    d->sp = sp;
    d->dp = d->world / sp;
    d->dp_rank = d->rank / sp;
    d->sp_rank = d->rank % sp;
}

void dist_print(const Dist *d, FILE *f) {
    fprintf(f,
            "dist: world %d (dp %d x sp %d) | %d node%s x %d rank%s | backend %s | transport %s "
            "| launcher %s\n",
            d->world, d->dp, d->sp, d->nodes, d->nodes == 1 ? "" : "s", d->local_size,
            d->local_size == 1 ? "" : "s", d->backend, d->transport, d->launcher);
}

void dist_finalize(Dist *d) {
#ifdef BOLT_MPI
    if (mpi_up && !mpi_done) {
        fflush(stdout);
        MPI_Finalize();
        mpi_done = true;
    }
#endif
    d->mpi = false;
}

void dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef BOLT_MPI
    if (mpi_up && !mpi_done) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    _exit(code);
}

bool dist_has_mpi(void) {
#ifdef BOLT_MPI
    return true;
#else
    return false;
#endif
}
