#!/usr/bin/env bash
# One run on a GPU host: unpack the Debian packages in .debs/ that such a host may lack
# (Check, cJSON, PCRE2, zstd headers; never into /), build bolt, and run the checks that
# need the host's Python stack: the Hugging Face parity check against transformers and fla
# (tools/hf-parity.sh). Full log in $OUT/log ($OUT defaults to .), a short table last.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}
log=$out/log
D=/tmp/deps
mkdir -p $D
for f in .debs/*.deb; do dpkg -x "$f" $D; done
export CPATH=$D/usr/include:/usr/lib/x86_64-linux-gnu/openmpi/include
export LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu LD_LIBRARY_PATH=$D/usr/lib/x86_64-linux-gnu
export PKG_CONFIG_PATH=$D/usr/lib/x86_64-linux-gnu/pkgconfig
{
    echo "== $(date -u +%F) $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)"
    echo "== commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    make clean >/dev/null
    make -j16 bolt 2>&1 | tail -3
    echo "== Hugging Face parity"
    # fla's source, when present in .peers/fla-src (ignored, never committed), adds the
    # GLA cases.
    [ -d .peers/fla-src ] && export FLA_SRC=$PWD/.peers/fla-src
    BOLT=./bolt bash tools/hf-parity.sh
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "== summary"
grep -E '^(parity|PASS|FAIL)' "$log" || true
exit "$status"
