//! M(P) on the records of one real quick run (`reports/tests/fixtures/quick-run`: run.json and
//! results.parquet, written by `ci/refresh-quick-outcomes.sh` from the same run as the committed
//! outcome baseline `ci/baseline-quick`). What a user gets from the default quick run: a total
//! for each of the seed document's five techniques, and the chart of their parts.

use std::path::{Path, PathBuf};

use infermark_reports::{html, io, maturity};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn a_quick_run_with_the_committed_outcomes_has_a_total_for_each_of_the_five_techniques() {
    let run = io::read_run(&repo("reports/tests/fixtures/quick-run")).unwrap();
    let base = io::read_run(&repo("ci/baseline-quick")).unwrap();
    assert_eq!((run.env.scale.as_str(), run.env.seed), ("quick", 42));
    assert_eq!(
        (base.env.scale.as_str(), base.env.seed),
        (run.env.scale.as_str(), run.env.seed)
    );
    let scores = maturity::scores(&run.records, Some(&base.records), Default::default());
    // MLA vs GQA, paged KV cache, FP8/INT4 quantization, speculative decoding, AdaCoT gating:
    // each suite has at least one technique with a total, and every total has I against the
    // committed outcomes of the same run.
    let mut best = Vec::new();
    for suite in [
        "attention",
        "kv_cache",
        "quantization",
        "speculative",
        "adacot",
    ] {
        let totals: Vec<_> = scores
            .iter()
            .filter(|s| s.suite == suite && s.m.is_some())
            .collect();
        assert!(
            !totals.is_empty(),
            "{suite}: no technique with an M(P) total"
        );
        for s in &totals {
            let m = s.m.unwrap();
            assert!((0.0..=1.0).contains(&m), "{suite} {}: M = {m}", s.technique);
            assert_eq!(s.i, Some(1.0), "{suite} {}: {:?}", s.technique, s.inputs);
        }
        best.push(totals[0].technique.clone());
    }
    // The report draws the parts of every total.
    let base = html::Baseline {
        label: "ci/baseline-quick".into(),
        records: base.records,
        outcomes_only: true,
    };
    let ctx = html::context(
        &run.env,
        &run.records,
        std::slice::from_ref(&base),
        Default::default(),
        &|_| String::new(),
        None,
    )
    .unwrap();
    let chart = ctx.maturity_chart.expect("an M(P) chart");
    for t in &best {
        assert!(
            chart.contains(&format!(" {t}</text>")),
            "{t} missing from the chart"
        );
    }
    assert!(
        ctx.comparisons.is_empty(),
        "an outcomes-only baseline gets no comparison"
    );
}
