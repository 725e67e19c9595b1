// train/metrics.h: what `bolt train` and `bolt distill` share about out_dir/metrics.jsonl.
#pragma once
#include <stdint.h>

// On resume: drop the records of steps after the checkpoint (a killed run logged them,
// and the resumed run logs them again), rewriting metrics.jsonl atomically.
void truncate_metrics(const char *path, int64_t step);
