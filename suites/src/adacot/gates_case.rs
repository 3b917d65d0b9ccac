//! *gates*: every gate routed over one workload's problems, scored against always-think and
//! the oracle.

use std::collections::BTreeMap;

use infermark_models::kernels::AttentionBackend;

use super::about::{adaptive_name, sizes, LAMBDAS, NAME};
use super::gate::{route, Decision, Gate, Outcome};
use super::score::{score, Score};
use super::{confidence, difficulty, fixed, labels, learned, oracle, random, workloads};
use crate::metric as m;
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::{Record, Result, RunContext, Stat, SuiteError};

/// A gate's outcomes with its name and setting.
pub(super) struct Row {
    gate: &'static str,
    setting: Option<(&'static str, String)>,
    outcomes: Vec<Outcome>,
}

pub(super) fn gates_case<B: AttentionBackend>(
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

pub(super) fn find_score(scores: &[(&Row, Score)], gate: &str) -> Result<Score> {
    scores
        .iter()
        .find(|(r, _)| r.gate == gate)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| SuiteError::Input(format!("no `{gate}` gate in the run")))
}

pub(super) fn record(
    ctx: &RunContext,
    w: &workloads::Workload,
    rows: &[Row],
) -> Result<Vec<Record>> {
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
            rec.distribution(
                e,
                &m::RESPONSE_TOKENS,
                &b.tokens,
                &[("digits", d.to_string())],
            )?;
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
