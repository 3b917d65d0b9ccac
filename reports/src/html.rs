//! The self-contained HTML report: rendered by minijinja from a serialisable context, with the
//! charts inlined as SVG and the styles inline; the page makes no network requests.

use infermark_suites::env::RunEnv;
use infermark_suites::Record;
use minijinja::Environment;
use serde::Serialize;

use crate::charts::Chart;
use crate::claims::{self, ClaimVerdict};
use crate::gate;
use crate::maturity::{self, Score, Weights};
use crate::metrics::{self, Kind};
use crate::pivot::Pivot;
use crate::sections::charts;
use crate::table::{fmt_value, summarise, MetricTable};
use crate::{ReportError, Result};

/// A baseline run to compare against.
pub struct Baseline {
    /// Shown in the report (its directory).
    pub label: String,
    /// Its records.
    pub records: Vec<Record>,
    /// Only M(P)'s iterability reads it (the committed quick-scale outcome records): no
    /// comparison tables.
    pub outcomes_only: bool,
}

/// One headline value against its baseline.
#[derive(Serialize, Debug)]
pub struct DeltaRow {
    pub suite: String,
    pub metric: String,
    pub variant: String,
    pub params: String,
    pub baseline: String,
    pub current: String,
    pub delta: String,
    pub delta_pct: String,
    /// `better`, `worse` or `same`.
    pub class: &'static str,
    pub noisy: bool,
}

/// A run against one baseline.
#[derive(Serialize, Debug)]
pub struct Comparison {
    pub label: String,
    pub rows: Vec<DeltaRow>,
    pub better: usize,
    pub worse: usize,
    pub missing: usize,
}

/// Headline values of `current` against `baseline`, coloured by each metric's direction.
pub fn compare(label: &str, current: &[Record], baseline: &[Record]) -> Comparison {
    let cur = summarise(current);
    let base = summarise(baseline);
    let mut rows = Vec::new();
    let (mut better, mut worse, mut missing) = (0, 0, 0);
    for t in &cur {
        let metric = metrics::lookup(&t.metric);
        for r in &t.rows {
            let b = base
                .iter()
                .find(|bt| bt.suite == t.suite && bt.metric == t.metric)
                .and_then(|bt| {
                    bt.rows
                        .iter()
                        .find(|br| br.variant == r.variant && br.params == r.params)
                });
            let Some(b) = b else {
                missing += 1;
                continue;
            };
            let imp = metric
                .map(|m| metrics::relative_improvement(m, b.value, r.value))
                .unwrap_or(0.0);
            let noisy = metric.is_none_or(|m| m.kind == Kind::Noisy);
            // Noisy metrics within 5% are shown as unchanged; deterministic ones must match exactly.
            let band = if noisy { 0.05 } else { 1e-12 };
            let class = if imp > band {
                better += 1;
                "better"
            } else if imp < -band {
                worse += 1;
                "worse"
            } else {
                "same"
            };
            rows.push(DeltaRow {
                suite: t.suite.clone(),
                metric: t.metric.clone(),
                variant: r.variant.clone(),
                params: r.params.clone(),
                baseline: fmt_value(b.value),
                current: fmt_value(r.value),
                delta: fmt_value(r.value - b.value),
                delta_pct: if b.value != 0.0 {
                    format!("{:+.1}%", (r.value - b.value) / b.value.abs() * 100.0)
                } else {
                    "—".into()
                },
                class,
                noisy,
            });
        }
    }
    Comparison {
        label: label.into(),
        rows,
        better,
        worse,
        missing,
    }
}

/// The gate's verdict on the run against a baseline, for the report's summary.
#[derive(Serialize, Debug, Clone)]
pub struct GateSummary {
    /// The baseline's directory.
    pub baseline: String,
    /// The rules file.
    pub rules: String,
    /// Why the run and the baseline were not compared (another scale, backend or seed).
    pub refused: Option<String>,
    /// One per rule, when compared.
    pub verdicts: Vec<gate::Verdict>,
}

/// One claim in the summary.
#[derive(Serialize)]
pub struct ClaimLine {
    pub id: String,
    pub text: String,
    pub verdict: String,
}

/// M(P) of one suite in the summary: totals where S, C and I are all measured, else the parts.
#[derive(Serialize)]
pub struct SuiteMaturity {
    pub suite: String,
    /// `technique M` for techniques with a total.
    pub scored: Vec<String>,
    /// `technique: measured parts; missing parts` for the others.
    pub partial: Vec<String>,
}

/// The one-screen summary at the top of the report.
#[derive(Serialize)]
pub struct SummaryView {
    pub reproduced: usize,
    pub not_reproduced: usize,
    pub not_measured: usize,
    pub inconclusive: usize,
    pub not_comparable: usize,
    pub claims: Vec<ClaimLine>,
    /// `None` when the report was given no baseline or no rules.
    pub gate: Option<GateView>,
    pub maturity: Vec<SuiteMaturity>,
}

/// The gate's verdict in the summary.
#[derive(Serialize)]
pub struct GateView {
    pub baseline: String,
    pub rules: String,
    pub refused: Option<String>,
    pub passed: usize,
    pub total: usize,
    /// `rule: note` of each failing rule.
    pub failures: Vec<String>,
}

fn summary(verdicts: &[ClaimVerdict], gate: Option<&GateSummary>, scores: &[Score]) -> SummaryView {
    let count = |v: &str| verdicts.iter().filter(|c| c.verdict == v).count();
    let mut maturity: Vec<SuiteMaturity> = Vec::new();
    for s in scores {
        let at = match maturity.iter().position(|m| m.suite == s.suite) {
            Some(i) => i,
            None => {
                maturity.push(SuiteMaturity {
                    suite: s.suite.clone(),
                    scored: Vec::new(),
                    partial: Vec::new(),
                });
                maturity.len() - 1
            }
        };
        match s.m {
            Some(m) => maturity[at].scored.push(format!("{} {m:.3}", s.technique)),
            None => {
                let parts: Vec<String> = [("S", s.s), ("C", s.c), ("I", s.i)]
                    .into_iter()
                    .filter_map(|(n, x)| x.map(|x| format!("{n} {x:.3}")))
                    .collect();
                maturity[at].partial.push(format!(
                    "{}: {}{} missing",
                    s.technique,
                    if parts.is_empty() {
                        String::new()
                    } else {
                        format!("{}; ", parts.join(", "))
                    },
                    s.missing.join(", ")
                ));
            }
        }
    }
    SummaryView {
        reproduced: count("reproduced"),
        not_reproduced: count("not reproduced"),
        not_measured: count("not measured"),
        inconclusive: count(crate::claims::INCONCLUSIVE),
        not_comparable: count(crate::software::NOT_COMPARABLE),
        claims: verdicts
            .iter()
            .map(|c| ClaimLine {
                id: c.id.clone(),
                text: c.text.clone(),
                verdict: c.verdict.clone(),
            })
            .collect(),
        gate: gate.map(|g| GateView {
            baseline: g.baseline.clone(),
            rules: g.rules.clone(),
            refused: g.refused.clone(),
            passed: g.verdicts.iter().filter(|v| v.pass).count(),
            total: g.verdicts.len(),
            failures: g
                .verdicts
                .iter()
                .filter(|v| !v.pass)
                .map(|v| format!("{}: {}", v.rule, v.note))
                .collect(),
        }),
        maturity,
    }
}

/// M(P) of one technique, formatted.
#[derive(Serialize)]
pub struct ScoreView {
    pub suite: String,
    pub technique: String,
    pub s: String,
    pub c: String,
    pub i: String,
    pub m: String,
    pub inputs: Vec<String>,
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.3}"))
        .unwrap_or_else(|| "not measured".into())
}

const TEMPLATE: &str = include_str!("../templates/report.html");

/// One line of a per-metric table.
#[derive(Serialize)]
pub struct RowView {
    pub variant: String,
    pub params: String,
    pub value: String,
    pub stat: String,
    pub spread: String,
    pub n: u64,
}

/// A per-metric table of one suite.
#[derive(Serialize)]
pub struct TableView {
    pub metric: String,
    pub unit: String,
    pub rows: Vec<RowView>,
}

/// One suite's part of the page: its charts, its sections' pivots and a table per metric.
#[derive(Serialize)]
pub struct SuiteView {
    pub name: String,
    pub description: String,
    pub charts: Vec<Chart>,
    pub pivots: Vec<Pivot>,
    pub tables: Vec<TableView>,
}

/// Everything the page shows, built once; the template renders it and
/// [`crate::dump::text_dump`] prints its tables.
#[derive(Serialize)]
pub struct ReportContext<'a> {
    pub summary: SummaryView,
    pub env: &'a RunEnv,
    pub suites: Vec<SuiteView>,
    pub record_count: usize,
    pub comparisons: Vec<Comparison>,
    pub scores: Vec<ScoreView>,
    pub weights: Weights,
    pub claims: Vec<ClaimVerdict>,
    /// The weighted parts of each total as an SVG bar chart; `None` when no technique has one.
    pub maturity_chart: Option<String>,
    /// What I was compared with (the first baseline's label).
    pub iterability_baseline: Option<String>,
}

fn table_view(t: &MetricTable) -> TableView {
    TableView {
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
    }
}

/// Builds the page's context: per-suite charts and tables, comparisons with each baseline,
/// M(P) (I against the first baseline), the claims ledger and the gate's summary.
pub fn context<'a>(
    env: &'a RunEnv,
    records: &[Record],
    baselines: &[Baseline],
    weights: Weights,
    describe: &dyn Fn(&str) -> String,
    gate: Option<&GateSummary>,
) -> Result<ReportContext<'a>> {
    let mut names: Vec<String> = Vec::new();
    for r in records {
        if !names.contains(&r.suite) {
            names.push(r.suite.clone());
        }
    }
    let all_charts = charts(records)?;
    let tables = summarise(records);
    let suites = names
        .into_iter()
        .map(|name| SuiteView {
            pivots: crate::sections::pivots(&name, records),
            description: describe(&name),
            charts: all_charts
                .iter()
                .filter(|c| c.suite == name)
                .cloned()
                .collect(),
            tables: tables
                .iter()
                .filter(|t| t.suite == name)
                .map(table_view)
                .collect(),
            name,
        })
        .collect();
    let comparisons: Vec<Comparison> = baselines
        .iter()
        .filter(|b| !b.outcomes_only)
        .map(|b| compare(&b.label, records, &b.records))
        .collect();
    let all_scores = maturity::scores(
        records,
        baselines.first().map(|b| b.records.as_slice()),
        weights,
    );
    let ledger = claims::parse(claims::LEDGER)?;
    let verdicts: Vec<ClaimVerdict> = claims::evaluate(&ledger, records);
    let summary = summary(&verdicts, gate, &all_scores);
    let maturity_chart = crate::charts::maturity_parts(&all_scores, weights);
    let scores: Vec<ScoreView> = all_scores
        .into_iter()
        .map(|s: Score| ScoreView {
            suite: s.suite,
            technique: s.technique,
            s: opt(s.s),
            c: opt(s.c),
            i: opt(s.i),
            m: opt(s.m),
            inputs: s.inputs,
        })
        .collect();
    Ok(ReportContext {
        summary,
        env,
        suites,
        record_count: records.len(),
        comparisons,
        scores,
        weights,
        claims: verdicts,
        maturity_chart,
        iterability_baseline: baselines.first().map(|b| b.label.clone()),
    })
}

/// Renders the report of one run: per-suite charts and tables, comparisons with each baseline,
/// M(P) (I against the first baseline) and the claims ledger. `describe` gives a suite's
/// one-line description.
pub fn render(
    env: &RunEnv,
    records: &[Record],
    baselines: &[Baseline],
    weights: Weights,
    describe: &dyn Fn(&str) -> String,
) -> Result<String> {
    render_with_gate(env, records, baselines, weights, describe, None)
}

/// [`render`], with the gate's verdict against a baseline in the summary at the top.
pub fn render_with_gate(
    env: &RunEnv,
    records: &[Record],
    baselines: &[Baseline],
    weights: Weights,
    describe: &dyn Fn(&str) -> String,
    gate: Option<&GateSummary>,
) -> Result<String> {
    render_page(&context(env, records, baselines, weights, describe, gate)?)
}

/// Renders a built context as the self-contained page.
pub fn render_page(ctx: &ReportContext) -> Result<String> {
    let template_err = |e: minijinja::Error| ReportError::Render {
        what: "template".into(),
        reason: e.to_string(),
    };
    let mut jinja = Environment::new();
    jinja
        .add_template("report.html", TEMPLATE)
        .map_err(template_err)?;
    let tmpl = jinja.get_template("report.html").map_err(template_err)?;
    tmpl.render(ctx).map_err(|e| ReportError::Render {
        what: "report page".into(),
        reason: e.to_string(),
    })
}
