// model/safetensors.h: reading and writing safetensors files (the Hugging Face tensor
// format): a little-endian u64 header length, a JSON header mapping each tensor name to
// its dtype, shape and data_offsets (relative to the data start), then the raw data.
// The reader validates every size, offset and shape against the file before any tensor
// is read, and also opens sharded checkpoints (model.safetensors.index.json).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ST_MAX_DIMS = 8 };

typedef enum StDtype { ST_F32, ST_F16, ST_BF16 } StDtype;

// One tensor of an open file (or of one shard of a sharded checkpoint).
typedef struct StTensor {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    int64_t offset; // absolute byte offset of the data in its file
    int64_t nbytes;
    int file; // index of the shard file that holds it
} StTensor;

typedef struct SafeTensors SafeTensors;

// Open a .safetensors file, a model.safetensors.index.json (sharded checkpoint), or a
// directory holding either (the index wins). Validates everything; dies naming the file
// and the tensor on any inconsistency.
SafeTensors *st_open(const char *path);
void st_close(SafeTensors *st);
int st_count(const SafeTensors *st);
const StTensor *st_tensor(const SafeTensors *st, int i);          // sorted by name
const StTensor *st_find(const SafeTensors *st, const char *name); // NULL if absent
// Read a tensor's data converted to fp32 into dst[numel].
void st_read_f32(const SafeTensors *st, const StTensor *t, float *dst);
// A `__metadata__` string (for sharded checkpoints: from the first shard that has it).
const char *st_metadata(const SafeTensors *st, const char *key);
const char *st_dtype_name(StDtype d);
int st_dtype_size(StDtype d);

// One tensor to write: host fp32 data, stored as F32 or BF16 (round to nearest even).
typedef struct StWriteTensor {
    const char *name;
    StDtype dtype; // ST_F32 or ST_BF16
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
} StWriteTensor;

// Write tensors (in this order) and an optional `__metadata__` map (n_meta key/value
// strings) to path, atomically: a temp file, fsync, rename.
void st_write(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_keys,
              const char *const *meta_values, int n_meta);

// fp32 <-> 16-bit conversions (bf16 rounds to nearest even; NaN stays NaN).
uint16_t st_f32_to_bf16(float x);
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
