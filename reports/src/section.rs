//! The seam between the report and a suite's own part of it: each suite that shows more than
//! the generic parts (a table per metric, charts of context sweeps) implements [`SuiteSection`]
//! in its own view module; [`crate::sections`] lists them.

use infermark_suites::Record;

use crate::charts::Chart;
use crate::pivot::Pivot;
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
