//! The KV cache suite: paged (PagedAttention, Kwon et al., SOSP 2023, with vLLM's admission
//! watermark) against reservation: of `max_len` tokens per sequence (`contiguous`), of the next
//! power of two of the true length (`orca-pow2`) and of exactly the true length (`orca-oracle`),
//! the vLLM paper's baselines.
//!
//! - *capacity*: each trace admitted first-come-first-served into one KV budget under each policy
//!   ([`sim`]): `kv_fragmentation` (time-averaged, and the worst step at the peak of reserved
//!   memory), `max_concurrent_sequences`, `kv_bytes_reserved_peak`, `kv_bytes_used_peak`,
//!   `preemptions`, `recomputed_tokens`.
//! - *throughput*: the one decoder (a GQA preset with random weights, [`decode`]) timed at a grid
//!   of batch sizes on contiguous and paged caches side by side (`decode_step_ms`), and its
//!   prefill; each policy's replay of the whole trace (arrivals if the trace has them, preemption
//!   and recomputation charged, the pool capped at the budget) is charged those costs step by
//!   step: `trace_tokens_per_s`, and `decode_throughput_gain` (over `contiguous`).
//! - *sharing*: parallel samples of one prompt and a system prompt shared by many requests, with
//!   copy-on-write forks: `kv_bytes_saved_by_sharing`.
//! - *overhead*: the attention core of one decode step over a paged and a contiguous cache at
//!   equal context, for several block sizes: `decode_latency_ms`.
//! - *equivalence*: `paged_vs_contiguous_max_abs_diff` over a decode run, for GQA-shaped and
//!   MLA-shaped (latent) caches.

pub mod decode;
pub mod sim;
pub mod traces;

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Distribution, Tensor};
use infermark_models::decoder::Decoder;
use infermark_models::diff::max_abs_diff;
use infermark_models::kernels::{grouped_attention_generic, AttentionBackend, Visibility};
use infermark_models::kv_cache::{
    stored_bytes, BlockPool, CacheLayout, ContiguousKv, KvCache, PagedCache, PoolError, Values,
};

use crate::measure::{self, Plan};
use crate::metric::{
    DECODE_LATENCY_MS, DECODE_STEP_MS, DECODE_THROUGHPUT_GAIN, KV_BYTES_RESERVED_PEAK,
    KV_BYTES_SAVED_BY_SHARING, KV_BYTES_USED_PEAK, KV_FRAGMENTATION, MAX_CONCURRENT_SEQUENCES,
    PAGED_OVER_CONTIGUOUS_LATENCY, PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF, PREEMPTIONS,
    PREFILL_LATENCY_MS, RECOMPUTED_TOKENS, TRACE_TOKENS_PER_S,
};
use crate::recorder::Recorder;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Stat, Suite, SuiteError};
use sim::{simulate, Policy, Request, Reservation};
use traces::Trace;

/// Suite name.
pub const NAME: &str = "kv_cache";

/// Contiguous reservation per sequence (OPT's and the vLLM paper's 2048-token maximum).
pub const MAX_LEN: usize = 2048;

/// The KV cache suite.
pub struct KvCacheSuite;

struct Sizes {
    requests: usize,
    budget_tokens: usize,
    block_sizes: &'static [usize],
    /// The throughput model: d_model, heads, KV heads, head width, layers, MLP width.
    stack: (usize, usize, usize, usize, usize, usize),
    decode_plan: Plan,
    overhead: (usize, usize, &'static [usize]),
    overhead_plan: Plan,
    equivalence_steps: usize,
}

/// Back-to-back attention calls per timed sample of the paged-overhead pair: one call at the
/// smoke sizes takes tens of microseconds, too short for one clock reading to be more than
/// scheduler jitter. Recorded as the `calls_per_sample` parameter.
const OVERHEAD_CALLS: usize = 16;

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            requests: 100,
            budget_tokens: 8192,
            block_sizes: &[16, 32],
            stack: (256, 4, 2, 64, 2, 1024),
            decode_plan: Plan::new(1, 3, 3, 200),
            overhead: (2, 32, &[256, 1024]),
            overhead_plan: Plan::new(2, 5, 30, 100).calls_per_sample(OVERHEAD_CALLS),
            equivalence_steps: 8,
        },
        Scale::Quick => Sizes {
            requests: 1000,
            budget_tokens: 32768,
            block_sizes: &[8, 16, 32, 64],
            stack: (1024, 16, 4, 64, 4, 4096),
            decode_plan: Plan::new(2, 5, 12, 3000),
            overhead: (8, 128, &[1024, 4096]),
            overhead_plan: Plan::new(3, 10, 60, 1500).calls_per_sample(OVERHEAD_CALLS),
            equivalence_steps: 16,
        },
        Scale::Full => Sizes {
            requests: 5000,
            budget_tokens: 131072,
            block_sizes: &[8, 16, 32, 64],
            stack: (2048, 16, 4, 128, 8, 8192),
            decode_plan: Plan::new(2, 10, 30, 10000),
            overhead: (8, 128, &[1024, 4096, 16384]),
            overhead_plan: Plan::new(5, 20, 200, 4000).calls_per_sample(OVERHEAD_CALLS),
            equivalence_steps: 32,
        },
    }
}

/// The traces a run uses: the file given with `--trace`, else the built-in ones.
fn traces(ctx: &RunContext, n: usize) -> Result<Vec<Trace>> {
    match &ctx.inputs.trace {
        Some(path) => traces::read_csv(path)
            .map(|t| vec![t])
            .map_err(SuiteError::Input),
        None => Ok(traces::built_in(n, ctx.seed)),
    }
}

/// What the suite is.
const ABOUT: About = About {
    name: NAME,
    description: "paged vs contiguous KV cache: fragmentation, capacity and decode throughput under one budget, prefix sharing, paged read overhead",
    experiments: &[
            (
                "capacity",
                "trace admitted into one KV budget: fragmentation, concurrency, peak bytes",
            ),
            (
                "throughput",
                "decode_tokens_per_s of the GQA decoder at the batch each policy admits",
            ),
            (
                "sharing",
                "kv_bytes_saved_by_sharing for parallel samples and a shared system prompt",
            ),
            (
                "overhead",
                "decode_latency_ms of attention over paged vs contiguous caches, per block size",
            ),
            (
                "equivalence",
                "paged_vs_contiguous_max_abs_diff over a decode run (GQA and MLA rows)",
            ),
        ],
};

impl Suite for KvCacheSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn variants(&self) -> Vec<&'static str> {
        vec!["contiguous", "orca-pow2", "orca-oracle", "paged"]
    }

    /// One case per trace (capacity, throughput and sharing), then overhead and equivalence.
    fn cases(&self, _scale: Scale) -> Vec<Case> {
        let case = |variant: &str, part: &str| Case {
            variant: variant.into(),
            params: BTreeMap::from([
                ("preset".to_string(), part.to_string()),
                ("part".to_string(), part.to_string()),
            ]),
        };
        let mut cases = vec![
            case("paged", "traces"),
            case("paged", "overhead"),
            case("paged", "equivalence"),
        ];
        if crate::zoo::gguf::smollm2().is_ok() {
            cases.push(case("paged", "model"));
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        match crate::zoo::gguf::smollm2() {
            Ok(_) => Vec::new(),
            Err(why) => vec![format!("no real-model capacity rows: {why}")],
        }
    }

    /// - S: the marginal cost of one more token of context in the attention step over the
    ///   cache (`overhead`, `part = core`, over `ctx`, per block size) against the contiguous
    ///   cache's: what paging costs per token it reads through a block table. Contiguous is the
    ///   reference and gets no S.
    /// - C: the spread of that step at the longest context; retention = 1 − the largest
    ///   |paged − contiguous| attention output (outputs are O(1), so the absolute difference
    ///   reads as a relative one).
    /// - I: what the block-pool simulation and the equivalence check produce (fragmentation,
    ///   admitted sequences, peak bytes, preemptions, bytes saved by sharing, the paged
    ///   difference); not the model rows' bytes per token, a formula of the model's shape.
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::metric as m;
        use crate::suite::{Accuracy, MaturityInputs, Reference, Scaling};
        MaturityInputs {
            scaling: Some(Scaling {
                metric: &m::DECODE_LATENCY_MS,
                filter: &[("part", "core")],
                over: "ctx",
                group_by: "block_size",
                reference: Reference::Variant("contiguous"),
            }),
            accuracy: &[Accuracy {
                metric: &m::PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF,
                reference: Reference::Relative,
            }],
            outcomes: &[
                &m::KV_FRAGMENTATION,
                &m::MAX_CONCURRENT_SEQUENCES,
                &m::KV_BYTES_RESERVED_PEAK,
                &m::KV_BYTES_USED_PEAK,
                &m::PREEMPTIONS,
                &m::RECOMPUTED_TOKENS,
                &m::KV_BYTES_SAVED_BY_SHARING,
                &m::PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF,
            ],
        }
    }
}

impl Experiment for KvCacheSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let part = case
            .params
            .get("part")
            .map(String::as_str)
            .unwrap_or_default();
        let s = sizes(ctx.scale);
        let mut records = Vec::new();
        match part {
            "traces" => {
                let cfg = decode::config(s.stack, MAX_LEN + 64);
                let model = cfg.init::<B>(device).map_err(|error| SuiteError::Model {
                    context: "throughput model".into(),
                    error,
                })?;
                let bpt = cfg.kv_elems_per_token() * cfg.n_layers * 4;
                for trace in traces(ctx, s.requests)? {
                    records.extend(run_trace(&trace, &model, bpt, &s, ctx, device)?);
                }
                for &block in s.block_sizes {
                    records.extend(sharing(ctx, block, bpt)?);
                }
            }
            "overhead" => records.extend(overhead::<B>(&s, ctx, device)?),
            "equivalence" => records.extend(equivalence::<B>(&s, ctx, device)?),
            "model" => records.extend(real_model::<B>(ctx, device)?),
            other => {
                return Err(SuiteError::Unknown {
                    kind: "kv_cache case",
                    name: other.into(),
                    known: "traces, overhead, equivalence, model".into(),
                })
            }
        }
        Ok(records)
    }
}

/// KV memory the real model's decoding reserves in one GiB.
const REAL_BUDGET_BYTES: usize = 1 << 30;

/// The real model (SmolLM2-135M; its configuration from the GGUF header, no weights): KV bytes
/// per token measured from the rows paged caches of its layer shape hold, read back, across all
/// blocks (f32 elements; a 16-bit cache halves them), and how many ShareGPT-like requests one GiB of KV memory admits
/// under contiguous reservation and under paging.
fn real_model<B: AttentionBackend>(ctx: &RunContext, device: &B::Device) -> Result<Vec<Record>> {
    let path = crate::zoo::gguf::smollm2().map_err(SuiteError::Input)?;
    let cfg = crate::zoo::gguf::llama::config(&crate::zoo::gguf::GgufFile::open(&path)?)?;
    let gqa = cfg
        .gqa()
        .ok_or_else(|| SuiteError::Input("the real model is not GQA".into()))?;
    let layout = CacheLayout {
        heads: gqa.n_kv_heads,
        k_width: gqa.d_head,
        values: Values::Separate(gqa.d_head),
    };
    (ctx.progress)("real model: KV bytes per token");
    let pool_err = |e: PoolError| SuiteError::Backend(e.to_string());
    let tokens = 64;
    let mut used = 0;
    for _ in 0..cfg.n_layers {
        let mut c = PagedCache::<B>::new(tokens / 16, 16, layout, device).map_err(pool_err)?;
        let seq = c.add_sequence().map_err(pool_err)?;
        let k: Tensor<B, 3> = Tensor::zeros([layout.heads, tokens, layout.k_width], device);
        c.append(seq, k.clone(), Some(k)).map_err(pool_err)?;
        used += stored_bytes(&c, seq).map_err(pool_err)?;
    }
    let bpt = used / tokens;
    let budget = REAL_BUDGET_BYTES / bpt;
    let model = crate::zoo::real::REAL;
    let mut out = Vec::new();
    let trace = traces::built_in(1000, ctx.seed)
        .into_iter()
        .find(|t| t.name == "sharegpt")
        .expect("the built-in ShareGPT-like trace");
    for (variant, policy) in [
        ("contiguous", Policy::Reserve(Reservation::MaxLen(MAX_LEN))),
        (
            "paged",
            Policy::Paged {
                block_size: 16,
                watermark: WATERMARK,
            },
        ),
    ] {
        let params = BTreeMap::from([
            ("preset".to_string(), model.to_string()),
            ("model".to_string(), model.to_string()),
        ]);
        let mut rec = Recorder::new(ctx, NAME, variant, params);
        if variant == "paged" {
            rec.metric("model", &crate::metric::KV_CACHE_BYTES_PER_TOKEN)
                .params(&[
                    ("source", "measured".into()),
                    ("scope", "all_layers".into()),
                ])
                .value(bpt as f64)?;
        }
        let o = simulate(&trace.requests, policy, budget, &|_, _| 0.0)
            .map_err(|e| SuiteError::Input(format!("trace {}: {e}", trace.name)))?;
        rec.metric("model", &MAX_CONCURRENT_SEQUENCES)
            .params(&[
                ("budget_bytes", REAL_BUDGET_BYTES.to_string()),
                ("budget_tokens", budget.to_string()),
                ("requests", trace.name.clone()),
            ])
            .value(o.max_concurrent as f64)?;
        out.extend(rec.records);
    }
    Ok(out)
}

fn base(trace: &str, budget: usize, bytes_per_token: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("trace".to_string(), trace.to_string()),
        ("budget_tokens".to_string(), budget.to_string()),
        (
            "kv_bytes_per_token".to_string(),
            bytes_per_token.to_string(),
        ),
    ])
}

/// The KV policies compared on every trace: contiguous reservation of [`MAX_LEN`], the vLLM
/// paper's Orca(Pow2) and Orca(Oracle) reservations, and paging at each block size with vLLM's
/// admission watermark.
fn policies(block_sizes: &[usize]) -> Vec<(&'static str, Policy, Option<usize>)> {
    let mut p = vec![
        (
            "contiguous",
            Policy::Reserve(Reservation::MaxLen(MAX_LEN)),
            None,
        ),
        ("orca-pow2", Policy::Reserve(Reservation::Pow2), None),
        ("orca-oracle", Policy::Reserve(Reservation::Oracle), None),
    ];
    p.extend(block_sizes.iter().map(|&b| {
        let paged = Policy::Paged {
            block_size: b,
            watermark: WATERMARK,
        };
        ("paged", paged, Some(b))
    }));
    p
}

/// Blocks a paged admission leaves free (vLLM's default `watermark = 0.01`), so that running
/// sequences can grow without preempting one another at once.
pub const WATERMARK: f64 = 0.01;

/// Block size of the paged cache the step costs are timed on.
const COST_BLOCK: usize = 16;

fn run_trace<B: AttentionBackend>(
    trace: &Trace,
    model: &Decoder<B>,
    bpt: usize,
    s: &Sizes,
    ctx: &RunContext,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let budget = s.budget_tokens;
    let sim_err = |e: sim::SimError| SuiteError::Input(format!("trace {}: {e}", trace.name));
    let policies = policies(s.block_sizes);
    // The largest batch any policy runs (arrivals can only lower it) bounds the timed grid.
    let queued: Vec<Request> = trace
        .requests
        .iter()
        .map(|r| Request::queued(r.prompt, r.output))
        .collect();
    let mut max_batch = 1;
    for (_, policy, _) in &policies {
        let o = simulate(&queued, *policy, budget, &|_, _| 0.0).map_err(sim_err)?;
        max_batch = max_batch.max(o.max_concurrent);
    }
    // Decode steps see, on average, the prompt and half the output.
    let n = trace.requests.len() as f64;
    let mean_ctx = (trace
        .requests
        .iter()
        .map(|r| r.prompt as f64 + r.output as f64 / 2.0)
        .sum::<f64>()
        / n)
        .round() as usize;
    (ctx.progress)(&format!(
        "{}: timing decode steps at batch 1..{max_batch}, context {mean_ctx}",
        trace.name
    ));
    let grid = decode::batch_grid(max_batch);
    let costs = decode::measure_costs(model, &grid, mean_ctx, COST_BLOCK, s.decode_plan, device)?;
    let mut out = Vec::new();
    let cost_params =
        |batch: usize| vec![("batch", batch.to_string()), ("ctx", mean_ctx.to_string())];
    for (batch, c, p) in &costs.decode {
        let mut rec = Recorder::new(ctx, NAME, "contiguous", base(&trace.name, budget, bpt));
        rec.timing("throughput", &DECODE_STEP_MS, c, &cost_params(*batch))?;
        out.extend(rec.records);
        let mut rec = Recorder::new(ctx, NAME, "paged", base(&trace.name, budget, bpt));
        let mut params = cost_params(*batch);
        params.push(("block_size", COST_BLOCK.to_string()));
        rec.timing("throughput", &DECODE_STEP_MS, p, &params)?;
        out.extend(rec.records);
    }
    let mut rec = Recorder::new(ctx, NAME, "contiguous", base(&trace.name, budget, bpt));
    rec.timing(
        "throughput",
        &PREFILL_LATENCY_MS,
        &costs.prefill,
        &[("ctx", mean_ctx.to_string())],
    )?;
    out.extend(rec.records);
    let timed_n = costs
        .decode
        .iter()
        .map(|(_, c, p)| c.n.min(p.n))
        .min()
        .unwrap_or(0);

    let mut contiguous_tps = None;
    for (variant, policy, block) in policies {
        (ctx.progress)(&format!(
            "{}: {variant}{} replay",
            trace.name,
            block.map(|b| format!(" b{b}")).unwrap_or_default()
        ));
        let paged = matches!(policy, Policy::Paged { .. });
        let step = |batch: usize, prefilled: usize| costs.step_seconds(paged, batch, prefilled);
        let o = simulate(&trace.requests, policy, budget, &step).map_err(sim_err)?;
        let mut params = base(&trace.name, budget, bpt);
        if let Some(b) = block {
            params.insert("block_size".into(), b.to_string());
            params.insert("watermark".into(), WATERMARK.to_string());
        }
        let mut rec = Recorder::new(ctx, NAME, variant, params);
        let steps = o.steps.len();
        rec.metric("capacity", &KV_FRAGMENTATION)
            .stat(Stat::Mean, steps)
            .params(&[("over", "time".into())])
            .value(o.fragmentation_mean)?;
        rec.metric("capacity", &KV_FRAGMENTATION)
            .stat(Stat::Mean, steps)
            .params(&[("at", "peak_reserved".into())])
            .value(o.fragmentation_at_peak)?;
        rec.metric("capacity", &MAX_CONCURRENT_SEQUENCES)
            .value(o.max_concurrent as f64)?;
        rec.metric("capacity", &KV_BYTES_RESERVED_PEAK)
            .value((o.reserved_peak * bpt) as f64)?;
        rec.metric("capacity", &KV_BYTES_USED_PEAK)
            .value((o.used_peak * bpt) as f64)?;
        rec.metric("capacity", &PREEMPTIONS)
            .value(o.preemptions as f64)?;
        rec.metric("capacity", &RECOMPUTED_TOKENS)
            .value(o.recomputed_tokens as f64)?;
        if o.seconds <= 0.0 || !o.seconds.is_finite() {
            return Err(SuiteError::Backend(format!(
                "trace {}: replay took {} s",
                trace.name, o.seconds
            )));
        }
        let tps = o.generated as f64 / o.seconds;
        let tp = [("steps", steps.to_string())];
        rec.metric("throughput", &TRACE_TOKENS_PER_S)
            .stat(Stat::Median, timed_n)
            .params(&tp)
            .value(tps)?;
        match contiguous_tps {
            None => contiguous_tps = Some(tps),
            Some(c) => rec
                .metric("throughput", &DECODE_THROUGHPUT_GAIN)
                .stat(Stat::Median, timed_n)
                .value(tps / c)?,
        }
        out.extend(rec.records);
    }
    Ok(out)
}

/// Bytes saved by copy-on-write sharing, measured from the block pool after the real appends.
/// The scenarios use fixed ShareGPT-like lengths (its mean prompt and output), not a trace, so
/// they are recorded once per block size under the lengths they used.
fn sharing(ctx: &RunContext, block: usize, bpt: usize) -> Result<Vec<Record>> {
    let mut rec = Recorder::new(
        ctx,
        NAME,
        "paged",
        BTreeMap::from([
            ("block_size".to_string(), block.to_string()),
            ("kv_bytes_per_token".to_string(), bpt.to_string()),
        ]),
    );
    let pool_err = |e: infermark_models::kv_cache::PoolError| SuiteError::Backend(e.to_string());
    // (scenario, shared prefix, requests, private prompt, generated)
    for (scenario, prefix, n, own, gen) in [
        ("parallel_sampling", 161, 4, 0, 338),
        ("parallel_sampling", 161, 8, 0, 338),
        ("system_prompt", 512, 16, 32, 64),
    ] {
        let mut shared = BlockPool::new(1 << 16, block).map_err(pool_err)?;
        let root = shared.add_sequence();
        shared.append(root, prefix).map_err(pool_err)?;
        for _ in 0..n {
            let s = shared.fork(root).map_err(pool_err)?;
            shared.append(s, own + gen).map_err(pool_err)?;
        }
        shared.free(root).map_err(pool_err)?;
        let mut alone = BlockPool::new(1 << 16, block).map_err(pool_err)?;
        for _ in 0..n {
            let s = alone.add_sequence();
            alone.append(s, prefix + own + gen).map_err(pool_err)?;
        }
        let saved = (alone.slots_reserved() - shared.slots_reserved()) * bpt;
        rec.metric("sharing", &KV_BYTES_SAVED_BY_SHARING)
            .params(&[
                ("scenario", scenario.into()),
                ("requests", n.to_string()),
                ("shared_tokens", prefix.to_string()),
                ("private_tokens", (own + gen).to_string()),
                (
                    "bytes_without_sharing",
                    (alone.slots_reserved() * bpt).to_string(),
                ),
            ])
            .value(saved as f64)?;
    }
    Ok(rec.records)
}

fn rand<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Attention core of one decode step, paged against contiguous, at equal context; each block
/// size is timed alternately with the contiguous cache (A B A B ...).
fn overhead<B: AttentionBackend>(
    s: &Sizes,
    ctx: &RunContext,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let pool_err = |e: PoolError| SuiteError::Backend(e.to_string());
    let (kv, d, contexts) = s.overhead;
    let layout = CacheLayout {
        heads: kv,
        k_width: d,
        values: Values::Separate(d),
    };
    let rows = 4;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = Vec::new();
    for &t in contexts {
        (ctx.progress)(&format!("overhead at context {t}"));
        let (k, v, q) = (
            rand::<B, 4>([1, kv, t, d], device),
            rand::<B, 4>([1, kv, t, d], device),
            rand::<B, 4>([1, kv, rows, d], device),
        );
        let mut contiguous = ContiguousKv::<B>::new(1, t, layout, device);
        let cseq = contiguous.add_sequence().map_err(pool_err)?;
        let sq = |x: &Tensor<B, 4>| x.clone().squeeze_dim::<3>(0);
        contiguous
            .append(cseq, sq(&k), Some(sq(&v)))
            .map_err(pool_err)?;
        let params = BTreeMap::from([
            ("ctx".to_string(), t.to_string()),
            ("part".to_string(), "core".to_string()),
            ("kv_heads".to_string(), kv.to_string()),
            ("d_head".to_string(), d.to_string()),
            (
                "calls_per_sample".to_string(),
                s.overhead_plan.calls.to_string(),
            ),
        ]);
        for (i, &b) in s.block_sizes.iter().enumerate() {
            let mut cache =
                PagedCache::<B>::new(2 * t.div_ceil(b) + 4, b, layout, device).map_err(pool_err)?;
            // Two interleaved sequences, so the measured one's blocks are not in order.
            let seq = cache.add_sequence().map_err(pool_err)?;
            let other = cache.add_sequence().map_err(pool_err)?;
            let chunk = b * 4;
            for at in (0..t).step_by(chunk) {
                let n = chunk.min(t - at);
                let part = |x: &Tensor<B, 4>| x.clone().narrow(2, at, n).squeeze_dim::<3>(0);
                cache
                    .append(seq, part(&k), Some(part(&v)))
                    .map_err(pool_err)?;
                cache
                    .append(
                        other,
                        rand::<B, 3>([kv, n, d], device),
                        Some(rand::<B, 3>([kv, n, d], device)),
                    )
                    .map_err(pool_err)?;
            }
            let (c, p) = measure::time_pair(
                s.overhead_plan,
                || {
                    let o = contiguous
                        .attend(q.clone(), cseq, Visibility::All, scale)
                        .map_err(pool_err)?;
                    measure::sync_keep(device, o)
                },
                || {
                    let o = cache
                        .attend(q.clone(), seq, Visibility::All, scale)
                        .map_err(pool_err)?;
                    measure::sync_keep(device, o)
                },
            )?;
            if i == 0 {
                let mut rec = Recorder::new(ctx, NAME, "contiguous", params.clone());
                rec.timing("overhead", &DECODE_LATENCY_MS, &c, &[])?;
                out.extend(rec.records);
            }
            let mut rec = Recorder::new(ctx, NAME, "paged", params.clone());
            let bs = ("block_size", b.to_string());
            rec.timing(
                "overhead",
                &DECODE_LATENCY_MS,
                &p,
                std::slice::from_ref(&bs),
            )?;
            rec.metric("overhead", &PAGED_OVER_CONTIGUOUS_LATENCY)
                .stat(Stat::Median, p.n)
                .params(&[bs])
                .value(p.median / c.median)?;
            out.extend(rec.records);
        }
    }
    Ok(out)
}

/// Largest |paged − contiguous| attention output over a decode run, for GQA-shaped and
/// MLA-shaped caches.
fn equivalence<B: AttentionBackend>(
    s: &Sizes,
    ctx: &RunContext,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let err = |e: PoolError| SuiteError::Backend(e.to_string());
    let mut out = Vec::new();
    // (layout, heads, key width, value width (MLA: latent prefix), query rows); at most 8 rows,
    // so the paged side takes flex's streaming kernel rather than the path shared with the
    // reference.
    for (layout, heads, wk, wv, rows) in [("gqa", 2, 32, 32, 4), ("mla", 1, 80, 64, 8)] {
        (ctx.progress)(&format!("equivalence ({layout})"));
        let values = if layout == "mla" {
            Values::PrefixOfKeys(wv)
        } else {
            Values::Separate(wv)
        };
        let block = s.block_sizes[0];
        let cache_layout = CacheLayout {
            heads,
            k_width: wk,
            values,
        };
        let mut cache = PagedCache::<B>::new(64, block, cache_layout, device).map_err(err)?;
        let seq = cache.add_sequence().map_err(err)?;
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        let mut worst = 0f32;
        for step in 0..s.equivalence_steps {
            let n = if step == 0 { 37 } else { 1 };
            let k = rand::<B, 3>([heads, n, wk], device);
            let v = if layout == "mla" {
                k.clone().narrow(2, 0, wv)
            } else {
                rand::<B, 3>([heads, n, wv], device)
            };
            cache
                .append(seq, k.clone(), (layout == "gqa").then(|| v.clone()))
                .map_err(err)?;
            ks.push(k);
            vs.push(v);
            let q = rand::<B, 4>([1, heads, rows, wk], device);
            let want = grouped_attention_generic(
                q.clone(),
                Tensor::cat(ks.clone(), 1).unsqueeze_dim(0),
                Tensor::cat(vs.clone(), 1).unsqueeze_dim(0),
                Visibility::All,
                0.1,
            );
            let got = cache.attend(q, seq, Visibility::All, 0.1).map_err(err)?;
            let host = |t: Tensor<B, 4>| t.into_data().convert::<f32>().to_vec::<f32>();
            let (got, want) = match (host(got), host(want)) {
                (Ok(g), Ok(w)) => (g, w),
                _ => return Err(SuiteError::Backend("attention output is not f32".into())),
            };
            let d = max_abs_diff(&got, &want).map_err(|error| SuiteError::Model {
                context: format!("paged vs contiguous ({layout})"),
                error,
            })?;
            if d > worst {
                worst = d;
            }
        }
        let mut rec = Recorder::new(
            ctx,
            NAME,
            "paged",
            BTreeMap::from([
                ("layout".to_string(), layout.to_string()),
                ("block_size".to_string(), block.to_string()),
            ]),
        );
        rec.metric("equivalence", &PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF)
            .stat(Stat::Max, s.equivalence_steps)
            .value(worst as f64)?;
        out.extend(rec.records);
    }
    Ok(out)
}
