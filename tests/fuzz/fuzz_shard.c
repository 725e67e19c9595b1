// tests/fuzz/fuzz_shard.c: token shards (data/shard.c). The first byte picks the file
// name: even, a plain .bin; odd, a .bin.zst (the rest is then a zstd stream). Both the
// cheap header check (shard_peek) and the full read run on every input.
#include <stdint.h>
#include <stdlib.h>

#include "../../data/shard.h"
#include "harness.h"

static void read_shard(void *path) {
    int width;
    int64_t ntok = shard_peek(path, &width);
    uint32_t *tokens = shard_read(path, &ntok);
    free(tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n == 0) return 0;
    const char *path = fuzz_write_file(data[0] & 1 ? ".bin.zst" : ".bin", data + 1, n - 1);
    fuzz_run(read_shard, (void *)path);
    return 0;
}
