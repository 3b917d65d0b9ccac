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

/// Records of `metric` that match `sel`.
pub fn select<'a>(records: &'a [Record], metric: &str, sel: &Selector) -> Vec<&'a Record> {
    let mut out: Vec<&Record> = records
        .iter()
        .filter(|r| r.metric == metric)
        .filter(|r| sel.contains_key("stat") || matches!(r.stat, Stat::Exact | Stat::Median))
        .filter(|r| {
            sel.iter()
                .all(|(k, v)| k == PICK || wants_max(k, v) || field(r, k) == Some(v.as_str()))
        })
        .collect();
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
    for (k, _) in sel.iter().filter(|(k, v)| wants_max(k, v)) {
        let num = |r: &Record| field(r, k).and_then(|x| x.parse::<f64>().ok());
        let best = out
            .iter()
            .filter_map(|r| num(r))
            .fold(f64::NEG_INFINITY, f64::max);
        out.retain(|r| num(r) == Some(best));
    }
    out
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
