//! The metric registry: for every metric a suite emits, its unit, which direction is better, and
//! whether it is deterministic (bytes, counts, analytic FLOPs, exact differences: equal across
//! runs with the same seed on the same backend) or noisy (times, throughput). Report and gate
//! both read it; a metric missing from it is an error.

use serde::Serialize;

/// Which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smaller values are better (latency, bytes, error).
    Lower,
    /// Larger values are better (throughput, bandwidth, accuracy).
    Higher,
}

/// How reproducible a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Identical across runs with the same seed and backend.
    Deterministic,
    /// Varies from run to run (timing); compare only as ratios within a run.
    Noisy,
}

/// One registered metric.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Metric {
    /// Name as in records.
    pub name: &'static str,
    /// Unit as in records.
    pub unit: &'static str,
    /// Which way is better.
    pub direction: Direction,
    /// Deterministic or noisy.
    pub kind: Kind,
    /// What it means.
    pub about: &'static str,
}

const fn m(
    name: &'static str,
    unit: &'static str,
    direction: Direction,
    kind: Kind,
    about: &'static str,
) -> Metric {
    Metric {
        name,
        unit,
        direction,
        kind,
        about,
    }
}

use Direction::{Higher, Lower};
use Kind::{Deterministic, Noisy};

/// Every metric infermark's suites emit.
pub const METRICS: &[Metric] = &[
    m(
        "kv_cache_bytes_per_token",
        "bytes",
        Lower,
        Deterministic,
        "KV cache bytes per token and layer",
    ),
    m(
        "flops_per_token",
        "FLOP",
        Lower,
        Deterministic,
        "analytic FLOPs of one decode step",
    ),
    m(
        "decode_latency_ms",
        "ms",
        Lower,
        Noisy,
        "one decode step at a context length",
    ),
    m(
        "prefill_latency_ms",
        "ms",
        Lower,
        Noisy,
        "causal prefill of a prompt",
    ),
    m(
        "kv_read_gbps",
        "GB/s",
        Higher,
        Noisy,
        "KV cache bytes read per decode step / core time",
    ),
    m(
        "mla_absorbed_vs_naive_max_abs_diff",
        "ratio",
        Lower,
        Deterministic,
        "largest |absorbed − naive| / largest |naive|",
    ),
    m(
        "kv_fragmentation",
        "ratio",
        Lower,
        Deterministic,
        "1 − live token bytes / reserved bytes",
    ),
    m(
        "max_concurrent_sequences",
        "sequences",
        Higher,
        Deterministic,
        "most sequences resident at once under the budget",
    ),
    m(
        "kv_bytes_reserved_peak",
        "bytes",
        Lower,
        Deterministic,
        "most KV bytes reserved at once",
    ),
    m(
        "kv_bytes_used_peak",
        "bytes",
        Higher,
        Deterministic,
        "most KV bytes holding live tokens at once",
    ),
    m(
        "preemptions",
        "count",
        Lower,
        Deterministic,
        "sequences evicted and recomputed for lack of blocks",
    ),
    m(
        "decode_step_ms",
        "ms",
        Lower,
        Noisy,
        "one decode step of a batch",
    ),
    m(
        "decode_tokens_per_s",
        "tokens/s",
        Higher,
        Noisy,
        "decode throughput at the admitted batch",
    ),
    m(
        "decode_throughput_gain",
        "x",
        Higher,
        Noisy,
        "paged / contiguous decode throughput, same run",
    ),
    m(
        "kv_bytes_saved_by_sharing",
        "bytes",
        Higher,
        Deterministic,
        "KV bytes saved by copy-on-write prefix sharing",
    ),
    m(
        "paged_over_contiguous_latency",
        "x",
        Lower,
        Noisy,
        "paged / contiguous attention latency, same run",
    ),
    m(
        "paged_vs_contiguous_max_abs_diff",
        "abs",
        Lower,
        Deterministic,
        "largest |paged − contiguous| attention output",
    ),
];

/// Looks a metric up; `None` for a metric the registry does not know.
pub fn lookup(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// `(new − old)` expressed so that positive means better, relative to |old|.
pub fn relative_improvement(metric: &Metric, old: f64, new: f64) -> f64 {
    let rel = (new - old) / old.abs().max(f64::MIN_POSITIVE);
    match metric.direction {
        Direction::Lower => -rel,
        Direction::Higher => rel,
    }
}
