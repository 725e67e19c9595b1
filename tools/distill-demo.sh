#!/usr/bin/env bash
# make distill-demo (after make demo, which prepares the fortunes corpus): the CPU version
# of distillation end to end. Trains a llama-tiny teacher (softmax attention, GQA) on
# fortunes, exports it to the Hugging Face layout (config.json stripped of bolt's own
# keys, as a real checkpoint would be) and imports it back, builds a multiple-choice set
# from held-out fortunes, distils lightning and GLA students, trains the same students
# from scratch, and reports the tokens each needs to reach the teacher's validation loss
# + 10%, the multiple-choice accuracies, and one PNG with every run's curves (bolt plot).
# SCRATCH_STEPS (default 600, the teacher's) bounds the from-scratch runs; CUDA=0 builds
# the CPU-only binary even where nvcc is installed; DEVICE=cuda runs every step on the GPU
# (default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
data=data_cache/fortunes
out=out/distill-demo
scratch_steps=${SCRATCH_STEPS:-600}
dev=--device=${DEVICE:-cpu}
if ! ls "$data"/fortunes_train_*.bin >/dev/null 2>&1 || [ ! -f "$data/fortunes.jsonl" ]; then
    echo "distill-demo: no corpus in $data; run 'make demo' first (it prepares it)" >&2
    exit 1
fi
make -j2 bolt ${CUDA:+CUDA=$CUDA} >/dev/null
rm -rf "$out"
mkdir -p "$out"
stage() { echo "== $1 ($(($(date +%s) - start))s)"; }

stage "teacher: configs/llama-tiny.conf (softmax attention, GQA) -> $out/teacher-run"
./bolt train configs/llama-tiny.conf "$dev" --out_dir="$out/teacher-run" --sample_every=0 \
    --val_every=50 >"$out/teacher.log"
grep 'final val loss' "$out/teacher.log"

stage "teacher through the Hugging Face layout: export, drop bolt's keys, import"
./bolt export "$out/teacher-run" "$out/teacher-hf"
python3 -c 'import json, sys
p = sys.argv[1]; c = json.load(open(p)); c.pop("bolt", None); json.dump(c, open(p, "w"), indent=1)' \
    "$out/teacher-hf/config.json"
./bolt import "$out/teacher-hf" "$out/teacher"

stage "multiple-choice set from held-out fortunes"
python3 tools/make_mc.py "$data/fortunes.jsonl" "$out/mc.jsonl"
./bolt eval "$out/teacher" "$dev" --mc="$out/mc.jsonl" | tee "$out/mc.txt"

for s in lightning gla; do
    stage "distil the teacher into a $s student: configs/distill-$s.conf"
    ./bolt distill "configs/distill-$s.conf" "$dev" --out_dir="$out/$s" --teacher="$out/teacher" \
        --mc_data="$out/mc.jsonl" >"$out/distill-$s.log"
    grep -E '^stage [12] step [0-9]+0/|val loss' "$out/distill-$s.log" | tail -2
    grep 'mc acc' "$out/distill-$s.log" | tail -1 | sed "s/^/distilled $s: /" | tee -a "$out/mc.txt"

    stage "$s student from scratch (the teacher's recipe, $scratch_steps steps)"
    # the distilled student's architecture: lightning_qk = rope as in distill-lightning.conf
    ./bolt train configs/llama-tiny.conf "$dev" --mixers=$s --lightning_qk=rope \
        --out_dir="$out/scratch-$s" \
        --steps="$scratch_steps" --sample_every=0 --val_every=20 \
        --mc_data="$out/mc.jsonl" >"$out/scratch-$s.log"
    grep 'mc acc' "$out/scratch-$s.log" | tail -1 | sed "s/^/scratch $s: /" | tee -a "$out/mc.txt"
done

stage "report"
python3 tools/distill_report.py --teacher="$out/teacher-run" \
    --student="lightning:$out/lightning:$out/scratch-lightning" \
    --student="gla:$out/gla:$out/scratch-gla" | tee "$out/report.txt"
# A bolt built without Cairo cannot draw: the report stands, the figure can be drawn elsewhere.
./bolt plot "$out/lightning" "$out/scratch-lightning" "$out/gla" "$out/scratch-gla" \
    "$out/teacher-run" --out="$out/curves.png" ||
    echo "distill-demo: no figure; the runs' metrics.jsonl are under $out"
echo "distill-demo: wall time $(($(date +%s) - start))s"
