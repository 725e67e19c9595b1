// dist/comm_shm.c: collectives between the ranks of one node through the shared-memory
// segment that `bolt train --nproc=N` maps into every rank (dist/launch.c), for the CPU
// backend when there is no MPI job. Each rank owns one slot of the segment; a collective
// moves data in slot-sized pieces: every rank writes its piece into its own slot, a
// barrier, every rank reads what it needs from the others' slots, a barrier (so no slot is
// overwritten while it is read). Sums add the ranks in order 0 .. N-1, so every rank gets
// the same bits. The barrier is a counter and a generation number in the segment (C11
// atomics, lock-free on the shared page); waiting ranks yield the CPU, which matters when
// ranks outnumber cores. A group split from the job (sequence parallel) uses its members'
// slots and a barrier of its own; a rank is in one collective at a time, so its slot is
// never wanted by two groups at once.
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "comm_impl.h"
#include "launch.h"

typedef struct ShmComm {
    ShmSegment *seg;
    int rank, size;                   // in this communicator (the job, or a group)
    int *members;                     // the job rank of each rank here (NULL: the job itself)
    atomic_int *arrived, *generation; // this communicator's barrier
    int *splits;                      // splits made so far (the job's count, shared by its groups)
    size_t cap;                       // floats per slot
} ShmComm;

// The job rank of rank r of this communicator.
static int job_rank(const ShmComm *c, int r) {
    return c->members ? c->members[r] : r;
}

// The slot of rank r of this communicator, as floats.
static float *slot(ShmComm *c, int r) {
    return (float *)((char *)c->seg + SHM_HEADER_BYTES +
                     (size_t)job_rank(c, r) * c->seg->slot_bytes);
}

// Return once all ranks have arrived (a sense-reversing barrier on the communicator's
// counter).
static void shm_barrier_wait(ShmComm *c) {
    int gen = atomic_load_explicit(c->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(c->arrived, 1, memory_order_acq_rel) == c->size - 1) {
        atomic_store_explicit(c->arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(c->generation, 1, memory_order_release);
        return;
    }
    for (int spins = 0; atomic_load_explicit(c->generation, memory_order_acquire) == gen; spins++)
        if (spins > 64) sched_yield();
}

static void shm_all_reduce_sum(void *self, float *buf, size_t n) {
    ShmComm *c = self;
    for (size_t off = 0; off < n; off += c->cap) {
        size_t len = n - off < c->cap ? n - off : c->cap;
        memcpy(slot(c, c->rank), buf + off, len * sizeof(float));
        shm_barrier_wait(c);
        for (size_t i = 0; i < len; i++) {
            float sum = 0.0f;
            for (int r = 0; r < c->size; r++) sum += slot(c, r)[i];
            buf[off + i] = sum;
        }
        shm_barrier_wait(c);
    }
}

// Each rank publishes, for every destination rank d, its piece of shard d; rank r then
// sums the ranks' pieces of shard r.
static void shm_reduce_scatter_sum(void *self, float *buf, size_t shard) {
    ShmComm *c = self;
    size_t step = c->cap / (size_t)c->size;
    check(step > 0, "rank %d: shared-memory slot too small for %d ranks", c->rank, c->size);
    for (size_t off = 0; off < shard; off += step) {
        size_t len = shard - off < step ? shard - off : step;
        float *mine = slot(c, c->rank);
        for (int d = 0; d < c->size; d++)
            memcpy(mine + (size_t)d * len, buf + (size_t)d * shard + off, len * sizeof(float));
        shm_barrier_wait(c);
        float *out = buf + (size_t)c->rank * shard + off;
        for (size_t i = 0; i < len; i++) {
            float sum = 0.0f;
            for (int r = 0; r < c->size; r++) sum += slot(c, r)[(size_t)c->rank * len + i];
            out[i] = sum;
        }
        shm_barrier_wait(c);
    }
}

static void shm_all_gather(void *self, float *buf, size_t shard) {
    ShmComm *c = self;
    for (size_t off = 0; off < shard; off += c->cap) {
        size_t len = shard - off < c->cap ? shard - off : c->cap;
        memcpy(slot(c, c->rank), buf + (size_t)c->rank * shard + off, len * sizeof(float));
        shm_barrier_wait(c);
        for (int r = 0; r < c->size; r++)
            if (r != c->rank)
                memcpy(buf + (size_t)r * shard + off, slot(c, r), len * sizeof(float));
        shm_barrier_wait(c);
    }
}

static void shm_broadcast(void *self, void *buf, size_t bytes, int root) {
    ShmComm *c = self;
    size_t cap = c->cap * sizeof(float);
    for (size_t off = 0; off < bytes; off += cap) {
        size_t len = bytes - off < cap ? bytes - off : cap;
        if (c->rank == root) memcpy(slot(c, root), (char *)buf + off, len);
        shm_barrier_wait(c);
        if (c->rank != root) memcpy((char *)buf + off, slot(c, root), len);
        shm_barrier_wait(c);
    }
}

static void shm_barrier(void *self) {
    shm_barrier_wait(self);
}

// The group of the ranks that pass the same color, ordered by key (then job rank): every
// rank writes its color and key into the segment's table, and after a barrier reads the
// others'. A collective of this communicator, in the same order on every rank.
static void *shm_split(void *self, int color, int key) {
    ShmComm *c = self;
    ShmSegment *seg = c->seg;
    check(*c->splits < SHM_MAX_SPLITS, "rank %d: more than %d groups of shared-memory ranks",
          job_rank(c, c->rank), SHM_MAX_SPLITS);
    int split = (*c->splits)++, me = job_rank(c, c->rank);
    seg->split_color[me] = color;
    seg->split_key[me] = key;
    shm_barrier_wait(c);
    ShmComm *g = xcalloc(1, sizeof(ShmComm));
    *g = *c;
    g->members = xmalloc((size_t)c->size * sizeof(int));
    g->size = 0;
    for (int r = 0; r < c->size; r++) {
        int q = job_rank(c, r);
        if (seg->split_color[q] != color) continue;
        int at = g->size++; // insertion by (key, job rank)
        while (at > 0 && (seg->split_key[g->members[at - 1]] > seg->split_key[q] ||
                          (seg->split_key[g->members[at - 1]] == seg->split_key[q] &&
                           g->members[at - 1] > q))) {
            g->members[at] = g->members[at - 1];
            at--;
        }
        g->members[at] = q;
    }
    int lowest = g->members[0];
    for (int r = 0; r < g->size; r++) {
        if (g->members[r] == me) g->rank = r;
        if (g->members[r] < lowest) lowest = g->members[r];
    }
    g->arrived = &seg->group_arrived[split * SHM_MAX_RANKS + lowest];
    g->generation = &seg->group_generation[split * SHM_MAX_RANKS + lowest];
    shm_barrier_wait(c); // everyone has read the table before another split writes it
    return g;
}

static void shm_free(void *self) {
    ShmComm *c = self;
    if (c->members)
        free(c->members);
    else
        free(c->splits); // the job's communicator owns the count
    free(c);
}

const CommImpl comm_shm_impl = {
    .all_reduce_sum = shm_all_reduce_sum,
    .reduce_scatter_sum = shm_reduce_scatter_sum,
    .all_gather = shm_all_gather,
    .broadcast = shm_broadcast,
    .barrier = shm_barrier,
    .split = shm_split,
    .poll = NULL,
    .cancel = NULL,
    .blocking = true,
    .free = shm_free,
};

void *comm_shm_new(ShmSegment *seg, int rank, char *name, size_t cap) {
    ShmComm *c = xcalloc(1, sizeof(ShmComm));
    c->seg = seg;
    c->rank = rank;
    c->size = seg->ranks;
    c->arrived = &seg->arrived;
    c->generation = &seg->generation;
    c->splits = xcalloc(1, sizeof(int));
    c->cap = seg->slot_bytes / sizeof(float);
    snprintf(name, cap, "shared memory");
    return c;
}

void comm_shm_broadcast_bytes(ShmSegment *seg, int rank, void *buf, size_t bytes, int root) {
    char name[32];
    ShmComm *c = comm_shm_new(seg, rank, name, sizeof name);
    shm_broadcast(c, buf, bytes, root);
    shm_free(c);
}
