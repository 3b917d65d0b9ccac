//! The run's one screen: what a person ran it for, printed when a run ends (every record stays
//! in the run folder, the report, and `run --verbose`). The claims and their verdicts, one
//! headline figure per suite with its conditions, M(P) per technique where it is measured, the
//! run folder and the report command.

use std::fmt::Write as _;
use std::path::Path;

use infermark_suites::env::RunEnv;
use infermark_suites::Record;

use crate::claims::{self, ClaimVerdict};
use crate::format::fmt_value;
use crate::maturity::{self, Weights};
use crate::Result;

/// The summary screen of a run of `records` written to `out`.
pub fn one_screen(env: &RunEnv, records: &[Record], out: &Path) -> Result<String> {
    let mut s = String::new();
    let triad = env
        .machine
        .as_ref()
        .map(|m| format!(", triad {:.1} GB/s", m.triad_gbps))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "run {}: {} scale, {} on {}, {} kernels, {} cores{triad}",
        env.run_id, env.scale, env.backend, env.device, env.isa.active, env.cores
    );
    let ledger = claims::parse(claims::LEDGER)?;
    let verdicts = claims::evaluate(&ledger, records);
    let _ = writeln!(s, "\nclaims ({} in reports/claims.toml)", verdicts.len());
    for v in &verdicts {
        claim_lines(&mut s, v);
    }
    let _ = writeln!(s, "\nheadlines");
    for suite in infermark_suites::registry() {
        let Some(h) = suite.report().headline else {
            continue;
        };
        let line = match crate::section::headline(suite.name(), records, &h.pick) {
            Some(r) => format!("{}: {}", h.label, with_conditions(r, records, env)),
            None if !records.iter().any(|r| r.suite == suite.name()) => {
                format!("{}: not run", h.label)
            }
            None => format!("{}: not measured at this scale", h.label),
        };
        let _ = writeln!(s, "  {:<13} {line}", suite.name());
    }
    mp_lines(&mut s, records);
    let _ = writeln!(
        s,
        "\nfolder: {}\nreport: infermark report --run {} --out report.html\nevery record: the folder's results.ndjson, the report, or `run --verbose`",
        out.display(),
        out.display()
    );
    Ok(s)
}

/// A claim's verdict and text, then each check's figure.
fn claim_lines(s: &mut String, v: &ClaimVerdict) {
    let _ = writeln!(s, "  {:<15} {:<20} {}", v.verdict, v.id, v.text);
    for f in &v.figures {
        let _ = writeln!(s, "  {:<15} {:<20}   {f}", "", "");
    }
}

/// `value unit (stat, n, [min – p90] where timed), backend`: the spread from the summary
/// tables' row of the same metric, variant and params.
fn with_conditions(r: &Record, records: &[Record], env: &RunEnv) -> String {
    let row = crate::metrics::lookup(&r.metric)
        .and_then(|m| crate::table::summarise_metric(records, &r.suite, m))
        .and_then(|t| {
            t.rows
                .into_iter()
                .find(|x| x.variant == r.variant && x.param_map == r.params)
        });
    let spread = match row.and_then(|x| x.min.zip(x.p90)) {
        Some((a, b)) => format!(", min–p90 {}–{}", fmt_value(a), fmt_value(b)),
        None => String::new(),
    };
    format!(
        "{} {} ({} of n = {}{spread}; {}, {})",
        fmt_value(r.value),
        r.unit,
        r.stat.name(),
        r.n,
        r.backend,
        env.isa.active
    )
}

/// M(P) where all three parts are measured, and one line on what the rest lack.
fn mp_lines(s: &mut String, records: &[Record]) {
    let w = Weights::default();
    let scores = maturity::scores(records, None, w);
    let measured: Vec<_> = scores.iter().filter(|x| x.m.is_some()).collect();
    let _ = writeln!(
        s,
        "\nM(P) = {:.2}·S + {:.2}·C + {:.2}·I: total for {} of {} techniques",
        w.s,
        w.c,
        w.i,
        measured.len(),
        scores.len()
    );
    for x in &measured {
        let _ = writeln!(
            s,
            "  {:<13} {:<20} S {:.2}  C {:.2}  I {:.2}  M {:.2}",
            x.suite,
            x.technique,
            x.s.unwrap_or(f64::NAN),
            x.c.unwrap_or(f64::NAN),
            x.i.unwrap_or(f64::NAN),
            x.m.unwrap_or(f64::NAN)
        );
    }
    if measured.len() < scores.len() {
        let count = |part: &str| scores.iter().filter(|x| x.missing.contains(&part)).count();
        let _ = writeln!(
            s,
            "  not measured: S for {}, C for {}, I for {} (I compares with a baseline run: `infermark report --baseline DIR`)",
            count("S"),
            count("C"),
            count("I")
        );
    }
}
