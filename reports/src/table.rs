//! Summary tables: records grouped by metric, variant and parameters, each shown by its headline
//! statistic (exact, else median, else mean, else max) with its spread and sample count.

use std::collections::BTreeMap;

use infermark_suites::metric::Metric;
use infermark_suites::{Record, Stat};
use serde::Serialize;

pub use crate::format::fmt_value;

/// One line of a summary table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    /// Variant.
    pub variant: String,
    /// Parameters, `key=value` joined by spaces.
    pub params: String,
    /// The same parameters as a map.
    #[serde(skip)]
    pub param_map: BTreeMap<String, String>,
    /// Headline value.
    pub value: f64,
    /// Which statistic the headline is.
    pub stat: String,
    /// Smallest sample, where timed.
    pub min: Option<f64>,
    /// 90th percentile, where timed.
    pub p90: Option<f64>,
    /// Samples behind the value.
    pub n: u64,
}

/// All rows of one metric of one suite.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MetricTable {
    /// Suite.
    pub suite: String,
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Rows, in record order.
    pub rows: Vec<Row>,
}

fn rank(stat: Stat) -> Option<u8> {
    match stat {
        Stat::Exact => Some(0),
        Stat::Median => Some(1),
        Stat::Mean => Some(2),
        Stat::Max => Some(3),
        _ => None,
    }
}

/// (suite, metric, variant, params) of a row.
type RowKey = (String, String, String, String);

/// Groups records into one table per (suite, metric), keeping first-seen order.
pub fn summarise(records: &[Record]) -> Vec<MetricTable> {
    let mut tables: Vec<MetricTable> = Vec::new();
    // (suite, metric, variant, params) → (headline rank, row)
    let mut groups: Vec<(RowKey, Option<u8>, Row, String)> = Vec::new();
    for r in records {
        let params = r
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let key = (
            r.suite.clone(),
            r.metric.clone(),
            r.variant.clone(),
            params.clone(),
        );
        let idx = match groups.iter().position(|g| g.0 == key) {
            Some(i) => i,
            None => {
                let row = Row {
                    variant: r.variant.clone(),
                    params,
                    param_map: r.params.clone(),
                    value: f64::NAN,
                    stat: String::new(),
                    min: None,
                    p90: None,
                    n: r.n,
                };
                groups.push((key, None, row, r.unit.clone()));
                groups.len() - 1
            }
        };
        let g = &mut groups[idx];
        match r.stat {
            Stat::Min => g.2.min = Some(r.value),
            Stat::P90 => g.2.p90 = Some(r.value),
            s => {
                if let Some(k) = rank(s) {
                    if g.1.is_none_or(|cur| k < cur) {
                        g.1 = Some(k);
                        g.2.value = r.value;
                        g.2.stat = s.name().into();
                        g.2.n = r.n;
                    }
                }
            }
        }
    }
    for ((suite, metric, _, _), headline, row, unit) in groups {
        if headline.is_none() {
            continue;
        }
        match tables
            .iter_mut()
            .find(|t| t.suite == suite && t.metric == metric)
        {
            Some(t) => t.rows.push(row),
            None => tables.push(MetricTable {
                suite,
                metric,
                unit,
                rows: vec![row],
            }),
        }
    }
    tables
}

/// The table of one suite's metric, if it has rows.
pub fn summarise_metric(records: &[Record], suite: &str, metric: &Metric) -> Option<MetricTable> {
    let own: Vec<Record> = records
        .iter()
        .filter(|r| r.suite == suite && r.metric == metric.name)
        .cloned()
        .collect();
    summarise(&own).pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(metric: &str, stat: Stat, value: f64) -> Record {
        Record {
            run_id: "r".into(),
            suite: "attention".into(),
            experiment: "decode".into(),
            variant: "gqa".into(),
            backend: "flex".into(),
            device: "cpu".into(),
            scale: "smoke".into(),
            params: BTreeMap::from([("ctx".into(), "64".into())]),
            metric: metric.into(),
            value,
            unit: "ms".into(),
            stat,
            n: 9,
            git_rev: "x".into(),
            timestamp: "t".into(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn median_is_the_headline_and_min_p90_the_spread() {
        let t = summarise(&[
            rec("lat", Stat::Min, 1.0),
            rec("lat", Stat::Median, 2.0),
            rec("lat", Stat::P90, 3.0),
            rec("lat", Stat::Max, 4.0),
        ]);
        assert_eq!(t.len(), 1);
        let r = &t[0].rows[0];
        assert_eq!(
            (r.value, r.stat.as_str(), r.min, r.p90, r.n),
            (2.0, "median", Some(1.0), Some(3.0), 9)
        );
        assert_eq!(r.params, "ctx=64");
    }
}
