// dist/comm.h: collectives between the ranks of a job, on backend memory. The CPU backend
// talks through MPI (host memory); the CUDA backend through NCCL, enqueued on the
// backend's stream in order with its ops (no host wait), or through MPI staged via the
// host when this build has no NCCL. A one-rank job gets a communicator whose collectives
// do nothing (BOLT_COMM=mpi or nccl makes a real one even then, to test it).
//
// Every rank must make the same calls in the same order. A collective that does not
// finish within the timeout, or an NCCL error, ends the job naming the rank (watchdog.h).
#pragma once
#include <stddef.h>

#include "../kernels/ops.h"
#include "dist.h"

typedef struct Comm Comm;

// A communicator over all of d's ranks for backend be; fills d->backend and d->transport.
// timeout_s: how long one collective may take before the job is ended.
Comm *comm_create(Dist *d, Backend *be, double timeout_s);
// A communicator over the ranks of c that pass the same color (every rank of c calls it,
// in the same order as every collective), ranked by key: this rank is group_rank of
// group_size there (the caller knows the layout).
// Its collectives are timed by a watchdog of their own.
Comm *comm_split(Comm *c, int color, int key, int group_rank, int group_size);
void comm_free(Comm *c);
int comm_rank(const Comm *c);
int comm_size(const Comm *c);

// buf[0..n) = the sum over ranks of buf[0..n), in place.
void comm_all_reduce_sum(Comm *c, float *buf, size_t n);
// The same sum for buffers the backend will not touch again until comm_wait (gradients
// of layers whose backward is done): where the communicator has a stream of its own
// (NCCL) it runs there, beside the backend's later work; elsewhere it is
// comm_all_reduce_sum. Every other collective of c waits for it first.
void comm_all_reduce_sum_async(Comm *c, float *buf, size_t n);
// The backend's later work (and the host's reads of backend memory) see every async
// collective of c finished.
void comm_wait(Comm *c);
// buf holds size * shard floats; afterwards shard r of rank r, buf[r*shard, (r+1)*shard),
// is the sum over ranks of that shard (the rest of buf is left unspecified).
void comm_reduce_scatter_sum(Comm *c, float *buf, size_t shard);
// buf holds size * shard floats; afterwards every rank's buf is the concatenation of each
// rank r's shard r.
void comm_all_gather(Comm *c, float *buf, size_t shard);
// bytes of buf from rank root to every rank.
void comm_broadcast(Comm *c, void *buf, size_t bytes, int root);
// Return once every rank has called it (and this rank's enqueued work is done).
void comm_barrier(Comm *c);

// Host-memory forms for small values (staged through backend memory when needed).
void comm_all_reduce_sum_host(Comm *c, float *x, size_t n);
void comm_broadcast_host(Comm *c, void *buf, size_t bytes, int root);
