// data/shard.h: llm.c token shards. Header: 256 little-endian int32, [0] magic, [1]
// version, [2] token count; then the tokens. Version 1 (magic 20240520): uint16 tokens;
// version 7 (magic 20240801): uint32 tokens, for vocabularies over 65535. File size must
// be exactly 1024 + width * ntok. A ".zst" suffix means the same bytes zstd-compressed.
// Offsets and counts are 64-bit (shards over 2 GiB).
#pragma once
#include <stdbool.h>
#include <stdint.h>

// Read and validate a whole shard (decompressing .zst); dies naming the file and the
// problem (wrong magic, wrong version, truncated, size mismatch, bad zstd frame).
uint32_t *shard_read(const char *path, int64_t *ntok);
// Write a shard atomically (temp, fsync, rename); uint16 if every token < 65536 and
// !force_wide, else the uint32 version; zstd-compressed if `zstd`.
void shard_write(const char *path, const uint32_t *tokens, int64_t ntok, bool force_wide,
                 bool zstd);
