#!/usr/bin/env bash
# Run every fuzz target (build-fuzz/fuzz/fuzz_*, built by `make fuzz`) for SECONDS each,
# one after another, and print one line per target: execs, seconds, corpus size. The
# committed seeds (tests/fuzz/corpus/<target>/) are copied to a working corpus under
# build-fuzz/corpus/ that grows across runs; a crash, leak or sanitizer report leaves its
# input in build-fuzz/artifacts/ and makes the script exit non-zero.
#   usage: tools/fuzz.sh [SECONDS] [TARGET ...]    (default 60 s, every target)
set -u
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for t in build-fuzz/fuzz/fuzz_*; do
        [[ $t == *.d || $t == *.o ]] || targets+=("$(basename "$t")")
    done
fi
# Leak reports are the harness's own (an accepted input must free everything); the
# harness frees what a refused input held, so LeakSanitizer's exit check stays on too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p build-fuzz/artifacts
failed=()
for t in "${targets[@]}"; do
    corpus=build-fuzz/corpus/$t
    mkdir -p "$corpus"
    cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    log=build-fuzz/$t.log
    build-fuzz/fuzz/"$t" "$corpus" -max_total_time="$seconds" -max_len=16384 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/"$t"- \
        > "$log" 2>&1
    status=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "$t: ${execs:-?} execs in $seconds s, corpus $(ls "$corpus" | wc -l) files, exit $status"
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        grep -E 'ERROR|SUMMARY|fuzz harness|Test unit written' "$log" | head -20
    fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failing: ${failed[*]} (logs in build-fuzz/)"; exit 1; }
