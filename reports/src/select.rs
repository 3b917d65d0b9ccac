//! Picking records by a selector: `suite`, `experiment`, `variant` and `stat` match record
//! fields, every other key matches a parameter. A parameter value of `max` keeps the records with
//! the largest numeric value of that parameter (e.g. `ctx = "max"`: the longest context). Without a
//! `stat` key only headline statistics (exact, median) match. `pick = "best"` keeps the one record
//! with the best value (by the metric's direction) among those that match: a claim about the best
//! configuration a run found, whose conditions the verdict then shows.

use std::collections::BTreeMap;

use infermark_suites::{Record, Stat};

/// Key → wanted value.
pub type Selector = BTreeMap<String, String>;

const FIELDS: [&str; 4] = ["suite", "experiment", "variant", "stat"];

/// The key that picks the best of the matching records.
const PICK: &str = "pick";

/// A parameter (not a record field) asked for at its largest value.
fn wants_max(key: &str, value: &str) -> bool {
    value == "max" && !FIELDS.contains(&key) && key != PICK
}

fn field<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    match key {
        "suite" => Some(&r.suite),
        "experiment" => Some(&r.experiment),
        "variant" => Some(&r.variant),
        "stat" => Some(r.stat.name()),
        _ => r.params.get(key).map(String::as_str),
    }
}

/// Records of `metric` that match `sel`'s fixed values (its `max` keys and `pick` not applied).
fn matching<'a>(records: &'a [Record], metric: &str, sel: &Selector) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.metric == metric)
        .filter(|r| sel.contains_key("stat") || matches!(r.stat, Stat::Exact | Stat::Median))
        .filter(|r| {
            sel.iter()
                .all(|(k, v)| k == PICK || wants_max(k, v) || field(r, k) == Some(v.as_str()))
        })
        .collect()
}

/// Keeps the items whose record (`of`) has the largest numeric value of each `max` key of `sel`.
fn keep_max<T>(mut out: Vec<T>, sel: &Selector, of: impl Fn(&T) -> &Record) -> Vec<T> {
    for (k, _) in sel.iter().filter(|(k, v)| wants_max(k, v)) {
        let num = |r: &Record| field(r, k).and_then(|x| x.parse::<f64>().ok());
        let best = out
            .iter()
            .filter_map(|x| num(of(x)))
            .fold(f64::NEG_INFINITY, f64::max);
        out.retain(|x| num(of(x)) == Some(best));
    }
    out
}

/// Records of `metric` that match `sel`.
pub fn select<'a>(records: &'a [Record], metric: &str, sel: &Selector) -> Vec<&'a Record> {
    let mut out = keep_max(matching(records, metric, sel), sel, |r| r);
    match sel.get(PICK).map(String::as_str) {
        None => {}
        Some("best") => {
            let higher = infermark_suites::metric::lookup(metric)
                .is_none_or(|m| m.direction == infermark_suites::metric::Direction::Higher);
            let best = out
                .iter()
                .copied()
                .filter(|r| r.value.is_finite())
                .reduce(
                    |a, b| match (higher, b.value > a.value, b.value < a.value) {
                        (true, true, _) | (false, _, true) => b,
                        _ => a,
                    },
                );
            out = best.into_iter().collect();
        }
        // An unknown pick matches nothing (the ledger's parser refuses it first).
        Some(_) => out.clear(),
    }
    out
}

/// The one pair of records `a` and `b` select that compare like with like: they agree on every
/// parameter both records carry, except those listed in `vary` (allowed to differ, e.g. the batch
/// each KV policy admits) and those both selectors fix to values of their own (e.g. `variant`).
/// `max` keys are applied to the joined pairs, so `ctx = "max"` is the longest context both have.
pub fn one_pair<'a>(
    records: &'a [Record],
    metric: &str,
    a: &Selector,
    b: &Selector,
    vary: &[String],
) -> Result<(&'a Record, &'a Record), String> {
    let fixed = |sel: &Selector, k: &str| sel.get(k).is_some_and(|v| !wants_max(k, v));
    let joined = |x: &Record, y: &Record| {
        x.params.iter().all(|(k, v)| {
            vary.contains(k)
                || (fixed(a, k) && fixed(b, k))
                || y.params.get(k).is_none_or(|w| w == v)
        })
    };
    let (xs, ys) = (matching(records, metric, a), matching(records, metric, b));
    let pairs: Vec<(&Record, &Record)> = xs
        .iter()
        .flat_map(|&x| ys.iter().map(move |&y| (x, y)))
        .filter(|(x, y)| joined(x, y))
        .collect();
    let pairs = keep_max(keep_max(pairs, a, |p| p.0), b, |p| p.1);
    match pairs.as_slice() {
        [p] => Ok(*p),
        [] if xs.is_empty() => Err(format!("no record matches {}", describe(metric, a))),
        [] if ys.is_empty() => Err(format!("no record matches {}", describe(metric, b))),
        [] => Err(format!(
            "no record of {} shares its conditions with one of {} ({} and {} records)",
            describe(metric, a),
            describe(metric, b),
            xs.len(),
            ys.len()
        )),
        many => Err(format!(
            "{} pairs of {} and {} match; narrow the selectors",
            many.len(),
            describe(metric, a),
            describe(metric, b)
        )),
    }
}

/// `key=value` pairs for messages.
pub fn describe(metric: &str, sel: &Selector) -> String {
    let kv: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{metric}[{}]", kv.join(" "))
}

/// The single record `sel` picks, or why there is none.
pub fn one<'a>(records: &'a [Record], metric: &str, sel: &Selector) -> Result<&'a Record, String> {
    match select(records, metric, sel).as_slice() {
        [r] => Ok(r),
        [] => Err(format!("no record matches {}", describe(metric, sel))),
        many => Err(format!(
            "{} records match {}; narrow the selector",
            many.len(),
            describe(metric, sel)
        )),
    }
}

/// Whether `r`'s params hold every `(key, value)` of `want`.
pub fn has_params(r: &Record, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| r.params.get(*k).map(String::as_str) == Some(*v))
}
