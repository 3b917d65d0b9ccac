//! Bandwidths as a fraction of this machine's own limit: the triad and read-only stream measured
//! in the same run (`suite = machine`), so that a kernel's GB/s reads the same on a 14 GB/s and a
//! 46 GB/s machine. The attention suite's part of the report is its KV read bandwidth table.

use infermark_suites::{Record, Stat};

use crate::quant_view::Pivot;
use crate::sections::SuiteSection;
use crate::table::fmt_value;

/// A machine limit: median, sample count, and (min, max) when recorded.
pub type Limit = (f64, u64, Option<(f64, f64)>);

/// Median of a machine metric of the run (`triad_gbps`, `read_stream_gbps`), if measured.
pub fn machine_limit(records: &[Record], metric: &str) -> Option<Limit> {
    let find = |stat: Stat| {
        records.iter().find(|r| {
            r.suite == infermark_suites::machine::SUITE && r.metric == metric && r.stat == stat
        })
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
    match machine_limit(records, "triad_gbps") {
        Some((t, n, spread)) => {
            let spread = spread
                .map(|(a, b)| format!(", min {} – max {}", fmt_value(a), fmt_value(b)))
                .unwrap_or_default();
            let read = machine_limit(records, "read_stream_gbps")
                .map(|(r, _, _)| format!("; read-only stream {} GB/s", fmt_value(r)))
                .unwrap_or_default();
            let isa = records
                .iter()
                .find(|r| r.suite == infermark_suites::machine::SUITE)
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

/// The attention suite's part: KV read bandwidth of the decode core against the triad.
pub struct AttentionSection;

impl SuiteSection for AttentionSection {
    fn suite(&self) -> &'static str {
        "attention"
    }

    fn pivots(&self, records: &[Record]) -> Vec<Pivot> {
        let triad = machine_limit(records, "triad_gbps").map(|x| x.0);
        let read = machine_limit(records, "read_stream_gbps").map(|x| x.0);
        // The share of the core's calls that prefetched, recorded beside each bandwidth.
        let prefetched = |r: &Record| {
            records
                .iter()
                .find(|p| {
                    p.suite == r.suite
                        && p.metric == "kv_prefetch_share"
                        && p.variant == r.variant
                        && p.params == r.params
                })
                .map_or("–".to_string(), |p| format!("{:.0}%", 100.0 * p.value))
        };
        let mut rows: Vec<(String, String, usize, Vec<String>)> = records
            .iter()
            .filter(|r| {
                r.suite == "attention" && r.metric == "kv_read_gbps" && r.stat == Stat::Median
            })
            .map(|r| {
                let preset = r.params.get("preset").cloned().unwrap_or_default();
                let ctx = r
                    .params
                    .get("ctx")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                (
                    r.variant.clone(),
                    preset.clone(),
                    ctx,
                    vec![
                        r.variant.clone(),
                        preset,
                        ctx.to_string(),
                        fmt_value(r.value),
                        r.n.to_string(),
                        fraction(Some(r.value), triad),
                        fraction(Some(r.value), read),
                        prefetched(r),
                    ],
                )
            })
            .collect();
        if rows.is_empty() {
            return Vec::new();
        }
        rows.sort_by(|a, b| (&a.1, &a.0, a.2).cmp(&(&b.1, &b.0, b.2)));
        vec![Pivot {
            title: "KV read bandwidth of the decode core against this machine's limit".into(),
            header: [
                "variant",
                "preset",
                "ctx",
                "kv_read_gbps",
                "n",
                "of triad",
                "of read stream",
                "calls prefetched",
            ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rows: rows.into_iter().map(|r| r.3).collect(),
            note: format!(
                "KV bytes one decode step reads over the core's median time. Above 100% the cache fits (partly) in the CPU caches. Calls prefetched: the share of the core's calls in which the flex kernel prefetched K/V rows, which it does only when a probe finds them coming from DRAM (0% where they sat in the CPU caches). {}",
                limit_note(records)
            ),
        }]
    }
}
