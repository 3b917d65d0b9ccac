//! Helpers shared by the reports tests.

use std::collections::BTreeMap;

use infermark_suites::{Record, Stat};

/// A hand-made record: `suite`'s `variant`, one `metric` value with its statistic, sample count
/// and params; the provenance fields are fixed placeholders.
pub fn record(
    suite: &str,
    variant: &str,
    metric: &str,
    value: f64,
    stat: Stat,
    n: u64,
    params: &[(&str, &str)],
) -> Record {
    Record {
        run_id: "r".into(),
        suite: suite.into(),
        experiment: "x".into(),
        variant: variant.into(),
        backend: "flex".into(),
        device: "cpu".into(),
        scale: "smoke".into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        metric: metric.into(),
        value,
        unit: "u".into(),
        stat,
        n,
        git_rev: "g".into(),
        timestamp: "t".into(),
        samples: Vec::new(),
    }
}
