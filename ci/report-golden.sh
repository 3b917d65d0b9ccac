#!/usr/bin/env bash
# Regenerates reports/tests/golden/report_tables.txt: the report's tables (summary, claims,
# M(P), every suite's chart titles, pivots and per-metric tables, the comparison) for the
# committed smoke baseline ci/baseline, compared with itself and gated by ci/gates.toml.
# The test reports/tests/golden.rs checks the file byte for byte; run this only for an
# intended change to what the report says, and review the diff before committing.
#   ci/report-golden.sh          rewrite the golden file, then show git's diff stat
#   ci/report-golden.sh --check  only check (what `cargo test` does)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--check" ]]; then
    cargo test --release -p infermark-reports --test golden
    exit
fi
INFERMARK_BLESS=1 cargo test --release -p infermark-reports --test golden
git diff --stat -- reports/tests/golden/report_tables.txt
