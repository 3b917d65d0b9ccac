//! The self-contained HTML report: rendered by minijinja from a serialisable context, with the
//! charts inlined as SVG and the styles inline; the page makes no network requests.

use infermark_suites::env::RunEnv;
use infermark_suites::Record;
use minijinja::{context, Environment};
use serde::Serialize;

use crate::charts::{charts, Chart};
use crate::table::{fmt_value, summarise};
use crate::{ReportError, Result};

const TEMPLATE: &str = include_str!("../templates/report.html");

#[derive(Serialize)]
struct RowView {
    variant: String,
    params: String,
    value: String,
    stat: String,
    spread: String,
    n: u64,
}

#[derive(Serialize)]
struct TableView {
    metric: String,
    unit: String,
    rows: Vec<RowView>,
}

#[derive(Serialize)]
struct SuiteView {
    name: String,
    description: String,
    charts: Vec<Chart>,
    tables: Vec<TableView>,
}

/// Renders the report of one run. `describe` gives a suite's one-line description.
pub fn render(
    env: &RunEnv,
    records: &[Record],
    describe: &dyn Fn(&str) -> String,
) -> Result<String> {
    let mut suites: Vec<SuiteView> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for r in records {
        if !names.contains(&r.suite) {
            names.push(r.suite.clone());
        }
    }
    let all_charts = charts(records)?;
    let tables = summarise(records);
    for name in names {
        let tables = tables
            .iter()
            .filter(|t| t.suite == name)
            .map(|t| TableView {
                metric: t.metric.clone(),
                unit: t.unit.clone(),
                rows: t
                    .rows
                    .iter()
                    .map(|r| RowView {
                        variant: r.variant.clone(),
                        params: r.params.clone(),
                        value: fmt_value(r.value),
                        stat: r.stat.clone(),
                        spread: match (r.min, r.p90) {
                            (Some(a), Some(b)) => format!("{} – {}", fmt_value(a), fmt_value(b)),
                            _ => String::new(),
                        },
                        n: r.n,
                    })
                    .collect(),
            })
            .collect();
        suites.push(SuiteView {
            description: describe(&name),
            charts: all_charts
                .iter()
                .filter(|c| c.suite == name)
                .cloned()
                .collect(),
            tables,
            name,
        });
    }
    let mut jinja = Environment::new();
    jinja
        .add_template("report.html", TEMPLATE)
        .map_err(|e| ReportError::Render {
            what: "template".into(),
            reason: e.to_string(),
        })?;
    let tmpl = jinja
        .get_template("report.html")
        .map_err(|e| ReportError::Render {
            what: "template".into(),
            reason: e.to_string(),
        })?;
    tmpl.render(context! { env => env, suites => suites, record_count => records.len() })
        .map_err(|e| ReportError::Render {
            what: "report page".into(),
            reason: e.to_string(),
        })
}
