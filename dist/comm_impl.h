// dist/comm_impl.h: what a communicator implementation provides (comm.c dispatches to it):
// MPI on host memory (comm_mpi.c) and NCCL on the CUDA stream (comm_nccl.cu).
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "../kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CommImpl {
    void (*all_reduce_sum)(void *self, float *buf, size_t n);
    // The same sum, left running beside the backend's later work until wait (NULL: the
    // implementation has no second stream; all_reduce_sum serves).
    void (*all_reduce_sum_async)(void *self, float *buf, size_t n);
    void (*wait)(void *self);
    void (*reduce_scatter_sum)(void *self, float *buf, size_t shard);
    void (*all_gather)(void *self, float *buf, size_t shard);
    void (*broadcast)(void *self, void *buf, size_t bytes, int root);
    void (*barrier)(void *self);
    // A communicator over the ranks that pass the same color (every rank calls it),
    // ranked by key.
    void *(*split)(void *self, int color, int key);
    // Asynchronous communicators: false with a reason if broken or stuck (watchdog poll);
    // cancel makes pending work give up. NULL for blocking ones.
    bool (*poll)(void *self, double timeout_s, char *why, size_t cap);
    void (*cancel)(void *self);
    bool blocking; // collectives return when done (the watchdog times them)
    void (*free)(void *self);
} CommImpl;

// MPI over MPI_COMM_WORLD (comm_mpi.c, BOLT_MPI builds): on host memory, or staged through
// the host for a backend whose memory is not the host's. name[cap] gets the library.
extern const CommImpl comm_mpi_impl;
void *comm_mpi_new(Backend *be, char *name, size_t cap);
// Host bytes from rank root to every rank of MPI_COMM_WORLD (the NCCL id).
void comm_mpi_broadcast_bytes(void *buf, size_t bytes, int root);

// NCCL (comm_nccl.cu, BOLT_NCCL builds): the unique id (NCCL_ID_BYTES) made by rank 0 and
// given to every rank, then the communicator on the backend's device and stream.
enum { NCCL_ID_BYTES = 128 };
extern const CommImpl comm_nccl_impl;
void comm_nccl_unique_id(void *id);
void *comm_nccl_new(Backend *be, const void *id, int rank, int size, char *name, size_t cap);

#ifdef __cplusplus
}
#endif
