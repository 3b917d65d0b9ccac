//! *capacity* and *throughput*: each trace admitted into one KV budget under each policy,
//! and replayed with the decoder's measured step costs.

use std::collections::BTreeMap;

use infermark_models::decoder::Decoder;
use infermark_models::kernels::AttentionBackend;

use super::about::{Sizes, MAX_LEN, NAME};
use super::sim::{simulate, Policy, Request, Reservation};
use super::traces::Trace;
use super::{decode, sim, traces};
use crate::metric::{
    DECODE_STEP_MS, DECODE_THROUGHPUT_GAIN, KV_BYTES_RESERVED_PEAK, KV_BYTES_USED_PEAK,
    KV_FRAGMENTATION, MAX_CONCURRENT_SEQUENCES, PREEMPTIONS, PREFILL_LATENCY_MS, RECOMPUTED_TOKENS,
    TRACE_TOKENS_PER_S,
};
use crate::recorder::Recorder;
use crate::{Record, Result, RunContext, Stat, SuiteError};

/// The traces a run uses: the file given with `--trace`, else the built-in ones.
pub(super) fn traces(ctx: &RunContext, n: usize) -> Result<Vec<Trace>> {
    match &ctx.inputs.trace {
        Some(path) => traces::read_csv(path)
            .map(|t| vec![t])
            .map_err(SuiteError::Input),
        None => Ok(traces::built_in(n, ctx.seed)),
    }
}

pub(super) fn base(trace: &str, budget: usize, bytes_per_token: usize) -> BTreeMap<String, String> {
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
pub(super) fn policies(block_sizes: &[usize]) -> Vec<(&'static str, Policy, Option<usize>)> {
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
pub(super) const COST_BLOCK: usize = 16;

pub(super) fn run_trace<B: AttentionBackend>(
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
    let costs = decode::measure_costs(
        model,
        &grid,
        mean_ctx,
        COST_BLOCK,
        bpt,
        s.decode_plan,
        device,
    )?;
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
        // The same replay charged each timing round's costs alone: the spread of the
        // throughput, the samples behind its interval.
        let mut samples = Vec::with_capacity(timed_n);
        for k in 0..timed_n {
            let round = costs.round(k).expect("every batch size has timed_n rounds");
            let step = |batch: usize, prefilled: usize| round.step_seconds(paged, batch, prefilled);
            let r = simulate(&trace.requests, policy, budget, &step).map_err(sim_err)?;
            samples.push(r.generated as f64 / r.seconds);
        }
        let tp = [("steps", steps.to_string())];
        rec.metric("throughput", &TRACE_TOKENS_PER_S)
            .stat(Stat::Median, timed_n)
            .params(&tp)
            .samples(samples)
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
