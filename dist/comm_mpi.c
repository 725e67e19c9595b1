// dist/comm_mpi.c: collectives through MPI over MPI_COMM_WORLD, or a group split from it
// (the ranks of one sequence-parallel group). The CPU backend's memory
// is the host's, so buffers go to MPI as they are; any other backend's buffers are staged
// through a host copy (slow, but correct: the fallback when a CUDA build has no NCCL).
// Errors come back (MPI_ERRORS_RETURN, set at MPI_Init) and end the job naming the rank.
#ifdef BOLT_MPI
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "comm_impl.h"

typedef struct MpiComm {
    Backend *be;
    bool staged;   // the backend's memory is not the host's
    MPI_Comm comm; // MPI_COMM_WORLD, or a group made by mpi_split (freed with it)
    int rank, size;
    char *host; // staging buffer
    size_t host_bytes;
} MpiComm;

enum { MAX_CHUNK = 1 << 30 }; // elements per MPI call (counts are ints)

// Die naming the rank and the call if MPI failed.
static void mpi_ok(int rc, int rank, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    die("rank %d: %s failed: %s", rank, what, msg);
}

// The host view of `bytes` of buf: buf itself, or the staging buffer (filled from buf if
// `fill`).
static char *host_view(MpiComm *c, void *buf, size_t bytes, bool fill) {
    if (!c->staged) return buf;
    if (bytes > c->host_bytes) {
        free(c->host);
        c->host = xmalloc(bytes);
        c->host_bytes = bytes;
    }
    if (fill) c->be->ops->download(c->be, c->host, buf, bytes);
    return c->host;
}

// Copy bytes [off, off + bytes) of the host view back to buf (staged only).
static void write_back(MpiComm *c, void *buf, size_t off, size_t bytes) {
    if (c->staged) c->be->ops->upload(c->be, (char *)buf + off, c->host + off, bytes);
}

static void mpi_all_reduce_sum(void *self, float *buf, size_t n) {
    MpiComm *c = self;
    float *x = (float *)host_view(c, buf, n * sizeof(float), true);
    for (size_t i = 0; i < n; i += MAX_CHUNK) {
        int count = (int)(n - i < MAX_CHUNK ? n - i : MAX_CHUNK);
        mpi_ok(MPI_Allreduce(MPI_IN_PLACE, x + i, count, MPI_FLOAT, MPI_SUM, c->comm), c->rank,
               "MPI_Allreduce");
    }
    write_back(c, buf, 0, n * sizeof(float));
}

// In place, MPI leaves this rank's reduced shard at the start of the buffer; it moves to
// its own place.
static void mpi_reduce_scatter_sum(void *self, float *buf, size_t shard) {
    MpiComm *c = self;
    check(shard <= INT_MAX, "rank %d: reduce_scatter of %zu floats per rank is too large for MPI",
          c->rank, shard);
    float *x = (float *)host_view(c, buf, (size_t)c->size * shard * sizeof(float), true);
    mpi_ok(MPI_Reduce_scatter_block(MPI_IN_PLACE, x, (int)shard, MPI_FLOAT, MPI_SUM, c->comm),
           c->rank, "MPI_Reduce_scatter_block");
    size_t mine = (size_t)c->rank * shard;
    if (c->rank > 0) memmove(x + mine, x, shard * sizeof(float));
    write_back(c, buf, mine * sizeof(float), shard * sizeof(float));
}

static void mpi_all_gather(void *self, float *buf, size_t shard) {
    MpiComm *c = self;
    check(shard <= INT_MAX, "rank %d: all_gather of %zu floats per rank is too large for MPI",
          c->rank, shard);
    size_t bytes = (size_t)c->size * shard * sizeof(float), mine = (size_t)c->rank * shard;
    float *x = (float *)host_view(c, buf, bytes, false);
    if (c->staged) c->be->ops->download(c->be, x + mine, buf + mine, shard * sizeof(float));
    mpi_ok(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, (int)shard, MPI_FLOAT, c->comm),
           c->rank, "MPI_Allgather");
    write_back(c, buf, 0, bytes);
}

// Host bytes from root to every rank of comm, in chunks MPI can count.
static void broadcast_bytes(MPI_Comm comm, char *x, size_t bytes, int root, int rank) {
    for (size_t i = 0; i < bytes; i += MAX_CHUNK) {
        int count = (int)(bytes - i < MAX_CHUNK ? bytes - i : MAX_CHUNK);
        mpi_ok(MPI_Bcast(x + i, count, MPI_BYTE, root, comm), rank, "MPI_Bcast");
    }
}

void comm_mpi_broadcast_bytes(void *buf, size_t bytes, int root) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    broadcast_bytes(MPI_COMM_WORLD, buf, bytes, root, rank);
}

static void mpi_broadcast(void *self, void *buf, size_t bytes, int root) {
    MpiComm *c = self;
    char *x = host_view(c, buf, bytes, c->rank == root);
    broadcast_bytes(c->comm, x, bytes, root, c->rank);
    write_back(c, buf, 0, bytes);
}

static void mpi_barrier(void *self) {
    MpiComm *c = self;
    c->be->ops->sync(c->be);
    mpi_ok(MPI_Barrier(c->comm), c->rank, "MPI_Barrier");
}

// The ranks with the same color as a group of their own, ordered by key.
static void *mpi_split(void *self, int color, int key) {
    MpiComm *c = self;
    MpiComm *g = xcalloc(1, sizeof(MpiComm));
    g->be = c->be;
    g->staged = c->staged;
    mpi_ok(MPI_Comm_split(c->comm, color, key, &g->comm), c->rank, "MPI_Comm_split");
    MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g->comm, &g->rank);
    MPI_Comm_size(g->comm, &g->size);
    return g;
}

static void mpi_free(void *self) {
    MpiComm *c = self;
    if (c->comm != MPI_COMM_WORLD) MPI_Comm_free(&c->comm);
    free(c->host);
    free(c);
}

const CommImpl comm_mpi_impl = {
    .all_reduce_sum = mpi_all_reduce_sum,
    .reduce_scatter_sum = mpi_reduce_scatter_sum,
    .all_gather = mpi_all_gather,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .split = mpi_split,
    .blocking = true,
    .free = mpi_free,
};

void *comm_mpi_new(Backend *be, char *name, size_t cap) {
    MpiComm *c = xcalloc(1, sizeof(MpiComm));
    c->be = be;
    c->staged = strcmp(be->name, "cpu") != 0;
    c->comm = MPI_COMM_WORLD;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    // "Open MPI v4.1.4, package: ..." -> "mpi (Open MPI v4.1.4)".
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, ",\n")] = '\0';
    snprintf(name, cap, "mpi (%s%s)", lib, c->staged ? ", staged via host" : "");
    return c;
}
#endif
