//! Suite sections: what a suite adds to the report beyond the generic parts (a table per metric,
//! charts of context sweeps). Each suite that has such a part implements [`SuiteSection`] in its
//! own view module; the report asks every section for its suite's charts and tables, and never
//! tests a suite's name.

use infermark_suites::Record;

use crate::charts::Chart;
use crate::quant_view::Pivot;
use crate::Result;

/// A suite's own part of the report.
pub trait SuiteSection: Sync {
    /// The suite whose records it reads.
    fn suite(&self) -> &'static str;

    /// Charts beyond the context sweeps.
    fn charts(&self, _records: &[Record]) -> Result<Vec<Chart>> {
        Ok(Vec::new())
    }

    /// Tables beyond one per metric.
    fn pivots(&self, _records: &[Record]) -> Vec<Pivot> {
        Vec::new()
    }
}

/// Every suite section.
pub fn all() -> Vec<Box<dyn SuiteSection>> {
    vec![
        Box::new(crate::bandwidth_view::AttentionSection),
        Box::new(crate::quant_view::QuantizationSection),
        Box::new(crate::charts::KvCacheSection),
        Box::new(crate::spec_view::SpeculativeSection),
        Box::new(crate::adacot_view::AdacotSection),
    ]
}

/// The sections of `suite`.
pub fn of(suite: &str) -> impl Iterator<Item = Box<dyn SuiteSection>> + '_ {
    all().into_iter().filter(move |s| s.suite() == suite)
}
