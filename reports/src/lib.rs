//! infermark reports: result files in and out (Parquet through polars, NDJSON, `run.json`),
//! summary tables, plotters SVG charts and the self-contained HTML report.
//!
//! Layers, each importing only from those below it:
//! - primitives: [`mod@format`] (numbers), [`table`] (a table per metric), [`pivot`], [`select`],
//!   [`charts`] (chart drawing, no suite knowledge), [`machine_limit`], [`names`] (names in the
//!   TOML data files);
//! - [`section`], the one renderer of a suite's section, which each suite declares as data
//!   ([`infermark_suites::report`]); it knows no suite and no metric by name;
//! - [`sections`], every registered suite's section rendered;
//! - [`html`], the page's context and its rendering, and [`dump`], that context as text.

pub mod charts;
pub mod claims;
pub mod crosscheck;
pub mod dump;
pub mod format;
pub mod gate;
pub mod html;
pub mod interval;
pub mod io;
pub mod machine_limit;
pub mod maturity;
pub mod merge;
pub mod metrics;
pub mod names;
pub mod pivot;
pub mod screen;
pub mod section;
pub mod sections;
pub mod select;
pub mod software;
pub mod table;

use std::path::PathBuf;

/// Errors of the reports layer. Each names the file or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The output directory exists and `--force` was not given.
    #[error(
        "output directory {0} already exists; choose another --out or pass --force to replace it"
    )]
    OutExists(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that is not what infermark wrote.
    #[error("{path}: malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// A polars failure while writing or reading Parquet.
    #[error("{path}: parquet: {reason}")]
    Parquet { path: PathBuf, reason: String },
    /// Chart or template rendering failed.
    #[error("rendering {what}: {reason}")]
    Render { what: String, reason: String },
}

pub type Result<T> = std::result::Result<T, ReportError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReportError {
    let path = path.into();
    move |source| ReportError::Io { path, source }
}
