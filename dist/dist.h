// dist/dist.h: this process's place in a distributed job. A launcher (mpirun, or srun
// with PMI) starts one process per GPU; dist_init finds out which one this is, through
// MPI, before the backend is created (so each local rank takes its own GPU). Launched
// plainly, bolt is rank 0 of 1 and MPI is never touched. Collectives live in dist/comm.h;
// the model never sees any of this.
#pragma once
#include <stdbool.h>
#include <stdio.h>

typedef struct Dist {
    int rank;               // this process, 0 .. world-1
    int world;              // number of processes
    int local_rank;         // among the processes on this node (its GPU index)
    int local_size;         // processes on this node
    int nodes;              // nodes the job spans
    int dp, sp;             // data- and sequence-parallel group sizes: world = dp * sp
    int dp_rank;            // this rank's data-parallel group (rank / sp): which data it reads
    int sp_rank;            // its slice of each sequence within the group (rank % sp)
    bool mpi;               // MPI_Init was called: collectives between processes go through it
    struct ShmSegment *shm; // a rank of `--nproc`: the job's shared memory (dist/launch.h)
    char launcher[16];      // "none", "mpirun", "srun", "pmi" or "bolt" (--nproc)
    char backend[16];       // the backend's name, set when the communicator is made
    char transport[64];     // how ranks talk ("none", "mpi", "nccl 2.21.5"), set likewise
} Dist;

// Find this process's place: under mpirun or srun (several processes), initialise MPI and
// take rank, world and local rank from it; as a rank of `--nproc`, take them from the
// environment and map the job's shared memory; sets BOLT_CUDA_DEVICE to the local rank unless
// already set, so each process on a node takes its own GPU. Plainly launched: rank 0 of 1,
// unless BOLT_COMM=mpi asks for MPI anyway. Dies with a clear message if the launch
// cannot be served (a torchrun-style launcher, or several processes without MPI).
Dist dist_init(void);
// Split the world into dp = world / sp sequence-parallel groups of sp consecutive ranks
// (dies naming the problem if sp does not divide the world).
void dist_set_sp(Dist *d, int sp);
// One line of topology for the log: world, dp, sp, ranks per node, backend, transport.
void dist_print(const Dist *d, FILE *f);
// The normal end of a job: MPI_Finalize (after which an exit is no longer an abort).
void dist_finalize(Dist *d);
// End the whole job now (MPI_Abort when MPI is up, else _exit): for the watchdog.
void dist_abort(int code) __attribute__((noreturn));
// True if this build can run several processes (it has MPI).
bool dist_has_mpi(void);
