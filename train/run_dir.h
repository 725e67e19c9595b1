// train/run_dir.h: what a training run keeps in its out_dir besides checkpoints: the
// guard that keeps a fresh run from writing over another one, the resolved config
// (config.conf), and metrics.jsonl's run header and resume truncation; plus the checks
// that a run's steps and schedule make sense before it starts.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

// True if out_dir holds a run: a metrics.jsonl or any step_* directory.
bool run_dir_holds_run(const char *out_dir);
// Remove a previous run's files from out_dir: bolt's own only (step_* directories,
// metrics.jsonl, config.conf, loss.png / loss.svg); anything else there stays.
void run_dir_clear(const char *out_dir);

// Write out_dir/config.conf: the resolved config, loadable by `bolt train` (resume and
// overwrite written as false: they are one-time actions, not settings of the run).
void run_dir_write_config(const char *out_dir, const Config *c);

// The facts a run header in metrics.jsonl records.
typedef struct RunHeader {
    int argc;
    char **argv;            // the command line after "bolt train"
    const char *device;     // "cpu (Intel ...)" / "cuda (NVIDIA H200)"
    double params;          // model parameters
    double tokens_per_step; // over all ranks
    int world;              // processes
    int64_t start_step;     // 0, or the checkpoint step a resumed run starts from
} RunHeader;
// One line {"run": {...}} (no "step" key, so readers of step records skip it).
void metrics_write_header(FILE *f, const RunHeader *h);
// On resume: drop the step records after `step` (a killed run logged them and the resumed
// run logs them again), keeping every other line, rewriting the file atomically.
void metrics_truncate(const char *path, int64_t step);

// After a step's forward and backward: if its loss or gradient norm is not finite, count
// it in *bad_steps, report it (stdout and a metrics record, when metrics is non-NULL: the
// logging rank) and return true (the caller skips the update); die, naming `advice`, at
// max_bad in a row. A finite step resets the count and returns false.
bool skip_non_finite_step(int *bad_steps, FILE *metrics, int64_t step, int steps, float loss,
                          double norm, int max_bad, const char *advice);

// Before the first step: die if a resumed run's checkpoint is past `steps`; warn when the
// schedule never reaches its peak or its stable phase (warmup too long for steps).
void check_steps_and_schedule(const Config *c, int64_t start_step);
