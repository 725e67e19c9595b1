// data/zstream.h: a file as a sequential byte stream, read plainly or, when its name ends in
// ".zst", decompressed while streaming (any number of zstd frames, which need not declare
// their content size; no compressed copy is held in memory). Shards (data/shard.c) and
// prep's inputs (data/doc_reader.c) both read through it. Every failure dies naming the
// file: cannot open, read error, corrupt zstd data, truncated zstd data (the stream ends
// inside a frame).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ZStream ZStream;

// Open `path` for reading (dies "PATH: cannot open (...)").
ZStream *zstream_open(const char *path);
// Read up to n decoded bytes into dst; fewer only at the end of the data (0 there).
size_t zstream_read(ZStream *z, void *dst, size_t n);
// Read and discard the rest of the data, validating it; returns the bytes it skipped.
int64_t zstream_skip_rest(ZStream *z);
// Bytes read from the file so far (compressed bytes for a .zst file): input progress.
int64_t zstream_file_bytes_read(const ZStream *z);
// The size of the open file on disk (not the decoded size of a .zst file).
int64_t zstream_file_size(const ZStream *z);
bool zstream_is_zstd(const ZStream *z);
void zstream_close(ZStream *z);
