// tests/fuzz/harness.h: what every libFuzzer target (tests/fuzz/fuzz_*.c) shares. bolt's
// readers end every bad input in die(), which exits; a fuzzer must instead go on to the
// next input. fuzz_run calls a reader with die's hook set (core/util.h set_die_hook) to
// longjmp back here, and then releases what the reader held when it died: the files and
// descriptors it opened and the memory it allocated (tracked while it runs). An input the
// reader accepts must leave nothing allocated: that is reported as a leak.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Run fn(arg) as one fuzz input: true if it returned, false if it died (its message is
// then in fuzz_last_error()). Aborts, naming the allocation, if fn returned but left
// memory allocated.
bool fuzz_run(void (*fn)(void *), void *arg);
const char *fuzz_last_error(void);

// Write data[0..n) to this process's scratch file "<dir>/input<suffix>" (replacing it) and
// return that path (valid until the next call with the same suffix).
const char *fuzz_write_file(const char *suffix, const uint8_t *data, size_t n);

// Split data at the first occurrence of the byte sequence `sep` (not found: the whole
// input is the first part, the second is empty). Lets one input carry two files.
void fuzz_split(const uint8_t *data, size_t n, const char *sep, const uint8_t **a, size_t *na,
                const uint8_t **b, size_t *nb);
