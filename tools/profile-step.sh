#!/usr/bin/env bash
# tools/profile-step.sh: where a training step's GPU time goes, kernel by kernel. Runs
# `bolt bench train CONFIG` (3 optimizer steps: the first, 1 warm-up, 1 timed) under
# Nsight Compute with one metric (each kernel's duration; kernels run one at a time, so
# the sum is the step's GPU work without overlap or launch gaps) and prints the kernels
# grouped by name with their time per step (tools/ncu_summary.py).
#
#   tools/profile-step.sh configs/tnl-385m.conf [--n_layers=4 --seq_len=2048 ...]
#
# Fewer layers (--n_layers) keep the profile short: every layer launches the same kernels.
# Needs ncu (Nsight Compute) on PATH or in /usr/local/cuda/bin; writes the raw CSV to
# $OUT/profile-NAME.csv when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
config=$1
shift
export PATH=$PATH:/usr/local/cuda/bin
command -v ncu >/dev/null || { echo "profile-step: no ncu (Nsight Compute) on PATH" >&2; exit 1; }
name=$(basename "$config" .conf)
csv=${OUT:-/tmp}/profile-$name.csv
ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw --print-units base \
    ./bolt bench train "$config" --device=cuda --grad_accum=1 --bench_steps=1 "$@" >"$csv"
echo "profile of $config $*:"
python3 tools/ncu_summary.py --steps=3 <"$csv"
