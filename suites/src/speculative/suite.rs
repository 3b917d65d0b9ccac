//! The speculative suite's cases, and the one dispatch from a case to its experiments.

use std::collections::BTreeMap;

use infermark_models::generation::GenerateConfig;
use infermark_models::kernels::AttentionBackend;

use super::ab_run::{ab_run, Setting};
use super::about::{sizes, ABOUT, DRAFTERS, NAME};
use super::drafters::{self, Cost, Drafter};
use super::sampling::tv_records;
use super::setting::setting_records;
use super::workloads::Workload;
use crate::metric::{DRAFT_COST_RATIO, VERIFY_COST_RATIO};
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::zoo::corpus::read_text;
use crate::zoo::gguf::llama;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Stat, Suite, SuiteError};

/// The speculative decoding suite.
pub struct SpeculativeSuite;

impl Suite for SpeculativeSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn cost(&self, case: &Case, scale: Scale) -> f64 {
        let real = case
            .params
            .get("workload")
            .and_then(|n| Workload::parse(n))
            .is_some_and(|w| w.is_real());
        let self_drafted = matches!(case.variant.as_str(), "int4-self" | "layer-skip");
        match (scale, real, self_drafted) {
            (Scale::Smoke, true, _) => 4.3,
            (Scale::Smoke, false, _) => 0.6,
            (_, true, _) => 50.0,
            (_, false, true) => 30.0,
            (_, false, false) => 10.0,
        }
    }

    fn report(&self) -> &'static crate::report::Section {
        &super::report::REPORT
    }

    fn variants(&self) -> Vec<&'static str> {
        DRAFTERS.to_vec()
    }

    /// One case per (drafter, workload); the trained draft model drafts for `target` only (no
    /// draft model was trained for `arith`, and the real model has its own vocabulary), the
    /// EAGLE head for the real model only. The real workloads run when the model is fetched
    /// (smoke: prompt lookup on `real-grounded`, the EAGLE head on `real-text`).
    fn cases(&self, scale: Scale) -> Vec<Case> {
        let real = crate::zoo::gguf::smollm2().is_ok();
        let mut out = Vec::new();
        for w in Workload::ALL {
            for d in DRAFTERS {
                if d.starts_with("draft") && w.target() != "target" {
                    continue;
                }
                // The EAGLE head was trained for the real model only.
                if d == "eagle" && !w.is_real() {
                    continue;
                }
                // Smoke runs one real case per drafter that exists only there or is cheap:
                // prompt lookup on real-grounded, the EAGLE head on real-text.
                let smoke_real = matches!(
                    (d, w),
                    ("prompt-lookup", Workload::RealGrounded) | ("eagle", Workload::RealText)
                );
                if w.is_real() && (!real || (scale == Scale::Smoke && !smoke_real)) {
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
        crate::zoo::real::missing("real-text and real-grounded")
    }

    /// - S: the marginal cost of verifying one more drafted token, the slope of the verify cost
    ///   (target forward over γ + 1 tokens / over 1, per target and workload) over γ. It is in
    ///   units of one plain decoding step, the reference's cost per token, so 1 is "no better
    ///   than plain decoding". The draft's own cost per token is recorded apart
    ///   (`draft_cost_ratio`) and not part of S.
    /// - C: predictability of the verify cost at the largest γ, from the spread of each timed
    ///   A/B pair's ratio, times the worst retention of: greedy exactness against plain decoding
    ///   (1 if speculative output at T = 0 equals plain greedy output token for token) and
    ///   1 − the total-variation distance of sampled next tokens from plain sampling (T > 0).
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
            // Exactness at T = 0 (an agreement share) and the sampled next-token distribution's
            // total-variation distance from the target's at T > 0 (a deviation): the worst counts.
            accuracy: &[
                Accuracy {
                    metric: &m::GREEDY_EXACT,
                    reference: Reference::Relative,
                },
                Accuracy {
                    metric: &m::SAMPLING_TV_DISTANCE,
                    reference: Reference::Relative,
                },
            ],
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
            let (x, pairs) = drafters::verify_cost(&target, &prompts[0], g, s.plan, device)?;
            // The value is the ratio of the two medians; the samples, min and p90 are of each
            // A/B pair's ratio (C's predictability reads their spread).
            rec.metric("cost", &VERIFY_COST_RATIO)
                .stat(Stat::Median, pairs.n)
                .param("gamma", g)
                .samples(pairs.samples.clone())
                .value(x)?;
            let tails = [(Stat::Min, Some(pairs.min)), (Stat::P90, pairs.p90)];
            for (stat, v) in tails.into_iter().filter_map(|(st, v)| v.map(|v| (st, v))) {
                rec.metric("cost", &VERIFY_COST_RATIO)
                    .stat(stat, pairs.n)
                    .param("gamma", g)
                    .value(v)?;
            }
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
