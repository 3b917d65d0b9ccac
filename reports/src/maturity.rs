//! The maturity score M(P) = w1·S + w2·C + w3·I of each technique (suite and variant) that has
//! records, with S, C and I in [0, 1] computed only from records:
//!
//! Each suite names the records it reads ([`infermark_suites::Suite::maturity`]): a cost swept
//! over a size (the attention suite: layer decode latency over context, per preset) and a
//! deviation from its reference (the attention suite: MLA absorbed against naive).
//!
//! - **S, scalability**: how the cost grows with the size against the ideal of not growing at
//!   all: `median cost at the smallest size / at the largest`, averaged over sweeps. 1 means
//!   size-independent; attention that rereads a large cache every step falls toward 0.
//! - **C, controllability**: predictability × accuracy retention. Predictability is
//!   `1 − (p90 − min) / median` of the cost at the largest size (clipped at 0); retention is
//!   `1 − deviation from the reference` where the suite measures one, and 1 for variants that are
//!   their own reference.
//! - **I, iterability**: the share of the technique's deterministic records (metric registry) that
//!   are identical in the baseline run, among those the baseline also has, i.e. that re-measure
//!   the same and would pass a zero-tolerance gate. Needs a baseline; without one I is not
//!   measured.
//!
//! Components that cannot be computed are left out and the weights of the rest renormalised; the
//! report says which.

use std::collections::BTreeMap;

use infermark_suites::{MaturityInputs, Record, Scaling};
use serde::Serialize;

use crate::metrics::{self, Kind};
use crate::select::{select, Selector};

/// Weights of S, C and I.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Weights {
    pub s: f64,
    pub c: f64,
    pub i: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            s: 1.0 / 3.0,
            c: 1.0 / 3.0,
            i: 1.0 / 3.0,
        }
    }
}

impl std::str::FromStr for Weights {
    type Err = String;
    /// `a,b,c`, non-negative, not all zero.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<f64> = text
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("weights `{text}`: `{p}` is not a number"))
            })
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [s, c, i]
                if [s, c, i].iter().all(|w| w.is_finite() && *w >= 0.0) && s + c + i > 0.0 =>
            {
                Ok(Weights { s, c, i })
            }
            _ => Err(format!(
                "weights `{text}`: need three non-negative numbers a,b,c that are not all zero"
            )),
        }
    }
}

/// M(P) of one technique with its inputs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Score {
    pub suite: String,
    pub technique: String,
    pub s: Option<f64>,
    pub c: Option<f64>,
    pub i: Option<f64>,
    pub m: Option<f64>,
    /// How each component was computed, with its inputs.
    pub inputs: Vec<String>,
}

fn sel(pairs: &[(&str, &str)]) -> Selector {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn at(r: &Record, param: &str) -> f64 {
    r.params
        .get(param)
        .and_then(|c| c.parse().ok())
        .unwrap_or(f64::NAN)
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The suite's scaling records (medians), by sweep group, sorted by the swept size.
fn sweeps<'a>(
    records: &'a [Record],
    suite: &str,
    variant: &str,
    sc: &Scaling,
) -> BTreeMap<String, Vec<&'a Record>> {
    let mut want = vec![("suite", suite), ("variant", variant), ("stat", "median")];
    want.extend(sc.filter.iter().copied());
    let mut groups: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in select(records, sc.metric.name, &sel(&want)) {
        groups
            .entry(r.params.get(sc.group_by).cloned().unwrap_or_default())
            .or_default()
            .push(r);
    }
    for v in groups.values_mut() {
        v.sort_by(|a, b| at(a, sc.over).total_cmp(&at(b, sc.over)));
    }
    groups
}

fn scalability(
    records: &[Record],
    suite: &str,
    variant: &str,
    sc: &Scaling,
    inputs: &mut Vec<String>,
) -> Option<f64> {
    let mut parts = Vec::new();
    for (group, rs) in sweeps(records, suite, variant, sc) {
        if let (Some(first), Some(last)) = (rs.first(), rs.last()) {
            if rs.len() >= 2 && last.value > 0.0 {
                let s = (first.value / last.value).clamp(0.0, 1.0);
                inputs.push(format!(
                    "S[{group}] = {:.3} {u} @{o} {} / {:.3} {u} @{o} {} = {s:.3}",
                    first.value,
                    at(first, sc.over),
                    last.value,
                    at(last, sc.over),
                    u = sc.metric.unit,
                    o = sc.over,
                ));
                parts.push(s);
            }
        }
    }
    mean(&parts)
}

fn controllability(
    records: &[Record],
    suite: &str,
    variant: &str,
    spec: &MaturityInputs,
    inputs: &mut Vec<String>,
) -> Option<f64> {
    let sc = spec.scaling.as_ref()?;
    let mut preds = Vec::new();
    for (group, rs) in sweeps(records, suite, variant, sc) {
        let Some(last) = rs.last() else { continue };
        let size = last.params.get(sc.over).cloned().unwrap_or_default();
        let stat = |s: &str| {
            let mut want = vec![
                ("suite", suite),
                ("variant", variant),
                (sc.group_by, group.as_str()),
                (sc.over, size.as_str()),
                ("stat", s),
            ];
            want.extend(sc.filter.iter().copied());
            select(records, sc.metric.name, &sel(&want))
                .first()
                .map(|r| r.value)
        };
        if let (Some(min), Some(p90)) = (stat("min"), stat("p90")) {
            let p = (1.0 - (p90 - min) / last.value).clamp(0.0, 1.0);
            inputs.push(format!(
                "predictability[{group}] = 1 − ({p90:.3} − {min:.3}) / {:.3} = {p:.3} ({} {size})",
                last.value, sc.over
            ));
            preds.push(p);
        }
    }
    let pred = mean(&preds)?;
    let devs: Vec<f64> = match spec.deviation {
        Some(d) => select(
            records,
            d.name,
            &sel(&[("suite", suite), ("variant", variant), ("stat", "max")]),
        )
        .iter()
        .map(|r| r.value)
        .collect(),
        None => Vec::new(),
    };
    let retention = match mean(&devs) {
        Some(d) => {
            let r = (1.0 - d).clamp(0.0, 1.0);
            inputs.push(format!(
                "retention = 1 − {d:.3e} ({}) = {r:.6}",
                spec.deviation.map_or("", |m| m.name)
            ));
            r
        }
        None => {
            inputs.push("retention = 1 (the variant is its own reference)".into());
            1.0
        }
    };
    Some(pred * retention)
}

fn key(r: &Record) -> (String, String, String, String, String) {
    (
        r.suite.clone(),
        r.variant.clone(),
        r.metric.clone(),
        format!("{:?}", r.params),
        r.stat.name().to_string(),
    )
}

fn iterability(
    records: &[Record],
    baseline: Option<&[Record]>,
    suite: &str,
    variant: &str,
    inputs: &mut Vec<String>,
) -> Option<f64> {
    let Some(baseline) = baseline else {
        inputs.push("I not measured: no baseline run given".into());
        return None;
    };
    let base: BTreeMap<_, f64> = baseline.iter().map(|r| (key(r), r.value)).collect();
    let det: Vec<&Record> = records
        .iter()
        .filter(|r| r.suite == suite && r.variant == variant)
        .filter(|r| metrics::lookup(&r.metric).is_some_and(|m| m.kind == Kind::Deterministic))
        // Only records the baseline also has can be compared (a run at another scale shares few).
        .filter(|r| base.contains_key(&key(r)))
        .collect();
    if det.is_empty() {
        inputs.push("I not measured: no deterministic records in common with the baseline".into());
        return None;
    }
    let same = det
        .iter()
        .filter(|r| {
            base.get(&key(r))
                .is_some_and(|b| (b - r.value).abs() <= 1e-12 * r.value.abs().max(1.0))
        })
        .count();
    let i = same as f64 / det.len() as f64;
    inputs.push(format!(
        "I = {same} of {} deterministic records identical in the baseline = {i:.3}",
        det.len()
    ));
    Some(i)
}

/// M(P) for every (suite, variant) in `records`.
pub fn scores(records: &[Record], baseline: Option<&[Record]>, w: Weights) -> Vec<Score> {
    let mut techniques: Vec<(String, String)> = Vec::new();
    for r in records {
        let t = (r.suite.clone(), r.variant.clone());
        if !techniques.contains(&t) {
            techniques.push(t);
        }
    }
    techniques
        .into_iter()
        .map(|(suite, variant)| {
            let mut inputs = Vec::new();
            let spec = infermark_suites::find_suite(&suite)
                .map(|s| s.maturity())
                .unwrap_or_default();
            let s = spec
                .scaling
                .as_ref()
                .and_then(|sc| scalability(records, &suite, &variant, sc, &mut inputs));
            let c = controllability(records, &suite, &variant, &spec, &mut inputs);
            let i = iterability(records, baseline, &suite, &variant, &mut inputs);
            let parts: Vec<(f64, f64)> = [(w.s, s), (w.c, c), (w.i, i)]
                .into_iter()
                .filter_map(|(w, x)| x.map(|x| (w, x)))
                .collect();
            let total: f64 = parts.iter().map(|(w, _)| w).sum();
            let m = (total > 0.0).then(|| parts.iter().map(|(w, x)| w * x).sum::<f64>() / total);
            if parts.len() < 3 {
                inputs.push(format!(
                    "M over the {} available component(s), weights renormalised",
                    parts.len()
                ));
            }
            Score {
                suite,
                technique: variant,
                s,
                c,
                i,
                m,
                inputs,
            }
        })
        .collect()
}
