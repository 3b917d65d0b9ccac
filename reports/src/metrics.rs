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
        "decode throughput (kv_cache: at the admitted batch; quantization: whole target model)",
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
    m(
        "param_count",
        "params",
        Lower,
        Deterministic,
        "trainable parameters of a trained model",
    ),
    m(
        "valid_perplexity",
        "ppl",
        Lower,
        Deterministic,
        "perplexity on the model's validation split (exp of mean next-token loss)",
    ),
    m(
        "unigram_perplexity",
        "ppl",
        Lower,
        Deterministic,
        "perplexity of the add-one unigram model on the same text: the baseline to beat",
    ),
    m(
        "eval_tokens_per_s",
        "tokens/s",
        Higher,
        Noisy,
        "tokens scored per second during the perplexity evaluation",
    ),
    m(
        "arith_accuracy",
        "fraction",
        Higher,
        Deterministic,
        "exact-match accuracy of greedy answers per difficulty bucket and format",
    ),
    m(
        "arith_generated_tokens",
        "tokens",
        Lower,
        Deterministic,
        "mean tokens generated per answer (direct vs step by step)",
    ),
    m(
        "bits_per_weight",
        "bits",
        Lower,
        Deterministic,
        "storage bits per weight: codes plus scales and zero points",
    ),
    m(
        "weight_rmse",
        "abs",
        Lower,
        Deterministic,
        "root mean square error of dequantized weights",
    ),
    m(
        "weight_max_abs_err",
        "abs",
        Lower,
        Deterministic,
        "largest absolute error of a dequantized weight",
    ),
    m(
        "sqnr_db",
        "dB",
        Higher,
        Deterministic,
        "signal-to-quantization-noise ratio of the weights (999 = exact)",
    ),
    m(
        "perplexity",
        "ppl",
        Lower,
        Deterministic,
        "validation perplexity of the quantized model",
    ),
    m(
        "perplexity_delta_pct",
        "%",
        Lower,
        Deterministic,
        "perplexity change against the FP32 model, percent",
    ),
    m(
        "kl_divergence_mean",
        "nats",
        Lower,
        Deterministic,
        "mean KL(P_fp32 || P_quantized) over next-token distributions",
    ),
    m(
        "kl_divergence_p99",
        "nats",
        Lower,
        Deterministic,
        "99th percentile of the per-token KL divergence",
    ),
    m(
        "top1_agreement",
        "fraction",
        Higher,
        Deterministic,
        "share of tokens whose argmax matches the FP32 model's",
    ),
    m(
        "model_bytes",
        "bytes",
        Lower,
        Deterministic,
        "bytes of the quantized model (projections packed, the rest FP32)",
    ),
    m(
        "compression_vs_fp32",
        "x",
        Higher,
        Deterministic,
        "FP32 model bytes / quantized model bytes",
    ),
    m(
        "matvec_latency_ms",
        "ms",
        Lower,
        Noisy,
        "one-row product with a weight matrix (decode)",
    ),
    m(
        "matmul_latency_ms",
        "ms",
        Lower,
        Noisy,
        "many-row product with a weight matrix (prefill)",
    ),
    m(
        "speedup_vs_f32",
        "x",
        Higher,
        Noisy,
        "burn FP32 time / quantized time, timed alternately",
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
