// train/tensorboard.h: TensorBoard scalars: an event file (events.out.tfevents.*) in a run
// directory that `tensorboard --logdir` reads.
#pragma once
#include <stdint.h>
#include <stdio.h>

typedef struct TbWriter {
    FILE *f;
    char path[4096];
} TbWriter;

// One scalar of a step: its tag ("train/loss") and value.
typedef struct TbScalar {
    const char *tag;
    float value;
} TbScalar;

// Start a new event file in dir (which exists), named as TensorFlow names them
// (events.out.tfevents.SECONDS.HOST.PID), holding its first event: the file version.
void tb_open(TbWriter *w, const char *dir);
// One event at `step` holding the n scalars (now as its wall time), flushed so a running
// TensorBoard sees it.
void tb_write_scalars(TbWriter *w, int64_t step, const TbScalar *scalars, int n);
void tb_close(TbWriter *w);

// CRC-32C (Castagnoli) of n bytes, and TFRecord's masked form of a CRC.
uint32_t tb_crc32c(const void *data, size_t n);
uint32_t tb_mask_crc(uint32_t crc);
