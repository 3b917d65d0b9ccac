#!/usr/bin/env bash
# Metric and suite names are defined once: metrics as `name: "..."` in suites/src/metric.rs, suites
# as `pub const NAME` / `pub const SUITE` in suites/src. Everywhere else Rust code refers to them by
# those constants (`metrics::DECODE_LATENCY_MS.name`, `kv_cache::NAME`), so a rename cannot leave a
# stale string behind. This script lists every `"<name>"` string literal in Rust sources outside
# the definitions, as file:line, and exits 1 if there is any.
#
# Not checked: a suite's own `pub const X: &str` names in its about.rs (e.g. an experiment name
# that reads like a metric's), files under a tests/ directory, everything from a `#[cfg(test)]` line to the end of
# its file (test modules sit last, by convention here), comment lines (`//`, `///`, `//!`), and
# non-Rust files (TOML data such as ci/gates.toml and reports/claims.toml, which are checked
# against the registry when loaded; Markdown docs).
#
#   ci/check-names.sh                       suites/, reports/ and bench/
#   ci/check-names.sh reports bench/src/x.rs  only these files and directories
set -euo pipefail
cd "$(dirname "$0")/.."

metric_defs=suites/src/metric.rs
metrics=$(sed -n 's/^[[:space:]]*name: "\([^"]*\)",.*/\1/p' "$metric_defs" | sort -u)
suites=$(grep -rhE '^[[:space:]]*pub const (NAME|SUITE): &str = "[^"]*";' suites/src \
    | sed 's/.*= "\([^"]*\)";.*/\1/' | sort -u)
if [[ -z "$metrics" || -z "$suites" ]]; then
    echo "check-names: found no metric or no suite names to check (looked in $metric_defs, suites/src)" >&2
    exit 2
fi

# models/ is left out by default: it sits below suites/ (it cannot name their constants) and
# knows no suite or metric; its "attention" is a part of a decode step.
paths=("$@")
[[ ${#paths[@]} -eq 0 ]] && paths=(suites reports bench)
for p in "${paths[@]}"; do
    if [[ ! -e "$p" ]]; then
        echo "check-names: $p does not exist" >&2
        exit 2
    fi
done
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- "${paths[@]}" \
    | grep -E '\.rs$' | grep -vE '(^|/)tests/' | sort -u)

found=0
if [[ ${#files[@]} -gt 0 ]]; then
    # Prints file:line: "name" for each literal; definitions are the `name: "..."` lines of the
    # metric registry and the `pub const NAME|SUITE` lines.
    report=$(awk -v names="$(printf '%s\n' $metrics $suites | sort -u | tr '\n' ' ')" \
        -v defs="$metric_defs" '
        BEGIN { n = split(names, list, " ") }
        FNR == 1 { in_test = 0 }
        /^[[:space:]]*#\[cfg\(test\)\]/ { in_test = 1 }
        in_test { next }
        /^[[:space:]]*\/\// { next }
        FILENAME == defs && /^[[:space:]]*name: "/ { next }
        /^[[:space:]]*pub const (NAME|SUITE): &str = "/ { next }
        FILENAME ~ /\/about\.rs$/ && /^[[:space:]]*pub const [A-Z_]+: &str = "/ { next }
        {
            for (i = 1; i <= n; i++) {
                if (index($0, "\"" list[i] "\"") > 0) {
                    printf "%s:%d: \"%s\"\n", FILENAME, FNR, list[i]
                }
            }
        }' "${files[@]}")
    if [[ -n "$report" ]]; then
        echo "$report"
        found=$(echo "$report" | wc -l)
        echo
        echo "per file:"
        echo "$report" | cut -d: -f1 | sort | uniq -c | sort -rn
    fi
fi
echo "check-names: $found name literal(s) in ${#files[@]} Rust file(s) of: ${paths[*]}" \
    "($(echo $metrics | wc -w) metric and $(echo $suites | wc -w) suite names)"
[[ $found -eq 0 ]]
