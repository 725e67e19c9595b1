#!/usr/bin/env bash
# tools/profile-kernel.sh: one kernel's hot source lines. Rebuilds bolt's CUDA objects with
# line tables (-lineinfo, through NVCC_APPEND_FLAGS; the machine code is the same), runs
# COMMAND under Nsight Compute with the full set of sections and the sources imported,
# profiling one launch of the first kernel whose name matches REGEX (after SKIP matching
# launches, default 0), and prints tools/ncu_lines.py's tables: stall samples, executed
# instructions, shared-memory bank conflicts and excess global sectors, by source line and
# by SASS opcode.
#
#   tools/profile-kernel.sh REGEX -- COMMAND ...
#   tools/profile-kernel.sh gla_bwd_chunk -- ./bolt bench attn --kind=gla --lengths=4096 --reps=1
#
# Needs ncu (Nsight Compute) on PATH or in /usr/local/cuda/bin. The report and the CSV go
# to $OUT (default /tmp) as profile-kernel.ncu-rep and profile-kernel.csv. REBUILD=0 keeps
# the objects of an earlier run (profiling a second kernel of the same build).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] && [ "$2" = "--" ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
regex=$1
shift 2
export PATH=$PATH:/usr/local/cuda/bin
command -v ncu >/dev/null || { echo "profile-kernel: no ncu (Nsight Compute) on PATH" >&2; exit 1; }
out=${OUT:-/tmp}
if [ "${REBUILD:-1}" != 0 ]; then
    rm -f build/kernels/*.cu.o build/dist/*.cu.o
    NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} -lineinfo" make -j"$(nproc)" bolt >/dev/null
fi
ncu --clock-control none --set full --import-source yes --kernel-name "regex:$regex" \
    --launch-skip "${SKIP:-0}" --launch-count 1 -f -o "$out/profile-kernel" "$@" >/dev/null
ncu -i "$out/profile-kernel.ncu-rep" --page source --csv --print-source cuda,sass \
    >"$out/profile-kernel.csv"
ncu -i "$out/profile-kernel.ncu-rep" --page details | grep -E "^  void|Duration|Registers Per|Achieved Occupancy" || true
python3 tools/ncu_lines.py <"$out/profile-kernel.csv"
