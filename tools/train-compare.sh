#!/usr/bin/env bash
# tools/train-compare.sh: the CUDA backend against the CPU reference on real training, on
# a machine with a GPU and a built ./bolt (or BOLT=path).
#  1. For tnl-tiny and gla-tiny (configs/*-tiny.conf, the byte-level fortunes corpus):
#     STEPS (200) steps on --device=cpu and on --device=cuda, same seed and data; the loss
#     of metrics.jsonl at every logged step (every 10th) must agree within TOL (2%):
#     |gpu - cpu| / cpu.
#  2. Resume on the GPU is bit-exact: 20 steps saving at 10 and 20 (run A) against 10
#     steps, then --resume=1 to 20 (run B): step_00000020/model.safetensors and
#     train_state.safetensors must be equal byte for byte. The schedule is constant
#     (after the config's warmup), so stopping at 10 changes no learning rate.
# One line per check, starting with PASS or FAIL; exit status 1 if any failed. Logs and
# runs in WORK (out/train-compare). The corpus is prepared as tools/demo.sh does, from
# FORTUNES_DIR, /usr/share/games/fortunes or /tmp/deps/usr/share/games/fortunes (Debian's
# fortunes and fortunes-min packages unpacked by tools/gpu-check.sh).
# GPU_DEVICE=cpu runs the whole script without a GPU (to try the script itself).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BOLT=${BOLT:-./bolt}
STEPS=${STEPS:-200}
TOL=${TOL:-0.02}
GPU=${GPU_DEVICE:-cuda}
WORK=${WORK:-out/train-compare}
CONFIGS=${CONFIGS:-"tnl-tiny gla-tiny"}
failed=0

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failed=1; }

# The fortunes shards of tools/demo.sh: one document per fortune, shuffled with a fixed
# seed, byte tokenizer, 5% validation (the same commands, so the same shards).
prepare_fortunes() {
    local data=data_cache/fortunes corpus=""
    ls "$data"/fortunes_train_*.bin >/dev/null 2>&1 && return 0
    for d in "${FORTUNES_DIR:-}" /usr/share/games/fortunes /tmp/deps/usr/share/games/fortunes; do
        if [ -n "$d" ] && [ -d "$d" ]; then corpus=$d; break; fi
    done
    if [ -z "$corpus" ]; then
        echo "no fortunes corpus: put Debian's fortunes and fortunes-min .debs in .debs/, or set FORTUNES_DIR"
        return 1
    fi
    mkdir -p "$data"
    echo "== preparing $data from $corpus"
    find "$corpus" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat |
        perl -e 'local $/ = "\n%\n"; srand(1337); my @docs;
            while (my $d = <>) {
                $d =~ s/\n%\n$//; $d =~ s/[\x00-\x08\x0b-\x1f\x7f]//g;
                $d =~ s/\\/\\\\/g; $d =~ s/"/\\"/g; $d =~ s/\t/\\t/g; $d =~ s/\n/\\n/g;
                push @docs, [rand(), "{\"text\": \"$d\"}\n"] if length $d;
            }
            print map { $_->[1] } sort { $a->[0] <=> $b->[0] } @docs;' >"$data/fortunes.jsonl"
    "$BOLT" prep --tokenizer=byte --out="$data" --name=fortunes --val_fraction=0.05 \
        "$data/fortunes.jsonl" >"$data/prep.log" 2>&1 || { cat "$data/prep.log"; return 1; }
    tail -2 "$data/prep.log"
}

# train CONFIG DIR LOG ARGS...: a fresh (or resumed) run into DIR, its output to LOG.
train() {
    local cfg=$1 dir=$2 log=$3
    shift 3
    "$BOLT" train "configs/$cfg.conf" --out_dir="$dir" --sample_every=0 --keep_checkpoints=0 \
        "$@" >"$log" 2>&1
}

# compare_losses CPU_METRICS GPU_METRICS EVERY: worst relative loss difference over the
# steps that are multiples of EVERY. Prints "n worst step cpu gpu" or "nonfinite step".
compare_losses() {
    awk -v every="$3" '
        function get(line, key,   s) {
            if (!match(line, "\"" key "\": [^,}]+")) return ""
            s = substr(line, RSTART, RLENGTH); sub(/^[^:]*: /, "", s); return s
        }
        FNR == NR { l = get($0, "loss"); if (l != "") cpu[get($0, "step")] = l; next }
        {
            st = get($0, "step"); l = get($0, "loss")
            if (l == "" || st % every != 0 || !(st in cpu)) next
            if (l !~ /^-?[0-9.]+$/ || cpu[st] !~ /^-?[0-9.]+$/) { print "nonfinite", st; bad = 1; exit }
            r = (l - cpu[st]) / cpu[st]; if (r < 0) r = -r
            n++; if (n == 1 || r > worst) { worst = r; ws = st; wc = cpu[st]; wg = l }
        }
        END { if (!bad) printf "%d %.6f %d %s %s\n", n, worst, ws, wc, wg }' "$1" "$2"
}

mkdir -p "$WORK"
if [ ! -x "$BOLT" ]; then
    fail "train-compare: $BOLT is not built"
    exit 1
fi
if ! prepare_fortunes; then
    fail "train-compare: the fortunes data could not be prepared"
    exit 1
fi

for cfg in $CONFIGS; do
    # 1. CPU against GPU.
    common=(--steps="$STEPS" --log_every=10 --val_every=1000000 --save_every=100)
    for dev in cpu "$GPU"; do
        rm -rf "$WORK/$cfg-$dev"
        t0=$(date +%s)
        train "$cfg" "$WORK/$cfg-$dev" "$WORK/$cfg-$dev.log" --device="$dev" "${common[@]}"
        status=$?
        echo "   $cfg on $dev: exit $status, $(($(date +%s) - t0)) s, $(grep -m1 '^parameters' "$WORK/$cfg-$dev.log")"
        [ $status -eq 0 ] || { tail -5 "$WORK/$cfg-$dev.log"; break; }
    done
    name="train-compare $cfg $STEPS steps cpu vs $GPU"
    if [ $status -ne 0 ]; then
        fail "$name: the $dev run failed (exit $status, $WORK/$cfg-$dev.log)"
    else
        read -r n worst ws wc wg < <(compare_losses "$WORK/$cfg-cpu/metrics.jsonl" \
            "$WORK/$cfg-$GPU/metrics.jsonl" 10)
        want=$((STEPS / 10))
        if [ "$n" = nonfinite ]; then
            fail "$name: non-finite loss at step $worst"
        elif [ -z "$n" ] || [ "$n" -lt "$want" ]; then
            fail "$name: only ${n:-0} of $want logged steps in both metrics.jsonl"
        else
            pct=$(awk -v w="$worst" 'BEGIN { printf "%.2f", 100 * w }')
            detail="$n logged steps, worst |gpu-cpu|/cpu $pct% at step $ws (cpu $wc, gpu $wg)"
            if awk -v w="$worst" -v t="$TOL" 'BEGIN { exit !(w <= t) }'; then
                pass "$name: $detail"
            else
                fail "$name: $detail > $(awk -v t="$TOL" 'BEGIN { print 100 * t }')%"
            fi
        fi
    fi

    # 2. Resume bit-exactness on the GPU.
    a=$WORK/$cfg-resume-a b=$WORK/$cfg-resume-b
    rm -rf "$a" "$b"
    rargs=(--device="$GPU" --log_every=10 --save_every=10 --val_data= --schedule=constant)
    name="train-compare $cfg resume on $GPU (20 steps vs 10 + resume to 20)"
    if ! train "$cfg" "$a" "$a.log" "${rargs[@]}" --steps=20; then
        fail "$name: run A failed ($a.log)"
        continue
    fi
    if ! train "$cfg" "$b" "$b.log" "${rargs[@]}" --steps=10 ||
        ! train "$cfg" "$b" "$b-resume.log" "${rargs[@]}" --steps=20 --resume=1; then
        fail "$name: run B failed ($b.log, $b-resume.log)"
        continue
    fi
    if ! grep -q '^resuming from' "$b-resume.log"; then
        fail "$name: run B did not resume ($b-resume.log)"
        continue
    fi
    differ=""
    for f in model.safetensors train_state.safetensors; do
        cmp -s "$a/step_00000020/$f" "$b/step_00000020/$f" || differ="$differ $f"
    done
    if [ -z "$differ" ]; then
        pass "$name: model.safetensors and train_state.safetensors identical"
    else
        fail "$name: differ:$differ"
    fi
done
exit $failed
