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
use crate::html::Baseline;
use crate::maturity::{self, Weights};
use crate::Result;

/// The summary screen of a run of `records` written to `out`.
/// M(P)'s iterability compares with `outcomes` (a baseline's records) when given.
pub fn one_screen(
    env: &RunEnv,
    records: &[Record],
    out: &Path,
    outcomes: Option<&Baseline>,
) -> Result<String> {
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
    let width = verdicts
        .iter()
        .map(|v| v.verdict.chars().count())
        .max()
        .unwrap_or(0);
    for v in &verdicts {
        claim_lines(&mut s, v, width);
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
    mp_lines(&mut s, records, outcomes);
    let _ = writeln!(
        s,
        "\nfolder: {}\nreport: infermark report --run {} --out report.html\nevery record: the folder's results.ndjson, the report, or `run --verbose`",
        out.display(),
        out.display()
    );
    Ok(s)
}

/// A claim's verdict and text, then each check's figure.
fn claim_lines(s: &mut String, v: &ClaimVerdict, width: usize) {
    let _ = writeln!(s, "  {:<width$} {:<20} {}", v.verdict, v.id, v.text);
    for f in &v.figures {
        let _ = writeln!(s, "  {:<width$} {:<20}   {f}", "", "");
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
    // A timing from a software device (lavapipe) measures neither a GPU nor the CPU kernels.
    let software = if crate::software::software_timing(r) {
        format!(" [{}]", crate::software::NOT_COMPARABLE)
    } else {
        String::new()
    };
    format!(
        "{} {} ({} of n = {}{spread}; {}, {}){software}",
        fmt_value(r.value),
        r.unit,
        r.stat.name(),
        r.n,
        r.backend,
        env.isa.active
    )
}

/// For a suite without a total: its technique with the most parts measured and the first reason
/// a part is not (which record would measure it), on one line. Nothing for a suite none of
/// whose parts is scored (the machine's bandwidth probe).
fn missing_line(s: &mut String, suite: &str, scores: &[maturity::Score]) {
    let parts = |x: &maturity::Score| [x.s, x.c, x.i].iter().filter(|p| p.is_some()).count();
    let Some(best) = scores
        .iter()
        .filter(|x| x.suite == suite)
        .max_by_key(|x| parts(x))
        .filter(|x| parts(x) > 0)
    else {
        return;
    };
    // The first missing part's own reason: for C, what predictability or retention lacked.
    let prefixes: &[&str] = match best.missing.first().copied() {
        Some("C") => &["predictability", "retention", "C"],
        Some("I") => &["I"],
        _ => &["S"],
    };
    let why = best
        .inputs
        .iter()
        .find(|x| prefixes.iter().any(|p| x.starts_with(p)) && x.contains("not measured"))
        .map(String::as_str)
        .unwrap_or("");
    let mut line = format!(
        "  {suite:<13} no total: {} lacks {}: {why}",
        best.technique,
        best.missing.join(", ")
    );
    if line.chars().count() > 160 {
        line = line.chars().take(159).collect::<String>() + "…";
    }
    let _ = writeln!(s, "{line}");
}

/// M(P): per suite, each technique with a total (M, and S C I of the best), wrapped; then where
/// I came from, and what the rest lack.
fn mp_lines(s: &mut String, records: &[Record], outcomes: Option<&Baseline>) {
    let w = Weights::default();
    let scores = maturity::scores(records, outcomes.map(|b| b.records.as_slice()), w);
    let measured = scores.iter().filter(|x| x.m.is_some()).count();
    let _ = writeln!(
        s,
        "\nM(P) = {:.2}·S + {:.2}·C + {:.2}·I: total for {measured} of {} techniques (S C I M per technique: the report)",
        w.s,
        w.c,
        w.i,
        scores.len()
    );
    let mut suites: Vec<&str> = Vec::new();
    for x in &scores {
        if !suites.contains(&x.suite.as_str()) {
            suites.push(&x.suite);
        }
    }
    for suite in suites {
        let mut scored: Vec<&maturity::Score> = scores
            .iter()
            .filter(|x| x.suite == suite && x.m.is_some())
            .collect();
        if scored.is_empty() {
            missing_line(s, suite, &scores);
            continue;
        }
        scored.sort_by(|a, b| b.m.unwrap_or(0.0).total_cmp(&a.m.unwrap_or(0.0)));
        let best = scored[0];
        let mut line = format!(
            "  {suite:<13} best {} {:.2} (S {:.2} C {:.2} I {:.2})",
            best.technique,
            best.m.unwrap_or(f64::NAN),
            best.s.unwrap_or(f64::NAN),
            best.c.unwrap_or(f64::NAN),
            best.i.unwrap_or(f64::NAN)
        );
        for x in &scored[1..] {
            let item = format!(" · {} {:.2}", x.technique, x.m.unwrap_or(f64::NAN));
            if line.chars().count() + item.chars().count() > 110 {
                let _ = writeln!(s, "{line}");
                line = format!("  {:<13}", "");
            }
            line.push_str(&item);
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = match outcomes {
        Some(b) => writeln!(s, "  I against {}", b.label),
        None => writeln!(
            s,
            "  I not measured: no baseline of this scale and seed (`infermark report --baseline DIR`; committed runs serve smoke and quick runs of seed 42)"
        ),
    };
    if measured < scores.len() {
        let count = |part: &str| scores.iter().filter(|x| x.missing.contains(&part)).count();
        let _ = writeln!(
            s,
            "  not measured: S for {}, C for {}, I for {} of the {} techniques (why: the report's M(P) section)",
            count("S"),
            count("C"),
            count("I"),
            scores.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infermark_suites::backend::SOFTWARE_DEVICE_MARK;
    use infermark_suites::Stat;

    fn env() -> RunEnv {
        serde_json::from_value(serde_json::json!({
            "run_id": "r", "git_rev": "g", "backend": "wgpu", "burn_features": [],
            "burn_version": "0.21.0", "device": "d", "cpu_model": "c", "cpu_flags": [],
            "cores": 2, "scale": "smoke", "seed": 42, "suites": [], "notices": [],
            "percentile_method": "nearest-rank", "started": "a", "ended": "b",
            "infermark_version": "0.1.0", "activations": "int8"
        }))
        .unwrap()
    }

    fn timing(device: &str) -> Record {
        Record {
            run_id: "r".into(),
            suite: "attention".into(),
            experiment: "decode".into(),
            variant: "gqa".into(),
            backend: "wgpu".into(),
            device: device.into(),
            scale: "smoke".into(),
            params: Default::default(),
            metric: "decode_latency_ms".into(),
            value: 1.5,
            unit: "ms".into(),
            stat: Stat::Median,
            n: 10,
            git_rev: "g".into(),
            timestamp: "t".into(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn a_headline_timed_on_a_software_device_says_it_is_not_comparable() {
        let soft = timing(&format!(
            "wgpu: llvmpipe (cpu; mesa) {SOFTWARE_DEVICE_MARK}"
        ));
        let line = with_conditions(&soft, std::slice::from_ref(&soft), &env());
        assert!(
            line.ends_with(&format!("[{}]", crate::software::NOT_COMPARABLE)),
            "{line}"
        );
        let gpu = timing("wgpu: some GPU (discrete-gpu; driver)");
        let line = with_conditions(&gpu, std::slice::from_ref(&gpu), &env());
        assert!(!line.contains("not comparable"), "{line}");
    }
}
