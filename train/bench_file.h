// train/bench_file.h: the records of `bolt bench train --json=FILE`, one JSON object a
// line, appended one per run and read back by `bolt plot --bench=FILE` (a markdown table
// and a figure against the sequence length). A record:
//
//   {"bench": "train", "config": "configs/tnl-385m.conf", "name": "tnl-385m",
//    "family": "tnl", "params": 385024000, "seq_len": 2048, "batch_size": 1,
//    "grad_accum": 1, "recompute": false, "device": "NVIDIA H200", "backend": "cuda",
//    "bench_steps": 10, "first_step_s": 2.11, "step_s": 0.0123, "tok_per_s": 166504,
//    "mfu": 0.243, "peak_mem_bytes": 7654321098, "bolt": "0.1.0",
//    "commit": "1a2b3c4d5e6f", "time": "2026-12-03T10:00:00Z", "ok": true}
//
// "mfu" is a fraction of the device's dense bf16 peak, null where that is unknown (CPU);
// "peak_mem_bytes" is the most memory the backend held after a step. A run that dies
// (out of memory) writes no record; it can be added by hand, e.g.
//
//   {"name": "tnl-385m", "seq_len": 1048576, "batch_size": 1, "recompute": false,
//    "ok": false, "error": "out of memory"}
//
// and the table and figure show it as failed.
#pragma once
#include <stdbool.h>
#include <stdio.h>

// One run of bench train.
typedef struct BenchRecord {
    char config[512]; // the config file as given ("" when none)
    char name[128];   // the config's file name without directory and .conf, or the family
    char family[16];
    char device[96];  // "NVIDIA H200", "CPU" ("" when not recorded)
    char backend[16]; // "cuda", "cpu"
    char commit[64];  // bolt's git commit
    char error[128];  // why a failed run failed ("" when unknown or ok)
    int seq_len, batch_size, grad_accum, bench_steps;
    bool recompute, ok;
    double params, first_step_s, step_s, tok_per_s; // NAN where absent
    double mfu;                                     // fraction of the peak; NAN when unknown
    double peak_mem_bytes;
} BenchRecord;

// A bench file's records, in file order.
typedef struct BenchFile {
    BenchRecord *rec;
    int n;
} BenchFile;

// Append r as one line to path (created when missing; a line break first when the file
// does not end in one); an empty name is taken from the config's file name, or without a
// config from the family. Dies naming the file when it cannot be written.
void bench_append(const char *path, const BenchRecord *r);

// Whether two records ran on the same device; one without a device (written by hand)
// matches any.
bool bench_same_device(const BenchRecord *a, const BenchRecord *b);

// Read path: every non-blank line is a record. A record of the same run as an earlier
// one (config name, seq_len, batch_size, grad_accum, recompute, device) replaces it.
// Dies "PATH:LINE: ..." on a malformed line (not a JSON object, a required key missing
// or of the wrong type) and naming the file when it is missing or holds no record.
void bench_load(BenchFile *b, const char *path);
void bench_free(BenchFile *b);

// The records as a markdown table: config, seq_len, batch (x grad_accum when above 1),
// recompute, step ms, tok/s, MFU, peak GiB (a device column when several devices), ordered by
// config (as first seen), seq_len, batch and recompute; a caption line with the device(s) and
// commit first.
void bench_print_table(const BenchFile *b, FILE *f);
