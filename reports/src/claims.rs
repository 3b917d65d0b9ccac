//! The claims ledger: the seed document's quantitative claims (`reports/claims.toml`, a data
//! file) evaluated on a run's records.

use infermark_suites::Record;
use serde::{Deserialize, Serialize};

use crate::select::{describe, one, Selector};
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
}

/// The verdict on a claim.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClaimVerdict {
    /// Claim id.
    pub id: String,
    /// The claim.
    pub text: String,
    /// `reproduced`, `not reproduced` or `not measured`.
    pub verdict: String,
    /// Each check: label, measured value and conditions, or what is missing.
    pub details: Vec<String>,
}

/// Parses a ledger.
pub fn parse(text: &str) -> Result<Ledger> {
    let ledger: Ledger = toml::from_str(text).map_err(|e| ReportError::Malformed {
        path: "reports/claims.toml".into(),
        reason: e.to_string().trim_end().to_string(),
    })?;
    for c in ledger.claims.iter().flat_map(|c| &c.checks) {
        let picks = [Some(&c.a), c.b.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("pick"));
        if let Some(p) = picks.into_iter().find(|p| p.as_str() != "best") {
            return Err(ReportError::Malformed {
                path: "reports/claims.toml".into(),
                reason: format!("check `{}`: pick `{p}` (known: best)", c.label),
            });
        }
        let two = matches!(c.test.as_str(), "ratio" | "speedup" | "reduction");
        let known = two || matches!(c.test.as_str(), "at_least" | "at_most");
        if !known || two != c.b.is_some() {
            return Err(ReportError::Malformed {
                path: "reports/claims.toml".into(),
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
            let mut details = Vec::new();
            let (mut missing, mut failed) = (false, false);
            for c in &claim.checks {
                let a = one(records, &c.metric, &c.a);
                let b = c.b.as_ref().map(|b| one(records, &c.metric, b));
                let (a, b) = match (a, b) {
                    (Err(e), _) | (_, Some(Err(e))) => {
                        missing = true;
                        details.push(format!("{}: not measured ({e})", c.label));
                        continue;
                    }
                    (Ok(a), b) => (a, b.map(|b| b.expect("matched above"))),
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
                    _ => (a.value, format!("{}", a.value)),
                };
                let pass = match c.test.as_str() {
                    "at_most" => value <= c.threshold,
                    _ => value >= c.threshold,
                };
                failed |= !pass;
                let against = b
                    .map(|b| {
                        format!(
                            " against {} = {}",
                            describe(&c.metric, &c.b.clone().unwrap_or_default()),
                            b.value
                        )
                    })
                    .unwrap_or_default();
                details.push(format!(
                    "{}: {shown} ({} threshold {}) — {} = {} {}{against} → {}",
                    c.label,
                    c.test,
                    c.threshold,
                    describe(&c.metric, &c.a),
                    a.value,
                    conditions(a),
                    if pass { "holds" } else { "does not hold" }
                ));
            }
            let verdict = if missing {
                "not measured"
            } else if failed {
                "not reproduced"
            } else {
                "reproduced"
            };
            ClaimVerdict {
                id: claim.id.clone(),
                text: claim.text.clone(),
                verdict: verdict.into(),
                details,
            }
        })
        .collect()
}
