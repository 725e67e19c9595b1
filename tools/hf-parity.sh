#!/usr/bin/env bash
# tools/hf-parity.sh: build bolt and check its Hugging Face interop against the real
# libraries (tools/hf_parity.py: transformers' Llama, and fla's GLA when installed).
# Runs where python3 has torch, transformers and safetensors (e.g. a GPU host); needs no
# network. BOLT=path uses an existing binary instead of building ./bolt. FLA_SRC=DIR puts
# fla's source (a folder holding the `fla` package, kept in an ignored folder) on
# PYTHONPATH so the GLA cases run. Extra arguments go to hf_parity.py (e.g. --keep DIR).
# Exit status 1 if any check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${BOLT:-}" ]; then
    make -j"$(nproc)" bolt >/dev/null
    BOLT=./bolt
fi
if ! "$BOLT" import --help >/dev/null 2>&1; then
    echo "hf-parity: $BOLT has no 'import' command" >&2
    exit 1
fi
if [ -n "${FLA_SRC:-}" ]; then
    export PYTHONPATH="$FLA_SRC${PYTHONPATH:+:$PYTHONPATH}"
    export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/triton-hf-parity}
fi
export PYTHONUNBUFFERED=1
exec python3 tools/hf_parity.py --bolt "$BOLT" "$@"
