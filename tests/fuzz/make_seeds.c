// tests/fuzz/make_seeds.c: writes the binary seed files of tests/fuzz/corpus/ with bolt's
// own writers (shard_write, st_write), so the fuzzers start from files bolt really makes.
// `make fuzz-seeds` runs it; the text seeds (configs, tokenizers, documents) are small
// files committed beside them. Each seed's first byte is the target's selector byte (see
// the target's comment).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/util.h"
#include "../../data/shard.h"
#include "../../model/safetensors.h"

// Copy the file at `from` to `to` with `selector` as its first byte.
static void with_selector(const char *from, const char *to, int selector) {
    size_t len;
    char *data = read_file(from, &len);
    FILE *f = xfopen(to, "wb");
    fputc(selector, f);
    xfwrite(data, len, f, to);
    fclose(f);
    free(data);
    unlink(from);
}

// Shards: uint16 and uint32 tokens, plain and zstd-compressed.
static void shard_seeds(const char *root) {
    uint32_t tokens[40];
    for (int i = 0; i < 40; i++) tokens[i] = (uint32_t)(i * 7919 % 300);
    char tmp[4096], seed[4096];
    for (int wide = 0; wide < 2; wide++) {
        for (int zstd = 0; zstd < 2; zstd++) {
            snprintf(tmp, sizeof tmp, "%s/fuzz_shard/tmp%s", root, zstd ? ".bin.zst" : ".bin");
            snprintf(seed, sizeof seed, "%s/fuzz_shard/%s%s", root, wide ? "u32" : "u16",
                     zstd ? "_zst" : "");
            shard_write(tmp, tokens, wide ? 40 : 12, wide, zstd);
            with_selector(tmp, seed, zstd);
        }
    }
}

// Safetensors: f32 and bf16 tensors of a few shapes, with and without metadata.
static void safetensors_seeds(const char *root) {
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i * 0.25f - 2.0f;
    StWriteTensor two[2] = {{"a.weight", ST_F32, 2, {2, 3}, x},
                            {"b", ST_BF16, 3, {2, 2, 3}, x + 6}};
    const char *keys[] = {"format"}, *values[] = {"pt"};
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz_safetensors/two_tensors", root);
    st_write(path, two, 2, keys, values, 1);
    snprintf(path, sizeof path, "%s/fuzz_safetensors/one_scalar", root);
    StWriteTensor scalar = {"s", ST_F32, 0, {0}, x};
    st_write(path, &scalar, 1, NULL, NULL, 0);
}

int main(int argc, char **argv) {
    check(argc == 2, "usage: make_seeds CORPUS_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fuzz_shard", argv[1]);
    make_dirs(dir);
    snprintf(dir, sizeof dir, "%s/fuzz_safetensors", argv[1]);
    make_dirs(dir);
    shard_seeds(argv[1]);
    safetensors_seeds(argv[1]);
    return 0;
}
