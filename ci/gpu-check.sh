#!/usr/bin/env bash
# GPU readiness in one command: runs every suite at smoke scale on the CUDA backend and on the
# wgpu backend (Vulkan), then the same seed on flex (the CPU), and cross-checks each device run
# against flex (deterministic records equal, equivalence metrics within bounds). Needs only a
# release binary built with `--features cuda,wgpu` and this checkout's committed checkpoints
# (suites/checkpoints/): no Rust toolchain, no network.
#
#   ci/gpu-check.sh [--bin PATH] [--out DIR] [--seed N] [--only cuda|wgpu] [--dry]
#
#   --bin   the infermark binary (default: $INFERMARK_BIN, else target/release/infermark)
#   --out   where the runs, the cross-checks and the HTML reports go (default: $OUT, else
#           gpu-check-out/); must not hold an earlier check
#   --seed  seed of every run (default 42)
#   --only  run one device backend instead of both (`--only wgpu` on a machine with a Vulkan
#           driver and no CUDA)
#   --dry   no GPU: run the "device" side on flex too, which proves the script, the binary and
#           the comparison logic on any machine (CI runs this)
#
# Leaves in --out: run-flex/ and run-<backend>/ (run folders), crosscheck-<backend>.md,
# report-<backend>.html and gpu-check.log. Exit status: 0 when every run finished and every
# cross-check passed; 1 when a cross-check found differences; 2 on bad input or a failed run.
# Each run is bounded by a timeout so the whole check ends within 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

bin=${INFERMARK_BIN:-target/release/infermark}
out=${OUT:-gpu-check-out}
seed=42
backends="cuda wgpu"
dry=no
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --only)
        case "${2:-}" in
        cuda | wgpu) backends=$2 ;;
        *) echo "gpu-check: --only takes cuda or wgpu, got '${2:-}'" >&2; exit 2 ;;
        esac
        shift 2 ;;
    --dry) dry=yes; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
# Dry: one "device" run, on flex.
if [ "$dry" = yes ]; then backends=dry; fi
if [ ! -x "$bin" ]; then
    echo "gpu-check: no executable infermark binary at '$bin' (pass --bin PATH)" >&2
    exit 2
fi
case "$seed" in '' | *[!0-9]*) echo "gpu-check: --seed must be a number, got '$seed'" >&2; exit 2 ;; esac
mkdir -p "$out"
for d in run-flex $(for b in $backends; do echo "run-$b"; done); do
    if [ -e "$out/$d" ]; then
        echo "gpu-check: $out/$d exists from an earlier check; choose another --out" >&2
        exit 2
    fi
done
export INFERMARK_CHECKPOINTS=${INFERMARK_CHECKPOINTS:-$repo/suites/checkpoints}
log="$out/gpu-check.log"
say() { echo "$@" | tee -a "$log"; }
t0=$(date +%s)

say "== gpu-check $(date -u +%FT%TZ): device backends '$backends', seed $seed, binary $bin"
say "checkpoints: $INFERMARK_CHECKPOINTS"
for b in $backends; do
    if [ "$b" != dry ] && ! "$bin" list 2>/dev/null | grep -Eq "^ +$b +available"; then
        say "gpu-check: $bin was built without the $b feature (cargo build --release --features cuda,wgpu)"
        exit 2
    fi
done
case " $backends " in *" cuda "*)
    if command -v nvidia-smi >/dev/null; then
        say "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)"
        say "$(nvidia-smi 2>&1 | sed -n '3p')"
    else
        say "device: nvidia-smi not found (driver not installed?)"
    fi
    # NVRTC: burn-cuda compiles kernels at run time and loads libnvrtc by name.
    nvrtc=$( (ldconfig -p 2>/dev/null | grep -o '/[^ ]*libnvrtc\.so[^ ]*' || true) | head -1)
    if [ -z "$nvrtc" ]; then
        nvrtc=$( (ls -1 /usr/local/cuda*/lib64/libnvrtc.so* /usr/local/cuda*/targets/*/lib/libnvrtc.so* \
            /usr/lib/x86_64-linux-gnu/libnvrtc.so* /opt/conda/lib/libnvrtc.so* 2>/dev/null || true) | head -1)
    fi
    if [ -z "$nvrtc" ]; then
        nvrtc=$( (find / -xdev -name 'libnvrtc.so*' 2>/dev/null || true) | head -1)
    fi
    if [ -n "$nvrtc" ]; then
        export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "nvrtc: $nvrtc (LD_LIBRARY_PATH starts with $(dirname "$nvrtc"))"
    else
        say "nvrtc: not found (ldconfig -p, /usr/local/cuda*/lib64, find /); the CUDA run will fail to compile kernels"
    fi ;;
esac
case " $backends " in *" wgpu "*)
    # The NVIDIA driver's Vulkan ICD (or any other) is what wgpu runs on; none is an exit 2
    # from the run, with how to install one.
    icds=$(ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | tr '\n' ' ')
    say "vulkan drivers (icd.d): ${icds:-none found}" ;;
esac
if [ "$backends" = dry ]; then say "device: dry run, no GPU: the device side runs on flex"; fi
say "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"

run() { # name backend timeout_s
    local s=$(date +%s)
    say "== run $1: infermark run --scale smoke --backend $2 --seed $seed"
    if ! timeout "$3" "$bin" run --scale smoke --backend "$2" --seed "$seed" --out "$out/$1" \
        >"$out/$1.log" 2>&1; then
        say "gpu-check: run $1 failed or passed ${3}s; last lines of $out/$1.log:"
        tail -20 "$out/$1.log" | tee -a "$log"
        exit 2
    fi
    say "run $1: $(grep -c . "$out/$1/results.ndjson") records in $(($(date +%s) - s)) s"
    say "$(grep -o '"adapter": "[^"]*"\|"device_type": "[^"]*"\|"software": [a-z]*' "$out/$1/run.json" | tr '\n' ' ')"
}
for b in $backends; do
    if [ "$b" = dry ]; then run run-dry flex 300; else run "run-$b" "$b" 300; fi
done
run run-flex flex 240

verdict=0
for b in $backends; do
    say "== cross-check: flex (A) against $b (B)"
    set +e
    "$bin" crosscheck --a "$out/run-flex" --b "$out/run-$b" --out "$out/crosscheck-$b.md" >>"$log" 2>&1
    v=$?
    set -e
    "$bin" report --run "$out/run-$b" --baseline "$out/run-flex" --out "$out/report-$b.html" --force \
        >>"$log" 2>&1 || say "gpu-check: the HTML report of $b failed (see $log)"
    say "$(head -9 "$out/crosscheck-$b.md" 2>/dev/null)"
    case $v in
    0) say "gpu-check: $b PASS" ;;
    1) say "gpu-check: $b FAIL (differences listed in $out/crosscheck-$b.md)" ;;
    *) say "gpu-check: the $b cross-check could not run (exit $v; see $log)" ;;
    esac
    # The worst verdict wins: 2 (could not run) over 1 (differences) over 0.
    if [ "$v" -gt "$verdict" ]; then verdict=$v; fi
done
say "== done in $(($(date +%s) - t0)) s: runs, crosscheck-*.md, report-*.html and this log in $out/"
if [ "$verdict" = 0 ]; then say "gpu-check: PASS"; else say "gpu-check: FAIL"; fi
exit "$verdict"
