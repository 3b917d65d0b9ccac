//! Every registered suite's section (declared as data beside its code) against the committed
//! smoke baseline: it names only registered metrics that the run records, and it renders.

use std::path::Path;

use infermark_reports::{io, section};
use infermark_suites::metric;

#[test]
fn every_section_reads_registered_metrics_that_the_baseline_records() {
    let run = io::read_run(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/baseline"))
        .expect("ci/baseline reads");
    for suite in infermark_suites::registry() {
        for m in suite.report().metrics() {
            assert!(
                metric::lookup(m.name)
                    .is_some_and(|r| r.unit == m.unit && r.direction == m.direction),
                "{}: section reads `{}`, which the metric registry does not hold",
                suite.name(),
                m.name
            );
            assert!(
                run.records.iter().any(|r| r.metric == m.name),
                "{}: section reads `{}`, which no record of ci/baseline carries",
                suite.name(),
                m.name
            );
        }
    }
}

#[test]
fn every_section_renders_on_the_baseline_and_a_declared_one_shows_something() {
    let run = io::read_run(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/baseline"))
        .expect("ci/baseline reads");
    for suite in infermark_suites::registry() {
        let spec = suite.report();
        let tables = section::tables(suite.name(), spec, &run.records);
        let charts = section::charts(suite.name(), spec, &run.records)
            .unwrap_or_else(|e| panic!("{}: {e}", suite.name()));
        let declared = !spec.tables.is_empty() || !spec.charts.is_empty();
        assert_eq!(
            declared,
            !tables.is_empty() || !charts.is_empty(),
            "{}: declared a section: {declared}; rendered {} tables and {} charts",
            suite.name(),
            tables.len(),
            charts.len()
        );
        for t in &tables {
            assert!(
                t.rows.iter().all(|r| r.len() == t.header.len()),
                "{}",
                t.title
            );
            assert!(
                !t.title.contains('{'),
                "unfilled placeholder in {}",
                t.title
            );
        }
    }
}
