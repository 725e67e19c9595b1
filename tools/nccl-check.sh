#!/usr/bin/env bash
# tools/nccl-check.sh: on a GPU host, the distributed code paths of the CUDA backend.
#   1. One GPU, BOLT_COMM=nccl: a one-rank NCCL communicator, so every collective of a
#      training step (the per-layer gradient all-reduce, the loss all-reduce, the weight
#      broadcast, ZeRO-1's reduce-scatter and all-gather, the checkpoint barrier) runs
#      through NCCL on the communicator's own stream (the gradient all-reduces overlapped
#      with the backward, the rest joined at once). Plain data parallel must give exactly
#      the losses of a run without a communicator; ZeRO-1 the same to 1e-5 (its gradient
#      norm is summed over the padded shard, another order).
#   Several GPUs: tools/multi-gpu-check.sh.
# Output: one PASS / FAIL / SKIP line per check; exit 1 if any failed. Logs in $OUT (or
# /tmp/nccl-check). Libraries the host lacks come from .debs/ (tools/device-env.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-/tmp/nccl-check}
mkdir -p "$out"
tmp=$(mktemp -d /tmp/nccl-check.XXXXXX)
failed=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failed=1; }

# ---- libraries and NCCL
source tools/device-env.sh
echo "nccl: ${DEVICE_ENV_NCCL_HOME:-toolkit} | mpirun: $(command -v mpirun || echo none) | GPUs: $(nvidia-smi -L 2>/dev/null | wc -l)"
make -j"$(nproc)" bolt ${DEVICE_ENV_NCCL_HOME:+NCCL_HOME=$DEVICE_ENV_NCCL_HOME} >"$out/build.log" 2>&1 || {
    tail -30 "$out/build.log"
    fail "build"
    exit 1
}
echo "build: $(ls build/.config-* | sed 's,.*/.config-,,')"

# ---- data: a byte corpus of repeated words
python3 - "$tmp/corpus.txt" <<'EOF'
import random, sys
random.seed(7)
w = ["the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog. "]
open(sys.argv[1], "w").write("".join(random.choice(w) for _ in range(60000)))
EOF
./bolt prep --tokenizer=byte --out="$tmp/data" "$tmp/corpus.txt" >/dev/null || fail "prep"

# train NAME BATCH [ENV=VALUE ...] -- [OPTIONS]: one run, log in $out/NAME.log.
train() {
    local name=$1 batch=$2
    shift 2
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    env "${envs[@]}" ./bolt train --device=cuda --model=tnl --dim=128 --n_layers=2 \
        --n_heads=2 --seq_len=128 --batch_size="$batch" --steps=20 --warmup=2 --log_every=5 \
        --train_data="$tmp/data/*_train_*.bin" --out_dir="$tmp/$name" "$@" >"$out/$name.log" 2>&1
}

# same A B TOL: the losses of runs A and B within TOL relative at every step.
same() {
    python3 - "$tmp/$1/metrics.jsonl" "$tmp/$2/metrics.jsonl" "$3" <<'EOF'
import json, sys
def losses(p): return [json.loads(l)["loss"] for l in open(p) if '"loss"' in l]
a, b, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
worst = max(abs(x - y) / abs(y) for x, y in zip(a, b)) if len(a) == len(b) == 20 else float("inf")
print(f"{len(a)} vs {len(b)} steps, worst relative difference {worst:.3g}")
sys.exit(0 if worst <= tol else 1)
EOF
}

# ---- 1. one GPU through a one-rank NCCL communicator
train plain 8 -- || fail "run without a communicator"
if train nccl 8 BOLT_COMM=nccl --; then
    grep -h "^dist:" "$out/nccl.log"
    if same nccl plain 0 >"$tmp/cmp"; then pass "NCCL (1 rank) == no communicator: $(cat "$tmp/cmp")"; else fail "NCCL (1 rank) != no communicator: $(cat "$tmp/cmp")"; fi
else
    tail -5 "$out/nccl.log"
    fail "run with BOLT_COMM=nccl"
fi
if train zero 8 BOLT_COMM=nccl -- --zero=1; then
    if same zero plain 1e-5 >"$tmp/cmp"; then pass "NCCL ZeRO-1 (1 rank) == no communicator: $(cat "$tmp/cmp")"; else fail "NCCL ZeRO-1 (1 rank): $(cat "$tmp/cmp")"; fi
else
    tail -5 "$out/zero.log"
    fail "run with BOLT_COMM=nccl --zero=1"
fi

rm -rf "$tmp"
exit $failed
