// data/loader.c: (tokens, targets) batches from a glob of shards.
//
// A sample is a window of T+1 tokens; window w of a shard covers tokens [w*T, w*T+T], so a
// shard of n tokens has (n-1)/T windows. An epoch visits the shards in an order (seeded
// permutation per epoch when shuffling) and, within each shard, its windows in an order
// (seeded permutation per (epoch, shard)). Both are pure functions of (seed, epoch, shard),
// so the position (epoch, shard, window) is all a resume needs: no RNG state is kept.
//
// Data parallel: concatenating the epochs gives one endless stream of windows; rank r of
// `world` takes the stream's windows r, r+world, r+2*world, ... (within a shard these are
// every world-th window of its permuted list). Ranks are disjoint, together they cover
// every window, and they stay in lockstep: after k windows each, every rank is at the same
// "group" position (the stream index k*world), which is what loader_tell returns. One
// saved position therefore resumes every rank, whatever each shard's window count.
//
// Only the shard being read is held in memory, plus the next one, which a background
// thread reads (and decompresses) ahead of time. Each shard's tokens are checked against
// the vocabulary once, when it is read, never per batch.
#include "loader.h"

#include <glob.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../core/util.h"
#include "shard.h"

// A shard read ahead by a background thread.
typedef struct Prefetch {
    pthread_t thread;
    bool active; // thread started and not yet joined
    int file;
    const char *path;
    int vocab_size; // check every token against it (0: no check)
    uint32_t *tokens;
    int64_t ntok;
} Prefetch;

struct Loader {
    int B, T, rank, world;
    uint64_t seed;
    bool shuffle;
    int vocab_size; // every token must be below it (0: no check)

    int nfiles;
    char **paths;          // sorted
    int64_t *ntok;         // tokens per file
    int64_t *nwin;         // windows per file
    int64_t total_windows; // per epoch
    int64_t total_tokens;

    int64_t order_epoch; // epoch whose shard order is in `order` (-1: none yet)
    int *order;          // order[s]: the file at position s of that epoch

    LoaderPos group; // the stream position of the current group (same on every rank)
    LoaderPos mine;  // this rank's next window: `group` advanced by `rank`

    int64_t perm_epoch; // (epoch, file) whose window permutation is in `perm`
    int perm_file;
    int64_t *perm; // perm[i]: the window at position i (shuffle only)

    int cur_file; // the file whose tokens are loaded (-1: none)
    uint32_t *tokens;
    Prefetch prefetch;
};

// splitmix64's finalizer: a bijective mix, used to derive independent seeds.
static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// The seed of one permutation: the shard order of an epoch (file = -1) or the window order
// of one file in one epoch.
static uint64_t derive_seed(uint64_t seed, int64_t epoch, int64_t file) {
    return mix64(mix64(mix64(seed) ^ (uint64_t)epoch) ^ (uint64_t)(file + 1));
}

// Fisher-Yates shuffle of n int64 values with a fresh Rng.
static void shuffle_int64(int64_t *a, int64_t n, uint64_t seed) {
    Rng rng = rng_seeded(seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(&rng) % (uint64_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

// The file at position s of the shard order of `epoch`.
static int file_at(Loader *l, int64_t epoch, int64_t s) {
    if (l->order_epoch != epoch) {
        int64_t *tmp = xmalloc((size_t)l->nfiles * sizeof(int64_t));
        for (int i = 0; i < l->nfiles; i++) tmp[i] = i;
        if (l->shuffle) shuffle_int64(tmp, l->nfiles, derive_seed(l->seed, epoch, -1));
        for (int i = 0; i < l->nfiles; i++) l->order[i] = (int)tmp[i];
        free(tmp);
        l->order_epoch = epoch;
    }
    return l->order[s];
}

// Move p forward by k windows of the stream, skipping shards without windows and wrapping
// into the next epoch; k = 0 just normalizes p (window < windows of its shard).
static void advance(Loader *l, LoaderPos *p, int64_t k) {
    p->window += k;
    for (;;) {
        int64_t n = l->nwin[file_at(l, p->epoch, p->shard)];
        if (p->window < n) return;
        p->window -= n;
        p->shard++;
        if (p->shard == l->nfiles) {
            p->shard = 0;
            p->epoch++;
        }
    }
}

// Die if a token of the shard at `path` is not below vocab_size (0: no check). Run once
// each time a shard is read, so a batch never holds an id the model cannot embed.
static void check_vocab(const char *path, const uint32_t *tokens, int64_t n, int vocab_size) {
    if (vocab_size <= 0) return;
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] >= (uint32_t)vocab_size)
            die("%s: token id %u at position %lld is outside the vocabulary [0, %d) (data "
                "tokenized with another tokenizer?)",
                path, tokens[i], (long long)i, vocab_size);
    }
}

// The read-ahead thread: read and check the shard.
static void *prefetch_run(void *arg) {
    Prefetch *p = arg;
    p->tokens = shard_read(p->path, &p->ntok);
    check_vocab(p->path, p->tokens, p->ntok, p->vocab_size);
    return NULL;
}

// Wait for the read-ahead thread; its tokens stay in l->prefetch.
static void prefetch_join(Loader *l) {
    if (!l->prefetch.active) return;
    check(pthread_join(l->prefetch.thread, NULL) == 0, "loader: cannot join prefetch thread");
    l->prefetch.active = false;
}

static void prefetch_start(Loader *l, int file) {
    Prefetch *p = &l->prefetch;
    p->file = file;
    p->path = l->paths[file];
    p->vocab_size = l->vocab_size;
    p->tokens = NULL;
    p->ntok = 0;
    p->active = pthread_create(&p->thread, NULL, prefetch_run, p) == 0;
    if (!p->active) p->file = -1; // no thread: read it when needed
}

// The file this rank reads after it leaves its current shard (exact: the position of its
// last window in the shard, then one step of `world`).
static int next_file_of_rank(Loader *l) {
    LoaderPos q = l->mine;
    int64_t n = l->nwin[file_at(l, q.epoch, q.shard)];
    q.window += (int64_t)l->world * ((n - 1 - q.window) / l->world);
    advance(l, &q, l->world);
    return file_at(l, q.epoch, q.shard);
}

// Make `file` the loaded shard (taking it from the read-ahead thread if that read it),
// then start reading this rank's next shard in the background.
static void load_file(Loader *l, int file) {
    if (l->cur_file == file) return;
    prefetch_join(l);
    uint32_t *tokens = NULL;
    int64_t n = 0;
    if (l->prefetch.tokens && l->prefetch.file == file) {
        tokens = l->prefetch.tokens;
        n = l->prefetch.ntok;
    } else {
        free(l->prefetch.tokens);
        tokens = shard_read(l->paths[file], &n);
        check_vocab(l->paths[file], tokens, n, l->vocab_size);
    }
    l->prefetch.tokens = NULL;
    l->prefetch.file = -1;
    check(n == l->ntok[file], "%s: changed while training (%lld tokens, was %lld)", l->paths[file],
          (long long)n, (long long)l->ntok[file]);
    free(l->tokens);
    l->tokens = tokens;
    l->cur_file = file;
    int next = next_file_of_rank(l);
    if (next != file && l->nfiles > 1) prefetch_start(l, next);
}

// The window permutation of `file` in `epoch` (shuffle only).
static void ensure_perm(Loader *l, int64_t epoch, int file) {
    if (l->perm_epoch == epoch && l->perm_file == file) return;
    int64_t n = l->nwin[file];
    l->perm = xrealloc(l->perm, (size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) l->perm[i] = i;
    shuffle_int64(l->perm, n, derive_seed(l->seed, epoch, file));
    l->perm_epoch = epoch;
    l->perm_file = file;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Loader *loader_open(const char *pattern, int B, int T, int rank, int world, uint64_t seed,
                    bool shuffle, int vocab_size) {
    check(B >= 1 && T >= 1, "loader: batch size %d and sequence length %d must be >= 1", B, T);
    check(world >= 1 && rank >= 0 && rank < world, "loader: rank %d out of range for world %d",
          rank, world);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    check(rc != GLOB_NOMATCH, "%s: no shard files match", pattern);
    check(rc == 0, "%s: cannot expand the glob (error %d)", pattern, rc);

    Loader *l = xcalloc(1, sizeof(Loader));
    l->B = B;
    l->T = T;
    l->rank = rank;
    l->world = world;
    l->seed = seed;
    l->shuffle = shuffle;
    l->vocab_size = vocab_size;
    l->nfiles = (int)g.gl_pathc;
    l->paths = xmalloc((size_t)l->nfiles * sizeof(char *));
    for (int i = 0; i < l->nfiles; i++) l->paths[i] = xstrdup(g.gl_pathv[i]);
    globfree(&g);
    qsort(l->paths, (size_t)l->nfiles, sizeof(char *), compare_strings);

    l->ntok = xmalloc((size_t)l->nfiles * sizeof(int64_t));
    l->nwin = xmalloc((size_t)l->nfiles * sizeof(int64_t));
    for (int i = 0; i < l->nfiles; i++) {
        int width;
        l->ntok[i] = shard_peek(l->paths[i], &width);
        check(l->ntok[i] <= INT64_MAX / 4 - l->total_tokens,
              "%s: the shards' token counts add up past 2^61 (a corrupt .zst header?)",
              l->paths[i]);
        l->nwin[i] = l->ntok[i] >= 1 ? (l->ntok[i] - 1) / T : 0;
        l->total_windows += l->nwin[i];
        l->total_tokens += l->ntok[i];
    }
    check(l->total_windows >= world,
          "%s: %lld tokens in %d shard(s) make %lld windows of %d+1 tokens; need at least one "
          "per rank (world %d)",
          pattern, (long long)l->total_tokens, l->nfiles, (long long)l->total_windows, T, world);

    l->order = xmalloc((size_t)l->nfiles * sizeof(int));
    l->order_epoch = -1;
    l->perm_epoch = -1;
    l->perm_file = -1;
    l->cur_file = -1;
    l->prefetch.file = -1;
    loader_reset(l);
    return l;
}

// Copy this rank's next window into row b of the batch, then step the stream.
static void take_window(Loader *l, int b, int *tokens, int *targets) {
    int file = file_at(l, l->mine.epoch, l->mine.shard);
    load_file(l, file);
    int64_t w = l->mine.window;
    if (l->shuffle) {
        ensure_perm(l, l->mine.epoch, file);
        w = l->perm[w];
    }
    const uint32_t *src = l->tokens + w * l->T;
    for (int t = 0; t < l->T; t++) {
        tokens[(size_t)b * l->T + t] = (int)src[t];
        targets[(size_t)b * l->T + t] = (int)src[t + 1];
    }
    advance(l, &l->group, l->world);
    advance(l, &l->mine, l->world);
}

void loader_next(Loader *l, int *tokens, int *targets) {
    for (int b = 0; b < l->B; b++) take_window(l, b, tokens, targets);
}

LoaderPos loader_tell(const Loader *l) {
    return l->group;
}

// Continue from a position loader_tell gave (on any rank of the same world); dies if it
// does not fit these shards.
void loader_seek(Loader *l, LoaderPos pos) {
    check(pos.epoch >= 0 && pos.shard >= 0 && pos.shard < l->nfiles && pos.window >= 0,
          "loader: position (epoch %lld, shard %lld, window %lld) out of range for %d shard(s)",
          (long long)pos.epoch, (long long)pos.shard, (long long)pos.window, l->nfiles);
    int64_t n = l->nwin[file_at(l, pos.epoch, pos.shard)];
    check(pos.window <= n,
          "loader: position (epoch %lld, shard %lld, window %lld) is past the %lld windows of "
          "that shard (did the data change?)",
          (long long)pos.epoch, (long long)pos.shard, (long long)pos.window, (long long)n);
    l->group = pos;
    advance(l, &l->group, 0);
    l->mine = l->group;
    advance(l, &l->mine, l->rank);
}

void loader_reset(Loader *l) {
    loader_seek(l, (LoaderPos){0, 0, 0});
}

// Whole batches per epoch for this rank: 0 when the windows do not fill one batch on every
// rank (loader_next still works then: it wraps around into the next epoch).
int64_t loader_batches_per_epoch(const Loader *l) {
    return l->total_windows / ((int64_t)l->world * l->B);
}

int loader_nfiles(const Loader *l) {
    return l->nfiles;
}

int64_t loader_total_tokens(const Loader *l) {
    return l->total_tokens;
}

void loader_close(Loader *l) {
    if (!l) return;
    prefetch_join(l);
    free(l->prefetch.tokens);
    free(l->tokens);
    free(l->perm);
    free(l->order);
    for (int i = 0; i < l->nfiles; i++) free(l->paths[i]);
    free(l->paths);
    free(l->ntok);
    free(l->nwin);
    free(l);
}
