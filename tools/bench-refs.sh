#!/usr/bin/env bash
# tools/bench-refs.sh: one benchmark on several commits in one run, for A/B comparisons of
# kernels on one GPU (every tree measured in the same call, interleaved, so clock and
# thermal drift fall on all of them alike). Each REF (a commit, branch or tag; "." is the
# working tree as it is) is checked out into its own worktree under $WORK (default
# /tmp/bench-refs); all are built at once (`make bolt`, NPROC / refs jobs each); with
# TESTS=1 the backend suites of every ref then run on cuda (TESTS="REF ..." tests those
# refs only). A worktree already at REF's commit is reused with its build, so a second run
# (another bench) costs no rebuild. Then `bolt bench ARGS...` runs ROUNDS times (default 2)
# over the refs in turn; every table is printed under its ref and round.
#
#   tools/bench-refs.sh REF... -- BENCH_ARGS...
#   tools/bench-refs.sh main gla-bwd-512 . -- attn --kind=gla --lengths=4096,32768
#
# On a GPU host source tools/device-env.sh first (for TESTS=1: Check). NPROC (default
# nproc) is the cores the builds share. Exit status 1 if a build or a test failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
refs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    refs+=("$1")
    shift
done
[ $# -ge 2 ] && [ ${#refs[@]} -ge 1 ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift
work=${WORK:-/tmp/bench-refs}
nproc=${NPROC:-$(nproc)}
mkdir -p "$work"
status=0

# The directory that holds REF's tree: the working tree itself for ".", else a worktree.
tree_of() {
    if [ "$1" = . ]; then echo "$PWD"; else echo "$work/$(echo "$1" | tr '/' '_')"; fi
}

# Check out every ref, then build them all at once (each with an equal share of the
# cores: builds are mostly single-file nvcc runs, so side by side they finish sooner
# than one after the other), then test the ones asked for.
built=()
for ref in "${refs[@]}"; do
    dir=$(tree_of "$ref")
    if [ "$ref" != . ] && [ "$(git -C "$dir" rev-parse HEAD 2>/dev/null)" != \
        "$(git rev-parse "$ref^{commit}" 2>/dev/null)" ]; then # else reuse it and its build
        git worktree remove --force "$dir" >/dev/null 2>&1
        git worktree add --detach "$dir" "$ref" >/dev/null 2>&1 || {
            echo "bench-refs: $ref: no such commit" >&2
            status=1
            continue
        }
    fi
    built+=("$ref")
done
jobs=$((nproc / (${#built[@]} > 0 ? ${#built[@]} : 1)))
[ "$jobs" -ge 1 ] || jobs=1
pids=()
for i in "${!built[@]}"; do
    dir=$(tree_of "${built[$i]}")
    echo "== ${built[$i]} ($(git -C "$dir" rev-parse --short HEAD)): building"
    make -C "$dir" -j"$jobs" bolt >"$work/build.$i.log" 2>&1 &
    pids+=($!)
done
for i in "${!built[@]}"; do
    ref=${built[$i]}
    dir=$(tree_of "$ref")
    if ! wait "${pids[$i]}"; then
        tail -20 "$work/build.$i.log"
        echo "bench-refs: $ref: the build failed" >&2
        status=1
        continue
    fi
    if [ "${TESTS:-0}" = 1 ] || [[ " ${TESTS:-} " == *" $ref "* ]]; then
        for f in "$dir"/tests/test_backend*.c; do
            t=build/tests/$(basename "$f" .c)
            if make -C "$dir" -j"$nproc" "$t" >"$work/build.log" 2>&1 &&
                (cd "$dir" && BOLT_TEST_DEVICE=cuda "./$t" >"$work/test.log" 2>&1); then
                echo "PASS $ref $t: $(grep -E '^[0-9]+%: Checks' "$work/test.log" | tail -1)"
            else
                tail -20 "$work/test.log" "$work/build.log" 2>/dev/null
                echo "FAIL $ref $t"
                status=1
            fi
        done
    fi
done

for round in $(seq 1 "${ROUNDS:-2}"); do
    for ref in "${refs[@]}"; do
        dir=$(tree_of "$ref")
        [ -x "$dir/bolt" ] || continue
        echo "== $ref, round $round: bolt bench $*"
        (cd "$dir" && ./bolt bench "$@") || status=1
    done
done
exit $status
