//! Result files: Parquet and NDJSON read back to the records written; run directories are
//! written atomically and never silently replaced; the report page is self-contained.

use std::collections::BTreeMap;

use infermark_reports::{html, io, ReportError};
use infermark_suites::env::RunEnv;
use infermark_suites::{Record, Stat};

fn record(variant: &str, ctx: usize, value: f64, stat: Stat) -> Record {
    Record {
        run_id: "run-1".into(),
        suite: "attention".into(),
        experiment: "decode".into(),
        variant: variant.into(),
        backend: "flex".into(),
        device: "cpu: test".into(),
        scale: "smoke".into(),
        params: BTreeMap::from([
            ("ctx".to_string(), ctx.to_string()),
            ("part".to_string(), "core".to_string()),
        ]),
        metric: "decode_latency_ms".into(),
        value,
        unit: "ms".into(),
        stat,
        n: 7,
        git_rev: "abc".into(),
        timestamp: "2026-01-01T00:00:00Z".into(),
        samples: Vec::new(),
    }
}

fn records() -> Vec<Record> {
    let mut v = Vec::new();
    for (i, variant) in ["gqa", "mla-absorbed"].iter().enumerate() {
        for ctx in [64, 128, 256] {
            v.push(record(
                variant,
                ctx,
                0.1 * ctx as f64 * (i + 1) as f64,
                Stat::Median,
            ));
            v.push(record(variant, ctx, 0.09 * ctx as f64, Stat::Min));
        }
    }
    v
}

fn env() -> RunEnv {
    RunEnv {
        run_id: "run-1".into(),
        git_rev: "abc".into(),
        backend: "flex".into(),
        burn_features: vec!["flex".into()],
        burn_version: "0.21.0".into(),
        device: "cpu: test".into(),
        cpu_model: "test".into(),
        cpu_flags: vec!["avx2".into()],
        cores: 2,
        scale: "smoke".into(),
        seed: 1,
        suites: vec!["attention".into()],
        notices: Vec::new(),
        percentile_method: "nearest-rank".into(),
        started: "a".into(),
        ended: "b".into(),
        infermark_version: "0.1.0".into(),
        isa: Default::default(),
        activations: "int8".into(),
        machine: None,
        device_info: None,
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("infermark-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn parquet_and_ndjson_read_back_to_the_records_written() {
    let dir = tmp("roundtrip").join("run");
    io::write_run(&dir, &records(), &env(), false).unwrap();
    assert_eq!(io::read_parquet(&dir.join(io::PARQUET)).unwrap(), records());
    assert_eq!(io::read_ndjson(&dir.join(io::NDJSON)).unwrap(), records());
    let run = io::read_run(&dir).unwrap();
    assert_eq!(run.env, env());
}

#[test]
fn existing_run_dir_is_refused_without_force_and_replaced_with_it() {
    let root = tmp("force");
    let dir = root.join("run");
    io::write_run(&dir, &records(), &env(), false).unwrap();
    let err = io::write_run(&dir, &records()[..2], &env(), false).unwrap_err();
    assert!(matches!(err, ReportError::OutExists(_)));
    assert_eq!(
        io::read_ndjson(&dir.join(io::NDJSON)).unwrap().len(),
        records().len()
    );
    io::write_run(&dir, &records()[..2], &env(), true).unwrap();
    assert_eq!(io::read_ndjson(&dir.join(io::NDJSON)).unwrap().len(), 2);
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("run")],
        "no staging or replaced folders left"
    );
}

#[test]
fn malformed_ndjson_names_the_line() {
    let dir = tmp("malformed");
    let path = dir.join("r.ndjson");
    let good = serde_json::to_string(&records()[0]).unwrap();
    std::fs::write(&path, format!("{good}\n{{\"suite\": 3}}\n")).unwrap();
    let err = io::read_ndjson(&path).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn report_is_self_contained_with_a_chart_per_swept_metric() {
    let page = html::render(&env(), &records(), &[], Default::default(), &|_| {
        "desc".into()
    })
    .unwrap();
    assert_eq!(
        page.matches("<svg").count(),
        1,
        "one chart: decode_latency_ms (core)"
    );
    assert!(page.contains("gqa") && page.contains("mla-absorbed"));
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src=\"http"));
    // Every opened tag of the table structure is closed.
    assert_eq!(
        page.matches("<table").count(),
        page.matches("</table>").count()
    );
    assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
}

#[test]
fn every_svg_in_the_report_parses() {
    let page = html::render(&env(), &records(), &[], Default::default(), &|_| {
        "desc".into()
    })
    .unwrap();
    let mut rest = page.as_str();
    let mut n = 0;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("closed svg") + start + "</svg>".len();
        roxmltree::Document::parse(&rest[start..end]).unwrap_or_else(|e| panic!("svg {n}: {e}"));
        n += 1;
        rest = &rest[end..];
    }
    assert!(n > 0);
}

#[test]
fn deltas_follow_each_metrics_direction() {
    let mut base = vec![record("gqa", 64, 2.0, Stat::Median)];
    let mut cur = vec![record("gqa", 64, 1.0, Stat::Median)];
    let bytes = |v: f64| Record {
        metric: "kv_cache_bytes_per_token".into(),
        unit: "bytes".into(),
        stat: Stat::Exact,
        value: v,
        ..record("gqa", 64, 0.0, Stat::Exact)
    };
    base.push(bytes(100.0));
    cur.push(bytes(120.0));
    let gbps = |v: f64| Record {
        metric: "kv_read_gbps".into(),
        unit: "GB/s".into(),
        value: v,
        ..record("gqa", 64, 0.0, Stat::Median)
    };
    base.push(gbps(10.0));
    cur.push(gbps(10.2));
    let c = html::compare("b", &cur, &base);
    let row = |m: &str| c.rows.iter().find(|r| r.metric == m).unwrap();
    assert_eq!(
        (
            row("decode_latency_ms").class,
            row("decode_latency_ms").delta_pct.as_str()
        ),
        ("better", "-50.0%")
    );
    assert_eq!(
        (
            row("kv_cache_bytes_per_token").class,
            row("kv_cache_bytes_per_token").delta_pct.as_str()
        ),
        ("worse", "+20.0%")
    );
    assert_eq!(
        row("kv_read_gbps").class,
        "same",
        "noisy +2% is within the 5% band"
    );
    assert!(row("kv_read_gbps").noisy && !row("kv_cache_bytes_per_token").noisy);
    assert_eq!((c.better, c.worse, c.missing), (1, 1, 0));
}

/// Text as the report's template escapes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

#[test]
fn the_summary_comes_first_and_lists_every_verdict() {
    use infermark_reports::{claims, gate};
    let gate = html::GateSummary {
        baseline: "ci/baseline".into(),
        rules: "ci/gates.toml".into(),
        refused: None,
        verdicts: vec![gate::Verdict {
            rule: "GQA bytes".into(),
            baseline: Some(512.0),
            current: Some(256.0),
            improvement: Some(0.5),
            pass: false,
            note: "changed both ways".into(),
        }],
    };
    let page = html::render_with_gate(
        &env(),
        &records(),
        &[],
        Default::default(),
        &|_| "desc".into(),
        Some(&gate),
    )
    .unwrap();
    let start = page.find("<section id=\"summary\">").expect("a summary");
    let end = start + page[start..].find("</section>").expect("closed summary");
    let summary = &page[start..end];
    for later in [
        "<h2>Environment",
        "<h2>Claims ledger",
        "<h2>Maturity",
        "<h2>Suite:",
    ] {
        let at = page.find(later).unwrap_or_else(|| panic!("{later}"));
        assert!(start < at, "the summary comes before {later}");
    }
    let verdicts = claims::evaluate(&claims::parse(claims::LEDGER).unwrap(), &records());
    assert!(!verdicts.is_empty());
    for c in &verdicts {
        let line = format!("{}</span>: {}</li>", c.verdict, escaped(&c.text));
        assert!(summary.contains(&line), "summary lacks `{line}`");
    }
    let n = |v: &str| verdicts.iter().filter(|c| c.verdict == v).count();
    assert!(summary.contains(&format!("{} not measured</span>", n("not measured"))));
    assert!(summary.contains("fail</span>: 0 of 1 rules"), "{summary}");
    assert!(summary.contains("GQA bytes: changed both ways"));
    // M(P): these records time only the core, so no technique has S; the parts are named.
    assert!(
        summary.contains("gqa: ") && summary.contains("missing"),
        "{summary}"
    );
    // Without a gate the summary says so rather than showing a pass.
    let page = html::render(&env(), &records(), &[], Default::default(), &|_| {
        "desc".into()
    })
    .unwrap();
    assert!(page.contains("<b>Gate:</b> not evaluated"));
}

#[test]
fn attention_bandwidth_table_reads_the_triad_share_and_the_prefetch_share_of_each_row() {
    let with = |metric: &str, suite: &str, ctx: usize, value: f64, stat: Stat| Record {
        metric: metric.into(),
        suite: suite.into(),
        value,
        ..record("gqa", ctx, 0.0, stat)
    };
    let mut triad = with("triad_gbps", "machine", 0, 40.0, Stat::Median);
    triad.params.clear();
    let recs = vec![
        triad,
        with("kv_read_gbps", "attention", 256, 60.0, Stat::Median),
        with("kv_prefetch_share", "attention", 256, 0.25, Stat::Mean),
        // No prefetch record (a GPU run, or one from before it was recorded).
        with("kv_read_gbps", "attention", 4096, 34.0, Stat::Median),
    ];
    let pivots = infermark_reports::sections::pivots("attention", &recs);
    let p = &pivots[0];
    let col = |name: &str| p.header.iter().position(|h| h == name).unwrap();
    let row = |ctx: &str| p.rows.iter().find(|r| r[col("ctx")] == ctx).unwrap();
    assert_eq!(row("256")[col("of triad")], "150%");
    assert_eq!(row("256")[col("calls prefetched")], "25%");
    assert_eq!(row("4096")[col("of triad")], "85%");
    assert_eq!(row("4096")[col("calls prefetched")], "–");
}
