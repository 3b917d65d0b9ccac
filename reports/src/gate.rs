//! The regression gate: rules (TOML) name a metric and a record selector, optionally a
//! denominator (`over`) for ratios measured within one run, a tolerance on relative change
//! against the baseline run, and absolute bounds. Deterministic metrics must match the baseline
//! within the tolerance in both directions (unless the rule says `one_sided = "why"`); noisy
//! ones are only gated as within-run ratios with generous tolerances, against worsening. Runs of
//! another scale, backend or seed are refused ([`comparable`]).
//!
//! ```toml
//! [[rule]]
//! name = "GQA KV bytes per token"
//! metric = "kv_cache_bytes_per_token"
//! select = { variant = "gqa", preset = "llama3-8b", source = "measured" }
//! tolerance = 0.0
//!
//! [[rule]]
//! name = "GQA vs MHA decode core latency"
//! metric = "decode_latency_ms"
//! select = { variant = "gqa", preset = "tiny", ctx = "256", part = "core" }
//! over = { variant = "mha", preset = "tiny", ctx = "256", part = "core" }
//! tolerance = 1.0
//! ```

use std::path::Path;

use infermark_suites::Record;
use serde::{Deserialize, Serialize};

use crate::metrics::{self, Kind};
use crate::names::SpannedTest;
use crate::select::{one, Selector};
use crate::{ReportError, Result};

/// A rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The rules, in order.
    #[serde(rename = "rule", default)]
    pub rules: Vec<Rule>,
}

/// One gate rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Shown in the verdict table.
    pub name: String,
    /// Metric, as in the registry.
    pub metric: String,
    /// Picks exactly one record.
    #[serde(default)]
    pub select: Selector,
    /// When present, the value is select / over (same metric, same run).
    pub over: Option<Selector>,
    /// Largest allowed worsening relative to the baseline (0.1 = 10% worse), in the metric's
    /// direction.
    #[serde(default)]
    pub tolerance: f64,
    /// Absolute upper bound on the current value.
    pub max: Option<f64>,
    /// Absolute lower bound on the current value.
    pub min: Option<f64>,
    /// Why a deterministic metric may improve past the tolerance (without it, a deterministic
    /// value must match the baseline within the tolerance in both directions: bytes per token
    /// halved because V was dropped is a change, not a win).
    pub one_sided: Option<String>,
}

/// The outcome of one rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// Rule name.
    pub rule: String,
    /// Baseline value, when found.
    pub baseline: Option<f64>,
    /// Current value, when found.
    pub current: Option<f64>,
    /// Relative change, positive = better.
    pub improvement: Option<f64>,
    /// Pass or fail.
    pub pass: bool,
    /// Why.
    pub note: String,
}

/// A rules file as written, for the places of its names.
#[derive(Deserialize)]
struct SpannedRules {
    #[serde(default)]
    rule: Vec<SpannedTest>,
}

/// Parses a rules file; errors name the file and the line at fault, and unknown metrics and
/// suites with the known ones.
pub fn parse_rules(text: &str, path: &Path) -> Result<Rules> {
    let malformed = |e: toml::de::Error| ReportError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string().trim_end().to_string(),
    };
    let rules: Rules = toml::from_str(text).map_err(malformed)?;
    let spanned: SpannedRules = toml::from_str(text).map_err(malformed)?;
    for rule in &spanned.rule {
        rule.check(text, path, "rule")?;
    }
    for r in &rules.rules {
        let noisy = metrics::lookup(&r.metric).is_some_and(|m| m.kind == Kind::Noisy);
        if noisy && r.over.is_none() && (r.tolerance < 0.5 || r.max.is_some() || r.min.is_some()) {
            return Err(ReportError::Malformed {
                path: path.to_path_buf(),
                reason: format!(
                    "rule `{}`: `{}` is noisy; gate it as a ratio within one run (`over = {{...}}`)",
                    r.name, r.metric
                ),
            });
        }
    }
    if rules.rules.is_empty() {
        return Err(ReportError::Malformed {
            path: path.to_path_buf(),
            reason: "no [[rule]] entries".into(),
        });
    }
    Ok(rules)
}

fn value(records: &[Record], rule: &Rule) -> std::result::Result<f64, String> {
    let v = one(records, &rule.metric, &rule.select)?.value;
    match &rule.over {
        None => Ok(v),
        Some(over) => {
            let d = one(records, &rule.metric, over)?.value;
            if d == 0.0 {
                return Err("denominator is zero".into());
            }
            Ok(v / d)
        }
    }
}

/// Refuses to compare runs of different scale, backend or seed: their values differ by design.
pub fn comparable(
    run: &infermark_suites::env::RunEnv,
    baseline: &infermark_suites::env::RunEnv,
) -> std::result::Result<(), String> {
    let pairs = [
        ("scale", &run.scale, &baseline.scale),
        ("backend", &run.backend, &baseline.backend),
    ];
    let mut diffs: Vec<String> = pairs
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(k, a, b)| format!("{k} {a} vs {b}"))
        .collect();
    if run.seed != baseline.seed {
        diffs.push(format!("seed {} vs {}", run.seed, baseline.seed));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the run and the baseline are not comparable ({}); gate runs made with the same scale, backend and seed",
            diffs.join(", ")
        ))
    }
}

/// Evaluates every rule on `run` against `baseline`.
pub fn evaluate(rules: &Rules, run: &[Record], baseline: &[Record]) -> Vec<Verdict> {
    rules
        .rules
        .iter()
        .map(|rule| {
            let metric = metrics::lookup(&rule.metric).expect("checked by parse_rules");
            let (cur, base) = (value(run, rule), value(baseline, rule));
            let mut v = Verdict {
                rule: rule.name.clone(),
                baseline: base.as_ref().ok().copied(),
                current: cur.as_ref().ok().copied(),
                improvement: None,
                pass: false,
                note: String::new(),
            };
            let (cur, base) = match (cur, base) {
                (Err(e), _) => {
                    v.note = format!("run lacks it: {e}");
                    return v;
                }
                (_, Err(e)) => {
                    v.note = format!("baseline lacks it: {e}");
                    return v;
                }
                (Ok(c), Ok(b)) => (c, b),
            };
            // `+ 0.0` turns a negative zero into zero for display.
            let imp = metrics::relative_improvement(metric, base, cur) + 0.0;
            v.improvement = Some(imp);
            let mut problems = Vec::new();
            let two_sided = metric.kind == Kind::Deterministic && rule.one_sided.is_none();
            if two_sided && imp > rule.tolerance + 1e-12 {
                problems.push(format!(
                    "changed by {:+.1}% against the baseline (deterministic: must match within {:.1}% both ways; a rule may allow improvements with `one_sided = \"why\"`)",
                    imp * 100.0,
                    rule.tolerance * 100.0
                ));
            }
            if -imp > rule.tolerance + 1e-12 {
                problems.push(format!(
                    "{:.1}% worse than baseline (tolerance {:.1}%)",
                    -imp * 100.0,
                    rule.tolerance * 100.0
                ));
            }
            if let Some(max) = rule.max.filter(|&m| cur > m) {
                problems.push(format!("above the bound {max}"));
            }
            if let Some(min) = rule.min.filter(|&m| cur < m) {
                problems.push(format!("below the bound {min}"));
            }
            v.pass = problems.is_empty();
            v.note = if v.pass {
                let kind = if rule.over.is_some() {
                    "ratio within the run"
                } else {
                    "value"
                };
                format!("{kind}, {:+.1}%", imp * 100.0)
            } else {
                problems.join("; ")
            };
            v
        })
        .collect()
}

/// The failed rules alone, one line each: the rule, the baseline and current values, and why
/// (the change against its tolerance, or the bound it broke); `None` when every rule passes.
/// Printed last, so a failing gate's reason is on the screen without scrolling.
pub fn failures(verdicts: &[Verdict]) -> Option<String> {
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.pass)
        .map(|v| {
            crate::format::failure_line(
                &v.rule,
                ("baseline", v.baseline),
                ("current", v.current),
                &v.note,
            )
        })
        .collect();
    crate::format::failure_screen(&failed, FAILURES_SHOWN, "every rule: the table above")
}

/// Failed rules or records printed on the last screen.
pub const FAILURES_SHOWN: usize = 20;
