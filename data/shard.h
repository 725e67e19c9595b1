// data/shard.h: llm.c token shards. Header: 256 little-endian int32, [0] magic, [1]
// version, [2] token count; then the tokens. Version 1 (magic 20240520): uint16 tokens;
// version 7 (magic 20240801): uint32 tokens, for vocabularies over 65535. File size must
// be exactly 1024 + width * ntok. A ".zst" suffix means the same bytes zstd-compressed.
// Offsets and counts are 64-bit (shards over 2 GiB). llm.c's count is one int32, so for
// shards of 2^31 tokens or more bolt stores the low 32 bits of ntok in [2] and the high 32
// bits in [3] (ntok = (uint32)[2] + 2^32 * (uint32)[3]); [3] is 0 for every smaller shard,
// which keeps those byte-identical to llm.c's.
#pragma once
#include <stdbool.h>
#include <stdint.h>

enum { SHARD_HEADER_INTS = 256, SHARD_HEADER_BYTES = 1024 };

// Read and validate a whole shard (decompressing .zst); dies naming the file and the
// problem (wrong magic, wrong version, truncated, size mismatch, bad zstd frame).
uint32_t *shard_read(const char *path, int64_t *ntok);
// Write a shard atomically (temp, fsync, rename); uint16 if every token < 65536 and
// !force_wide, else the uint32 version; zstd-compressed if `zstd`.
void shard_write(const char *path, const uint32_t *tokens, int64_t ntok, bool force_wide,
                 bool zstd);

// Read and check just the header (and, for an uncompressed shard, the file size): the
// token count, and the token width in *width (2 or 4). Cheap: the loader checks every
// shard with it at open; a .zst shard's size is checked when shard_read decompresses it.
int64_t shard_peek(const char *path, int *width);
// The pieces above, exposed for tests of the 64-bit arithmetic without 4 GiB files.
int64_t shard_file_bytes(int64_t ntok, int width); // 1024 + width * ntok
void shard_header_encode(int32_t header[SHARD_HEADER_INTS], int64_t ntok, int width);
// Validate magic/version (dying with `path` named) and return ntok; *width gets 2 or 4.
int64_t shard_header_decode(const int32_t header[SHARD_HEADER_INTS], const char *path, int *width);
