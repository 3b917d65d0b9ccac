#!/usr/bin/env bash
# The Q4_K_M file infermark writes, read by an independent reader: builds infermark, re-quantizes
# the fetched SmolLM2 file (ci/fetch-models.sh) with `infermark quantize --to q4_k_m` into a
# temporary folder, and checks it with the `gguf` package's GGUFReader and dequantizers
# (suites/tests/fixtures/gguf/check_requant.py: metadata copied, tensors and shapes as the
# source's, each tensor close to the source's). Needs python3 with gguf 0.19.0 and numpy
# (`python3 -m pip install gguf==0.19.0 numpy`). About 10 s after the build.
#   ci/q4km-check.sh [SOURCE.gguf]
# Exit status: 0 when the check passes, non-zero otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -p infermark --bin infermark
bin="${CARGO_TARGET_DIR:-target}/release/infermark"
src=${1:-${INFERMARK_MODELS:-.models}/SmolLM2-135M-Instruct.Q4_1.gguf}
"$bin" quantize --model-path "$src" --to q4_k_m --out "$work/q4_k_m.gguf"
python3 suites/tests/fixtures/gguf/check_requant.py "$src" "$work/q4_k_m.gguf" 15
