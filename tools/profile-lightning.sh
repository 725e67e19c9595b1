#!/usr/bin/env bash
# tools/profile-lightning.sh: what limits the lightning chunk kernel. Builds
# tools/cuda/lightning_attn_check.cu and runs its benchmark (H 16, d 128, 32768 tokens,
# T = 1024 first) under Nsight Compute, profiling the first LAUNCHES (default 4) launches
# of la_chunk_kernel: forward, then the backward's passes. Prints each launch's duration,
# achieved occupancy, tensor-pipe and DRAM utilisation, and its warp stall reasons.
#
#   tools/profile-lightning.sh [LAUNCHES]
#
# Needs nvcc and ncu (Nsight Compute) on PATH or in /usr/local/cuda/bin; the full report
# goes to $OUT/profile-lightning.txt when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/cuda/bin
command -v ncu >/dev/null || { echo "profile-lightning: no ncu (Nsight Compute) on PATH" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode arch=compute_90a,code=sm_90a \
    tools/cuda/lightning_attn_check.cu -o "$tmp/la_check"
report=${OUT:-$tmp}/profile-lightning.txt
# Warp stall reasons, each in cycles per issued instruction.
stall_metrics() {
    local r out=""
    for r in barrier long_scoreboard short_scoreboard math_pipe_throttle mio_throttle wait \
        not_selected selected dispatch_stall lg_throttle tex_throttle branch_resolving \
        no_instruction membar sleeping drain imc_miss misc; do
        out="$out${out:+,}smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
    done
    echo "$out"
}
profile() {
    ncu --clock-control none --kernel-name regex:la_chunk_kernel --launch-count "${1:-4}" \
        --section SpeedOfLight --section Occupancy --section WarpStateStats \
        --section SchedulerStats --section ComputeWorkloadAnalysis \
        --section MemoryWorkloadAnalysis "${@:2}" "$tmp/la_check" --bench-only >"$report" 2>&1
}
# Older Nsight Compute versions lack some stall metrics: then the sections alone.
profile "${1:-4}" --metrics "$(stall_metrics)" || profile "${1:-4}"
grep -E 'la_chunk_kernel|Duration|Achieved Occupancy|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Registers Per|stalled' \
    "$report" | sed 's/^ *//'
