//! A pivot: a table of a suite's section, as strings (title, header, rows, and a note naming how
//! the numbers were measured), rendered as is.

use serde::Serialize;

/// A table of strings with a title, rendered as is.
#[derive(Clone, Debug, Serialize)]
pub struct Pivot {
    /// Heading.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
    /// How the numbers were measured.
    pub note: String,
}

/// Column names from literals.
pub fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}
