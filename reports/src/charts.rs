//! SVG chart primitives (plotters), with no suite knowledge: log-log and linear line charts,
//! measured-against-model charts, labelled scatter plots, accuracy/cost fronts; and the generic
//! charts of every metric measured over a context-length sweep (one series per preset and
//! variant).

use std::collections::BTreeMap;

use infermark_suites::Record;
use plotters::prelude::*;
use serde::Serialize;

use crate::table::summarise;
use crate::{ReportError, Result};

/// A rendered chart.
#[derive(Clone, Debug, Serialize)]
pub struct Chart {
    /// Suite it belongs to.
    pub suite: String,
    /// Title shown above it.
    pub title: String,
    /// Inline SVG document.
    pub svg: String,
}

/// Named series of (x, y) points.
pub type Series = BTreeMap<String, Vec<(f64, f64)>>;

const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 64),
];

/// Draws each measured series as a solid line with points (labelled in the legend) and, where
/// `model` has a series of the same name, that one dashed in the same colour; then the legend.
fn draw_lines<'a, 'b, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    measured: &Series,
    model: Option<&Series>,
    legend: SeriesLabelPosition,
) -> std::result::Result<(), String>
where
    'b: 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    fn e<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
        e.to_string()
    }
    for (i, (name, points)) in measured.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut points = points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(e)?;
        if let Some(m) = model.and_then(|m| m.get(name)) {
            let mut m = m.clone();
            m.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(DashedLineSeries::new(m, 6, 4, color.stroke_width(1)))
                .map_err(e)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(e)
}

/// Renders a log-log line chart.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &Series) -> Result<String> {
    let err = |e: String| ReportError::Render {
        what: format!("chart `{title}`"),
        reason: e,
    };
    let pts = series
        .values()
        .flatten()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(err("no positive points to plot".into()));
    }
    let (x0, x1) = if x0 == x1 {
        (x0 / 2.0, x1 * 2.0)
    } else {
        (x0, x1)
    };
    let (y0, y1) = (y0 / 1.5, y1 * 1.5);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| axis_label(*v))
            .y_label_formatter(&|v| axis_label(*v))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        draw_lines(&mut chart, series, None, SeriesLabelPosition::UpperLeft).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// A linear chart of measured series (solid, with points) and, in the same colours, what a model
/// predicts for each (dashed); a grey line marks `reference` on the y axis (e.g. speedup 1).
pub fn measured_vs_model(
    title: &str,
    x_label: &str,
    y_label: &str,
    measured: &Series,
    model: &Series,
    reference: Option<f64>,
) -> Result<String> {
    let err = |e: String| ReportError::Render {
        what: format!("chart `{title}`"),
        reason: e,
    };
    let pts = measured.values().chain(model.values()).flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0f64, f64::MIN);
    for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(err("no points to plot".into()));
    }
    if let Some(r) = reference {
        y1 = y1.max(r);
    }
    let (x0, x1) = if x0 == x1 {
        (x0 - 1.0, x1 + 1.0)
    } else {
        (x0, x1)
    };
    let y1 = y1 * 1.1 + 1e-9;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| axis_label(*v))
            .y_label_formatter(&|v| axis_label(*v))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        if let Some(r) = reference {
            chart
                .draw_series(LineSeries::new([(x0, r), (x1, r)], BLACK.mix(0.3)))
                .map_err(|e| err(e.to_string()))?;
        }
        draw_lines(
            &mut chart,
            measured,
            Some(model),
            SeriesLabelPosition::UpperRight,
        )
        .map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// The lower-left Pareto front of `points` (smaller is better on both axes): by increasing x,
/// each point whose y is below every point's at smaller or equal x.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if out.last().is_none_or(|l| p.1 < l.1) {
            out.push(p);
        }
    }
    out
}

/// A scatter plot with a label beside each point (linear axes, zero line when y crosses 0):
/// points `(label, group, x, y)`. Where groups are named, each group has its own
/// colour and legend entry, and its Pareto front ([`pareto_front`]) is drawn as a line.
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(String, String, f64, f64)],
) -> Result<String> {
    let err = |e: String| ReportError::Render {
        what: format!("chart `{title}`"),
        reason: e,
    };
    if points.is_empty() {
        return Err(err("no points".into()));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, _, x, y) in points {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    let mut groups: Vec<&str> = Vec::new();
    for (_, g, _, _) in points {
        if !groups.contains(&g.as_str()) {
            groups.push(g);
        }
    }
    let (px, py) = (((x1 - x0) * 0.08).max(0.5), ((y1 - y0) * 0.1).max(1e-9));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x0 - px)..(x1 + 3.0 * px), (y0 - py)..(y1 + py))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        if y0 < 0.0 && y1 > 0.0 {
            chart
                .draw_series(LineSeries::new(
                    [(x0 - px, 0.0), (x1 + 3.0 * px, 0.0)],
                    BLACK.mix(0.3),
                ))
                .map_err(|e| err(e.to_string()))?;
        }
        for (i, &group) in groups.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mine: Vec<&(String, String, f64, f64)> =
                points.iter().filter(|p| p.1 == group).collect();
            if !group.is_empty() {
                let xy: Vec<(f64, f64)> = mine.iter().map(|p| (p.2, p.3)).collect();
                chart
                    .draw_series(LineSeries::new(pareto_front(&xy), color.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?
                    .label(group)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            chart
                .draw_series(mine.iter().map(|(label, _, x, y)| {
                    EmptyElement::at((*x, *y))
                        + Circle::new((0, 0), 4, color.filled())
                        + Text::new(label.clone(), (6, -6), ("sans-serif", 11))
                }))
                .map_err(|e| err(e.to_string()))?;
        }
        if groups.iter().any(|g| !g.is_empty()) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// An accuracy/cost front: labelled triangle markers (fixed policies) and lines with points (swept
/// ones), on linear axes padded around the points.
pub fn front(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &Series,
    marks: &[(String, (f64, f64))],
) -> Result<String> {
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
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0 - px)..(x1 + 3.0 * px), (y0 - py)..(y1 + py))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (name, p) in marks {
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(*p)
                        + TriangleMarker::new((0, 0), 7, BLACK.filled())
                        + Text::new(name.clone(), (8, -12), ("sans-serif", 13)),
                ))
                .map_err(|e| err(e.to_string()))?;
        }
        draw_lines(&mut chart, lines, None, SeriesLabelPosition::LowerRight).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// Short tick labels: 3 significant digits, no trailing zeros, exponents for extremes.
fn axis_label(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.0e}");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A chart for every metric (and `part`) measured over a `ctx` sweep of at least two points.
pub fn sweep_charts(records: &[Record]) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    for table in summarise(records) {
        // One chart per metric and `part`; one series per preset/variant.
        let mut by_part: BTreeMap<String, Series> = BTreeMap::new();
        for row in &table.rows {
            let Some(ctx) = row.param_map.get("ctx").and_then(|c| c.parse::<f64>().ok()) else {
                continue;
            };
            let part = row.param_map.get("part").cloned().unwrap_or_default();
            // Series: everything but the swept context (so only true sweeps get lines).
            let mut name = match row.param_map.get("preset") {
                Some(p) => format!("{p}/{}", row.variant),
                None => row.variant.clone(),
            };
            for (k, v) in &row.param_map {
                if !["ctx", "part", "preset"].contains(&k.as_str()) {
                    name.push_str(&format!(" {k}={v}"));
                }
            }
            by_part
                .entry(part)
                .or_default()
                .entry(name)
                .or_default()
                .push((ctx, row.value));
        }
        for (part, series) in by_part {
            if series.values().all(|s| s.len() < 2) {
                continue;
            }
            let title = if part.is_empty() {
                table.metric.clone()
            } else {
                format!("{} ({part})", table.metric)
            };
            let svg = line_chart(&title, "context length (tokens)", &table.unit, &series)?;
            out.push(Chart {
                suite: table.suite.clone(),
                title,
                svg,
            });
        }
    }
    Ok(out)
}

/// M(P) of each technique with a total, as a horizontal bar of its three weighted parts
/// (w·S, w·C, w·I over the sum of weights: the bar's length is M), best first, on a 0–1 axis.
/// `None` when no technique has a total.
pub fn maturity_parts(
    scores: &[crate::maturity::Score],
    w: crate::maturity::Weights,
) -> Option<String> {
    let mut rows: Vec<&crate::maturity::Score> = scores.iter().filter(|s| s.m.is_some()).collect();
    if rows.is_empty() {
        return None;
    }
    rows.sort_by(|a, b| b.m.unwrap_or(0.0).total_cmp(&a.m.unwrap_or(0.0)));
    let total = w.s + w.c + w.i;
    let (label_w, bar_w, row_h, top) = (260.0, 480.0, 18.0, 34.0);
    let height = top + row_h * rows.len() as f64 + 30.0;
    let width = label_w + bar_w + 60.0;
    let colours = [("S", "#4e79a7"), ("C", "#f28e2b"), ("I", "#59a14f")];
    let mut svg = format!(
        "<svg id=\"mp-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<text x=\"4\" y=\"14\" font-size=\"13\">M(P) per technique: weighted parts S, C, I (bar length = M)</text>\n"
    );
    for (k, (name, colour)) in colours.iter().enumerate() {
        let x = label_w + k as f64 * 60.0;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"20\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"29\">{name}</text>\n",
            x + 14.0
        ));
    }
    for (i, s) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} {}</text>\n",
            label_w - 6.0,
            y + 12.0,
            escape(&s.suite),
            escape(&s.technique)
        ));
        let mut x = label_w;
        for ((name, colour), (part, weight)) in
            colours.iter().zip([(s.s, w.s), (s.c, w.c), (s.i, w.i)])
        {
            let v = part.unwrap_or(0.0) * weight / total;
            let len = v * bar_w;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{name} = {:.3} (weighted {v:.3})</title></rect>\n",
                y + 2.0,
                row_h - 4.0,
                part.unwrap_or(f64::NAN)
            ));
            x += len;
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\">{:.2}</text>\n",
            x + 4.0,
            y + 12.0,
            s.m.unwrap_or(f64::NAN)
        ));
    }
    let axis_y = top + row_h * rows.len() as f64 + 4.0;
    svg.push_str(&format!(
        "<line x1=\"{label_w}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#333\"/>\n",
        label_w + bar_w
    ));
    for t in 0..=4 {
        let x = label_w + bar_w * t as f64 / 4.0;
        svg.push_str(&format!(
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{:.2}</text>\n",
            axis_y + 14.0,
            t as f64 / 4.0
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_the_points_nothing_beats_on_both_axes() {
        // (4.5, 0.5) is beaten by (4.0, 0.4); (6, 0.4) ties (4.0, 0.4) on y at more bits; at
        // x = 8 the lower of two points stays.
        let points = [
            (8.0, 0.05),
            (4.5, 0.5),
            (4.0, 0.4),
            (6.0, 0.4),
            (5.0, 0.2),
            (8.0, 0.01),
            (3.0, 0.9),
        ];
        assert_eq!(
            pareto_front(&points),
            vec![(3.0, 0.9), (4.0, 0.4), (5.0, 0.2), (8.0, 0.01)]
        );
        assert!(pareto_front(&[]).is_empty());
    }

    #[test]
    fn scatter_with_groups_draws_a_legend_entry_per_group() {
        let p = |l: &str, g: &str, x, y| (l.to_string(), g.to_string(), x, y);
        let svg = scatter(
            "t",
            "bits",
            "kl",
            &[
                p("a", "rtn", 4.0, 0.5),
                p("b", "awq", 4.0, 0.3),
                p("c", "awq", 5.0, 0.2),
            ],
        )
        .unwrap();
        assert!(svg.contains("rtn") && svg.contains("awq"), "{svg}");
        let plain = scatter("t", "bits", "kl", &[p("a", "", 4.0, 0.5)]).unwrap();
        assert!(!plain.contains("rtn"));
    }
}
