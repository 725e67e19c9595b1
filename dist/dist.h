// dist/dist.h: this process's place in a distributed job. Data and sequence parallelism
// (NCCL, MPI) build on it; until they land bolt runs as one process, rank 0 of 1, and
// refuses to start as one of several launched processes rather than have each train
// the same model into the same out_dir.
#pragma once

typedef struct Dist {
    int rank;  // this process, 0 .. world-1
    int world; // number of processes
} Dist;

// The job layout: rank 0 of 1. Dies if a launcher (mpirun, torchrun-style env) started
// several processes, since this build cannot coordinate them.
Dist dist_init(void);
