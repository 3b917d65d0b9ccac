//! The report's content as plain text: every table of the page (summary, claims ledger, M(P),
//! each suite's chart titles, pivots and per-metric tables, baseline comparisons) in one
//! canonical dump, built from the same [`ReportContext`] the HTML page renders. The golden test
//! (`reports/tests/golden.rs`) compares it byte for byte, so a refactor that changes what the
//! report says shows up as a diff.

use std::fmt::Write;

use crate::html::ReportContext;

/// A titled table: `## title`, the header and the rows, cells separated by ` | `.
fn table(out: &mut String, title: &str, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "## {title}");
    let _ = writeln!(out, "{}", header.join(" | "));
    for row in rows {
        let _ = writeln!(out, "{}", row.join(" | "));
    }
    out.push('\n');
}

/// Every table of the page as plain text.
pub fn text_dump(ctx: &ReportContext) -> String {
    let mut out = String::new();
    let env = ctx.env;
    let _ = writeln!(
        out,
        "# infermark report: run {} · scale {} · backend {} · {} records\n",
        env.run_id, env.scale, env.backend, ctx.record_count
    );
    let s = &ctx.summary;
    let _ = writeln!(
        out,
        "# Summary\nclaims: {} reproduced, {} not reproduced, {} not measured (of {})\n",
        s.reproduced,
        s.not_reproduced,
        s.not_measured,
        s.claims.len()
    );
    let rows: Vec<Vec<String>> = s
        .claims
        .iter()
        .map(|c| vec![c.id.clone(), c.verdict.clone(), c.text.clone()])
        .collect();
    table(
        &mut out,
        "summary: claims",
        &["id", "verdict", "claim"],
        &rows,
    );
    match &s.gate {
        None => {
            let _ = writeln!(out, "## summary: gate\nnot evaluated\n");
        }
        Some(g) => {
            let _ = writeln!(
                out,
                "## summary: gate\nbaseline {} · rules {} · refused {} · {} of {} rules pass",
                g.baseline,
                g.rules,
                g.refused.as_deref().unwrap_or("no"),
                g.passed,
                g.total
            );
            for f in &g.failures {
                let _ = writeln!(out, "failure: {f}");
            }
            out.push('\n');
        }
    }
    let rows: Vec<Vec<String>> = s
        .maturity
        .iter()
        .map(|m| vec![m.suite.clone(), m.scored.join(" · "), m.partial.join(" · ")])
        .collect();
    table(
        &mut out,
        "summary: M(P)",
        &["suite", "M(P)", "parts only"],
        &rows,
    );
    let rows: Vec<Vec<String>> = ctx
        .claims
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.verdict.clone(),
                c.text.clone(),
                c.details.join(" · "),
            ]
        })
        .collect();
    table(
        &mut out,
        "Claims ledger",
        &["id", "verdict", "claim", "evidence"],
        &rows,
    );
    let rows: Vec<Vec<String>> = ctx
        .scores
        .iter()
        .map(|m| {
            vec![
                m.suite.clone(),
                m.technique.clone(),
                m.s.clone(),
                m.c.clone(),
                m.i.clone(),
                m.m.clone(),
                m.inputs.join(" · "),
            ]
        })
        .collect();
    table(
        &mut out,
        "Maturity score M(P)",
        &["suite", "technique", "S", "C", "I", "M(P)", "inputs"],
        &rows,
    );
    for suite in &ctx.suites {
        let _ = writeln!(out, "# Suite: {}\n{}\n", suite.name, suite.description);
        for c in &suite.charts {
            let _ = writeln!(out, "chart: {}", c.title);
        }
        if !suite.charts.is_empty() {
            out.push('\n');
        }
        for p in &suite.pivots {
            let header: Vec<&str> = p.header.iter().map(String::as_str).collect();
            table(&mut out, &p.title, &header, &p.rows);
            let _ = writeln!(out, "note: {}\n", p.note);
        }
        for t in &suite.tables {
            let rows: Vec<Vec<String>> = t
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.variant.clone(),
                        r.params.clone(),
                        r.value.clone(),
                        r.stat.clone(),
                        r.spread.clone(),
                        r.n.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &format!("{} ({})", t.metric, t.unit),
                &["variant", "parameters", "value", "statistic", "spread", "n"],
                &rows,
            );
        }
    }
    for cmp in &ctx.comparisons {
        let rows: Vec<Vec<String>> = cmp
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.suite.clone(),
                    r.metric.clone(),
                    r.variant.clone(),
                    r.params.clone(),
                    r.baseline.clone(),
                    r.current.clone(),
                    r.delta.clone(),
                    r.delta_pct.clone(),
                    r.class.to_string(),
                    if r.noisy { "noisy" } else { "" }.to_string(),
                ]
            })
            .collect();
        table(
            &mut out,
            &format!(
                "Comparison with baseline {}: {} better, {} worse, {} without a baseline value",
                cmp.label, cmp.better, cmp.worse, cmp.missing
            ),
            &[
                "suite",
                "metric",
                "variant",
                "parameters",
                "baseline",
                "current",
                "delta",
                "delta %",
                "class",
                "kind",
            ],
            &rows,
        );
    }
    out
}
