// tests/fuzz/fuzz_safetensors.c: the safetensors reader (model/safetensors.c): header
// length, JSON header, dtypes, shapes and offsets checked against the file, then every
// tensor read and converted to fp32.
#include <stdint.h>
#include <stdlib.h>

#include "../../core/util.h"
#include "../../model/safetensors.h"
#include "harness.h"

static void read_safetensors(void *path) {
    SafeTensors *st = st_open(path);
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor(st, i);
        if (t->numel > (1 << 20)) continue; // the header is the target, not big buffers
        float *x = xmalloc((size_t)t->numel * sizeof(float));
        st_read_f32(st, t, x);
        free(x);
        (void)st_find(st, t->name);
    }
    (void)st_metadata(st, "format");
    st_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    fuzz_run(read_safetensors, (void *)fuzz_write_file(".safetensors", data, n));
    return 0;
}
