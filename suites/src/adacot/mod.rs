//! The AdaCoT suite (Lou et al., "AdaCoT: Pareto-optimal adaptive chain-of-thought triggering
//! via reinforcement learning", arXiv 2505.11896): when should a model think? The committed
//! `arith` model answers directly (`D:`, right on 1-digit problems, often wrong on 4-digit ones)
//! or with a scratchpad (`T:`, right almost always, ten times the tokens). Every gate decides per
//! problem on three traffic mixes, and the suite records the front between accuracy and response
//! tokens, the gates' precision and recall against the oracle labels, and end-to-end time.
//!
//! Gates (one file each; `never` and `always` are one rule, `fixed`): `never`, `always`, `oracle`,
//! `random` (rate swept, and at each learned
//! gate's own rate), `difficulty` (k swept), `confidence` (τ swept, a failed direct attempt
//! paid for), and `learned`: the `arith-adaptive-l*` checkpoints (SFT on oracle labels,
//! imitation of the oracle decision on a larger table, then RL on the decision token with GRPO
//! at several λ; [`finetune`]) that write their own decision,
//! and `learned-route`, their decision token routed to the base model's answers (the decision
//! alone, on the same answers as every other gate).
//! Deviation from the paper: the table gates are scored on the base model's own greedy answers,
//! generated once per problem and format at batch 1 and timed; a gate's end-to-end time per
//! problem is the time of the generations it chose (both, for a confidence fallback). The
//! learned gate is run end to end.

pub mod confidence;
pub mod difficulty;
pub mod finetune;
pub mod fixed;
pub mod gate;
pub mod labels;
pub mod learned;
pub mod oracle;
pub mod random;
pub mod rl;
pub mod rl_case;
pub mod score;
pub mod slm;
pub mod workloads;

use std::collections::BTreeMap;

use infermark_models::kernels::AttentionBackend;

use crate::metric as m;
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Stat, Suite, SuiteError};
use gate::{route, Decision, Gate, Outcome};
use score::{score, Score};

/// The suite's name on the command line and in records.
pub const NAME: &str = "adacot";

/// λ of the committed learned gates (`arith-adaptive-l{λ}`).
pub const LAMBDAS: [f64; 4] = [0.1, 0.5, 1.0, 2.0];

/// Stem name of the committed learned gate at `lambda`: λ in hundredths, three digits
/// (`arith-adaptive-l050` for 0.5; no dot, which a file stem would lose to its extension).
pub fn adaptive_name(lambda: f64) -> String {
    format!("arith-adaptive-l{:03}", (lambda * 100.0).round() as u64)
}

/// The adacot suite.
pub struct AdacotSuite;

struct Sizes {
    /// Problems per workload.
    problems: usize,
    difficulty_k: &'static [u32],
    taus: &'static [f64],
    rates: &'static [f64],
    /// RL steps per algorithm in the `rl` case.
    rl_steps: usize,
    /// GRPO steps per masking setting in the `slm` case.
    slm_steps: usize,
    /// Problems in each of the `slm` case's tables.
    slm_problems: usize,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            problems: 24,
            difficulty_k: &[1, 2, 3],
            taus: &[0.5, 0.9, 0.99],
            rates: &[0.25, 0.5],
            rl_steps: 4,
            slm_steps: 4,
            slm_problems: 64,
        },
        Scale::Quick => Sizes {
            problems: 400,
            difficulty_k: &[1, 2, 3],
            taus: &[0.3, 0.5, 0.7, 0.9, 0.95, 0.99],
            rates: &[0.1, 0.25, 0.5, 0.75],
            rl_steps: 30,
            slm_steps: 40,
            slm_problems: 512,
        },
        Scale::Full => Sizes {
            problems: 1000,
            difficulty_k: &[1, 2, 3],
            taus: &[0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999],
            rates: &[0.1, 0.25, 0.5, 0.75],
            rl_steps: 200,
            slm_steps: 200,
            slm_problems: 1024,
        },
    }
}

const ABOUT: About = About {
    name: NAME,
    description: "adaptive chain-of-thought gating (AdaCoT): never/always/oracle/random/difficulty/confidence/learned gates on arith, the accuracy-tokens front; GRPO vs PPO",
    experiments: &[
        (
            "gates",
            "accuracy, cot_trigger_rate (overall and per digits), mean_response_tokens, token_reduction_vs_always, accuracy_delta_vs_always, gate_precision/recall/f1, end_to_end_latency_ms, problems_per_s, tokens_vs_oracle per (gate, setting, workload)",
        ),
        (
            "rl",
            "rl_step_ms, rl_peak_bytes, rl_reward, rl_reward_per_s of GRPO and PPO (critic of the policy's size) on the decision token",
        ),
        (
            "slm",
            "selective loss masking: cot_trigger_rate, accuracy, mean_response_tokens before and after GRPO on a skewed (mostly hard) set, decision loss masked or not, on that set and on easy-heavy traffic",
        ),
    ],
};

impl Suite for AdacotSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn variants(&self) -> Vec<&'static str> {
        vec!["gates", "rl", "slm"]
    }

    /// One case per workload (every gate on the same problems), and the RL comparison.
    fn cases(&self, _scale: Scale) -> Vec<Case> {
        let mut cases: Vec<Case> = workloads::WORKLOADS
            .iter()
            .map(|w| Case {
                variant: "gates".into(),
                params: BTreeMap::from([
                    ("preset".to_string(), "arith".to_string()),
                    ("workload".to_string(), w.name.to_string()),
                ]),
            })
            .collect();
        for variant in ["rl", "slm"] {
            cases.push(Case {
                variant: variant.into(),
                params: BTreeMap::from([("preset".to_string(), "arith".to_string())]),
            });
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        let missing: Vec<String> = LAMBDAS
            .iter()
            .map(|&l| adaptive_name(l))
            .filter(|n| !checkpoint::paths(&checkpoint::committed(n)).1.exists())
            .collect();
        if missing.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "no learned-gate rows for {} (not trained; `infermark train --model arith-adaptive --lambda L`)",
                missing.join(", ")
            )]
        }
    }

    /// - S: nothing is swept over a size, so S is not measured.
    /// - C: accuracy retention of every gate against always-think on the same problems
    ///   (`accuracy`, reference variant `always`); no timing spread is scored.
    /// - I: the deterministic outcomes of gating: accuracy, trigger rate, tokens, precision and
    ///   recall, format errors.
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::suite::{Accuracy, MaturityInputs, Reference};
        MaturityInputs {
            scaling: None,
            accuracy: &[Accuracy {
                metric: &m::ACCURACY,
                reference: Reference::Variant("always"),
            }],
            outcomes: &[
                &m::ACCURACY,
                &m::COT_TRIGGER_RATE,
                &m::MEAN_RESPONSE_TOKENS,
                &m::GATE_PRECISION,
                &m::GATE_RECALL,
                &m::FORMAT_ERROR_RATE,
            ],
        }
    }
}

impl Experiment for AdacotSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let s = sizes(ctx.scale);
        match case.variant.as_str() {
            "rl" => return rl_case::run::<B>(ctx, s.rl_steps, device),
            "slm" => return slm::suite_case::<B>(ctx, s.slm_steps, s.slm_problems, device),
            _ => {}
        }
        let w = case
            .params
            .get("workload")
            .and_then(|w| workloads::find(w))
            .ok_or_else(|| {
                SuiteError::Input(format!("case {} has no known workload", case.label()))
            })?;
        gates_case::<B>(ctx, &w, device)
    }
}

/// A gate's outcomes with its name and setting.
struct Row {
    gate: &'static str,
    setting: Option<(&'static str, String)>,
    outcomes: Vec<Outcome>,
}

fn gates_case<B: AttentionBackend>(
    ctx: &RunContext,
    w: &workloads::Workload,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let s = sizes(ctx.scale);
    (ctx.progress)(&format!("{}: oracle labels", w.name));
    let (base, _) = checkpoint::load::<B>(&checkpoint::committed("arith"), device)?;
    let problems = w.problems(s.problems);
    let labels = labels::label(&base, &problems, device)?;
    let mut rows = Vec::new();
    let run = |g: &mut dyn Gate| -> Result<Row> {
        Ok(Row {
            gate: g.name(),
            setting: g.setting(),
            outcomes: route(g, &labels)?,
        })
    };
    rows.push(run(&mut fixed::Fixed(Decision::Direct))?);
    rows.push(run(&mut fixed::Fixed(Decision::Think))?);
    rows.push(run(&mut oracle::Oracle::new(&labels))?);
    for &k in s.difficulty_k {
        rows.push(run(&mut difficulty::Difficulty { k })?);
    }
    for &tau in s.taus {
        rows.push(run(&mut confidence::Confidence { tau })?);
    }
    let random_seed = ctx.seed ^ 0xADAC07;
    for &rate in s.rates {
        rows.push(run(&mut random::Random::new(rate, random_seed))?);
    }
    for &lambda in &LAMBDAS {
        let stem = checkpoint::committed(&adaptive_name(lambda));
        if !checkpoint::paths(&stem).1.exists() {
            continue;
        }
        (ctx.progress)(&format!("{}: learned gate λ={lambda}", w.name));
        let (model, _) = checkpoint::load::<B>(&stem, device)?;
        let outcomes = learned::run(&model, &labels, device)?;
        let rate = score(&outcomes).map_or(0.0, |s| s.trigger_rate);
        rows.push(Row {
            gate: "learned",
            setting: Some(("lambda", lambda.to_string())),
            outcomes,
        });
        rows.push(run(&mut learned::LearnedRoute::new(
            &model, lambda, device,
        ))?);
        let mut r = random::Random::new(rate, random_seed);
        let mut row = run(&mut r)?;
        row.setting = Some(("rate_of", format!("learned-l{lambda}")));
        rows.push(row);
    }
    record(ctx, w, &rows)
}

fn find_score(scores: &[(&Row, Score)], gate: &str) -> Result<Score> {
    scores
        .iter()
        .find(|(r, _)| r.gate == gate)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| SuiteError::Input(format!("no `{gate}` gate in the run")))
}

fn record(ctx: &RunContext, w: &workloads::Workload, rows: &[Row]) -> Result<Vec<Record>> {
    let scores: Vec<(&Row, Score)> = rows
        .iter()
        .filter_map(|r| score(&r.outcomes).map(|s| (r, s)))
        .collect();
    let always = find_score(&scores, "always")?;
    let oracle = find_score(&scores, "oracle")?;
    let mut out = Vec::new();
    for (row, sc) in &scores {
        let mut base = BTreeMap::from([("workload".to_string(), w.name.to_string())]);
        if let Some((k, v)) = &row.setting {
            base.insert(k.to_string(), v.clone());
        }
        let mut rec = Recorder::new(ctx, NAME, row.gate, base);
        let n = sc.n;
        let e = "gates";
        rec.metric(e, &m::ACCURACY)
            .stat(Stat::Mean, n)
            .param("digits", "all")
            .value(sc.accuracy)?;
        rec.metric(e, &m::COT_TRIGGER_RATE)
            .stat(Stat::Mean, n)
            .param("digits", "all")
            .value(sc.trigger_rate)?;
        for (d, b) in &sc.buckets {
            rec.metric(e, &m::ACCURACY)
                .stat(Stat::Mean, b.n)
                .param("digits", d)
                .value(b.accuracy)?;
            rec.metric(e, &m::COT_TRIGGER_RATE)
                .stat(Stat::Mean, b.n)
                .param("digits", d)
                .value(b.trigger_rate)?;
        }
        rec.metric(e, &m::MEAN_RESPONSE_TOKENS)
            .stat(Stat::Mean, n)
            .value(sc.mean_tokens)?;
        rec.metric(e, &m::TOKEN_REDUCTION_VS_ALWAYS)
            .stat(Stat::Mean, n)
            .value(1.0 - sc.mean_tokens / always.mean_tokens)?;
        rec.metric(e, &m::ACCURACY_DELTA_VS_ALWAYS)
            .stat(Stat::Mean, n)
            .value(100.0 * (sc.accuracy - always.accuracy))?;
        rec.metric(e, &m::TOKENS_VS_ORACLE)
            .stat(Stat::Mean, n)
            .value(sc.mean_tokens / oracle.mean_tokens)?;
        for (metric, v) in [
            (&m::GATE_PRECISION, sc.precision),
            (&m::GATE_RECALL, sc.recall),
            (&m::GATE_F1, sc.f1),
        ] {
            if let Some(v) = v {
                rec.metric(e, metric).stat(Stat::Mean, n).value(v)?;
            }
        }
        if row.gate.starts_with("learned") {
            rec.metric(e, &m::FORMAT_ERROR_RATE)
                .stat(Stat::Mean, n)
                .value(sc.format_errors as f64 / n as f64)?;
        }
        rec.timing(e, &m::END_TO_END_LATENCY_MS, &sc.latency, &[])?;
        rec.metric(e, &m::PROBLEMS_PER_S)
            .stat(Stat::Mean, n)
            .value(sc.problems_per_s)?;
        out.extend(rec.records);
    }
    Ok(out)
}
