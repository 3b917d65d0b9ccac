//! The adacot suite's part of the report: per workload, the Pareto front of accuracy against
//! mean response tokens (swept gates as lines, never/always/oracle as labelled markers), the
//! trigger rate by difficulty, and the gates' precision and recall against the oracle labels
//! (AdaCoT Table 1).

use std::collections::BTreeMap;

use infermark_suites::{adacot, Record, Stat};
use plotters::prelude::*;

use crate::charts::{draw_lines, Chart};
use crate::format::cell;
use crate::metrics::{self, Metric};
use crate::pivot::{header, Pivot};
use crate::section::SuiteSection;
use crate::{ReportError, Result};

const SUITE: &str = adacot::NAME;
const MARKERS: [&str; 3] = ["never", "always", "oracle"];
/// The swept setting of each gate.
const SETTINGS: [&str; 5] = ["k", "tau", "rate", "lambda", "rate_of"];

/// The adacot suite's section.
pub struct AdacotSection;

impl SuiteSection for AdacotSection {
    fn suite(&self) -> &'static str {
        SUITE
    }

    fn charts(&self, records: &[Record]) -> Result<Vec<Chart>> {
        let mut out = Vec::new();
        for w in workloads(records) {
            if let Some(c) = pareto(records, &w)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn pivots(&self, records: &[Record]) -> Vec<Pivot> {
        workloads(records)
            .iter()
            .map(|w| table(records, w))
            .chain([slm_table(records)])
            .filter(|p| !p.rows.is_empty())
            .collect()
    }
}

fn workloads(records: &[Record]) -> Vec<String> {
    crate::select::param_values(records, SUITE, "workload")
}

/// The setting label of a record (`k=2`), empty for an unswept gate.
fn setting(r: &Record) -> String {
    SETTINGS
        .iter()
        .filter_map(|k| r.params.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Overall (`digits` absent or `all`) mean-stat records of `metric` on `workload`, keyed by (gate, setting).
fn overall<'a>(
    records: &'a [Record],
    metric: &Metric,
    workload: &str,
) -> BTreeMap<(String, String), &'a Record> {
    records
        .iter()
        .filter(|r| {
            r.suite == SUITE
                && r.metric == metric.name
                && r.stat == Stat::Mean
                && r.params.get("digits").is_none_or(|d| d == "all")
                && r.params.get("workload").map(String::as_str) == Some(workload)
        })
        .map(|r| ((r.variant.clone(), setting(r)), r))
        .collect()
}

fn pareto(records: &[Record], workload: &str) -> Result<Option<Chart>> {
    let acc = overall(records, &metrics::ACCURACY, workload);
    let tok = overall(records, &metrics::MEAN_RESPONSE_TOKENS, workload);
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut marks = Vec::new();
    for (key, a) in &acc {
        let Some(t) = tok.get(key) else { continue };
        let p = (t.value, 100.0 * a.value);
        if MARKERS.contains(&key.0.as_str()) {
            marks.push((key.0.clone(), p));
        } else {
            let series = if a.params.contains_key("rate_of") {
                "random at learned rate".to_string()
            } else {
                key.0.clone()
            };
            lines.entry(series).or_default().push(p);
        }
    }
    if marks.is_empty() && lines.is_empty() {
        return Ok(None);
    }
    let title = format!("AdaCoT front, {workload}: accuracy vs mean response tokens");
    let err = |e: String| ReportError::Render {
        what: format!("chart `{title}`"),
        reason: e,
    };
    let all: Vec<(f64, f64)> = lines
        .values()
        .flatten()
        .copied()
        .chain(marks.iter().map(|m| m.1))
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in &all {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    let (px, py) = (((x1 - x0) * 0.08).max(0.5), ((y1 - y0) * 0.1).max(0.5));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - px)..(x1 + 3.0 * px), (y0 - py)..(y1 + py))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("mean response tokens per problem")
            .y_desc("accuracy (%)")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (name, p) in &marks {
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(*p)
                        + TriangleMarker::new((0, 0), 7, BLACK.filled())
                        + Text::new(name.clone(), (8, -12), ("sans-serif", 13)),
                ))
                .map_err(|e| err(e.to_string()))?;
        }
        draw_lines(&mut chart, &lines, None, SeriesLabelPosition::LowerRight).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(Some(Chart {
        suite: SUITE.into(),
        title,
        svg,
    }))
}

/// Per gate and setting: accuracy, tokens, reduction, trigger rate overall and per digits,
/// precision, recall, F1.
fn table(records: &[Record], workload: &str) -> Pivot {
    let get = |m: &Metric| overall(records, m, workload);
    let acc = get(&metrics::ACCURACY);
    let cols = [
        &metrics::MEAN_RESPONSE_TOKENS,
        &metrics::TOKEN_REDUCTION_VS_ALWAYS,
        &metrics::ACCURACY_DELTA_VS_ALWAYS,
        &metrics::TOKENS_VS_ORACLE,
        &metrics::COT_TRIGGER_RATE,
        &metrics::GATE_PRECISION,
        &metrics::GATE_RECALL,
        &metrics::GATE_F1,
    ];
    let maps: Vec<_> = cols.iter().map(|c| get(c)).collect();
    let by_digits = |key: &(String, String), d: &str| {
        records
            .iter()
            .find(|r| {
                r.suite == SUITE
                    && r.metric == metrics::COT_TRIGGER_RATE.name
                    && r.variant == key.0
                    && setting(r) == key.1
                    && r.params.get("workload").map(String::as_str) == Some(workload)
                    && r.params.get("digits").map(String::as_str) == Some(d)
            })
            .map(|r| r.value)
    };
    let mut rows = Vec::new();
    for (key, a) in &acc {
        let mut row = vec![key.0.clone(), key.1.clone(), cell(Some(a.value))];
        row.extend(maps.iter().map(|m| cell(m.get(key).map(|r| r.value))));
        row.extend(["1", "2", "3", "4"].iter().map(|d| cell(by_digits(key, d))));
        rows.push(row);
    }
    let mut columns = header(&["gate", "setting", metrics::ACCURACY.name]);
    columns.extend(cols.iter().map(|m| m.name.to_string()));
    columns.extend(
        (1..=4).map(|d| format!("trigger rate, {d} digit{}", if d > 1 { "s" } else { "" })),
    );
    Pivot {
        title: format!("AdaCoT gates on {workload}: accuracy, tokens, trigger rate by difficulty, precision and recall"),
        header: columns,
        rows,
        note: "Every gate answers the same problems with the base arith model's own greedy answers (learned: the fine-tuned model end to end; learned-route: its decision token, then the base answers). Positive class = the direct answer is wrong (oracle label); precision and recall of deciding to think, AdaCoT Table 1. Tokens count every attempt (a confidence fallback pays for its direct try; the learned gate's decision token counts).".into(),
    }
}

/// The `slm` case: per masking setting (before training, masked off, on) and set (the skewed
/// training set, fresh easy-heavy traffic), trigger rate, accuracy and tokens.
fn slm_table(records: &[Record]) -> Pivot {
    let slm: Vec<&Record> = records
        .iter()
        .filter(|r| r.suite == SUITE && r.variant == "slm")
        .collect();
    let get = |mask: &str, set: &str, metric: &Metric| {
        slm.iter()
            .find(|r| {
                r.metric == metric.name
                    && r.params.get("mask").map(String::as_str) == Some(mask)
                    && r.params.get("set").map(String::as_str) == Some(set)
            })
            .map(|r| r.value)
    };
    let steps = slm
        .first()
        .and_then(|r| r.params.get("steps").cloned())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for mask in ["before", "off", "on"] {
        for set in ["skewed", "easy-heavy"] {
            if get(mask, set, &metrics::ACCURACY).is_none() {
                continue;
            }
            let mut row = vec![mask.to_string(), set.to_string()];
            row.extend(
                [
                    &metrics::COT_TRIGGER_RATE,
                    &metrics::ACCURACY,
                    &metrics::MEAN_RESPONSE_TOKENS,
                ]
                .iter()
                .map(|m| cell(get(mask, set, m))),
            );
            rows.push(row);
        }
    }
    Pivot {
        title: "Selective loss masking: the decision before and after RL on a skewed set".into(),
        header: header(&["decision loss masked", "set", metrics::COT_TRIGGER_RATE.name, metrics::ACCURACY.name, metrics::MEAN_RESPONSE_TOKENS.name]),
        rows,
        note: format!(
            "From the imitation checkpoint, {steps} GRPO steps on a mostly-hard set (hard-heavy mix), the answer anchor training in both runs; `before` is the start. Greedy decisions routed to the base model's answers."
        ),
    }
}
