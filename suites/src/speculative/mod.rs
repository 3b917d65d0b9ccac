//! The speculative decoding suite: four drafters (and adaptive γ) against plain decoding of the
//! same target, on three workloads, swept over γ, temperature and batch. For every setting it
//! records what was accepted (rate, α, tokens per target forward, per position), what drafting
//! and verification cost against a target step (c, v), the decode speed of both A/B interleaved,
//! the speedup Leviathan et al.'s theory predicts from those measurements, whether greedy
//! speculation reproduced greedy decoding token for token, and at T > 0 how far sampled
//! speculation's next-token distribution is from plain sampling's.

mod drafters;
pub mod workloads;

use std::collections::BTreeMap;

use infermark_models::decoder::Decoder;
use infermark_models::generation::speculative::{
    speculative_generate, verify_sampled, Gamma, SpecStats,
};
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kernels::AttentionBackend;

use crate::measure::Plan;
use crate::metric::{
    ACCEPTANCE_ALPHA, ACCEPTANCE_AT_POSITION, ACCEPTANCE_RATE, ANALYTIC_SPEEDUP,
    DECODE_TOKENS_PER_S, DRAFT_COST_RATIO, FIRST_DIVERGENCE_INDEX, GREEDY_EXACT,
    MEAN_ACCEPTED_LENGTH, SAMPLING_TV_DISTANCE, SPECULATIVE_SPEEDUP, SPEEDUP_VS_BOUND,
    VERIFY_COST_RATIO,
};
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::zoo::corpus::read_text;
use crate::zoo::gguf::llama;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Stat, Suite, SuiteError};
use drafters::{Cost, Drafter};
use workloads::Workload;

/// The suite's name on the command line and in records.
pub const NAME: &str = "speculative";

/// Drafter variants: the trained draft model (fixed and adaptive γ), the target quantized to
/// INT4 g32, the target's first blocks, prompt lookup.
pub const DRAFTERS: [&str; 5] = [
    "draft",
    "draft-adaptive",
    "int4-self",
    "layer-skip",
    "prompt-lookup",
];

/// Largest γ adaptive drafting may grow to.
const ADAPTIVE_MAX: usize = 16;

/// The speculative decoding suite.
pub struct SpeculativeSuite;

struct Sizes {
    gammas: &'static [usize],
    temperatures: &'static [f32],
    batches: &'static [usize],
    /// Prompts per workload (decoded in groups of `batch`).
    prompts: usize,
    /// New tokens per prompt.
    max_new: usize,
    /// A/B repetitions of the whole workload.
    reps: usize,
    /// Timing of c and v.
    plan: Plan,
    /// Next-token draws per side of the sampling distance.
    tv_draws: usize,
}

fn sizes(scale: Scale, real: bool) -> Sizes {
    match (scale, real) {
        (Scale::Smoke, false) => Sizes {
            gammas: &[2, 4],
            temperatures: &[0.0, 1.0],
            batches: &[1, 2],
            prompts: 2,
            max_new: 24,
            reps: 2,
            plan: Plan::new(2, 5, 15, 20),
            tv_draws: 4000,
        },
        (Scale::Quick, false) => Sizes {
            gammas: &[1, 2, 3, 4, 6, 8],
            temperatures: &[0.0, 0.7, 1.0],
            batches: &[1, 4],
            prompts: 4,
            max_new: 48,
            reps: 3,
            plan: Plan::new(3, 15, 60, 120),
            tv_draws: 20_000,
        },
        (Scale::Full, false) => Sizes {
            gammas: &[1, 2, 3, 4, 6, 8],
            temperatures: &[0.0, 0.7, 1.0],
            batches: &[1, 4, 8],
            prompts: 8,
            max_new: 128,
            reps: 5,
            plan: Plan::new(5, 30, 200, 1000),
            tv_draws: 100_000,
        },

        // The real model decodes ~40 tokens/s on a 2-core CPU: smaller sweeps.
        (Scale::Smoke, true) => Sizes {
            gammas: &[4],
            temperatures: &[0.0],
            batches: &[1],
            prompts: 1,
            max_new: 16,
            reps: 1,
            plan: Plan::new(1, 3, 3, 50),
            tv_draws: 0,
        },
        (Scale::Quick, true) => Sizes {
            gammas: &[2, 4],
            temperatures: &[0.0],
            batches: &[1],
            prompts: 1,
            max_new: 48,
            reps: 2,
            plan: Plan::new(1, 5, 10, 300),
            tv_draws: 0,
        },
        (Scale::Full, true) => Sizes {
            gammas: &[1, 2, 3, 4, 6, 8],
            temperatures: &[0.0, 0.7, 1.0],
            batches: &[1, 4],
            prompts: 4,
            max_new: 64,
            reps: 3,
            plan: Plan::new(2, 10, 30, 2000),
            tv_draws: 20_000,
        },
    }
}

/// What the suite is.
const ABOUT: About = About {
    name: NAME,
    description: "speculative decoding: draft model, INT4 self-draft, layer skip and prompt lookup against plain decoding; acceptance, cost ratios, measured vs analytic speedup, greedy exactness",
    experiments: &[
        (
            "acceptance",
            "acceptance_rate, acceptance_alpha, mean_accepted_length (bonus included), acceptance_at_position per (workload, γ, T, batch)",
        ),
        (
            "cost",
            "draft_cost_ratio c and verify_cost_ratio v (per γ) against a one-token target step",
        ),
        (
            "speed",
            "decode_tokens_per_s plain and speculative (A/B interleaved), speculative_speedup, analytic_speedup, speedup_vs_bound",
        ),
        (
            "exactness",
            "greedy_exact (and first_divergence_index) at T = 0; sampling_tv_distance at T > 0",
        ),
    ],
};

impl Suite for SpeculativeSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn variants(&self) -> Vec<&'static str> {
        DRAFTERS.to_vec()
    }

    /// One case per (drafter, workload); the trained draft model drafts for `target` only (no
    /// draft model was trained for `arith`, and the real model has its own vocabulary). The
    /// real workloads run when the model is fetched (smoke: prompt lookup on `real-grounded`).
    fn cases(&self, scale: Scale) -> Vec<Case> {
        let real = crate::zoo::gguf::smollm2().is_ok();
        let mut out = Vec::new();
        for w in Workload::ALL {
            for d in DRAFTERS {
                if d.starts_with("draft") && w.target() != "target" {
                    continue;
                }
                if w.is_real()
                    && (!real
                        || (scale == Scale::Smoke
                            && (d != "prompt-lookup" || w != Workload::RealGrounded)))
                {
                    continue;
                }
                out.push(Case {
                    variant: d.into(),
                    params: BTreeMap::from([
                        ("preset".to_string(), w.name().to_string()),
                        ("workload".to_string(), w.name().to_string()),
                    ]),
                });
            }
        }
        out
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        match crate::zoo::gguf::smollm2() {
            Ok(_) => Vec::new(),
            Err(why) => vec![format!("no real-text and real-grounded rows: {why}")],
        }
    }

    /// - S: the marginal cost of verifying one more drafted token, the slope of the verify cost
    ///   (target forward over γ + 1 tokens / over 1, per target and workload) over γ. It is in
    ///   units of one plain decoding step, the reference's cost per token, so 1 is "no better
    ///   than plain decoding". The draft's own cost per token is recorded apart
    ///   (`draft_cost_ratio`) and not part of S.
    /// - C: the suite records no spread of that cost (medians only), so predictability and C are
    ///   not measured; retention is greedy exactness against plain decoding (1 if speculative
    ///   output at T = 0 equals plain greedy output token for token), the worst workload.
    /// - I: what drafting and verifying produce (acceptance, accepted length, exactness, first
    ///   divergence, TV distance of sampled tokens).
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::metric as m;
        use crate::suite::{Accuracy, MaturityInputs, Reference, Scaling};
        MaturityInputs {
            scaling: Some(Scaling {
                metric: &m::VERIFY_COST_RATIO,
                filter: &[],
                over: "gamma",
                group_by: "workload",
                reference: Reference::Relative,
            }),
            accuracy: &[Accuracy {
                metric: &m::GREEDY_EXACT,
                reference: Reference::Relative,
            }],
            outcomes: &[
                &m::ACCEPTANCE_RATE,
                &m::ACCEPTANCE_ALPHA,
                &m::MEAN_ACCEPTED_LENGTH,
                &m::ACCEPTANCE_AT_POSITION,
                &m::GREEDY_EXACT,
                &m::FIRST_DIVERGENCE_INDEX,
                &m::SAMPLING_TV_DISTANCE,
            ],
        }
    }
}

/// One setting of the sweep.
#[derive(Clone, Copy)]
struct Setting {
    gamma: usize,
    temperature: f32,
    batch: usize,
}

impl Setting {
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("gamma", self.gamma.to_string()),
            ("temperature", self.temperature.to_string()),
            ("batch", self.batch.to_string()),
        ]
    }
}

/// What one A/B run of the workload produced.
struct AbRun {
    plain_tps: Vec<f64>,
    spec_tps: Vec<f64>,
    plain_tokens: Vec<Vec<u32>>,
    spec_tokens: Vec<Vec<u32>>,
    stats: SpecStats,
}

impl Experiment for SpeculativeSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let (ctx, variant) = (ctx, case.variant.as_str());
        let w = case
            .params
            .get("workload")
            .and_then(|n| Workload::parse(n))
            .ok_or_else(|| SuiteError::Input(format!("case {} has no workload", variant)))?;
        let base = BTreeMap::from([
            ("workload".to_string(), w.name().to_string()),
            ("target".to_string(), w.target().to_string()),
        ]);
        let s = sizes(ctx.scale, w.is_real());
        let mut rec = Recorder::new(ctx, NAME, variant, base);
        (ctx.progress)(&format!("{variant}/{}: loading", w.name()));
        let (target, prompts) = if w.is_real() {
            let path = crate::zoo::gguf::smollm2().map_err(SuiteError::Input)?;
            let (model, tok, _) = llama::load::<B>(&path, llama::Weights::F32, device)?;
            let text = match &ctx.inputs.text {
                Some(p) => read_text(p)?,
                None => crate::zoo::gguf::real_text()?,
            };
            let ids = tok.encode(&text, false)?;
            let prompts = w.real_prompts(s.prompts, &ids, &tok.encode("\n", false)?);
            (model, prompts)
        } else {
            let (model, _) = checkpoint::load::<B>(&checkpoint::committed(w.target()), device)?;
            (model, w.prompts(s.prompts))
        };
        let max_batch = *s.batches.iter().max().expect("a batch size");
        let mut drafter = Drafter::build(variant, &target, max_batch, device)?;
        let config = GenerateConfig {
            max_new: s.max_new,
            stop: w.stop(),
        };

        (ctx.progress)(&format!("{variant}/{}: costs", w.name()));
        let cost = drafter.cost(&target, &prompts[0], s.plan, device)?;
        let (c, per) = match cost {
            Cost::PerToken(c) => (c, "token"),
            Cost::PerCall(c) => (c, "call"),
        };
        rec.metric("cost", &DRAFT_COST_RATIO)
            .stat(Stat::Median, s.plan.min_samples)
            .param("per", per)
            .value(c)?;
        let mut v = BTreeMap::new();
        for &g in s.gammas {
            let x = drafters::verify_cost(&target, &prompts[0], g, s.plan, device)?;
            rec.metric("cost", &VERIFY_COST_RATIO)
                .stat(Stat::Median, s.plan.min_samples)
                .param("gamma", g)
                .value(x)?;
            v.insert(g, x);
        }

        for &temperature in s.temperatures {
            if temperature > 0.0 {
                (ctx.progress)(&format!("{variant}/{}: T {temperature} distance", w.name()));
                tv_records(
                    &mut rec,
                    &mut drafter,
                    &target,
                    &prompts[0],
                    temperature,
                    &s,
                    device,
                )?;
            }
            for &batch in s.batches {
                for &gamma in s.gammas {
                    let set = Setting {
                        gamma,
                        temperature,
                        batch,
                    };
                    (ctx.progress)(&format!(
                        "{variant}/{}: γ {gamma}, T {temperature}, batch {batch}",
                        w.name()
                    ));
                    let run = ab_run(
                        &target,
                        &mut drafter,
                        &prompts,
                        &config,
                        set,
                        s.reps,
                        ctx.seed,
                        device,
                    )?;
                    setting_records(&mut rec, &run, set, c, &cost, &v, drafter.adaptive())?;
                }
            }
        }
        Ok(rec.records)
    }
}

/// The workload decoded plainly and speculatively, `reps` times each, alternately (A B B A);
/// each repetition draws the same tokens (same seeds), so only the times vary.
#[allow(clippy::too_many_arguments)]
fn ab_run<B: AttentionBackend>(
    target: &Decoder<B>,
    drafter: &mut Drafter<B>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    set: Setting,
    reps: usize,
    seed: u64,
    device: &B::Device,
) -> Result<AbRun> {
    let sampling = if set.temperature == 0.0 {
        SamplingConfig::greedy()
    } else {
        SamplingConfig::with_temperature(set.temperature)
    };
    let sampler = |i: usize| {
        Sampler::new(sampling, seed.wrapping_add(i as u64)).map_err(SuiteError::model("sampler"))
    };
    let gamma = if drafter.adaptive() {
        Gamma::Adaptive {
            initial: set.gamma,
            max: ADAPTIVE_MAX,
        }
    } else {
        Gamma::Fixed(set.gamma)
    };
    let mut cache = target.contiguous_cache(set.batch, target.max_seq_len(), device);
    let mut run = AbRun {
        plain_tps: Vec::new(),
        spec_tps: Vec::new(),
        plain_tokens: Vec::new(),
        spec_tokens: Vec::new(),
        stats: SpecStats::default(),
    };
    for rep in 0..reps {
        // A B, then B A: drifts of the machine and any advantage of going first hit both.
        for spec in [rep % 2 == 1, rep % 2 == 0] {
            let (mut tokens, mut secs) = (0usize, 0f64);
            let mut outs = Vec::new();
            let mut stats = SpecStats::default();
            for (i, group) in prompts.chunks(set.batch).enumerate() {
                let mut sampler = sampler(i)?;
                let (g, st) = if spec {
                    let g = speculative_generate(
                        target,
                        &mut cache,
                        group,
                        drafter.proposer(),
                        gamma,
                        config,
                        &mut sampler,
                        device,
                    )
                    .map_err(SuiteError::model("speculative decoding"))?;
                    ((g.tokens, g.counters), Some(g.stats))
                } else {
                    let g = generate(target, &mut cache, group, config, &mut sampler, device)
                        .map_err(SuiteError::model("plain decoding"))?;
                    ((g.tokens, g.counters), None)
                };
                // Both loops prefill each prompt but its last token: their decode steps make
                // every generated token.
                tokens += g.1.generated_tokens;
                secs += g.1.decode_time.as_secs_f64();
                outs.extend(g.0);
                if let Some(st) = st {
                    stats.merge(&st);
                }
            }
            let tps = tokens as f64 / secs;
            match (spec, rep) {
                (true, 0) => {
                    run.spec_tps.push(tps);
                    run.spec_tokens = outs;
                    run.stats = stats;
                }
                (true, _) => run.spec_tps.push(tps),
                (false, 0) => {
                    run.plain_tps.push(tps);
                    run.plain_tokens = outs;
                }
                (false, _) => run.plain_tps.push(tps),
            }
        }
    }
    Ok(run)
}

fn median(xs: &[f64]) -> f64 {
    crate::measure::Summary::of(xs).median
}

/// The verification cost at a (possibly fractional) draft length, linear between the measured
/// points of `v` and (0, 1) (a forward of the last text token alone); the last slope beyond them.
pub fn verify_cost_at(v: &BTreeMap<usize, f64>, gamma: f64) -> f64 {
    let pts: Vec<(f64, f64)> = std::iter::once((0.0, 1.0))
        .chain(v.iter().map(|(&g, &x)| (g as f64, x)))
        .collect();
    let i = pts
        .windows(2)
        .position(|w| gamma <= w[1].0)
        .unwrap_or(pts.len().saturating_sub(2));
    match (pts.get(i), pts.get(i + 1)) {
        (Some(&(g0, v0)), Some(&(g1, v1))) => v0 + (v1 - v0) * (gamma - g0) / (g1 - g0),
        _ => 1.0,
    }
}

/// Leviathan et al.'s expected speedup (Thm 3.8) with a measured verification cost: tokens per
/// step (1 − α^(γ+1)) / (1 − α) over the step's cost in target steps, γc + v (c per call: c + v).
pub fn analytic_speedup(alpha: f64, gamma: f64, drafting: f64, v: f64) -> f64 {
    let tokens = if alpha >= 1.0 - 1e-12 {
        gamma + 1.0
    } else {
        (1.0 - alpha.powf(gamma + 1.0)) / (1.0 - alpha)
    };
    tokens / (drafting + v)
}

#[allow(clippy::too_many_arguments)]
fn setting_records(
    rec: &mut Recorder,
    run: &AbRun,
    set: Setting,
    c: f64,
    cost: &Cost,
    v: &BTreeMap<usize, f64>,
    adaptive: bool,
) -> Result<()> {
    let p = set.params();
    let st = &run.stats;
    let steps = st.steps;
    if let Some(a) = st.acceptance_rate() {
        rec.metric("acceptance", &ACCEPTANCE_RATE)
            .stat(Stat::Mean, st.proposed)
            .params(&p)
            .value(a)?;
    }
    if let Some(a) = st.alpha() {
        rec.metric("acceptance", &ACCEPTANCE_ALPHA)
            .stat(Stat::Mean, st.accepted + st.rejections)
            .params(&p)
            .value(a)?;
    }
    if let Some(m) = st.mean_accepted_length() {
        rec.metric("acceptance", &MEAN_ACCEPTED_LENGTH)
            .stat(Stat::Mean, steps)
            .params(&p)
            .value(m)?;
    }
    for pos in 1..=st.proposed_at.len() {
        if let Some(a) = st.acceptance_at(pos) {
            rec.metric("acceptance", &ACCEPTANCE_AT_POSITION)
                .stat(Stat::Mean, steps)
                .params(&p)
                .param("pos", pos)
                .value(a)?;
        }
    }
    let (plain, spec) = (median(&run.plain_tps), median(&run.spec_tps));
    for (mode, tps, n) in [
        ("plain", plain, run.plain_tps.len()),
        ("speculative", spec, run.spec_tps.len()),
    ] {
        rec.metric("speed", &DECODE_TOKENS_PER_S)
            .stat(Stat::Median, n)
            .params(&p)
            .param("mode", mode)
            .value(tps)?;
    }
    let speedup = spec / plain;
    rec.metric("speed", &SPECULATIVE_SPEEDUP)
        .stat(Stat::Median, run.spec_tps.len())
        .params(&p)
        .value(speedup)?;
    // The analytic bound assumes one sequence and a fixed γ: batch 1, fixed-γ drafters. A
    // drafter that drafts fewer than γ (prompt lookup) is credited with its mean draft length,
    // and v is read there off the measured v(γ) curve (v(0) = 1), linearly between points.
    if set.batch == 1 && !adaptive && steps > 0 {
        if let Some(alpha) = st.alpha() {
            let g = st.proposed as f64 / steps as f64;
            let v_eff = verify_cost_at(v, g);
            let drafting = match cost {
                Cost::PerToken(_) => g * c,
                Cost::PerCall(_) => c,
            };
            let bound = analytic_speedup(alpha, g, drafting, v_eff);
            rec.metric("speed", &ANALYTIC_SPEEDUP)
                .stat(Stat::Median, run.spec_tps.len())
                .params(&p)
                .value(bound)?;
            rec.metric("speed", &SPEEDUP_VS_BOUND)
                .stat(Stat::Median, run.spec_tps.len())
                .params(&p)
                .value(speedup / bound)?;
        }
    }
    if set.temperature == 0.0 {
        let (a, b) = (run.plain_tokens.concat(), run.spec_tokens.concat());
        let diverge = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .or((a.len() != b.len()).then(|| a.len().min(b.len())));
        rec.metric("exactness", &GREEDY_EXACT)
            .params(&p)
            .value(if diverge.is_none() { 1.0 } else { 0.0 })?;
        if let Some(i) = diverge {
            rec.metric("exactness", &FIRST_DIVERGENCE_INDEX)
                .params(&p)
                .value(i as f64)?;
        }
    }
    Ok(())
}

/// Total variation distance between two count vectors over the same tokens.
fn tv(a: &[usize], b: &[usize]) -> f64 {
    let (na, nb) = (
        a.iter().sum::<usize>().max(1) as f64,
        b.iter().sum::<usize>().max(1) as f64,
    );
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 / na - y as f64 / nb).abs())
        .sum::<f64>()
        / 2.0
}

/// The next token after `prompt` sampled `tv_draws` times by the rule (drafter proposes one
/// token, kept or replaced from the residual) and plainly from the target twice: the distance
/// of the rule's samples from plain ones, and of two plain sample sets (the noise floor).
fn tv_records<B: AttentionBackend>(
    rec: &mut Recorder,
    drafter: &mut Drafter<B>,
    target: &Decoder<B>,
    prompt: &[u32],
    temperature: f32,
    s: &Sizes,
    device: &B::Device,
) -> Result<()> {
    let cfg = SamplingConfig::with_temperature(temperature);
    let mut sampler = Sampler::new(cfg, 17).map_err(SuiteError::model("sampler"))?;
    let p = sampler
        .probs(&drafters::last_logits(target, prompt, device)?)
        .map_err(SuiteError::model("target distribution"))?;
    let vocab = p.len();
    let (mut spec, mut plain, mut plain2) = (vec![0; vocab], vec![0; vocab], vec![0; vocab]);
    // The drafter's proposal at the prompt (its distribution q, or a point mass) is the same
    // for every draw: draft once, then draw from q on the host.
    let draft = drafter
        .proposer()
        .propose(&[prompt], &[1], &mut sampler)
        .map_err(SuiteError::model("drafting"))?
        .remove(0);
    let target_rows = [p.clone(), p.clone()];
    for _ in 0..s.tv_draws {
        // The drafted token: drawn from q, or the deterministic drafter's own (q a point mass).
        let drafted = match (&draft.probs, draft.tokens.first()) {
            (Some(q), Some(_)) => Some(sampler.draw(&q[0])),
            (None, Some(&x)) => Some(x),
            (_, None) => None,
        };
        let first = match drafted {
            Some(x) => {
                let q = draft.probs.as_ref().map(|q| &q[..1]);
                let o = verify_sampled(&target_rows, q, &[x], &mut sampler);
                if o.accepted == 1 {
                    x
                } else {
                    o.next_token
                }
            }
            None => sampler.draw(&p),
        };
        spec[first as usize] += 1;
        plain[sampler.draw(&p) as usize] += 1;
        plain2[sampler.draw(&p) as usize] += 1;
    }
    for (pair, d) in [
        ("spec-vs-plain", tv(&spec, &plain)),
        ("plain-vs-plain", tv(&plain2, &plain)),
    ] {
        rec.metric("exactness", &SAMPLING_TV_DISTANCE)
            .stat(Stat::Exact, s.tv_draws)
            .param("temperature", temperature)
            .param("pair", pair)
            .value(d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analytic_speedup_matches_leviathan_closed_forms() {
        // α = 0.8, γ = 4, c = 0.1, v = 1: (1 − 0.8⁵) / (0.2 · 1.4) = 2.3809...
        let s = analytic_speedup(0.8, 4.0, 4.0 * 0.1, 1.0);
        assert!(
            (s - (1.0 - 0.8f64.powi(5)) / (0.2 * 1.4)).abs() < 1e-12,
            "{s}"
        );
        // α = 1: every drafted token kept, γ + 1 tokens per step.
        assert_eq!(analytic_speedup(1.0, 3.0, 0.0, 1.0), 4.0);
        // α = 0: one token per step, at the cost of drafting and verifying.
        assert_eq!(analytic_speedup(0.0, 2.0, 0.5, 1.5), 0.5);
    }

    #[test]
    fn verify_cost_is_read_linearly_off_the_measured_curve() {
        let v = BTreeMap::from([(2, 1.6), (4, 2.2)]);
        assert!((verify_cost_at(&v, 1.0) - 1.3).abs() < 1e-12);
        assert!((verify_cost_at(&v, 3.0) - 1.9).abs() < 1e-12);
        assert_eq!(verify_cost_at(&v, 4.0), 2.2);
        assert_eq!(verify_cost_at(&v, 0.0), 1.0);
        // Beyond the last point: its slope continues.
        assert!((verify_cost_at(&v, 5.0) - 2.5).abs() < 1e-12);
    }
}
