//! The records of one setting: acceptance, tokens per step, speedup and its bound.

use std::collections::BTreeMap;

use super::ab_run::{median, AbRun, Setting};
use super::about::NAME;
use super::bound::{analytic_speedup, verify_cost_at};
use super::drafters::Cost;
use crate::metric::{
    ACCEPTANCE_ALPHA, ACCEPTANCE_AT_POSITION, ACCEPTANCE_RATE, ANALYTIC_SPEEDUP,
    DECODE_TOKENS_PER_S, FIRST_DIVERGENCE_INDEX, GREEDY_EXACT, MEAN_ACCEPTED_LENGTH,
    SPECULATIVE_SPEEDUP, SPEEDUP_VS_BOUND,
};
use crate::recorder::Recorder;
use crate::{Result, Stat};

#[allow(clippy::too_many_arguments)]
pub(super) fn setting_records(
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
        // The speculative side carries the technique's name, which is the suite's.
        (NAME, spec, run.spec_tps.len()),
    ] {
        rec.metric("speed", &DECODE_TOKENS_PER_S)
            .stat(Stat::Median, n)
            .params(&p)
            .param("mode", mode)
            .value(tps)?;
    }
    let speedup = spec / plain;
    // Samples: each prompt group's speedup in each repetition; a group that generated nothing
    // in no time (an immediate stop) has none.
    let samples: Vec<f64> = run
        .group_speedups
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    rec.metric("speed", &SPECULATIVE_SPEEDUP)
        .stat(Stat::Median, run.spec_tps.len())
        .params(&p)
        .samples(samples)
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
