// dist/launch.h: `bolt train --nproc=N` on one node without MPI. The first process maps a
// shared-memory segment, starts N copies of bolt as ranks 0 .. N-1 of one job (their
// environment: BOLT_RANK, BOLT_WORLD, BOLT_SHM), and supervises them: it passes Ctrl-C and
// SIGTERM on (each rank then saves and stops at the same step), ends the job at the first
// rank that fails, naming it, and exits with the job's status. The ranks talk through the
// segment (dist/comm_shm.c) on the CPU, or NCCL on GPUs (its id passed through the segment).
#pragma once
#include <stdatomic.h>
#include <stddef.h>

enum {
    SHM_MAX_RANKS = 256,     // the most ranks --nproc starts
    SHM_MAX_SPLITS = 4,      // the most times the job's communicator is split into groups
    SHM_HEADER_BYTES = 16384 // the slots start this far into the segment
};

// The head of the segment; rank r's slot of slot_bytes starts at SHM_HEADER_BYTES +
// r * slot_bytes. A group made by the s-th split, whose lowest rank is q, waits at its
// barriers on group_arrived / group_generation[s * SHM_MAX_RANKS + q].
typedef struct ShmSegment {
    atomic_int arrived;    // ranks waiting at the job's current barrier
    atomic_int generation; // the job's barriers completed
    int ranks;
    size_t slot_bytes;
    int split_color[SHM_MAX_RANKS], split_key[SHM_MAX_RANKS]; // the split in progress
    atomic_int group_arrived[SHM_MAX_SPLITS * SHM_MAX_RANKS];
    atomic_int group_generation[SHM_MAX_SPLITS * SHM_MAX_RANKS];
} ShmSegment;

// In the process the user started: run `bolt COMMAND argv...` as nproc ranks and supervise
// them; returns the exit status for main (0, 128 + the signal after a requested stop, or
// 1 when a rank failed).
int launch_ranks(int nproc, const char *command, int argc, char **argv);

// In a rank started by launch_ranks: the mapped segment, with *rank and *world from the
// environment; NULL in any other process.
ShmSegment *launch_attach(int *rank, int *world);

// The collectives of dist/comm_shm.c over the segment (see dist/comm_impl.h).
struct CommImpl;
extern const struct CommImpl comm_shm_impl;
void *comm_shm_new(ShmSegment *seg, int rank, char *name, size_t cap);
// Host bytes from rank root to every rank of the segment (the NCCL id).
void comm_shm_broadcast_bytes(ShmSegment *seg, int rank, void *buf, size_t bytes, int root);
