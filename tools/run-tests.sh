#!/usr/bin/env bash
# Run each Check test program, then print one summary line: "N passed, N failed".
set -u
# Threads sleep instead of spinning while they wait: the suites share 2 cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
passed=0 failed=0 bad=()
for t in "$@"; do
    log=$(mktemp)
    "$t" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    # Check prints "NN%: Checks: C, Failures: F, Errors: E".
    line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -1)
    rm -f "$log"
    if [ -z "$line" ]; then
        echo "$t: no Check summary (exit $status)"
        failed=$((failed + 1)); bad+=("$t"); continue
    fi
    c=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    passed=$((passed + c - f - e))
    failed=$((failed + f + e))
    # A program that exits non-zero fails even if its summary counted no failure.
    [ "$status" -ne 0 ] && [ $((f + e)) -eq 0 ] && failed=$((failed + 1))
    [ "$status" -ne 0 ] || [ $((f + e)) -ne 0 ] && bad+=("$t")
done
# The backend op suites ran on the CPU backend above; on a machine with a GPU they run
# again on CUDA (against the CPU reference), elsewhere they say they were skipped.
cuda_suites=()
for t in "$@"; do [[ $t == *test_backend_* ]] && cuda_suites+=("$t"); done
if [ ${#cuda_suites[@]} -gt 0 ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        for t in "${cuda_suites[@]}"; do
            line=$(BOLT_TEST_DEVICE=cuda "$t" 2>&1 | tee /dev/stderr | grep -E '^[0-9]+%: Checks: ' | tail -1)
            c=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
            f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
            e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
            if [ -z "$line" ]; then failed=$((failed + 1)); bad+=("$t (cuda)"); continue; fi
            passed=$((passed + c - f - e))
            failed=$((failed + f + e))
            [ $((f + e)) -ne 0 ] && bad+=("$t (cuda)")
        done
    else
        echo "CUDA op suites (${cuda_suites[*]##*/}): skipped, no GPU visible (tools/gpu-check.sh runs them on a GPU host)"
    fi
fi
[ ${#bad[@]} -gt 0 ] && echo "failing: ${bad[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
