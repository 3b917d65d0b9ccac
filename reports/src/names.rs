//! Metric and suite names as the TOML data files give them (the claims ledger, the gate rules):
//! each is checked against the registries when the file is loaded, and an unknown one is an
//! error that names the file, the line, the name and the names that are known.

use std::collections::BTreeMap;
use std::path::Path;

use infermark_suites::machine;
use serde::Deserialize;
use toml::Spanned;

use crate::metrics;
use crate::{ReportError, Result};

/// A selector as written, with where each value stands in the file.
pub(crate) type SpannedSelector = BTreeMap<String, Spanned<String>>;

/// Every suite name a record can carry: the registry's suites and the machine's limits.
pub fn known_suites() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = infermark_suites::registry()
        .iter()
        .map(|s| s.name())
        .collect();
    names.push(machine::SUITE);
    names
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn unknown(
    text: &str,
    path: &Path,
    at: &Spanned<String>,
    kind: &str,
    what: &str,
    known: &[&str],
) -> ReportError {
    ReportError::Malformed {
        path: path.to_path_buf(),
        reason: format!(
            "line {}: unknown {kind} `{}` in {what} (known {kind}s: {})",
            line_of(text, at.span().start),
            at.get_ref(),
            known.join(", ")
        ),
    }
}

/// Checks that `metric` (as written in `text`, the contents of `path`) is in the registry.
pub(crate) fn check_metric(
    text: &str,
    path: &Path,
    metric: &Spanned<String>,
    what: &str,
) -> Result<()> {
    if metrics::lookup(metric.get_ref()).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = metrics::ALL.iter().map(|m| m.name).collect();
    Err(unknown(text, path, metric, "metric", what, &known))
}

/// Checks that the `suite` a selector names, if any, is a known suite.
pub(crate) fn check_selector(
    text: &str,
    path: &Path,
    sel: &SpannedSelector,
    what: &str,
) -> Result<()> {
    let Some(suite) = sel.get("suite") else {
        return Ok(());
    };
    let known = known_suites();
    if known.contains(&suite.get_ref().as_str()) {
        return Ok(());
    }
    Err(unknown(text, path, suite, "suite", what, &known))
}

/// One test of a data file as written, with where its names stand: a claims ledger's check
/// (`label`, `metric`, `a`, `b`) or a gate rule (`name`, `metric`, `select`, `over`). Other
/// fields are left to the file's own parser.
#[derive(Deserialize)]
pub(crate) struct SpannedTest {
    #[serde(alias = "name")]
    pub label: String,
    pub metric: Spanned<String>,
    #[serde(default, alias = "select")]
    pub a: SpannedSelector,
    #[serde(default, alias = "over")]
    pub b: Option<SpannedSelector>,
}

impl SpannedTest {
    /// Checks the metric and both selectors; `kind` names the test in messages (`check`, `rule`).
    pub(crate) fn check(&self, text: &str, path: &Path, kind: &str) -> Result<()> {
        let what = format!("{kind} `{}`", self.label);
        let what = what.as_str();
        check_metric(text, path, &self.metric, what)?;
        for sel in [Some(&self.a), self.b.as_ref()].into_iter().flatten() {
            check_selector(text, path, sel, what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }

    #[test]
    fn the_machine_is_a_known_suite() {
        assert!(known_suites().contains(&machine::SUITE));
        for suite in infermark_suites::registry() {
            assert!(known_suites().contains(&suite.name()));
        }
    }
}
