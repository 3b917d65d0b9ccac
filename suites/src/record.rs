//! The tidy result row: one metric per record, with enough context to compare runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What statistic a record's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// Exact by construction (byte counts, analytic FLOPs, exact differences).
    Exact,
    /// Arithmetic mean.
    Mean,
    /// Median of timed samples.
    Median,
    /// 90th percentile (nearest rank).
    P90,
    /// 99th percentile (nearest rank).
    P99,
    /// Smallest sample.
    Min,
    /// Largest sample (or largest value over a run).
    Max,
}

impl Stat {
    /// Lower-case name as stored.
    pub fn name(self) -> &'static str {
        match self {
            Stat::Exact => "exact",
            Stat::Mean => "mean",
            Stat::Median => "median",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
            Stat::Min => "min",
            Stat::Max => "max",
        }
    }
}

/// One measured or computed number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Identifies the run (shared by all its records).
    pub run_id: String,
    /// Suite name, e.g. `attention`.
    pub suite: String,
    /// Experiment within the suite, e.g. `decode`.
    pub experiment: String,
    /// Technique variant, e.g. `gqa`, `mla-absorbed`.
    pub variant: String,
    /// Backend name, e.g. `flex`.
    pub backend: String,
    /// Device description, e.g. the CPU model.
    pub device: String,
    /// Scale of the run.
    pub scale: String,
    /// Case parameters (preset, context length, ...), as strings.
    pub params: BTreeMap<String, String>,
    /// Metric name, e.g. `decode_latency_ms`.
    pub metric: String,
    /// The value.
    pub value: f64,
    /// Unit, e.g. `ms`, `bytes`, `GB/s`.
    pub unit: String,
    /// Which statistic `value` is.
    pub stat: Stat,
    /// Number of samples behind `value` (1 for exact values).
    pub n: u64,
    /// Git revision of the code that produced it.
    pub git_rev: String,
    /// When it was recorded (RFC 3339).
    pub timestamp: String,
    /// The timed samples behind a median, in the order they were taken (empty for every other
    /// record): what a claim's confidence interval is computed from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

/// Now, as RFC 3339 with seconds: the timestamp of records and runs.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
