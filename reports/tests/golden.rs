//! Golden report content: the tables of the report of the committed smoke baseline
//! (`ci/baseline`, compared with itself and gated by `ci/gates.toml`) as plain text
//! ([`infermark_reports::dump::text_dump`]), byte for byte against
//! `reports/tests/golden/report_tables.txt`. A change to what the report says fails here.
//!
//! To accept an intended change, regenerate the file and review its diff:
//! `INFERMARK_BLESS=1 cargo test --release -p infermark-reports --test golden`
//! (or `ci/report-golden.sh`).

use std::path::{Path, PathBuf};

use infermark_reports::html::{self, Baseline, GateSummary};
use infermark_reports::maturity::Weights;
use infermark_reports::{dump, gate, io};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dump_of_baseline() -> String {
    let dir = root().join("ci/baseline");
    let run = io::read_run(&dir).expect("ci/baseline reads");
    let rules_path = root().join("ci/gates.toml");
    let text = std::fs::read_to_string(&rules_path).expect("ci/gates.toml reads");
    let rules = gate::parse_rules(&text, Path::new("ci/gates.toml")).expect("ci/gates.toml parses");
    let gate = GateSummary {
        baseline: "ci/baseline".into(),
        rules: "ci/gates.toml".into(),
        refused: gate::comparable(&run.env, &run.env).err(),
        verdicts: gate::evaluate(&rules, &run.records, &run.records),
    };
    let baselines = [Baseline {
        label: "ci/baseline".into(),
        records: run.records.clone(),
        outcomes_only: false,
    }];
    let describe = |name: &str| {
        infermark_suites::find_suite(name)
            .map(|s| s.description().to_string())
            .unwrap_or_default()
    };
    let ctx = html::context(
        &run.env,
        &run.records,
        &baselines,
        Weights::default(),
        &describe,
        Some(&gate),
    )
    .expect("the report's context builds");
    dump::text_dump(&ctx)
}

#[test]
fn report_tables_of_the_smoke_baseline_match_the_golden_file() {
    let got = dump_of_baseline();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report_tables.txt");
    if std::env::var_os("INFERMARK_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &got).expect("golden file writes");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; make it with INFERMARK_BLESS=1 (ci/report-golden.sh)",
            path.display()
        )
    });
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "report tables differ from {} at line {}:\n  golden: {:?}\n  now:    {:?}\n\
             regenerate with ci/report-golden.sh if the change is intended",
            path.display(),
            first + 1,
            want.lines().nth(first),
            got.lines().nth(first)
        );
    }
}
