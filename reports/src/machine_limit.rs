//! Bandwidths as a fraction of this machine's own limit: the triad and read-only stream measured
//! in the same run (`suite = machine`), so that a kernel's GB/s reads the same on a 14 GB/s and a
//! 46 GB/s machine.

use infermark_suites::{machine, Record, Stat};

use crate::format::fmt_value;
use crate::metrics::{self, Metric};

/// A machine limit: median, sample count, and (min, max) when recorded.
pub type Limit = (f64, u64, Option<(f64, f64)>);

/// Median of a machine metric of the run ([`metrics::TRIAD_GBPS`], [`metrics::READ_STREAM_GBPS`]),
/// if measured.
pub fn machine_limit(records: &[Record], metric: &Metric) -> Option<Limit> {
    let find = |stat: Stat| {
        records
            .iter()
            .find(|r| r.suite == machine::SUITE && r.metric == metric.name && r.stat == stat)
    };
    let med = find(Stat::Median)?;
    let spread = find(Stat::Min)
        .zip(find(Stat::Max))
        .map(|(a, b)| (a.value, b.value));
    Some((med.value, med.n, spread))
}

/// `x / limit` as a percentage cell, or `–`.
pub fn fraction(x: Option<f64>, limit: Option<f64>) -> String {
    match (x, limit) {
        (Some(x), Some(l)) if l > 0.0 && x.is_finite() => format!("{:.0}%", 100.0 * x / l),
        _ => "–".into(),
    }
}

/// A note naming how the limit was measured.
pub fn limit_note(records: &[Record]) -> String {
    match machine_limit(records, &metrics::TRIAD_GBPS) {
        Some((t, n, spread)) => {
            let spread = spread
                .map(|(a, b)| format!(", min {} – max {}", fmt_value(a), fmt_value(b)))
                .unwrap_or_default();
            let read = machine_limit(records, &metrics::READ_STREAM_GBPS)
                .map(|(r, _, _)| format!("; read-only stream {} GB/s", fmt_value(r)))
                .unwrap_or_default();
            let isa = records
                .iter()
                .find(|r| r.suite == machine::SUITE)
                .and_then(|r| r.params.get("isa"))
                .map(|i| format!("; kernels on the {i} path"))
                .unwrap_or_default();
            format!(
                "This machine's triad, measured in this run: {} GB/s (median of n = {n}{spread}){read}{isa}.",
                fmt_value(t)
            )
        }
        None => {
            "No machine bandwidth in this run (a run from before it was measured, or a GPU run)."
                .into()
        }
    }
}
