//! The list of suite sections: what each suite adds to the report beyond the generic parts.
//! The report asks every section for its suite's charts and tables, and never tests a suite's
//! name.

use infermark_suites::Record;

use crate::charts::{sweep_charts, Chart};
use crate::section::SuiteSection;
use crate::Result;

/// Every suite section.
pub fn all() -> Vec<Box<dyn SuiteSection>> {
    vec![
        Box::new(crate::attention_view::AttentionSection),
        Box::new(crate::quant_view::QuantizationSection),
        Box::new(crate::kv_cache_view::KvCacheSection),
        Box::new(crate::spec_view::SpeculativeSection),
        Box::new(crate::adacot_view::AdacotSection),
    ]
}

/// The sections of `suite`.
pub fn of(suite: &str) -> impl Iterator<Item = Box<dyn SuiteSection>> + '_ {
    all().into_iter().filter(move |s| s.suite() == suite)
}

/// Every chart of the report: the suites' own, then one per metric with a `ctx` sweep.
pub fn charts(records: &[Record]) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    for section in all() {
        out.extend(section.charts(records)?);
    }
    out.extend(sweep_charts(records)?);
    Ok(out)
}
