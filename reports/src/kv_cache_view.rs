//! The KV cache suite's part of the report: its policy metrics (fragmentation, admitted
//! sequences, trace throughput, recomputed tokens) against block size, and the decode step costs
//! its trace replay charges against batch size.

use infermark_suites::{kv_cache, Record};

use crate::charts::{line_chart, Chart, Series};
use crate::metrics::{self, Metric};
use crate::section::SuiteSection;
use crate::table::{summarise, MetricTable};
use crate::Result;

/// The KV cache suite's part of the report: its policy metrics against block size.
pub struct KvCacheSection;

impl SuiteSection for KvCacheSection {
    fn suite(&self) -> &'static str {
        kv_cache::NAME
    }

    fn charts(&self, records: &[Record]) -> Result<Vec<Chart>> {
        let mut out = Vec::new();
        for table in summarise(records) {
            if table.suite != self.suite() {
                continue;
            }
            if PER_BLOCK_SIZE.iter().any(|m| m.name == table.metric) {
                out.extend(block_size_chart(&table)?);
            }
            if table.metric == metrics::DECODE_STEP_MS.name {
                out.extend(step_cost_chart(&table)?);
            }
        }
        Ok(out)
    }
}

/// The measured step costs a trace replay charges: decode step time against batch size, per
/// trace and cache (medians).
fn step_cost_chart(table: &MetricTable) -> Result<Option<Chart>> {
    let mut series = Series::new();
    for r in &table.rows {
        let (Some(trace), Some(batch)) = (
            r.param_map.get("trace"),
            r.param_map.get("batch").and_then(|b| b.parse::<f64>().ok()),
        ) else {
            continue;
        };
        series
            .entry(format!("{trace}/{}", r.variant))
            .or_default()
            .push((batch, r.value));
    }
    if series.values().all(|s| s.len() < 2) {
        return Ok(None);
    }
    for s in series.values_mut() {
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let title = "decode step cost by batch size (charged by the trace replay)".to_string();
    let svg = line_chart(&title, "batch (sequences)", &table.unit, &series)?;
    Ok(Some(Chart {
        suite: table.suite.clone(),
        title,
        svg,
    }))
}

/// KV-cache policy metrics drawn against block size: one series per trace for the paged cache,
/// and the reservation policies (which have no block size) as flat lines for comparison.
const PER_BLOCK_SIZE: [Metric; 4] = [
    metrics::KV_FRAGMENTATION,
    metrics::MAX_CONCURRENT_SEQUENCES,
    metrics::TRACE_TOKENS_PER_S,
    metrics::RECOMPUTED_TOKENS,
];

fn block_size_chart(table: &MetricTable) -> Result<Option<Chart>> {
    let rows: Vec<_> = table
        .rows
        .iter()
        .filter(|r| !r.param_map.contains_key("at") && r.param_map.contains_key("trace"))
        .collect();
    let sizes: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.param_map.get("block_size")?.parse().ok())
        .collect();
    let (Some(lo), Some(hi)) = (
        sizes.iter().copied().reduce(f64::min),
        sizes.iter().copied().reduce(f64::max),
    ) else {
        return Ok(None);
    };
    let mut series = Series::new();
    for r in rows {
        let name = format!("{}/{}", r.param_map["trace"], r.variant);
        match r
            .param_map
            .get("block_size")
            .and_then(|b| b.parse::<f64>().ok())
        {
            Some(b) => series.entry(name).or_default().push((b, r.value)),
            None => {
                series.insert(name, vec![(lo, r.value), (hi, r.value)]);
            }
        }
    }
    let title = format!(
        "{} by block size (reservation policies: flat)",
        table.metric
    );
    let svg = line_chart(&title, "block size (tokens)", &table.unit, &series)?;
    Ok(Some(Chart {
        suite: table.suite.clone(),
        title,
        svg,
    }))
}
