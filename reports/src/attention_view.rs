//! The attention suite's part of the report: the KV read bandwidth of the decode core against
//! this machine's limit ([`crate::machine_limit`]), and the analytic KV cache memory against
//! context length.

use infermark_suites::{attention, Record, Stat};

use crate::charts::{line_chart, Chart, Series};
use crate::format::fmt_value;
use crate::machine_limit::{fraction, limit_note, machine_limit};
use crate::metrics;
use crate::pivot::{header, Pivot};
use crate::section::SuiteSection;
use crate::table::summarise_metric;
use crate::Result;

/// The attention suite's part: KV read bandwidth of the decode core against the triad, and KV
/// memory against context.
pub struct AttentionSection;

impl SuiteSection for AttentionSection {
    fn suite(&self) -> &'static str {
        attention::NAME
    }

    /// KV cache memory per layer and sequence against context, from the analytic bytes per token.
    fn charts(&self, records: &[Record]) -> Result<Vec<Chart>> {
        let Some(table) =
            summarise_metric(records, self.suite(), &metrics::KV_CACHE_BYTES_PER_TOKEN)
        else {
            return Ok(Vec::new());
        };
        let contexts = [256.0, 1024.0, 4096.0, 16384.0, 32768.0, 131072.0];
        let mut series = Series::new();
        for row in table
            .rows
            .iter()
            .filter(|r| r.param_map.get("source").map(String::as_str) == Some("analytic"))
        {
            let name = format!(
                "{}/{}",
                row.param_map
                    .get("preset")
                    .map(String::as_str)
                    .unwrap_or("-"),
                row.variant
            );
            series.insert(
                name,
                contexts
                    .iter()
                    .map(|&c| (c, c * row.value / (1024.0 * 1024.0)))
                    .collect(),
            );
        }
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let title = "KV cache per layer and sequence (f32)".to_string();
        let svg = line_chart(&title, "context length (tokens)", "MiB", &series)?;
        Ok(vec![Chart {
            suite: table.suite,
            title,
            svg,
        }])
    }

    fn pivots(&self, records: &[Record]) -> Vec<Pivot> {
        let triad = machine_limit(records, &metrics::TRIAD_GBPS).map(|x| x.0);
        let read = machine_limit(records, &metrics::READ_STREAM_GBPS).map(|x| x.0);
        // The share of the core's calls that prefetched, recorded beside each bandwidth.
        let prefetched = |r: &Record| {
            records
                .iter()
                .find(|p| {
                    p.suite == r.suite
                        && p.metric == metrics::KV_PREFETCH_SHARE.name
                        && p.variant == r.variant
                        && p.params == r.params
                })
                .map_or("–".to_string(), |p| format!("{:.0}%", 100.0 * p.value))
        };
        let mut rows: Vec<(String, String, usize, Vec<String>)> = records
            .iter()
            .filter(|r| {
                r.suite == attention::NAME
                    && r.metric == metrics::KV_READ_GBPS.name
                    && r.stat == Stat::Median
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
            header: header(&[
                "variant",
                "preset",
                "ctx",
                metrics::KV_READ_GBPS.name,
                "n",
                "of triad",
                "of read stream",
                "calls prefetched",
            ]),
            rows: rows.into_iter().map(|r| r.3).collect(),
            note: format!(
                "KV bytes one decode step reads over the core's median time. Above 100% the cache fits (partly) in the CPU caches. Calls prefetched: the share of the core's calls in which the flex kernel prefetched K/V rows, which it does only when a probe finds them coming from DRAM (0% where they sat in the CPU caches). {}",
                limit_note(records)
            ),
        }]
    }
}
