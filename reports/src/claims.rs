//! The claims ledger: the seed document's quantitative claims (`reports/claims.toml`, a data
//! file) evaluated on a run's records. An unknown metric or suite in it is a load error naming
//! its line ([`crate::names`]).

use std::path::Path;

use infermark_suites::Record;
use serde::{Deserialize, Serialize};

use crate::interval::{self, Side};
use crate::names::SpannedTest;
use crate::select::{describe, one, one_pair, Selector};
use crate::table::fmt_value;
use crate::{ReportError, Result};

/// The ledger shipped with infermark.
pub const LEDGER: &str = include_str!("../claims.toml");

/// All claims.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// Claims in report order.
    #[serde(rename = "claim")]
    pub claims: Vec<Claim>,
}

/// One claim and the checks that test it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Stable identifier.
    pub id: String,
    /// The claim as stated.
    pub text: String,
    /// All must pass for the claim to count as reproduced.
    #[serde(rename = "check")]
    pub checks: Vec<Check>,
}

/// A test of one number.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What is tested.
    pub label: String,
    /// Metric.
    pub metric: String,
    /// `at_least`, `at_most`, `ratio`, `speedup` or `reduction`.
    pub test: String,
    /// The record tested.
    pub a: Selector,
    /// The reference record, for two-record tests.
    pub b: Option<Selector>,
    /// Threshold of the test.
    pub threshold: f64,
    /// Parameters `a` and `b` may differ in (two-record tests; every other parameter both
    /// records carry must be equal), e.g. the batch each KV policy admits.
    #[serde(default)]
    pub vary: Vec<String>,
    /// Smallest run scale whose records count (`smoke`, `quick`, `full`; default `quick`):
    /// below it the check says "not measured at this scale".
    #[serde(default = "default_scale")]
    pub min_scale: String,
    /// Fewest samples a timed (noisy) record needs (default 3).
    #[serde(default = "default_n")]
    pub min_n: u64,
}

fn default_scale() -> String {
    "quick".into()
}

fn default_n() -> u64 {
    3
}

/// Whether `r` was measured at `min_scale` or above, with enough samples if it is timed.
fn adequate(r: &Record, c: &Check) -> std::result::Result<(), String> {
    let rank = |s: &str| ["smoke", "quick", "full"].iter().position(|x| *x == s);
    if rank(&r.scale) < rank(&c.min_scale) {
        return Err(format!(
            "not measured at this scale ({} {} record at scale {}; the claim needs {} or larger)",
            r.variant, r.metric, r.scale, c.min_scale
        ));
    }
    let noisy =
        crate::metrics::lookup(&r.metric).is_some_and(|m| m.kind == crate::metrics::Kind::Noisy);
    if noisy && r.n < c.min_n {
        return Err(format!(
            "not measured at this scale ({} {} timed over n = {}; the claim needs n ≥ {})",
            r.variant, r.metric, r.n, c.min_n
        ));
    }
    Ok(())
}

/// The verdict on a claim.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClaimVerdict {
    /// Claim id.
    pub id: String,
    /// The claim.
    pub text: String,
    /// `reproduced`, `not reproduced`, `inconclusive at this n` (a timed check's 95% interval
    /// contains its threshold), `not measured` or, when a check would rest on a timing from a
    /// software device, [`crate::software::NOT_COMPARABLE`].
    pub verdict: String,
    /// Each check: label, measured value and conditions, or what is missing.
    pub details: Vec<String>,
    /// Each check in one short line: label and measured figure against its threshold, or
    /// `label: not measured` (the run's summary screen; `details` say why and how).
    pub figures: Vec<String>,
}

/// The verdict of a claim whose timed check's interval contains its threshold.
pub const INCONCLUSIVE: &str = "inconclusive at this n";

/// A timed check's 95% interval (see [`crate::interval`]) as `[95% CI lo–hi]` in the units
/// the check shows, and where it stands against the threshold; without an interval (no
/// samples kept, or too few for 95%) the check cannot be decided and says what would.
fn uncertainty(c: &Check, a: &Record, b: Option<&Record>, value: f64) -> (Side, String) {
    let at_most = c.test == "at_most";
    let iv = match b {
        Some(b) if a.samples.is_empty() || b.samples.is_empty() => Err(None),
        Some(b) => interval::ratio(&a.samples, &b.samples).map_err(Some),
        None if a.samples.is_empty() => Err(None),
        None => interval::median(&a.samples).map_err(Some),
    };
    let n = b.map_or(a.samples.len(), |b| a.samples.len().min(b.samples.len()));
    let iv = match iv {
        Ok(iv) => iv,
        Err(None) => {
            return (
                Side::Straddles,
                " [no samples kept: rerun to measure its interval]".into(),
            )
        }
        Err(Some(interval::NoInterval::TooFew { needs })) => {
            let per = if b.is_some() { " per side" } else { "" };
            return (
                Side::Straddles,
                format!(" [n = {n}: a 95% interval needs n ≥ {needs}{per}]"),
            );
        }
        Err(Some(interval::NoInterval::BadSample(x))) => {
            return (
                Side::Straddles,
                format!(" [a sample is {x}: no interval; rerun to measure one]"),
            );
        }
    };
    // The interval of a / b, in the form the test reads.
    let (lo, hi) = match c.test.as_str() {
        "speedup" => (1.0 / iv.hi, 1.0 / iv.lo),
        "reduction" => (1.0 - iv.hi, 1.0 - iv.lo),
        _ => (iv.lo, iv.hi),
    };
    let side = interval::side(lo, hi, c.threshold, at_most);
    let shown = |x: f64| match c.test.as_str() {
        "ratio" | "speedup" => format!("{x:.3}x"),
        "reduction" => format!("{:.1}%", x * 100.0),
        _ => fmt_value(x),
    };
    let mut text = format!(" [95% CI {}–{}, n = {n}]", shown(lo), shown(hi));
    if side == Side::Straddles {
        let (est, t, ivx) = match c.test.as_str() {
            // The threshold on a / b's scale, where the interval is a factor.
            "speedup" => (1.0 / value, 1.0 / c.threshold, iv),
            "reduction" => (1.0 - value, 1.0 - c.threshold, iv),
            _ => (value, c.threshold, iv),
        };
        text.push_str(&match interval::n_to_decide(n, est, &ivx, t) {
            Some(k) => {
                format!(" inconclusive: about n = {k} per side would decide it at this spread")
            }
            None => " inconclusive: the estimate sits on the threshold".into(),
        });
    }
    (side, text)
}

/// The ledger as written, for the places of its names.
#[derive(Deserialize)]
struct SpannedLedger {
    claim: Vec<SpannedClaim>,
}

#[derive(Deserialize)]
struct SpannedClaim {
    check: Vec<SpannedTest>,
}

/// Parses the shipped ledger (`reports/claims.toml`).
pub fn parse(text: &str) -> Result<Ledger> {
    parse_at(text, Path::new(LEDGER_PATH))
}

/// Where the shipped ledger lives, for messages.
pub const LEDGER_PATH: &str = "reports/claims.toml";

/// Parses a ledger read from `path`; an unknown metric or suite is an error naming its line.
pub fn parse_at(text: &str, path: &Path) -> Result<Ledger> {
    let malformed = |e: toml::de::Error| ReportError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string().trim_end().to_string(),
    };
    let ledger: Ledger = toml::from_str(text).map_err(malformed)?;
    let spanned: SpannedLedger = toml::from_str(text).map_err(malformed)?;
    for check in spanned.claim.iter().flat_map(|c| &c.check) {
        check.check(text, path, "check")?;
    }
    for c in ledger.claims.iter().flat_map(|c| &c.checks) {
        if !["smoke", "quick", "full"].contains(&c.min_scale.as_str()) {
            return Err(ReportError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "check `{}`: min_scale `{}` (smoke, quick or full)",
                    c.label, c.min_scale
                ),
            });
        }
        if c.b.is_some()
            && [Some(&c.a), c.b.as_ref()]
                .into_iter()
                .flatten()
                .any(|s| s.contains_key("pick"))
        {
            return Err(ReportError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "check `{}`: `pick` applies to one-record tests only",
                    c.label
                ),
            });
        }
        let picks = [Some(&c.a), c.b.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("pick"));
        if let Some(p) = picks.into_iter().find(|p| p.as_str() != "best") {
            return Err(ReportError::Malformed {
                path: path.to_path_buf(),
                reason: format!("check `{}`: pick `{p}` (known: best)", c.label),
            });
        }
        let two = matches!(c.test.as_str(), "ratio" | "speedup" | "reduction");
        let known = two || matches!(c.test.as_str(), "at_least" | "at_most");
        if !known || two != c.b.is_some() {
            return Err(ReportError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "check `{}`: test `{}` with{} `b`",
                    c.label,
                    c.test,
                    if c.b.is_some() { "" } else { "out" }
                ),
            });
        }
    }
    Ok(ledger)
}

fn conditions(r: &Record) -> String {
    let p: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} {} n={} ({} {}, {}, {})",
        r.stat.name(),
        r.unit,
        r.n,
        r.variant,
        p.join(" "),
        r.backend,
        r.scale
    )
}

/// Evaluates every claim on `records`.
pub fn evaluate(ledger: &Ledger, records: &[Record]) -> Vec<ClaimVerdict> {
    ledger
        .claims
        .iter()
        .map(|claim| {
            let (mut details, mut figures) = (Vec::new(), Vec::new());
            let (mut missing, mut failed, mut unsure, mut software) = (false, false, false, false);
            for c in &claim.checks {
                let picked = match &c.b {
                    Some(b) => {
                        one_pair(records, &c.metric, &c.a, b, &c.vary).map(|(a, b)| (a, Some(b)))
                    }
                    None => one(records, &c.metric, &c.a).map(|a| (a, None)),
                };
                if let Some(why) = picked.as_ref().ok().and_then(|(a, b)| {
                    crate::software::refusal([Some(*a), *b].into_iter().flatten())
                }) {
                    software = true;
                    details.push(format!("{}: {why}", c.label));
                    figures.push(format!("{}: {}", c.label, crate::software::NOT_COMPARABLE));
                    continue;
                }
                let checked = picked.and_then(|(a, b)| {
                    adequate(a, c)?;
                    if let Some(b) = b {
                        adequate(b, c)?;
                        if b.value == 0.0 || !b.value.is_finite() || !a.value.is_finite() {
                            return Err(format!(
                                "cannot compare: {} = {} against {} = {}",
                                describe(&c.metric, &c.a),
                                a.value,
                                describe(&c.metric, c.b.as_ref().expect("two-record test")),
                                b.value
                            ));
                        }
                    }
                    Ok((a, b))
                });
                let (a, b) = match checked {
                    Err(e) => {
                        missing = true;
                        details.push(format!("{}: not measured ({e})", c.label));
                        figures.push(format!("{}: not measured", c.label));
                        continue;
                    }
                    Ok(x) => x,
                };
                let (value, shown) = match (c.test.as_str(), b) {
                    ("ratio", Some(b)) => (a.value / b.value, format!("{:.3}x", a.value / b.value)),
                    ("speedup", Some(b)) => {
                        (b.value / a.value, format!("{:.3}x", b.value / a.value))
                    }
                    ("reduction", Some(b)) => (
                        1.0 - a.value / b.value,
                        format!("{:.1}% less", (1.0 - a.value / b.value) * 100.0),
                    ),
                    _ => (a.value, fmt_value(a.value)),
                };
                let at_most = c.test == "at_most";
                let point = match at_most {
                    true => value <= c.threshold,
                    false => value >= c.threshold,
                };
                let timed = crate::metrics::lookup(&c.metric)
                    .is_some_and(|m| m.kind == crate::metrics::Kind::Noisy);
                let (side, spread) = if timed {
                    uncertainty(c, a, b, value)
                } else {
                    let side = if point { Side::Holds } else { Side::Fails };
                    (side, String::new())
                };
                failed |= side == Side::Fails;
                unsure |= side == Side::Straddles;
                let against = b
                    .map(|b| {
                        format!(
                            " against {} = {}",
                            describe(&c.metric, &c.b.clone().unwrap_or_default()),
                            fmt_value(b.value)
                        )
                    })
                    .unwrap_or_default();
                let figure = format!(
                    "{}: {shown}{spread} ({} threshold {})",
                    c.label, c.test, c.threshold
                );
                details.push(format!(
                    "{figure} — {} = {} {}{against} → {}",
                    describe(&c.metric, &c.a),
                    fmt_value(a.value),
                    conditions(a),
                    match side {
                        Side::Holds => "holds",
                        Side::Fails => "does not hold",
                        Side::Straddles => "cannot tell at this n",
                    }
                ));
                figures.push(figure);
            }
            let verdict = if software {
                crate::software::NOT_COMPARABLE
            } else if missing {
                "not measured"
            } else if failed {
                "not reproduced"
            } else if unsure {
                INCONCLUSIVE
            } else {
                "reproduced"
            };
            ClaimVerdict {
                id: claim.id.clone(),
                text: claim.text.clone(),
                verdict: verdict.into(),
                details,
                figures,
            }
        })
        .collect()
}
