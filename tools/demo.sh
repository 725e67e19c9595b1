#!/usr/bin/env bash
# make demo: install what is missing (build dependencies, Debian's fortunes corpus), build
# bolt, tokenize the corpus with the byte tokenizer, train configs/tnl-tiny.conf on the
# CPU with live progress, and print the validation loss beside the corpus's unigram
# entropy, then a sample.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Debian packages the build and the corpus need; install the missing ones.
need=""
for pkg in build-essential pkg-config libzstd-dev libcjson-dev libpcre2-dev libcairo2-dev fortunes; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    echo "== installing:$need"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq $need >/dev/null || {
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $need >/dev/null
    }
fi
make -j2 bolt >/dev/null
corpus=/usr/share/games/fortunes

data=data_cache/fortunes
mkdir -p "$data"
if ! ls "$data"/fortunes_train_*.bin >/dev/null 2>&1; then
    echo "== preparing $data: one document per fortune, shuffled with a fixed seed"
    # Each fortune (records end with a line '%') becomes one JSON line; control bytes
    # other than newline and tab are dropped.
    find "$corpus" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat |
        perl -e 'local $/ = "\n%\n"; srand(1337); my @docs;
            while (my $d = <>) {
                $d =~ s/\n%\n$//; $d =~ s/[\x00-\x08\x0b-\x1f\x7f]//g;
                $d =~ s/\\/\\\\/g; $d =~ s/"/\\"/g; $d =~ s/\t/\\t/g; $d =~ s/\n/\\n/g;
                push @docs, [rand(), "{\"text\": \"$d\"}\n"] if length $d;
            }
            print map { $_->[1] } sort { $a->[0] <=> $b->[0] } @docs;' >"$data/fortunes.jsonl"
    ./bolt prep --tokenizer=byte --out="$data" --name=fortunes --val_fraction=0.05 \
        "$data/fortunes.jsonl" | tee "$data/prep.log"
fi

echo "== training configs/tnl-tiny.conf on the CPU"
rm -rf out/tnl-tiny
./bolt train configs/tnl-tiny.conf | tee out-demo.log
val=$(grep -o 'final val loss [0-9.]*' out-demo.log | awk '{print $4}')
entropy=$(grep -o 'unigram entropy [0-9.]*' "$data/prep.log" | awk '{print $3}')
rm -f out-demo.log

echo "== sample"
./bolt sample out/tnl-tiny --prompt="The meaning of life is" --tokens=300 --temperature=0.7
end=$(date +%s)
echo
echo "demo: val loss $val nats/byte (unigram entropy of the corpus: $entropy nats/byte)," \
    "wall time $((end - start))s"
