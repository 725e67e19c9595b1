// dist/comm_nccl.cu: collectives through NCCL on a stream of the communicator's own,
// ordered against the CUDA backend's stream by events, so the host never waits for them
// (the step's one download does). Every collective starts after the backend's work so
// far; an ordinary one is joined at once (the backend's later work waits for it), an
// async one (a layer's gradients, from the data-parallel hook) only at comm_wait, so it
// runs while the backward of earlier layers goes on. All of one communicator's
// collectives share its stream, so every rank runs them in the same order.
//
// Each collective records an event; the watchdog's poll reports an NCCL asynchronous
// error, or the oldest collective still unfinished after the timeout, and cancel aborts
// the communicator so a stuck kernel lets go.
#ifdef BOLT_NCCL
#include <mutex>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda_common.cuh"
#include "comm_impl.h"

enum { RING = 512 }; // collectives tracked at once (older ones are waited for)

typedef struct Pending {
    cudaEvent_t done;
    double enqueued;
    const char *what;
} Pending;

typedef struct NcclComm {
    Backend *be;
    ncclComm_t comm;
    int rank, size;
    float *one;                   // a device float for the barrier
    cudaStream_t stream;          // the collectives run here
    cudaEvent_t issued, finished; // backend stream -> this stream, and back
    bool running;                 // async collectives the backend has not waited for
    std::mutex mu;
    Pending ring[RING];
    int head, count; // the oldest pending collective, and how many there are
    bool poll_device_set;
} NcclComm;

static cudaStream_t backend_stream(NcclComm *c) {
    return cuda_ctx(c->be)->stream;
}

// The stream (high priority, so collectives start as soon as their inputs are ready),
// the ordering events and the ring's events of a new communicator.
static void init_streams(NcclComm *c) {
    int least = 0, greatest = 0;
    CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    CUDA_CHECK(cudaStreamCreateWithPriority(&c->stream, cudaStreamNonBlocking, greatest));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->issued, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->finished, cudaEventDisableTiming));
    for (int i = 0; i < RING; i++)
        CUDA_CHECK(cudaEventCreateWithFlags(&c->ring[i].done, cudaEventDisableTiming));
    CUDA_CHECK(cudaMalloc(&c->one, sizeof(float)));
    CUDA_CHECK(cudaMemset(c->one, 0, sizeof(float)));
}

// Before a collective: it starts after the backend's work enqueued so far.
static void after_backend(NcclComm *c) {
    CUDA_CHECK(cudaEventRecord(c->issued, backend_stream(c)));
    CUDA_CHECK(cudaStreamWaitEvent(c->stream, c->issued, 0));
}

// The backend's later work waits for every collective enqueued so far.
static void join(NcclComm *c) {
    CUDA_CHECK(cudaEventRecord(c->finished, c->stream));
    CUDA_CHECK(cudaStreamWaitEvent(backend_stream(c), c->finished, 0));
    c->running = false;
}

// Die naming the rank and the call if NCCL failed.
static void nccl_ok(ncclResult_t r, NcclComm *c, const char *what) {
    if (r == ncclSuccess) return;
    const char *last = c && c->comm ? ncclGetLastError(c->comm) : "";
    die("rank %d: NCCL %s failed: %s%s%s", c ? c->rank : -1, what, ncclGetErrorString(r),
        last && *last ? ": " : "", last ? last : "");
}

// After enqueueing a collective: record its event (waiting for the oldest when the ring
// is full).
static void track(NcclComm *c, const char *what) {
    std::unique_lock<std::mutex> lock(c->mu);
    if (c->count == RING) {
        Pending *old = &c->ring[c->head];
        lock.unlock();
        CUDA_CHECK(cudaEventSynchronize(old->done));
        lock.lock();
        c->head = (c->head + 1) % RING;
        c->count--;
    }
    Pending *p = &c->ring[(c->head + c->count) % RING];
    p->enqueued = now_seconds();
    p->what = what;
    CUDA_CHECK(cudaEventRecord(p->done, c->stream));
    c->count++;
}

// After enqueueing a collective: track it, then join it at once, or (async) leave it
// running beside the backend's work until nccl_wait.
static void finish(NcclComm *c, const char *what, bool async) {
    track(c, what);
    if (async)
        c->running = true;
    else
        join(c);
}

static void nccl_all_reduce_async(void *self, float *buf, size_t n) {
    NcclComm *c = (NcclComm *)self;
    after_backend(c);
    nccl_ok(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, c->comm, c->stream), c, "all_reduce");
    finish(c, "all_reduce", true);
}

static void nccl_wait(void *self) {
    NcclComm *c = (NcclComm *)self;
    if (c->running) join(c);
}

static void nccl_all_reduce_sum(void *self, float *buf, size_t n) {
    NcclComm *c = (NcclComm *)self;
    after_backend(c);
    nccl_ok(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, c->comm, c->stream), c, "all_reduce");
    finish(c, "all_reduce", false);
}

// In place: rank r's shard of buf receives the sum of every rank's shard r.
static void nccl_reduce_scatter_sum(void *self, float *buf, size_t shard) {
    NcclComm *c = (NcclComm *)self;
    after_backend(c);
    nccl_ok(ncclReduceScatter(buf, buf + (size_t)c->rank * shard, shard, ncclFloat, ncclSum,
                              c->comm, c->stream),
            c, "reduce_scatter");
    finish(c, "reduce_scatter", false);
}

// In place: every rank's shard r of buf comes from rank r.
static void nccl_all_gather(void *self, float *buf, size_t shard) {
    NcclComm *c = (NcclComm *)self;
    after_backend(c);
    nccl_ok(ncclAllGather(buf + (size_t)c->rank * shard, buf, shard, ncclFloat, c->comm, c->stream),
            c, "all_gather");
    finish(c, "all_gather", false);
}

static void nccl_broadcast(void *self, void *buf, size_t bytes, int root) {
    NcclComm *c = (NcclComm *)self;
    after_backend(c);
    nccl_ok(ncclBroadcast(buf, buf, bytes, ncclChar, root, c->comm, c->stream), c, "broadcast");
    finish(c, "broadcast", false);
}

// An all-reduce of one float, then wait for the stream: every rank got here.
static void nccl_barrier(void *self) {
    NcclComm *c = (NcclComm *)self;
    after_backend(c);
    nccl_ok(ncclAllReduce(c->one, c->one, 1, ncclFloat, ncclSum, c->comm, c->stream), c, "barrier");
    finish(c, "barrier", false);
    CUDA_CHECK(cudaStreamSynchronize(backend_stream(c)));
}

// The watchdog's check (its own thread): NCCL's asynchronous error, then the oldest
// collective that has not finished.
static bool nccl_poll(void *self, double timeout_s, char *why, size_t cap) {
    NcclComm *c = (NcclComm *)self;
    if (!c->poll_device_set) {
        cudaSetDevice(cuda_ctx(c->be)->device);
        c->poll_device_set = true;
    }
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(c->comm, &async);
    if (r != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
        snprintf(why, cap, "NCCL reports an error: %s",
                 ncclGetErrorString(r != ncclSuccess ? r : async));
        return false;
    }
    std::lock_guard<std::mutex> lock(c->mu);
    while (c->count > 0) {
        Pending *p = &c->ring[c->head];
        cudaError_t q = cudaEventQuery(p->done);
        if (q == cudaErrorNotReady) {
            double age = now_seconds() - p->enqueued;
            if (age <= timeout_s) return true;
            snprintf(why, cap,
                     "NCCL %s has not finished %.0f s after it was enqueued (collective_timeout "
                     "= %.0f s; a peer rank died or hangs)",
                     p->what, age, timeout_s);
            return false;
        }
        if (q != cudaSuccess) {
            snprintf(why, cap, "CUDA error while waiting for NCCL %s: %s", p->what,
                     cudaGetErrorString(q));
            return false;
        }
        c->head = (c->head + 1) % RING;
        c->count--;
    }
    return true;
}

// The ranks with the same color as a communicator of their own (ncclCommSplit), on the
// same device and stream.
static void *nccl_split(void *self, int color, int key) {
    NcclComm *c = (NcclComm *)self;
    NcclComm *g = new NcclComm();
    g->be = c->be;
    nccl_ok(ncclCommSplit(c->comm, color, key, &g->comm, NULL), c, "comm split");
    nccl_ok(ncclCommUserRank(g->comm, &g->rank), g, "comm user rank");
    nccl_ok(ncclCommCount(g->comm, &g->size), g, "comm count");
    init_streams(g);
    return g;
}

static void nccl_cancel(void *self) {
    NcclComm *c = (NcclComm *)self;
    ncclCommAbort(c->comm);
}

static void nccl_free(void *self) {
    NcclComm *c = (NcclComm *)self;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    CUDA_CHECK(cudaStreamSynchronize(backend_stream(c)));
    nccl_ok(ncclCommDestroy(c->comm), c, "comm destroy");
    for (int i = 0; i < RING; i++) CUDA_CHECK(cudaEventDestroy(c->ring[i].done));
    CUDA_CHECK(cudaEventDestroy(c->issued));
    CUDA_CHECK(cudaEventDestroy(c->finished));
    CUDA_CHECK(cudaStreamDestroy(c->stream));
    CUDA_CHECK(cudaFree(c->one));
    delete c;
}

extern "C" const CommImpl comm_nccl_impl = {
    nccl_all_reduce_sum, nccl_all_reduce_async, nccl_wait,    nccl_reduce_scatter_sum,
    nccl_all_gather,     nccl_broadcast,        nccl_barrier, nccl_split,
    nccl_poll,           nccl_cancel,           false,        nccl_free,
};

extern "C" void comm_nccl_unique_id(void *id) {
    static_assert(sizeof(ncclUniqueId) == NCCL_ID_BYTES, "NCCL unique id size");
    ncclUniqueId u;
    nccl_ok(ncclGetUniqueId(&u), NULL, "get unique id");
    memcpy(id, &u, sizeof u);
}

extern "C" void *comm_nccl_new(Backend *be, const void *id, int rank, int size, char *name,
                               size_t cap) {
    // NVLink SHARP (NVLS) buffers take GPU memory and fail on some systems; off unless the
    // user sets it.
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    NcclComm *c = new NcclComm();
    c->be = be;
    c->rank = rank;
    c->size = size;
    CUDA_CHECK(cudaSetDevice(cuda_ctx(be)->device));
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    nccl_ok(ncclCommInitRank(&c->comm, size, u, rank), c, "comm init");
    init_streams(c);
    int v = 0;
    ncclGetVersion(&v);
    snprintf(name, cap, "nccl %d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
    return c;
}
#endif
