//! The maturity score M(P) = w1·S + w2·C + w3·I of each technique (suite and variant) that has
//! records, with S, C and I in [0, 1] computed only from records.
//!
//! Each suite names the records it is scored on ([`infermark_suites::Suite::maturity`]): a cost
//! swept over a size, its accuracy metrics with their references, and the deterministic outcomes
//! that I compares. A part whose records are absent is *not measured* (never a default), and
//! M(P) is shown only when S, C and I are all measured; otherwise the parts are shown and the
//! missing ones named.
//!
//! - **S, scalability**: the marginal cost of one more unit of work, not the ratio of the
//!   sweep's endpoints (which a slower fixed overhead raises). Per sweep, `b` = least-squares
//!   slope of the median cost over the size, and `b_ref` = the same slope of the suite's
//!   reference at the same sizes (or 1 where the cost is already in units of the reference's
//!   cost per unit of work); `S = b_ref / (b_ref + b)`: 0.5 = grows like the reference, → 1 as
//!   the marginal cost vanishes, → 0 as it grows without bound; a slope ≤ 0 (the marginal cost
//!   below the timing noise) leaves the sweep unmeasured rather than giving 1. The intercept
//!   never enters. The mean over sweeps; the reference variant gets none.
//! - **C, controllability**: predictability × accuracy retention, both measured.
//!   Predictability is `1 − (p90 − min) / median` of the cost at the sweep's largest size,
//!   only where the p90 rests on at least [`MIN_N_SPREAD`] samples (below that p90 is the
//!   maximum); retention is the worst over the suite's accuracy records of: `1 − deviation` or
//!   the agreement share (metrics already measured against the reference), or the reference's
//!   value over the variant's (`ref / value` for lower-is-better, `value / ref` for
//!   higher-is-better, capped at 1) where the reference is another record.
//! - **I, iterability**: the share of the technique's outcome records (the deterministic metrics
//!   its suite names as ones a change could move; never `source = analytic` records) that are
//!   identical in the baseline run, among those the baseline also has. Needs a baseline.

use std::collections::BTreeMap;

use infermark_suites::{Accuracy, MaturityInputs, Record, Reference, Scaling, Stat};
use serde::Serialize;

use crate::metrics::{self, Direction};
use crate::select::has_params;
use crate::table::fmt_value;

/// Fewest samples behind a p90 for predictability to be measured (p90 of fewer is the max; runs
/// do not record one below this, older result files may).
pub const MIN_N_SPREAD: u64 = infermark_suites::measure::P90_MIN_SAMPLES as u64;

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
    /// Only when S, C and I are all measured.
    pub m: Option<f64>,
    /// The parts not measured (`S`, `C`, `I`); why is in `inputs`.
    pub missing: Vec<&'static str>,
    /// How each component was computed, with its inputs, or why it was not.
    pub inputs: Vec<String>,
}

/// `a − b` of two record values; an error naming them when either is not finite.
fn checked_diff(a: f64, b: f64, what: &str) -> Result<f64, String> {
    let d = a - b;
    if d.is_finite() {
        Ok(d)
    } else {
        Err(format!("{what}: cannot take {a} − {b}"))
    }
}

/// The size a swept param stands for: a number, or the last `RxC` in it as R·C elements.
fn size_of(value: &str) -> Option<f64> {
    if let Ok(x) = value.trim().parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    let shape = value.split_whitespace().last()?;
    let (r, c) = shape.split_once('x')?;
    Some(r.parse::<f64>().ok()? * c.parse::<f64>().ok()?)
}

fn describe(r: &Record) -> String {
    let p: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} {} [{}]", r.variant, r.metric, p.join(" "))
}

/// Whether `a` and `b` agree on every param both carry, except `skip`.
fn joined(a: &Record, b: &Record, skip: Option<&str>) -> bool {
    a.params
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .all(|(k, v)| b.params.get(k).is_none_or(|w| w == v))
}

/// Whether `r` is one of the records `reference` names (not the technique's own).
fn is_reference_record(r: &Record, reference: Reference) -> bool {
    matches!(reference, Reference::Param(k, v) if r.params.get(k).map(String::as_str) == Some(v))
}

/// The reference record of `r` (same suite, metric and stat), if `reference` names another.
fn reference_of<'a>(
    records: &'a [Record],
    r: &Record,
    reference: Reference,
    filter: &[(&str, &str)],
) -> Result<Option<&'a Record>, String> {
    let (variant, key) = match reference {
        Reference::Relative => return Ok(None),
        Reference::Variant(v) => (v, None),
        Reference::Param(k, _) => (r.variant.as_str(), Some(k)),
        // `r` is a twin's record: the reference twin is a variant of its suite.
        Reference::Twins(t) => match t.of(t.reference) {
            Some(v) => (v, None),
            None => return Err(format!("the twins name no twin of {}", t.reference)),
        },
    };
    let found: Vec<&Record> = records
        .iter()
        .filter(|x| x.suite == r.suite && x.metric == r.metric && x.stat == r.stat)
        .filter(|x| x.variant == variant && has_params(x, filter))
        .filter(|x| match reference {
            Reference::Param(..) => is_reference_record(x, reference),
            _ => true,
        })
        .filter(|x| joined(r, x, key))
        .collect();
    match found[..] {
        [one] => Ok(Some(one)),
        [] => Err(format!("no {variant} reference for {}", describe(r))),
        _ => Err(format!(
            "{} {variant} references match {} (ambiguous)",
            found.len(),
            describe(r)
        )),
    }
}

/// Least-squares slope of y over x; `None` with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0 && sxy.is_finite()).then(|| sxy / sxx)
}

/// The sweep `r` belongs to: its `group_by` param, or with [`Scaling::EVERY_OTHER_PARAM`] every
/// param but the swept one and the filter's, as `k=v` pairs.
fn group_key(r: &Record, sc: &Scaling) -> String {
    if sc.group_by != Scaling::EVERY_OTHER_PARAM {
        return r.params.get(sc.group_by).cloned().unwrap_or_default();
    }
    r.params
        .iter()
        .filter(|(k, _)| k.as_str() != sc.over && !sc.filter.iter().any(|(f, _)| f == k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a sweep group is named in the derivations: `[group_by=value]`, or `[k=v ...]`.
fn group_label(group: &str, sc: &Scaling) -> String {
    match (group.is_empty(), sc.group_by == Scaling::EVERY_OTHER_PARAM) {
        (true, _) => String::new(),
        (false, true) => format!("[{group}]"),
        (false, false) => format!("[{}={group}]", sc.group_by),
    }
}

/// The technique's median records of the scaling cost, by sweep group, sorted by size.
fn sweeps<'a>(
    records: &'a [Record],
    suite: &str,
    variant: &str,
    sc: &Scaling,
) -> BTreeMap<String, Vec<(f64, &'a Record)>> {
    let mut groups: BTreeMap<String, Vec<(f64, &Record)>> = BTreeMap::new();
    for r in records.iter().filter(|r| {
        r.suite == suite
            && r.variant == variant
            && r.metric == sc.metric.name
            && r.stat == Stat::Median
            && has_params(r, sc.filter)
            && !is_reference_record(r, sc.reference)
    }) {
        let Some(x) = r.params.get(sc.over).and_then(|v| size_of(v)) else {
            continue;
        };
        groups.entry(group_key(r, sc)).or_default().push((x, r));
    }
    for v in groups.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
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
    if is_reference_variant(sc.reference, variant) {
        inputs.push(format!(
            "S not measured: {variant} is the reference its marginal cost is compared with"
        ));
        return None;
    }
    let unit = sc.metric.unit;
    let per = |b: f64, shape: bool| {
        let of = if shape {
            "weight element of"
        } else {
            "unit of"
        };
        format!("{} {unit} per {of} {}", fmt_value(b), sc.over)
    };
    let mut parts = Vec::new();
    let groups = sweeps(records, suite, variant, sc);
    for (group, rs) in &groups {
        let mut own = Vec::new();
        let mut refs = Vec::new();
        let mut why = None;
        for (x, r) in rs {
            if !r.value.is_finite() {
                why = Some(format!("{} is {}", describe(r), r.value));
                break;
            }
            match reference_of(records, r, sc.reference, sc.filter) {
                Ok(Some(b)) if !b.value.is_finite() => {
                    why = Some(format!("{} is {}", describe(b), b.value));
                    break;
                }
                Ok(Some(b)) => {
                    own.push((*x, r.value));
                    refs.push((*x, b.value));
                }
                Ok(None) => own.push((*x, r.value)),
                Err(e) => {
                    why = Some(e);
                    break;
                }
            }
        }
        let label = group_label(group, sc);
        let why = why.or_else(|| crate::software::refusal(rs.iter().map(|(_, r)| *r)));
        if let Some(why) = why {
            inputs.push(format!("S{label} not measured: {why}"));
            continue;
        }
        let Some(b) = slope(&own) else {
            inputs.push(format!(
                "S{label} not measured: {} swept over fewer than two sizes of {}",
                sc.metric.name, sc.over
            ));
            continue;
        };
        let (b_ref, ref_label) = match sc.reference {
            Reference::Relative => (Some(1.0), "1 (the reference's cost per unit)".to_string()),
            Reference::Variant(v) => (slope(&refs), v.to_string()),
            Reference::Param(k, v) => (slope(&refs), format!("{k}={v}")),
            // Twins compare accuracy, not costs.
            Reference::Twins(_) => (None, String::new()),
        };
        let Some(b_ref) = b_ref.filter(|b| *b > 0.0) else {
            inputs.push(format!(
                "S{label} not measured: the reference's cost does not grow with {}",
                sc.over
            ));
            continue;
        };
        if b <= 0.0 {
            inputs.push(format!(
                "S{label} not measured: {} of {variant} does not grow with {} (slope {}): the \
                 marginal cost is below the timing noise, not zero",
                sc.metric.name,
                sc.over,
                fmt_value(b)
            ));
            continue;
        }
        let s = b_ref / (b_ref + b);
        let shape = rs
            .first()
            .and_then(|(_, r)| r.params.get(sc.over))
            .is_some_and(|v| v.trim().parse::<f64>().is_err());
        inputs.push(format!(
            "S{label} = b_ref / (b_ref + b) = {} / ({} + {}) = {s:.3}: marginal {} of {variant} \
             {} against {ref_label}{} ({} points)",
            fmt_value(b_ref),
            fmt_value(b_ref),
            fmt_value(b),
            sc.metric.name,
            per(b, shape),
            if matches!(sc.reference, Reference::Relative) {
                String::new()
            } else {
                format!(" {}", per(b_ref, shape))
            },
            own.len(),
        ));
        parts.push(s);
    }
    if groups.is_empty() {
        inputs.push(format!(
            "S not measured: no {} medians of {variant} over {}",
            sc.metric.name, sc.over
        ));
    }
    mean(&parts)
}

/// Whether `variant` is the variant `reference` names.
fn is_reference_variant(reference: Reference, variant: &str) -> bool {
    match reference {
        Reference::Variant(v) => v == variant,
        Reference::Twins(t) => t.reference == variant,
        _ => false,
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn predictability(
    records: &[Record],
    suite: &str,
    variant: &str,
    sc: &Scaling,
    inputs: &mut Vec<String>,
) -> Option<f64> {
    let mut preds = Vec::new();
    let groups = sweeps(records, suite, variant, sc);
    if groups.is_empty() {
        inputs.push(format!(
            "predictability not measured: no {} medians of {variant}",
            sc.metric.name
        ));
    }
    for (group, rs) in groups {
        let Some((_, last)) = rs.last() else { continue };
        let group = group_label(&group, sc);
        if let Some(why) = crate::software::refusal([*last]) {
            inputs.push(format!("predictability{group} not measured: {why}"));
            continue;
        }
        let stat = |s: Stat| {
            records.iter().find(|r| {
                r.suite == last.suite
                    && r.variant == last.variant
                    && r.metric == last.metric
                    && r.stat == s
                    && r.params == last.params
            })
        };
        let at = describe(last);
        let (Some(min), Some(p90)) = (stat(Stat::Min), stat(Stat::P90)) else {
            inputs.push(format!(
                "predictability{group} not measured: no min and p90 of {at}"
            ));
            continue;
        };
        if p90.n < MIN_N_SPREAD {
            inputs.push(format!(
                "predictability{group} not measured: p90 of {at} over n = {} < {MIN_N_SPREAD} \
                 samples is the maximum",
                p90.n
            ));
            continue;
        }
        let spread = match checked_diff(p90.value, min.value, &at) {
            Ok(d) if last.value > 0.0 => d,
            Ok(_) => {
                inputs.push(format!(
                    "predictability{group} not measured: median of {at} is {}",
                    last.value
                ));
                continue;
            }
            Err(e) => {
                inputs.push(format!("predictability{group} not measured: {e}"));
                continue;
            }
        };
        let p = (1.0 - spread / last.value).clamp(0.0, 1.0);
        inputs.push(format!(
            "predictability{group} = 1 − ({} − {}) / {} = {p:.3} (p90, min, median of {at}, \
             n = {})",
            fmt_value(p90.value),
            fmt_value(min.value),
            fmt_value(last.value),
            p90.n
        ));
        preds.push(p);
    }
    mean(&preds)
}

/// Retention of one accuracy record against its reference, with how it was computed.
fn retention_of(records: &[Record], r: &Record, acc: &Accuracy) -> Result<(f64, String), String> {
    let lower = acc.metric.direction == Direction::Lower;
    if !r.value.is_finite() {
        return Err(format!("{} is {}", describe(r), r.value));
    }
    match reference_of(records, r, acc.reference, &[])? {
        None if !(0.0..=1.0).contains(&r.value) => Err(format!(
            "{} = {} is not a share in [0, 1]",
            describe(r),
            r.value
        )),
        None if lower => Ok((
            1.0 - r.value,
            format!("1 − {} ({})", fmt_value(r.value), describe(r)),
        )),
        None => Ok((r.value, format!("{} ({})", fmt_value(r.value), describe(r)))),
        Some(b) => {
            let (num, den) = if lower {
                (b.value, r.value)
            } else {
                (r.value, b.value)
            };
            if !(num.is_finite() && den.is_finite() && num >= 0.0 && den > 0.0) {
                return Err(format!(
                    "cannot divide {} by {} ({} against {})",
                    num,
                    den,
                    describe(r),
                    describe(b)
                ));
            }
            let ret = (num / den).min(1.0);
            Ok((
                ret,
                format!(
                    "{} / {} capped at 1 ({} against {})",
                    fmt_value(num),
                    fmt_value(den),
                    describe(r),
                    describe(b)
                ),
            ))
        }
    }
}

fn retention(
    records: &[Record],
    suite: &str,
    variant: &str,
    spec: &MaturityInputs,
    inputs: &mut Vec<String>,
) -> Option<f64> {
    let mut worst: Option<(f64, String)> = None;
    let mut notes = Vec::new();
    for acc in spec.accuracy {
        if is_reference_variant(acc.reference, variant) {
            notes.push(format!(
                "{variant} is the {} reference of the others",
                acc.metric.name
            ));
            continue;
        }
        let stat_ok = |r: &Record| !matches!(r.stat, Stat::Min | Stat::P90 | Stat::P99);
        // Twins: the records are the twin's, in the twins' suite.
        let (suite, variant) = match acc.reference {
            Reference::Twins(t) => match t.of(variant) {
                Some(twin) => (t.suite, twin),
                None => {
                    notes.push(format!(
                        "{variant} has no twin trained alike in the {} suite",
                        t.suite
                    ));
                    continue;
                }
            },
            _ => (suite, variant),
        };
        for r in records.iter().filter(|r| {
            r.suite == suite
                && r.variant == variant
                && r.metric == acc.metric.name
                && stat_ok(r)
                && !is_reference_record(r, acc.reference)
        }) {
            // A Param reference applies only to records that have the param at another value.
            if let Reference::Param(k, _) = acc.reference {
                if !r.params.contains_key(k) {
                    continue;
                }
            }
            match retention_of(records, r, acc) {
                Ok((v, how)) => {
                    if worst.as_ref().is_none_or(|(w, _)| v < *w) {
                        worst = Some((v, how));
                    }
                }
                Err(e) => notes.push(e),
            }
        }
    }
    match worst {
        Some((v, how)) => {
            inputs.push(format!(
                "retention = {how} = {} (the worst measured)",
                fmt_value(v)
            ));
            Some(v)
        }
        None => {
            let names: Vec<&str> = spec.accuracy.iter().map(|a| a.metric.name).collect();
            inputs.push(if names.is_empty() {
                "retention not measured: the suite names no accuracy metric".into()
            } else if notes.is_empty() {
                format!(
                    "retention not measured: no {} of {variant} against a reference",
                    names.join(" or ")
                )
            } else {
                format!("retention not measured: {}", notes.join("; "))
            });
            None
        }
    }
}

fn controllability(
    records: &[Record],
    suite: &str,
    variant: &str,
    spec: &MaturityInputs,
    inputs: &mut Vec<String>,
) -> Option<f64> {
    let pred = match &spec.scaling {
        Some(sc) => predictability(records, suite, variant, sc, inputs),
        None => {
            inputs.push("predictability not measured: the suite names no swept cost".into());
            None
        }
    };
    let ret = retention(records, suite, variant, spec, inputs);
    match (pred, ret) {
        (Some(p), Some(r)) => {
            let c = p * r;
            inputs.push(format!("C = predictability × retention = {c:.3}"));
            Some(c)
        }
        _ => {
            inputs.push(format!(
                "C not measured: {} not measured",
                match (pred, ret) {
                    (None, None) => "predictability and retention",
                    (None, _) => "predictability",
                    _ => "retention",
                }
            ));
            None
        }
    }
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

/// Whether `r` is one of the outcomes its suite names for I: a deterministic outcome metric,
/// not a closed-form value (compared with themselves they are always identical).
fn is_outcome(r: &Record, spec: &MaturityInputs) -> bool {
    spec.outcomes.iter().any(|m| m.name == r.metric)
        && metrics::lookup(&r.metric).is_some_and(|m| m.kind == metrics::Kind::Deterministic)
        && r.params.get("source").map(String::as_str) != Some("analytic")
}

/// The records of `records` that I compares: every suite's outcome records. A run folder of
/// only these (without samples) is what the committed quick-scale baseline holds.
pub fn outcome_records(records: &[Record]) -> Vec<Record> {
    let mut specs: BTreeMap<&str, MaturityInputs> = BTreeMap::new();
    records
        .iter()
        .filter(|r| {
            let spec = specs.entry(r.suite.as_str()).or_insert_with(|| {
                infermark_suites::find_suite(&r.suite)
                    .map(|s| s.maturity())
                    .unwrap_or_default()
            });
            is_outcome(r, spec)
        })
        .map(|r| Record {
            samples: Vec::new(),
            ..r.clone()
        })
        .collect()
}

fn iterability(
    records: &[Record],
    baseline: Option<&[Record]>,
    suite: &str,
    variant: &str,
    spec: &MaturityInputs,
    inputs: &mut Vec<String>,
) -> Option<f64> {
    if spec.outcomes.is_empty() {
        inputs.push("I not measured: the suite names no outcome a change could move".into());
        return None;
    }
    let Some(baseline) = baseline else {
        inputs.push("I not measured: no baseline run given".into());
        return None;
    };
    let base: BTreeMap<_, f64> = baseline.iter().map(|r| (key(r), r.value)).collect();
    let det: Vec<&Record> = records
        .iter()
        .filter(|r| r.suite == suite && r.variant == variant && is_outcome(r, spec))
        // Only records the baseline also has can be compared (a run at another scale shares few).
        .filter(|r| base.contains_key(&key(r)))
        .collect();
    if det.is_empty() {
        inputs.push(
            "I not measured: no outcome records of this technique in common with the baseline"
                .into(),
        );
        return None;
    }
    let same = det
        .iter()
        .filter(|r| {
            base.get(&key(r)).is_some_and(|b| {
                checked_diff(*b, r.value, &describe(r))
                    .is_ok_and(|d| d.abs() <= 1e-12 * r.value.abs().max(1.0))
            })
        })
        .count();
    let i = same as f64 / det.len() as f64;
    let names: Vec<&str> = spec.outcomes.iter().map(|m| m.name).collect();
    inputs.push(format!(
        "I = {same} of {} outcome records identical in the baseline = {i:.3} ({})",
        det.len(),
        names.join(", ")
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
            let s = match &spec.scaling {
                Some(sc) => scalability(records, &suite, &variant, sc, &mut inputs),
                None => {
                    inputs.push("S not measured: the suite names no cost swept over a size".into());
                    None
                }
            };
            let c = controllability(records, &suite, &variant, &spec, &mut inputs);
            let i = iterability(records, baseline, &suite, &variant, &spec, &mut inputs);
            let missing: Vec<&'static str> = [("S", s), ("C", c), ("I", i)]
                .into_iter()
                .filter(|(_, x)| x.is_none())
                .map(|(n, _)| n)
                .collect();
            let m = match (s, c, i) {
                (Some(s), Some(c), Some(i)) => {
                    Some((w.s * s + w.c * c + w.i * i) / (w.s + w.c + w.i))
                }
                _ => {
                    inputs.push(format!("M not shown: {} not measured", missing.join(", ")));
                    None
                }
            };
            Score {
                suite,
                technique: variant,
                s,
                c,
                i,
                m,
                missing,
                inputs,
            }
        })
        .collect()
}
