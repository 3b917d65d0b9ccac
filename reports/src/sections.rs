//! Every suite's own part of the report: the report asks each registered suite for its section
//! ([`infermark_suites::Suite::report`]) and renders it with [`crate::section`]; it never tests
//! a suite's name.

use infermark_suites::{registry, Record};

use crate::charts::{sweep_charts, Chart};
use crate::pivot::Pivot;
use crate::section;
use crate::Result;

/// Every chart of the report: the suites' own, then one per metric with a `ctx` sweep.
pub fn charts(records: &[Record]) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    for suite in registry() {
        out.extend(section::charts(suite.name(), suite.report(), records)?);
    }
    out.extend(sweep_charts(records)?);
    Ok(out)
}

/// The tables of `suite`'s own section (none for a suite this build does not have).
pub fn pivots(suite: &str, records: &[Record]) -> Vec<Pivot> {
    registry()
        .into_iter()
        .filter(|s| s.name() == suite)
        .flat_map(|s| section::tables(s.name(), s.report(), records))
        .collect()
}
