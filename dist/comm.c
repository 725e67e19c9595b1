// dist/comm.c: choosing a communicator and timing its collectives (see comm.h).
#include "comm.h"

#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "comm_impl.h"
#include "launch.h"
#include "watchdog.h"

struct Comm {
    const CommImpl *impl; // NULL: one rank, collectives do nothing
    void *self;
    Backend *be;
    int rank, size;
    Watchdog *watchdog;
    double watchdog_timeout; // seconds one collective may take (groups split off inherit it)
    float *stage;            // backend memory for the host forms (non-host backends)
    size_t stage_bytes;
};

// BOLT_COMM: auto (default), mpi or nccl.
static const char *comm_wanted(void) {
    const char *v = getenv("BOLT_COMM");
    return v && *v ? v : "auto";
}

static bool host_memory(const Backend *be) {
    return strcmp(be->name, "cpu") == 0;
}

#ifdef BOLT_NCCL
// The NCCL communicator: rank 0 makes the unique id, MPI (or the shared memory of a
// --nproc job) gives it to the others.
static void *make_nccl(const Dist *d, Backend *be, char *name, size_t cap) {
    unsigned char id[NCCL_ID_BYTES];
    if (d->rank == 0) comm_nccl_unique_id(id);
    if (d->world > 1 && d->shm) {
        comm_shm_broadcast_bytes(d->shm, d->rank, id, sizeof id, 0);
    } else if (d->world > 1) {
#ifdef BOLT_MPI
        check(d->mpi, "rank %d: NCCL needs MPI to share its unique id", d->rank);
        comm_mpi_broadcast_bytes(id, sizeof id, 0);
#else
        die("rank %d: NCCL needs MPI to share its unique id, and this build has none", d->rank);
#endif
    }
    return comm_nccl_new(be, id, d->rank, d->world, name, cap);
}
#endif

Comm *comm_create(Dist *d, Backend *be, double timeout_s) {
    Comm *c = xcalloc(1, sizeof(Comm));
    c->be = be;
    c->rank = d->rank;
    c->size = d->world;
    snprintf(d->backend, sizeof d->backend, "%s", be->name);
    const char *want = comm_wanted();
    check(strcmp(want, "auto") == 0 || strcmp(want, "mpi") == 0 || strcmp(want, "nccl") == 0,
          "BOLT_COMM = '%s': expected auto, mpi or nccl", want);
    if (d->world == 1 && strcmp(want, "auto") == 0) {
        snprintf(d->transport, sizeof d->transport, "none");
        return c;
    }
    bool cuda = strcmp(be->name, "cuda") == 0;
    char name[64] = "";
    if (strcmp(want, "nccl") == 0 || (cuda && strcmp(want, "auto") == 0)) {
#ifdef BOLT_NCCL
        check(cuda, "BOLT_COMM = nccl needs the CUDA backend (device = cuda), not %s", be->name);
        c->impl = &comm_nccl_impl;
        c->self = make_nccl(d, be, name, sizeof name);
#else
        check(strcmp(want, "nccl") != 0, "BOLT_COMM = nccl, but this build has no NCCL");
#endif
    }
    if (!c->impl && d->shm) {
        check(host_memory(be),
              "rank %d: --nproc ranks on the %s backend talk through NCCL, and this build has "
              "none (or BOLT_COMM asks otherwise)",
              d->rank, be->name);
        c->impl = &comm_shm_impl;
        c->self = comm_shm_new(d->shm, d->rank, name, sizeof name);
    }
    if (!c->impl) {
#ifdef BOLT_MPI
        check(d->mpi, "rank %d: MPI collectives need an MPI job (mpirun, srun)", d->rank);
        c->impl = &comm_mpi_impl;
        c->self = comm_mpi_new(be, name, sizeof name);
#else
        die("rank %d of %d: this build has no MPI, so ranks cannot talk", d->rank, d->world);
#endif
    }
    snprintf(d->transport, sizeof d->transport, "%s", name);
    c->watchdog_timeout = timeout_s;
    c->watchdog = watchdog_start(d->rank, timeout_s, c->impl->poll, c->impl->cancel, c->self);
    return c;
}

Comm *comm_split(Comm *c, int color, int key, int group_rank, int group_size) {
    Comm *g = xcalloc(1, sizeof(Comm));
    g->be = c->be;
    g->rank = group_rank;
    g->size = group_size;
    if (!c->impl) {
        check(group_size == 1, "comm_split: a group of %d ranks out of a one-rank job", group_size);
        return g;
    }
    g->impl = c->impl;
    g->self = c->impl->split(c->self, color, key);
    g->watchdog =
        watchdog_start(c->rank, c->watchdog_timeout, c->impl->poll, c->impl->cancel, g->self);
    return g;
}

void comm_free(Comm *c) {
    if (!c) return;
    watchdog_stop(c->watchdog);
    if (c->impl) c->impl->free(c->self);
    if (c->stage) c->be->ops->free(c->be, c->stage);
    free(c);
}

int comm_rank(const Comm *c) {
    return c->rank;
}

int comm_size(const Comm *c) {
    return c->size;
}

void comm_all_reduce_sum(Comm *c, float *buf, size_t n) {
    if (!c->impl || n == 0) return;
    watchdog_enter(c->watchdog, "all_reduce");
    c->impl->all_reduce_sum(c->self, buf, n);
    watchdog_leave(c->watchdog);
}

void comm_all_reduce_sum_async(Comm *c, float *buf, size_t n) {
    if (!c->impl || n == 0) return;
    watchdog_enter(c->watchdog, "all_reduce");
    if (c->impl->all_reduce_sum_async)
        c->impl->all_reduce_sum_async(c->self, buf, n);
    else
        c->impl->all_reduce_sum(c->self, buf, n);
    watchdog_leave(c->watchdog);
}

void comm_wait(Comm *c) {
    if (c->impl && c->impl->wait) c->impl->wait(c->self);
}

void comm_reduce_scatter_sum(Comm *c, float *buf, size_t shard) {
    if (!c->impl || shard == 0) return;
    watchdog_enter(c->watchdog, "reduce_scatter");
    c->impl->reduce_scatter_sum(c->self, buf, shard);
    watchdog_leave(c->watchdog);
}

void comm_all_gather(Comm *c, float *buf, size_t shard) {
    if (!c->impl || shard == 0) return;
    watchdog_enter(c->watchdog, "all_gather");
    c->impl->all_gather(c->self, buf, shard);
    watchdog_leave(c->watchdog);
}

void comm_broadcast(Comm *c, void *buf, size_t bytes, int root) {
    if (!c->impl || bytes == 0) return;
    watchdog_enter(c->watchdog, "broadcast");
    c->impl->broadcast(c->self, buf, bytes, root);
    watchdog_leave(c->watchdog);
}

void comm_barrier(Comm *c) {
    if (!c->impl) return;
    watchdog_enter(c->watchdog, "barrier");
    c->impl->barrier(c->self);
    watchdog_leave(c->watchdog);
}

// Backend memory of at least `bytes` for staging host values.
static void *stage(Comm *c, size_t bytes) {
    if (bytes > c->stage_bytes) {
        if (c->stage) c->be->ops->free(c->be, c->stage);
        c->stage = c->be->ops->alloc(c->be, bytes);
        c->stage_bytes = bytes;
    }
    return c->stage;
}

void comm_all_reduce_sum_host(Comm *c, float *x, size_t n) {
    if (!c->impl || n == 0) return;
    if (host_memory(c->be)) {
        comm_all_reduce_sum(c, x, n);
        return;
    }
    float *dev = stage(c, n * sizeof(float));
    c->be->ops->upload(c->be, dev, x, n * sizeof(float));
    comm_all_reduce_sum(c, dev, n);
    c->be->ops->download(c->be, x, dev, n * sizeof(float));
}

void comm_broadcast_host(Comm *c, void *buf, size_t bytes, int root) {
    if (!c->impl || bytes == 0) return;
    if (host_memory(c->be)) {
        comm_broadcast(c, buf, bytes, root);
        return;
    }
    void *dev = stage(c, bytes);
    c->be->ops->upload(c->be, dev, buf, bytes);
    comm_broadcast(c, dev, bytes, root);
    c->be->ops->download(c->be, buf, dev, bytes);
}
