// data/loader.h: batches of (tokens, targets) from a glob of shards, with a seeded
// shuffle, a disjoint part per data-parallel rank, and a position that checkpoints save
// so a resumed run sees exactly the tokens it would have seen.
#pragma once
#include <stdbool.h>
#include <stdint.h>

// Where the loader is: epoch, index into the (shuffled) shard order, index into the
// (shuffled) window order of that shard. Everything else is derived from the seed.
typedef struct LoaderPos {
    int64_t epoch;
    int64_t shard;
    int64_t window;
} LoaderPos;

typedef struct Loader Loader;

// B sequences of T tokens (+1 for targets) per batch. shuffle=false reads shards and
// windows in order (validation). Dies if the glob matches no file or a shard is bad.
// vocab_size > 0: when a shard is read (once per shard, not per batch) every token is
// checked, dying "PATH: token id ID at position I is outside the vocabulary [0, V)";
// 0: no check.
Loader *loader_open(const char *glob, int B, int T, int rank, int world, uint64_t seed,
                    bool shuffle, int vocab_size);
// Fill tokens[B*T] and targets[B*T] (targets are tokens shifted by one).
void loader_next(Loader *l, int *tokens, int *targets);
LoaderPos loader_tell(const Loader *l);
void loader_seek(Loader *l, LoaderPos pos);
void loader_reset(Loader *l); // back to the start (validation passes)
// Whole batches per epoch for this rank; 0 if the data does not fill one batch per rank.
int64_t loader_batches_per_epoch(const Loader *l);
int64_t loader_total_tokens(const Loader *l); // over all shards
int loader_nfiles(const Loader *l);           // shard files the glob matched
void loader_close(Loader *l);
