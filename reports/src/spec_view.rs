//! The speculative suite's part of the report: per workload, measured speedup against γ for each
//! drafter with Leviathan et al.'s analytic curve (from the measured α, c, v) dashed beside it;
//! acceptance per draft position with the i.i.d. model α^pos dashed; and a table of each
//! drafter's best γ with the quantities that explain its speedup.

use std::collections::BTreeMap;

use infermark_suites::{speculative, Record};

use crate::charts::{measured_vs_model, Chart, Series};
use crate::format::cell;
use crate::metrics::{self, Metric};
use crate::pivot::{header, Pivot};
use crate::section::SuiteSection;
use crate::select::{has_params, headline};
use crate::Result;

const SUITE: &str = speculative::NAME;

/// The speculative suite's section.
pub struct SpeculativeSection;

impl SuiteSection for SpeculativeSection {
    fn suite(&self) -> &'static str {
        SUITE
    }

    fn charts(&self, records: &[Record]) -> Result<Vec<Chart>> {
        let mut out = Vec::new();
        for w in workloads(records) {
            out.extend(speedup_chart(records, &w)?);
            out.extend(position_chart(records, &w)?);
        }
        Ok(out)
    }

    fn pivots(&self, records: &[Record]) -> Vec<Pivot> {
        summary_table(records).into_iter().collect()
    }
}

/// Headline records of `metric` in the suite whose params include `want`.
fn find<'a>(records: &'a [Record], metric: &Metric, want: &[(&str, &str)]) -> Vec<&'a Record> {
    headline(records, SUITE, metric.name, want)
}

fn workloads(records: &[Record]) -> Vec<String> {
    crate::select::param_values(records, SUITE, "workload")
}

fn num(r: &Record, key: &str) -> Option<f64> {
    r.params.get(key)?.parse().ok()
}

const GREEDY_B1: [(&str, &str); 2] = [("temperature", "0"), ("batch", "1")];

fn speedup_chart(records: &[Record], workload: &str) -> Result<Option<Chart>> {
    let want = [GREEDY_B1[0], GREEDY_B1[1], ("workload", workload)];
    let (mut measured, mut model) = (Series::new(), Series::new());
    for r in find(records, &metrics::SPECULATIVE_SPEEDUP, &want) {
        if let Some(g) = num(r, "gamma") {
            measured
                .entry(r.variant.clone())
                .or_default()
                .push((g, r.value));
        }
    }
    for r in find(records, &metrics::ANALYTIC_SPEEDUP, &want) {
        if let Some(g) = num(r, "gamma") {
            model
                .entry(r.variant.clone())
                .or_default()
                .push((g, r.value));
        }
    }
    if measured.is_empty() {
        return Ok(None);
    }
    let title =
        format!("{workload}: speedup over plain decoding by γ (T 0, batch 1; dashed: analytic)");
    let svg = measured_vs_model(
        &title,
        "γ (drafted tokens per step)",
        "speedup (×)",
        &measured,
        &model,
        Some(1.0),
    )?;
    Ok(Some(Chart {
        suite: SUITE.into(),
        title,
        svg,
    }))
}

/// Acceptance per position at the largest γ, with α^pos from each drafter's α there.
fn position_chart(records: &[Record], workload: &str) -> Result<Option<Chart>> {
    let want = [GREEDY_B1[0], GREEDY_B1[1], ("workload", workload)];
    let gamma = find(records, &metrics::ACCEPTANCE_AT_POSITION, &want)
        .into_iter()
        .filter_map(|r| num(r, "gamma"))
        .fold(f64::NEG_INFINITY, f64::max);
    if !gamma.is_finite() {
        return Ok(None);
    }
    let g = format!("{gamma}");
    let want = [
        GREEDY_B1[0],
        GREEDY_B1[1],
        ("workload", workload),
        ("gamma", g.as_str()),
    ];
    let (mut measured, mut model) = (Series::new(), Series::new());
    for r in find(records, &metrics::ACCEPTANCE_AT_POSITION, &want) {
        if let Some(pos) = num(r, "pos") {
            measured
                .entry(r.variant.clone())
                .or_default()
                .push((pos, r.value));
        }
    }
    for r in find(records, &metrics::ACCEPTANCE_ALPHA, &want) {
        model.insert(
            r.variant.clone(),
            (1..=gamma as usize)
                .map(|p| (p as f64, r.value.powi(p as i32)))
                .collect(),
        );
    }
    let title =
        format!("{workload}: acceptance by draft position (γ {g}, T 0, batch 1; dashed: α^pos)");
    let svg = measured_vs_model(
        &title,
        "draft position",
        "share of steps kept",
        &measured,
        &model,
        None,
    )?;
    Ok(Some(Chart {
        suite: SUITE.into(),
        title,
        svg,
    }))
}

/// Per (workload, drafter): the γ with the best measured speedup at T 0, batch 1, and there α,
/// c, v, mean accepted length, measured and analytic speedup; the speedup at the largest batch
/// for the same γ; whether every greedy run was exact.
fn summary_table(records: &[Record]) -> Option<Pivot> {
    let mut rows = Vec::new();
    let mut keys: BTreeMap<(String, String), ()> = BTreeMap::new();
    for r in records.iter().filter(|r| r.suite == SUITE) {
        if let Some(w) = r.params.get("workload") {
            keys.insert((w.clone(), r.variant.clone()), ());
        }
    }
    let max_batch = records
        .iter()
        .filter(|r| r.suite == SUITE)
        .filter_map(|r| num(r, "batch"))
        .fold(1.0, f64::max);
    for (w, v) in keys.keys() {
        let want = [GREEDY_B1[0], GREEDY_B1[1], ("workload", w.as_str())];
        let of = |metric: &Metric, extra: &[(&str, &str)]| {
            find(records, metric, &want)
                .into_iter()
                .find(|r| &r.variant == v && has_params(r, extra))
        };
        let Some(best) = find(records, &metrics::SPECULATIVE_SPEEDUP, &want)
            .into_iter()
            .filter(|r| &r.variant == v)
            .max_by(|a, b| a.value.total_cmp(&b.value))
        else {
            continue;
        };
        let Some(g) = best.params.get("gamma").cloned() else {
            continue;
        };
        let at = [("gamma", g.as_str())];
        let c = records
            .iter()
            .find(|r| {
                r.suite == SUITE
                    && &r.variant == v
                    && r.metric == metrics::DRAFT_COST_RATIO.name
                    && r.params.get("workload") == Some(w)
            })
            .map(|r| r.value);
        let mb = format!("{max_batch}");
        let batched = find(
            records,
            &metrics::SPECULATIVE_SPEEDUP,
            &[
                ("temperature", "0"),
                ("batch", mb.as_str()),
                ("workload", w.as_str()),
                ("gamma", g.as_str()),
            ],
        )
        .into_iter()
        .find(|r| &r.variant == v)
        .map(|r| r.value);
        let exact: Vec<f64> = records
            .iter()
            .filter(|r| {
                r.suite == SUITE
                    && &r.variant == v
                    && r.metric == metrics::GREEDY_EXACT.name
                    && r.params.get("workload") == Some(w)
            })
            .map(|r| r.value)
            .collect();
        let exact = match (exact.is_empty(), exact.iter().all(|&x| x == 1.0)) {
            (true, _) => "–".to_string(),
            (false, true) => format!("yes ({})", exact.len()),
            (false, false) => format!(
                "NO ({} of {})",
                exact.iter().filter(|&&x| x != 1.0).count(),
                exact.len()
            ),
        };
        rows.push(vec![
            w.clone(),
            v.clone(),
            g.clone(),
            cell(of(&metrics::ACCEPTANCE_ALPHA, &at).map(|r| r.value)),
            cell(c),
            cell(
                records
                    .iter()
                    .find(|r| {
                        r.suite == SUITE
                            && &r.variant == v
                            && r.metric == metrics::VERIFY_COST_RATIO.name
                            && r.params.get("workload") == Some(w)
                            && r.params.get("gamma") == Some(&g)
                    })
                    .map(|r| r.value),
            ),
            cell(of(&metrics::MEAN_ACCEPTED_LENGTH, &at).map(|r| r.value)),
            cell(Some(best.value)),
            cell(of(&metrics::ANALYTIC_SPEEDUP, &at).map(|r| r.value)),
            cell(of(&metrics::SPEEDUP_VS_BOUND, &at).map(|r| r.value)),
            cell(batched),
            exact,
        ]);
    }
    if rows.is_empty() {
        return None;
    }
    Some(Pivot {
        title: "Speculative decoding: each drafter at its best γ (T 0, batch 1)".into(),
        header: header(&[
            "workload",
            "drafter",
            "γ*",
            "α",
            "c",
            "v(γ*)",
            "tokens / target forward",
            "speedup",
            "analytic",
            "measured / analytic",
            &format!("speedup at batch {max_batch}"),
            "greedy exact",
        ]),
        rows,
        note: "Speedup: decode tokens/s of speculative over plain decoding of the same prompts, timed alternately in one run (medians). α: per-token acceptance (kept / (kept + first rejections)); c: a drafter step over a one-token target step (prompt lookup: one lookup call); v: a target forward over γ + 1 tokens over one token. Analytic: (1 − α^(γ+1)) / ((1 − α)(γc + v)) (Leviathan et al. 2023, Thm 3.8, with the measured verify cost). Tokens per target forward include the bonus or correction token. Adaptive γ has no analytic value (γ varies).".into(),
    })
}
