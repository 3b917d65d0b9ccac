#!/usr/bin/env bash
# Refreshes ci/baseline-quick: the outcome records (the deterministic records M(P)'s
# iterability compares) of a quick run of seed 42, which `infermark run`, `summary` and `report`
# compare a quick run with when no --baseline is given; and the whole run's records as the fixture
# of reports/tests/quick_maturity.rs. About 25 minutes on 2 cores.
#   ci/refresh-quick-outcomes.sh             run the quick scale, then keep its outcomes
#   ci/refresh-quick-outcomes.sh --from DIR  keep the outcomes of an existing quick run
# Review `git diff --stat ci/baseline-quick` before committing: only intended changes to what
# the techniques compute should move it.
set -euo pipefail
cd "$(dirname "$0")/.."
from=
case "${1:-}" in
--from) from=${2:?--from needs a run folder} ;;
"") ;;
*) echo "refresh-quick-outcomes: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
esac
if [ -z "$from" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    from="$work/quick"
    cargo run --release -- run --scale quick --seed 42 --out "$from"
fi
cargo run --release -- outcomes --run "$from" --out ci/baseline-quick --force
# The Parquet file is what is read; the NDJSON copy would only make the commit larger.
rm -f ci/baseline-quick/results.ndjson
# The whole run, for the test that a quick run gets an M(P) total per technique
# (reports/tests/quick_maturity.rs).
mkdir -p reports/tests/fixtures/quick-run
cp "$from/run.json" "$from/results.parquet" reports/tests/fixtures/quick-run/
git diff --stat -- ci/baseline-quick reports/tests/fixtures/quick-run || true
