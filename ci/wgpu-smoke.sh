#!/usr/bin/env bash
# The GPU code path without a GPU: builds infermark with `--features wgpu`, installs Mesa's
# software Vulkan driver (lavapipe) if missing, runs the smoke scale of WGPU_SUITES (default:
# attention) on `--backend wgpu`, and cross-checks it against a flex smoke run of the same seed.
# About 16 minutes for the build on 2 cores, then 2.5 minutes for the attention suite (every
# suite: well over an hour, most of it LLVM compiling each kernel on first use).
#   ci/wgpu-smoke.sh [FLEX_SMOKE_DIR]   (default: run the flex smoke of the same suites first)
# Exit status: 0 when the cross-check passes, 1 when it finds differences, 2 on a failed step.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! dpkg-query -W -f='${Status}' mesa-vulkan-drivers 2>/dev/null | grep -q 'ok installed'; then
    echo "installing mesa-vulkan-drivers (Debian package)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers) >/dev/null
fi
# lavapipe complains on every start without one.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$work}
cargo build --release --features wgpu
cargo test --release --features wgpu -p infermark --test cli -- wgpu_
bin="${CARGO_TARGET_DIR:-target}/release/infermark"
WGPU_SUITES=${WGPU_SUITES:-attention}
suite_args=()
for s in $WGPU_SUITES; do suite_args+=(--suite "$s"); done
flex=${1:-}
if [ -z "$flex" ]; then
    flex="$work/smoke-flex"
    "$bin" run --scale smoke --backend flex "${suite_args[@]}" --out "$flex"
fi
"$bin" run --scale smoke --backend wgpu "${suite_args[@]}" --out "$work/smoke-wgpu"
"$bin" crosscheck --a "$flex" --b "$work/smoke-wgpu" --out "$work/crosscheck-wgpu.md"
