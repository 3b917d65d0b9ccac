//! The metric contract: every metric a suite emits is defined once, here, beside
//! [`Record`](crate::Record): its name, unit, which direction is better, and whether it is deterministic
//! (bytes, counts, analytic FLOPs, exact differences: equal across runs with the same seed on the
//! same backend) or noisy (times, throughput). Suites record through these constants (the
//! recorder takes the unit from them), and report and gate look records up by name in [`ALL`].

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

use Direction::{Higher, Lower};
use Kind::{Deterministic, Noisy};

/// KV cache bytes per token and layer.
pub const KV_CACHE_BYTES_PER_TOKEN: Metric = Metric {
    name: "kv_cache_bytes_per_token",
    unit: "bytes",
    direction: Lower,
    kind: Deterministic,
    about: "KV cache bytes per token and layer",
};

/// Analytic FLOPs of one decode step.
pub const FLOPS_PER_TOKEN: Metric = Metric {
    name: "flops_per_token",
    unit: "FLOP",
    direction: Lower,
    kind: Deterministic,
    about: "analytic FLOPs of one decode step",
};

/// One decode step at a context length.
pub const DECODE_LATENCY_MS: Metric = Metric {
    name: "decode_latency_ms",
    unit: "ms",
    direction: Lower,
    kind: Noisy,
    about: "one decode step at a context length",
};

/// Causal prefill of a prompt.
pub const PREFILL_LATENCY_MS: Metric = Metric {
    name: "prefill_latency_ms",
    unit: "ms",
    direction: Lower,
    kind: Noisy,
    about: "causal prefill of a prompt",
};

/// KV cache bytes read per decode step / core time.
pub const KV_READ_GBPS: Metric = Metric {
    name: "kv_read_gbps",
    unit: "GB/s",
    direction: Higher,
    kind: Noisy,
    about: "KV cache bytes read per decode step / core time",
};

/// Share of the decode core's calls that prefetched K/V rows (flex CPU kernel).
pub const KV_PREFETCH_SHARE: Metric = Metric {
    name: "kv_prefetch_share",
    unit: "ratio",
    direction: Lower,
    kind: Noisy,
    about: "share of the decode core's calls (warm-up included) in which the flex CPU kernel prefetched K/V rows: 1 where a probe found them coming from DRAM, 0 where they sat in the CPU caches; says which regime kv_read_gbps measured",
};

/// Largest |absorbed − naive| / largest |naive|.
pub const MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF: Metric = Metric {
    name: "mla_absorbed_vs_naive_max_abs_diff",
    unit: "ratio",
    direction: Lower,
    kind: Deterministic,
    about: "largest |absorbed − naive| / largest |naive|",
};

/// 1 − live token bytes / reserved bytes.
pub const KV_FRAGMENTATION: Metric = Metric {
    name: "kv_fragmentation",
    unit: "ratio",
    direction: Lower,
    kind: Deterministic,
    about: "1 − live token bytes / reserved bytes",
};

/// Most sequences resident at once under the budget.
pub const MAX_CONCURRENT_SEQUENCES: Metric = Metric {
    name: "max_concurrent_sequences",
    unit: "sequences",
    direction: Higher,
    kind: Deterministic,
    about: "most sequences resident at once under the budget",
};

/// Most KV bytes reserved at once.
pub const KV_BYTES_RESERVED_PEAK: Metric = Metric {
    name: "kv_bytes_reserved_peak",
    unit: "bytes",
    direction: Lower,
    kind: Deterministic,
    about: "most KV bytes reserved at once",
};

/// Most KV bytes holding live tokens at once.
pub const KV_BYTES_USED_PEAK: Metric = Metric {
    name: "kv_bytes_used_peak",
    unit: "bytes",
    direction: Higher,
    kind: Deterministic,
    about: "most KV bytes holding live tokens at once",
};

/// Sequences evicted and recomputed for lack of blocks.
pub const PREEMPTIONS: Metric = Metric {
    name: "preemptions",
    unit: "count",
    direction: Lower,
    kind: Deterministic,
    about: "sequences evicted and recomputed for lack of blocks",
};

/// Tokens prefilled again because their sequence was preempted.
pub const RECOMPUTED_TOKENS: Metric = Metric {
    name: "recomputed_tokens",
    unit: "tokens",
    direction: Lower,
    kind: Deterministic,
    about: "prompt and generated tokens prefilled again after their sequence was preempted (vLLM's recompute policy)",
};

/// Throughput of a whole trace replayed with measured step costs.
pub const TRACE_TOKENS_PER_S: Metric = Metric {
    name: "trace_tokens_per_s",
    unit: "tokens/s",
    direction: Higher,
    kind: Noisy,
    about: "generated tokens / seconds to serve the whole trace under a KV policy: its admission, preemption and recomputation replayed step by step, each step charged the decode and prefill costs measured in the same run",
};

/// One decode step of a batch.
pub const DECODE_STEP_MS: Metric = Metric {
    name: "decode_step_ms",
    unit: "ms",
    direction: Lower,
    kind: Noisy,
    about: "one decode step of a batch",
};

/// Decode throughput (kv_cache: at the admitted batch; quantization: whole target model).
pub const DECODE_TOKENS_PER_S: Metric = Metric {
    name: "decode_tokens_per_s",
    unit: "tokens/s",
    direction: Higher,
    kind: Noisy,
    about: "decode throughput (quantization: whole target model; speculative: tokens made by decode steps over their time, `mode` plain or speculative, prefill excluded)",
};

/// Paged / contiguous decode throughput, same run.
pub const DECODE_THROUGHPUT_GAIN: Metric = Metric {
    name: "decode_throughput_gain",
    unit: "x",
    direction: Higher,
    kind: Noisy,
    about: "trace_tokens_per_s of a KV policy / that of contiguous max_len reservation, same run",
};

/// KV bytes saved by copy-on-write prefix sharing.
pub const KV_BYTES_SAVED_BY_SHARING: Metric = Metric {
    name: "kv_bytes_saved_by_sharing",
    unit: "bytes",
    direction: Higher,
    kind: Deterministic,
    about: "KV bytes saved by copy-on-write prefix sharing",
};

/// Paged / contiguous attention latency, same run.
pub const PAGED_OVER_CONTIGUOUS_LATENCY: Metric = Metric {
    name: "paged_over_contiguous_latency",
    unit: "x",
    direction: Lower,
    kind: Noisy,
    about: "paged / contiguous attention latency, same run",
};

/// Largest |paged − contiguous| attention output.
pub const PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF: Metric = Metric {
    name: "paged_vs_contiguous_max_abs_diff",
    unit: "abs",
    direction: Lower,
    kind: Deterministic,
    about: "largest |paged − contiguous| attention output",
};

/// Trainable parameters of a trained model.
pub const PARAM_COUNT: Metric = Metric {
    name: "param_count",
    unit: "params",
    direction: Lower,
    kind: Deterministic,
    about: "trainable parameters of a trained model",
};

/// Perplexity on the model's validation split (exp of mean next-token loss).
pub const VALID_PERPLEXITY: Metric = Metric {
    name: "valid_perplexity",
    unit: "ppl",
    direction: Lower,
    kind: Deterministic,
    about: "perplexity on held-out text (exp of mean next-token loss): the model's validation split, or for real models the `text` param's file",
};

/// Prefill throughput.
pub const PREFILL_TOKENS_PER_S: Metric = Metric {
    name: "prefill_tokens_per_s",
    unit: "tokens/s",
    direction: Higher,
    kind: Noisy,
    about: "prompt tokens per second of a causal prefill into the cache (`tokens` param)",
};

/// Weight bytes a decode step reads.
pub const WEIGHT_BYTES_PER_TOKEN: Metric = Metric {
    name: "weight_bytes_per_token",
    unit: "bytes",
    direction: Lower,
    kind: Deterministic,
    about: "bytes of projection and head weights one decode step reads (codes and scales as held)",
};

/// STREAM-style triad bandwidth of this machine, measured in the run (see `machine`).
pub const TRIAD_GBPS: Metric = Metric {
    name: "triad_gbps",
    unit: "GB/s",
    direction: Higher,
    kind: Noisy,
    about: "STREAM-style triad a = b + s·c over arrays far beyond the last-level cache, 12 bytes per element: this machine's memory limit",
};

/// Read-only stream bandwidth of this machine, measured in the run (see `machine`).
pub const READ_STREAM_GBPS: Metric = Metric {
    name: "read_stream_gbps",
    unit: "GB/s",
    direction: Higher,
    kind: Noisy,
    about: "read-only stream (a sum) over an array far beyond the last-level cache: this machine's read limit",
};

/// Weight bandwidth of decoding.
pub const WEIGHT_READ_GBPS: Metric = Metric {
    name: "weight_read_gbps",
    unit: "GB/s",
    direction: Higher,
    kind: Noisy,
    about: "weight bytes read per second: weight_bytes_per_token × decode tokens/s (lm), or one layer's weight bytes over its matvec median (quantization speed)",
};

/// Share of a decode step's wall time spent in one part of the decoder.
pub const STEP_TIME_SHARE: Metric = Metric {
    name: "step_time_share",
    unit: "ratio",
    direction: Lower,
    kind: Noisy,
    about: "lm: share of a batch-1 decode step's wall time per part (`part`: attention-projections, mlp-projections, head, attention, norms, rope, sampling, other), on host backends",
};

/// Perplexity of the add-one unigram model on the same text: the baseline to beat.
pub const UNIGRAM_PERPLEXITY: Metric = Metric {
    name: "unigram_perplexity",
    unit: "ppl",
    direction: Lower,
    kind: Deterministic,
    about: "perplexity of the add-one unigram model on the same text: the baseline to beat",
};

/// Tokens scored per second during the perplexity evaluation.
pub const EVAL_TOKENS_PER_S: Metric = Metric {
    name: "eval_tokens_per_s",
    unit: "tokens/s",
    direction: Higher,
    kind: Noisy,
    about: "tokens scored per second during the perplexity evaluation",
};

/// Exact-match accuracy of greedy answers per difficulty bucket and format.
pub const ARITH_ACCURACY: Metric = Metric {
    name: "arith_accuracy",
    unit: "fraction",
    direction: Higher,
    kind: Deterministic,
    about: "exact-match accuracy of greedy answers per difficulty bucket and format",
};

/// Mean tokens generated per answer (direct vs step by step).
pub const ARITH_GENERATED_TOKENS: Metric = Metric {
    name: "arith_generated_tokens",
    unit: "tokens",
    direction: Lower,
    kind: Deterministic,
    about: "mean tokens generated per answer (direct vs step by step)",
};

/// Storage bits per weight: codes plus scales and zero points.
pub const BITS_PER_WEIGHT: Metric = Metric {
    name: "bits_per_weight",
    unit: "bits",
    direction: Lower,
    kind: Deterministic,
    about: "storage bits per weight: codes plus scales and zero points",
};

/// Root mean square error of dequantized weights.
pub const WEIGHT_RMSE: Metric = Metric {
    name: "weight_rmse",
    unit: "abs",
    direction: Lower,
    kind: Deterministic,
    about: "root mean square error of dequantized weights",
};

/// Largest absolute error of a dequantized weight.
pub const WEIGHT_MAX_ABS_ERR: Metric = Metric {
    name: "weight_max_abs_err",
    unit: "abs",
    direction: Lower,
    kind: Deterministic,
    about: "largest absolute error of a dequantized weight",
};

/// Signal-to-quantization-noise ratio of the weights (not recorded for an exact round trip).
pub const SQNR_DB: Metric = Metric {
    name: "sqnr_db",
    unit: "dB",
    direction: Higher,
    kind: Deterministic,
    about: "signal-to-quantization-noise ratio of the weights; left out where the round trip is exact (see exact_roundtrip)",
};

/// Whether every weight survives quantization unchanged.
pub const EXACT_ROUNDTRIP: Metric = Metric {
    name: "exact_roundtrip",
    unit: "bool",
    direction: Higher,
    kind: Deterministic,
    about: "1 when every weight dequantizes to exactly its original value (SQNR is infinite and not recorded), else 0",
};

/// Validation perplexity of the quantized model.
pub const PERPLEXITY: Metric = Metric {
    name: "perplexity",
    unit: "ppl",
    direction: Lower,
    kind: Deterministic,
    about: "validation perplexity of the quantized model",
};

/// Perplexity change against the FP32 model, percent.
pub const PERPLEXITY_DELTA_PCT: Metric = Metric {
    name: "perplexity_delta_pct",
    unit: "%",
    direction: Lower,
    kind: Deterministic,
    about: "perplexity change against the FP32 model, percent",
};

/// Mean KL(P_fp32 || P_quantized) over next-token distributions.
pub const KL_DIVERGENCE_MEAN: Metric = Metric {
    name: "kl_divergence_mean",
    unit: "nats",
    direction: Lower,
    kind: Deterministic,
    about: "mean KL(P_fp32 || P_quantized) over next-token distributions",
};

/// Wall time to quantize a whole model's projections (a calibrated method's pass over its
/// calibration text included).
pub const QUANTIZE_SECONDS: Metric = Metric {
    name: "quantize_seconds",
    unit: "s",
    direction: Lower,
    kind: Noisy,
    about: "wall time to quantize the model's projections, calibration pass included",
};

/// 99th percentile of the per-token KL divergence.
pub const KL_DIVERGENCE_P99: Metric = Metric {
    name: "kl_divergence_p99",
    unit: "nats",
    direction: Lower,
    kind: Deterministic,
    about: "99th percentile of the per-token KL divergence",
};

/// Share of tokens whose argmax matches the FP32 model's.
pub const TOP1_AGREEMENT: Metric = Metric {
    name: "top1_agreement",
    unit: "fraction",
    direction: Higher,
    kind: Deterministic,
    about: "share of tokens whose argmax matches the FP32 model's",
};

/// Bytes of the quantized model (projections packed, the rest FP32).
pub const MODEL_BYTES: Metric = Metric {
    name: "model_bytes",
    unit: "bytes",
    direction: Lower,
    kind: Deterministic,
    about: "bytes of the quantized model (projections packed, the rest FP32)",
};

/// FP32 model bytes / quantized model bytes.
pub const COMPRESSION_VS_FP32: Metric = Metric {
    name: "compression_vs_fp32",
    unit: "x",
    direction: Higher,
    kind: Deterministic,
    about: "FP32 model bytes / quantized model bytes",
};

/// Compression against BF16, where a deployment starts.
pub const COMPRESSION_VS_BF16: Metric = Metric {
    name: "compression_vs_bf16",
    unit: "x",
    direction: Higher,
    kind: Deterministic,
    about: "BF16 model bytes (2 per parameter) / quantized model bytes: the saving a deployment that starts from BF16 sees",
};

/// One-row product with a weight matrix (decode).
pub const MATVEC_LATENCY_MS: Metric = Metric {
    name: "matvec_latency_ms",
    unit: "ms",
    direction: Lower,
    kind: Noisy,
    about: "one-row product with a weight matrix (decode)",
};

/// Many-row product with a weight matrix (prefill).
pub const MATMUL_LATENCY_MS: Metric = Metric {
    name: "matmul_latency_ms",
    unit: "ms",
    direction: Lower,
    kind: Noisy,
    about: "many-row product with a weight matrix (prefill)",
};

/// Burn FP32 time / quantized time, timed alternately.
pub const SPEEDUP_VS_F32: Metric = Metric {
    name: "speedup_vs_f32",
    unit: "x",
    direction: Higher,
    kind: Noisy,
    about: "burn FP32 time / quantized time, timed alternately",
};

/// Every metric infermark's suites emit.
/// Speculative decoding: kept over offered draft tokens.
pub const ACCEPTANCE_RATE: Metric = Metric {
    name: "acceptance_rate",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "speculative decoding: drafted tokens kept / drafted tokens offered (the accepted prefix of each step only)",
};

/// Speculative decoding: Leviathan et al.'s per-token acceptance probability α.
pub const ACCEPTANCE_ALPHA: Metric = Metric {
    name: "acceptance_alpha",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "speculative decoding: per-token acceptance α (maximum-likelihood estimate: kept / (kept + first rejections)), the α of the analytic speedup",
};

/// Speculative decoding: tokens per target forward, bonus token included.
pub const MEAN_ACCEPTED_LENGTH: Metric = Metric {
    name: "mean_accepted_length",
    unit: "tokens",
    direction: Higher,
    kind: Deterministic,
    about: "speculative decoding: tokens produced per target forward, including the bonus or correction token (vLLM's convention; plain decoding = 1)",
};

/// Speculative decoding: acceptance at a draft position.
pub const ACCEPTANCE_AT_POSITION: Metric = Metric {
    name: "acceptance_at_position",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "speculative decoding: verification steps that kept a drafted token at position `pos` (1-based) over all verification steps, those that drafted fewer tokens or none included (vLLM's per-position acceptance rate; 1 + the sum over positions = mean_accepted_length)",
};

/// Speculative decoding: drafting cost against a target step.
pub const DRAFT_COST_RATIO: Metric = Metric {
    name: "draft_cost_ratio",
    unit: "ratio",
    direction: Lower,
    kind: Noisy,
    about: "speculative decoding: c = median draft step (per token for model drafters, per call for prompt lookup, `per` param) / median one-token target step",
};

/// Speculative decoding: verification cost against a one-token target step.
pub const VERIFY_COST_RATIO: Metric = Metric {
    name: "verify_cost_ratio",
    unit: "ratio",
    direction: Lower,
    kind: Noisy,
    about: "speculative decoding: v = median target forward over γ + 1 tokens / over 1 token, same context",
};

/// Speculative decoding: measured speedup.
pub const SPECULATIVE_SPEEDUP: Metric = Metric {
    name: "speculative_speedup",
    unit: "x",
    direction: Higher,
    kind: Noisy,
    about: "speculative decoding: decode tokens/s speculative / plain, same prompts, A/B interleaved in one run",
};

/// Speculative decoding: what Leviathan et al.'s theory predicts from the measured α, c, v.
pub const ANALYTIC_SPEEDUP: Metric = Metric {
    name: "analytic_speedup",
    unit: "x",
    direction: Higher,
    kind: Noisy,
    about: "speculative decoding: (1 - α^(γ+1)) / ((1 - α)(γc + v)) with the measured α, c, v (Leviathan et al. 2023, Thm 3.8, verify cost measured)",
};

/// Speculative decoding: measured over analytic speedup.
pub const SPEEDUP_VS_BOUND: Metric = Metric {
    name: "speedup_vs_bound",
    unit: "ratio",
    direction: Higher,
    kind: Noisy,
    about: "speculative decoding: speculative_speedup / analytic_speedup (1 = the loop wastes nothing the theory allows)",
};

/// Speculative decoding: greedy speculation reproduces greedy decoding.
pub const GREEDY_EXACT: Metric = Metric {
    name: "greedy_exact",
    unit: "bool",
    direction: Higher,
    kind: Deterministic,
    about: "speculative decoding at T = 0: 1 if the output equals plain greedy decoding token for token over the whole workload, else 0",
};

/// Speculative decoding: where greedy speculation first differs.
pub const FIRST_DIVERGENCE_INDEX: Metric = Metric {
    name: "first_divergence_index",
    unit: "tokens",
    direction: Higher,
    kind: Deterministic,
    about: "speculative decoding at T = 0: index of the first differing token in the workload's concatenated output (recorded only when greedy_exact = 0)",
};

/// Speculative decoding: distance of sampled speculation from plain sampling.
pub const SAMPLING_TV_DISTANCE: Metric = Metric {
    name: "sampling_tv_distance",
    unit: "ratio",
    direction: Lower,
    kind: Deterministic,
    about: "speculative decoding at T > 0: total variation distance between next-token samples by the rule and plain samples (`pair` = spec-vs-plain; plain-vs-plain is the noise floor), seeded",
};

/// adacot: share of problems answered right (overall, or per `digits` bucket)
pub const ACCURACY: Metric = Metric {
    name: "accuracy",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "adacot: share of problems answered right (overall, or per `digits` bucket)",
};

/// adacot: share of problems the gate thought on (overall, or per `digits` bucket)
pub const COT_TRIGGER_RATE: Metric = Metric {
    name: "cot_trigger_rate",
    unit: "ratio",
    direction: Lower,
    kind: Deterministic,
    about: "adacot: share of problems the gate thought on (overall, or per `digits` bucket)",
};

/// adacot: mean generated tokens per problem, every attempt (and a learned gate's decision token) counted
pub const MEAN_RESPONSE_TOKENS: Metric = Metric {
    name: "mean_response_tokens",
    unit: "tokens",
    direction: Lower,
    kind: Deterministic,
    about: "adacot: mean generated tokens per problem, every attempt (and a learned gate's decision token) counted",
};

/// adacot: generated tokens of one problem (median, min and p90 over a difficulty bucket's problems)
pub const RESPONSE_TOKENS: Metric = Metric {
    name: "response_tokens",
    unit: "tokens",
    direction: Lower,
    kind: Deterministic,
    about: "adacot: generated tokens of one problem, every attempt counted (median, min and p90 over the problems of one digits bucket)",
};

/// adacot: 1 − mean response tokens / always-think's on the same problems
pub const TOKEN_REDUCTION_VS_ALWAYS: Metric = Metric {
    name: "token_reduction_vs_always",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "adacot: 1 − mean response tokens / always-think's on the same problems",
};

/// adacot: accuracy − always-think's accuracy on the same problems, percentage points
pub const ACCURACY_DELTA_VS_ALWAYS: Metric = Metric {
    name: "accuracy_delta_vs_always",
    unit: "pp",
    direction: Higher,
    kind: Deterministic,
    about: "adacot: accuracy − always-think's accuracy on the same problems, percentage points",
};

/// adacot: of the problems the gate thought on, the share whose direct answer is wrong (oracle label)
pub const GATE_PRECISION: Metric = Metric {
    name: "gate_precision",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "adacot: of the problems the gate thought on, the share whose direct answer is wrong (oracle label)",
};

/// adacot: of the problems whose direct answer is wrong, the share the gate thought on
pub const GATE_RECALL: Metric = Metric {
    name: "gate_recall",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "adacot: of the problems whose direct answer is wrong, the share the gate thought on",
};

/// adacot: harmonic mean of gate precision and recall
pub const GATE_F1: Metric = Metric {
    name: "gate_f1",
    unit: "ratio",
    direction: Higher,
    kind: Deterministic,
    about: "adacot: harmonic mean of gate precision and recall",
};

/// adacot: share of problems where the learned gate wrote neither `D` nor `T` as its decision (AdaCoT's P_fmt)
pub const FORMAT_ERROR_RATE: Metric = Metric {
    name: "format_error_rate",
    unit: "ratio",
    direction: Lower,
    kind: Deterministic,
    about: "adacot: share of problems where the learned gate wrote neither `D` nor `T` as its decision (AdaCoT's P_fmt)",
};

/// adacot: wall time per problem at batch 1 (every generation the gate ran, thinking included)
pub const END_TO_END_LATENCY_MS: Metric = Metric {
    name: "end_to_end_latency_ms",
    unit: "ms",
    direction: Lower,
    kind: Noisy,
    about: "adacot: wall time per problem at batch 1 (every generation the gate ran, thinking included)",
};

/// adacot: problems / total end-to-end time at batch 1
pub const PROBLEMS_PER_S: Metric = Metric {
    name: "problems_per_s",
    unit: "problems/s",
    direction: Higher,
    kind: Noisy,
    about: "adacot: problems / total end-to-end time at batch 1",
};

/// adacot: mean response tokens / the oracle gate's on the same problems
pub const TOKENS_VS_ORACLE: Metric = Metric {
    name: "tokens_vs_oracle",
    unit: "ratio",
    direction: Lower,
    kind: Deterministic,
    about: "adacot: mean response tokens / the oracle gate's on the same problems",
};

/// adacot: one RL update of the decision token (GRPO, or PPO with its critic), A/B interleaved
pub const RL_STEP_MS: Metric = Metric {
    name: "rl_step_ms",
    unit: "ms",
    direction: Lower,
    kind: Noisy,
    about: "adacot: one RL update of the decision token (GRPO, or PPO with its critic), A/B interleaved",
};

/// adacot: training state of an RL update: parameters, gradients and AdamW moments of every trained model (policy, and PPO's critic), analytic
pub const RL_PEAK_BYTES: Metric = Metric {
    name: "rl_peak_bytes",
    unit: "bytes",
    direction: Lower,
    kind: Deterministic,
    about: "adacot: training state of an RL update: parameters, gradients and AdamW moments of every trained model (policy, and PPO's critic), analytic",
};

/// adacot: gain in mean greedy-decision reward on a held-out set per second of RL training
pub const RL_REWARD_PER_S: Metric = Metric {
    name: "rl_reward_per_s",
    unit: "reward/s",
    direction: Higher,
    kind: Noisy,
    about:
        "adacot: gain in mean greedy-decision reward on a held-out set per second of RL training",
};

/// adacot: mean greedy-decision reward on a held-out set after the RL steps
pub const RL_REWARD: Metric = Metric {
    name: "rl_reward",
    unit: "reward",
    direction: Higher,
    kind: Deterministic,
    about: "adacot: mean greedy-decision reward on a held-out set after the RL steps",
};

/// Validation loss of a training run.
pub const VALID_LOSS: Metric = Metric {
    name: "valid_loss",
    unit: "nats/token",
    direction: Lower,
    kind: Deterministic,
    about: "mean next-token loss on the validation split of the weights after training (at `step` where given: a point of the curve), scored with the FP32 forward",
};

/// Training loss of a run, averaged since the previous validation point.
pub const TRAIN_LOSS: Metric = Metric {
    name: "train_loss",
    unit: "nats/token",
    direction: Lower,
    kind: Deterministic,
    about: "mean training loss over the steps since the previous validation point (`step`), in the run's own precision",
};

/// Relative validation-loss gap of FP8 against FP32 training.
pub const VALID_LOSS_GAP_PCT: Metric = Metric {
    name: "valid_loss_gap_pct",
    unit: "%",
    direction: Lower,
    kind: Deterministic,
    about: "(FP8-trained − FP32-trained) / FP32-trained validation loss × 100, same recipe, seed and steps: after training, or at `step`; max and min over the curve's points",
};

/// Training throughput.
pub const TRAIN_TOKENS_PER_S: Metric = Metric {
    name: "train_tokens_per_s",
    unit: "tokens/s",
    direction: Higher,
    kind: Noisy,
    about:
        "training tokens per second of wall time, periodic validation and resumable saves included",
};

pub const ALL: &[Metric] = &[
    TRIAD_GBPS,
    READ_STREAM_GBPS,
    KV_CACHE_BYTES_PER_TOKEN,
    FLOPS_PER_TOKEN,
    DECODE_LATENCY_MS,
    PREFILL_LATENCY_MS,
    KV_READ_GBPS,
    KV_PREFETCH_SHARE,
    MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF,
    KV_FRAGMENTATION,
    MAX_CONCURRENT_SEQUENCES,
    KV_BYTES_RESERVED_PEAK,
    KV_BYTES_USED_PEAK,
    PREEMPTIONS,
    RECOMPUTED_TOKENS,
    TRACE_TOKENS_PER_S,
    DECODE_STEP_MS,
    DECODE_TOKENS_PER_S,
    DECODE_THROUGHPUT_GAIN,
    KV_BYTES_SAVED_BY_SHARING,
    PAGED_OVER_CONTIGUOUS_LATENCY,
    PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF,
    PARAM_COUNT,
    VALID_PERPLEXITY,
    UNIGRAM_PERPLEXITY,
    EVAL_TOKENS_PER_S,
    ARITH_ACCURACY,
    ARITH_GENERATED_TOKENS,
    BITS_PER_WEIGHT,
    WEIGHT_RMSE,
    WEIGHT_MAX_ABS_ERR,
    SQNR_DB,
    EXACT_ROUNDTRIP,
    PERPLEXITY,
    PERPLEXITY_DELTA_PCT,
    KL_DIVERGENCE_MEAN,
    QUANTIZE_SECONDS,
    KL_DIVERGENCE_P99,
    TOP1_AGREEMENT,
    MODEL_BYTES,
    COMPRESSION_VS_FP32,
    COMPRESSION_VS_BF16,
    MATVEC_LATENCY_MS,
    MATMUL_LATENCY_MS,
    SPEEDUP_VS_F32,
    ACCEPTANCE_RATE,
    ACCEPTANCE_ALPHA,
    MEAN_ACCEPTED_LENGTH,
    ACCEPTANCE_AT_POSITION,
    DRAFT_COST_RATIO,
    VERIFY_COST_RATIO,
    SPECULATIVE_SPEEDUP,
    ANALYTIC_SPEEDUP,
    SPEEDUP_VS_BOUND,
    GREEDY_EXACT,
    FIRST_DIVERGENCE_INDEX,
    SAMPLING_TV_DISTANCE,
    PREFILL_TOKENS_PER_S,
    WEIGHT_BYTES_PER_TOKEN,
    WEIGHT_READ_GBPS,
    STEP_TIME_SHARE,
    ACCURACY,
    COT_TRIGGER_RATE,
    MEAN_RESPONSE_TOKENS,
    RESPONSE_TOKENS,
    TOKEN_REDUCTION_VS_ALWAYS,
    ACCURACY_DELTA_VS_ALWAYS,
    GATE_PRECISION,
    GATE_RECALL,
    GATE_F1,
    FORMAT_ERROR_RATE,
    END_TO_END_LATENCY_MS,
    PROBLEMS_PER_S,
    TOKENS_VS_ORACLE,
    RL_STEP_MS,
    RL_PEAK_BYTES,
    RL_REWARD_PER_S,
    RL_REWARD,
    VALID_LOSS,
    TRAIN_LOSS,
    VALID_LOSS_GAP_PCT,
    TRAIN_TOKENS_PER_S,
];

/// Looks a metric up; `None` for a metric the registry does not know.
pub fn lookup(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

/// `(new − old)` expressed so that positive means better, relative to |old|.
pub fn relative_improvement(metric: &Metric, old: f64, new: f64) -> f64 {
    let rel = (new - old) / old.abs().max(f64::MIN_POSITIVE);
    match metric.direction {
        Direction::Lower => -rel,
        Direction::Higher => rel,
    }
}
