#!/usr/bin/env bash
# Sharded runs end to end on one machine: runs the smoke suites as three shards
# (`run --shard 1/3`, `2/3`, `3/3`), merges them, checks that the merged run holds the same
# records as an unsharded run of the same scale and seed (every record present, deterministic
# values equal to the bit: `crosscheck --exact`), that the gate passes on it, and that merging an
# incomplete set of shards is refused.
#
#   ci/shard-check.sh UNSHARDED_RUN BIN [WORK_DIR]
#
#   UNSHARDED_RUN  a run folder of the same build on this machine (CI: the smoke run of .ci/run)
#   BIN            the infermark binary (e.g. target/release/infermark)
#   WORK_DIR       where shards and the merged run go (default: a temporary folder, removed on
#                  success); must not hold an earlier check
#
# Exit status: 0 when everything passed; 1 when a check failed; 2 on bad arguments.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
unsharded=$(abs "$1")
bin=$(abs "$2")
if [ ! -f "$unsharded/run.json" ]; then
    echo "shard-check: '$1' is not a run folder (no run.json)" >&2
    exit 2
fi
if [ ! -x "$bin" ]; then
    echo "shard-check: no executable infermark binary at '$2'" >&2
    exit 2
fi
if [ $# -eq 3 ]; then
    work=$(abs "$3")
    if [ -e "$work/merged" ] || [ -e "$work/shard-1" ]; then
        echo "shard-check: '$3' holds an earlier check; choose another WORK_DIR" >&2
        exit 2
    fi
    mkdir -p "$work"
    keep=1
else
    work=$(mktemp -d)
    keep=0
fi
cd "$(dirname "$0")/.."

# The unsharded run's scale and seed, from its run.json (top-level keys, two-space indent).
field() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$unsharded/run.json"; }
scale=$(field scale)
seed=$(field seed)
if [ -z "$scale" ] || [ -z "$seed" ]; then
    echo "shard-check: cannot read scale and seed from $unsharded/run.json" >&2
    exit 2
fi

t0=$(date +%s)
echo "== shard-check: 3 shards at scale $scale, seed $seed, against $unsharded"
for i in 1 2 3; do
    t=$(date +%s)
    "$bin" run --scale "$scale" --seed "$seed" --shard "$i/3" --out "$work/shard-$i" >"$work/shard-$i.log" 2>&1 || {
        tail -20 "$work/shard-$i.log" >&2
        echo "shard-check: shard $i/3 failed (log: $work/shard-$i.log)" >&2
        exit 1
    }
    echo "shard $i/3: $(grep -m1 '^shard ' "$work/shard-$i.log") in $(($(date +%s) - t)) s"
done

echo "== an incomplete set of shards is refused"
if "$bin" merge --out "$work/incomplete" "$work/shard-1" "$work/shard-3" 2>"$work/incomplete.err"; then
    echo "shard-check: merging shards 1 and 3 of 3 succeeded" >&2
    exit 1
fi
grep -q "missing shard 2/3" "$work/incomplete.err" || {
    cat "$work/incomplete.err" >&2
    echo "shard-check: the refusal does not name the missing shard 2/3" >&2
    exit 1
}
test ! -e "$work/incomplete"
echo "refused: $(grep -m1 'missing shard' "$work/incomplete.err")"

echo "== merge"
"$bin" merge --out "$work/merged" "$work/shard-3" "$work/shard-1" "$work/shard-2"

echo "== merged run = unsharded run (records, deterministic values)"
"$bin" crosscheck --exact --a "$unsharded" --b "$work/merged"

echo "== regression gate on the merged run"
"$bin" gate --run "$work/merged" --baseline ci/baseline --rules ci/gates.toml

echo "shard-check passed in $(($(date +%s) - t0)) s"
if [ "$keep" = 0 ]; then
    rm -rf "$work"
fi
