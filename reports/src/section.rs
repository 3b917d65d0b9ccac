//! The one renderer of a suite's own part of the report: any [`Section`] a suite declares (see
//! [`infermark_suites::report`]) over a run's records becomes [`Pivot`]s and [`Chart`]s, through
//! the primitives below it (selection by [`Pick`], [`crate::format`] cells,
//! [`crate::machine_limit`], [`crate::charts`]). It knows no suite and no metric: every name it
//! reads comes from the section.

use std::cmp::Ordering;

use infermark_suites::metric::Metric;
use infermark_suites::report::{
    Bind, Cell, Chart as ChartSpec, Each, Filter, Key, Model, Order, Pick, Repeat, Rows, Section,
    Src, Stats, Table, Val,
};
use infermark_suites::{Record, Stat};

use crate::charts::{front, line_chart, measured_vs_model, scatter, Chart, Series};
use crate::format::{cell, ratio};
use crate::machine_limit::{fraction, limit_note, machine_limit};
use crate::pivot::Pivot;
use crate::Result;

/// The tables `section` of `suite` shows for `records`, in the section's order; a table without
/// rows is left out.
pub fn tables(suite: &str, section: &Section, records: &[Record]) -> Vec<Pivot> {
    let mut out = Vec::new();
    for repeat in section.tables {
        for each in each_values(suite, repeat, records) {
            let scope = Scope::new(suite, records, each.as_deref());
            for table in repeat.items {
                out.extend(render_table(&scope, table));
            }
        }
    }
    out
}

/// The charts `section` of `suite` draws for `records`, in the section's order; a chart with
/// nothing to draw is left out.
pub fn charts(suite: &str, section: &Section, records: &[Record]) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    for repeat in section.charts {
        for each in each_values(suite, repeat, records) {
            let scope = Scope::new(suite, records, each.as_deref());
            for chart in repeat.items {
                out.extend(render_chart(&scope, chart)?);
            }
        }
    }
    Ok(out)
}

/// The values a repeat runs over: `[None]` (once) without [`Each`].
fn each_values<T>(suite: &str, repeat: &Repeat<T>, records: &[Record]) -> Vec<Option<String>> {
    let Some(Each { param, from, order }) = repeat.each else {
        return vec![None];
    };
    let values = records
        .iter()
        .filter(|r| r.suite == suite && from.is_none_or(|m| r.metric == m.name))
        .filter_map(|r| r.params.get(param.name()).cloned());
    distinct(values, order).into_iter().map(Some).collect()
}

fn distinct<T: Ord + Clone>(values: impl Iterator<Item = T>, order: Order) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if order == Order::Sorted {
        out.sort();
    }
    out
}

/// Where a table or chart is rendered: the suite's records, the repeated value, the bindings.
struct Scope<'a> {
    suite: &'a str,
    records: &'a [Record],
    each: Option<&'a str>,
    binds: Vec<String>,
}

/// A table row: its key values and the record it is about (its own or its anchor); `exact`
/// rows join the records of their own variant and params.
#[derive(Default)]
struct Row<'a> {
    keys: Vec<(Key, String)>,
    record: Option<&'a Record>,
    exact: bool,
}

impl Row<'_> {
    /// Whether `r` belongs to this row.
    fn joins(&self, r: &Record) -> bool {
        match (self.exact, self.record) {
            (true, Some(own)) => r.variant == own.variant && r.params == own.params,
            _ => self
                .keys
                .iter()
                .all(|(k, v)| key_of(*k, r).as_deref() == Some(v.as_str())),
        }
    }

    /// The row's value of `k`: a key, else its record's.
    fn key(&self, k: Key) -> String {
        self.keys
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
            .or_else(|| self.record.and_then(|r| key_of(k, r)))
            .unwrap_or_default()
    }
}

/// A record's value of a key.
fn key_of(k: Key, r: &Record) -> Option<String> {
    match k {
        Key::Variant => Some(r.variant.clone()),
        Key::Param(p) => r.params.get(p.name()).cloned(),
        Key::Setting(params) => Some(
            params
                .iter()
                .filter_map(|p| r.params.get(p.name()).map(|v| format!("{}={v}", p.name())))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

/// A series name: the keys joined by `/`, `-` for an absent one.
fn series_name(keys: &[Key], r: &Record) -> String {
    keys.iter()
        .map(|k| key_of(*k, r).unwrap_or_else(|| "-".into()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Rank of a statistic as a summary table's headline (lower wins).
fn rank(stat: Stat) -> Option<u8> {
    match stat {
        Stat::Exact => Some(0),
        Stat::Median => Some(1),
        Stat::Mean => Some(2),
        Stat::Max => Some(3),
        _ => None,
    }
}

/// One record per (variant, params) of `suite`'s `metric`, by the summary tables' rule, in
/// first-seen order of the groups.
fn summary<'a>(records: &'a [Record], suite: &str, metric: &str) -> Vec<&'a Record> {
    let mut groups: Vec<(&'a Record, Option<(u8, &'a Record)>)> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.suite == suite && r.metric == metric)
    {
        let i = match groups
            .iter()
            .position(|(first, _)| first.variant == r.variant && first.params == r.params)
        {
            Some(i) => i,
            None => {
                groups.push((r, None));
                groups.len() - 1
            }
        };
        if let Some(k) = rank(r.stat) {
            if groups[i].1.is_none_or(|(cur, _)| k < cur) {
                groups[i].1 = Some((k, r));
            }
        }
    }
    groups
        .into_iter()
        .filter_map(|(_, h)| h.map(|h| h.1))
        .collect()
}

/// The record a suite's headline reads: the first of `suite`'s records that `pick` reads.
pub fn headline<'a>(suite: &'a str, records: &'a [Record], pick: &Pick) -> Option<&'a Record> {
    Scope::new(suite, records, None).first(pick, &Row::default())
}

impl<'a> Scope<'a> {
    fn new(suite: &'a str, records: &'a [Record], each: Option<&'a str>) -> Self {
        Scope {
            suite,
            records,
            each,
            binds: Vec::new(),
        }
    }

    /// Resolves a filter value; `None` where it has none (then nothing matches).
    fn val(&self, v: Val, row: &Row) -> Option<String> {
        match v {
            Val::Lit(s) => Some(s.to_string()),
            Val::Each => self.each.map(str::to_string),
            Val::Bound(i) => self.binds.get(i).cloned(),
            Val::Anchor(p) => row.record?.params.get(p.name()).cloned(),
        }
    }

    fn passes(&self, f: &Filter, r: &Record, row: &Row) -> bool {
        let get = |p: infermark_suites::report::Param| r.params.get(p.name());
        match *f {
            Filter::Is(p, v) => self.val(v, row).is_some_and(|v| get(p) == Some(&v)),
            Filter::Absent(p) => get(p).is_none(),
            Filter::Present(p) => get(p).is_some(),
            Filter::AbsentOr(p, v) => get(p).is_none_or(|x| x == v),
            Filter::Variant(v) => r.variant == v,
        }
    }

    /// The suite's records `pick` reads that join `row`, in record order.
    fn picked(&self, pick: &Pick, row: &Row) -> Vec<&'a Record> {
        let base: Vec<&'a Record> = match (pick.stats, pick.metric) {
            (Stats::Summary, Some(m)) => summary(self.records, self.suite, m.name),
            _ => self
                .records
                .iter()
                .filter(|r| r.suite == self.suite && pick.metric.is_none_or(|m| r.metric == m.name))
                .filter(|r| match pick.stats {
                    Stats::Headline => matches!(r.stat, Stat::Exact | Stat::Median | Stat::Mean),
                    Stats::Only(s) => r.stat == s,
                    Stats::Summary | Stats::Any => true,
                })
                .collect(),
        };
        base.into_iter()
            .filter(|r| pick.filter.iter().all(|f| self.passes(f, r, row)))
            .filter(|r| row.joins(r))
            .collect()
    }

    fn first(&self, pick: &Pick, row: &Row) -> Option<&'a Record> {
        self.picked(pick, row).into_iter().next()
    }

    /// Computes the bindings in order; `None` where a required one has no value.
    fn bind(&mut self, binds: &[Bind]) -> Option<()> {
        for b in binds {
            let none = Row::default();
            let v = match *b {
                Bind::Max { param, pick, floor } => {
                    let max = self
                        .picked(&pick, &none)
                        .iter()
                        .filter_map(|r| r.params.get(param.name())?.parse::<f64>().ok())
                        .fold(floor.unwrap_or(f64::NEG_INFINITY), f64::max);
                    max.is_finite().then(|| format!("{max}"))
                }
                Bind::First {
                    param,
                    pick,
                    skip_prefix,
                    or,
                } => self
                    .picked(&pick, &none)
                    .iter()
                    .filter_map(|r| r.params.get(param.name()))
                    .find(|v| skip_prefix.is_none_or(|s| !v.starts_with(s)))
                    .cloned()
                    .or(or.map(str::to_string)),
            };
            self.binds.push(v?);
        }
        Some(())
    }

    /// A title, header or note with its placeholders filled.
    fn fill(&self, text: &str, metric: Option<&Metric>) -> String {
        let mut out = text.replace("{each}", self.each.unwrap_or(""));
        if let Some(m) = metric {
            out = out.replace("{metric}", m.name);
        }
        for (i, b) in self.binds.iter().enumerate() {
            out = out.replace(&format!("{{{i}}}"), b);
        }
        out
    }

    fn src(&self, s: &Src, row: &Row<'a>) -> Option<&'a Record> {
        match s {
            Src::Row => row.record,
            Src::Pick(p) => self.first(p, row),
        }
    }

    /// A cell's text, and whether it has a value.
    fn cell(&self, c: &Cell, row: &Row<'a>) -> (String, bool) {
        let value = |s: &Src| self.src(s, row).map(|r| r.value);
        match c {
            Cell::Key(k) => (row.key(*k), true),
            Cell::Value(s) => {
                let v = value(s);
                (cell(v), v.is_some())
            }
            Cell::Over(k, s) => {
                let v = value(s);
                (cell(v.map(|x| k / x)), v.is_some())
            }
            Cell::Ratio(a, b) => (ratio(value(a), value(b)), value(a).is_some()),
            Cell::OfMachine(s, m) => {
                let limit = machine_limit(self.records, m).map(|x| x.0);
                (fraction(value(s), limit), value(s).is_some())
            }
            Cell::Percent(s) => match value(s) {
                Some(v) => (format!("{:.0}%", 100.0 * v), true),
                None => ("–".into(), false),
            },
            Cell::Count(s) => match self.src(s, row) {
                Some(r) => (r.n.to_string(), true),
                None => ("–".into(), false),
            },
            Cell::AllOne(p) => {
                let all: Vec<f64> = self.picked(p, row).iter().map(|r| r.value).collect();
                let bad = all.iter().filter(|&&x| x != 1.0).count();
                let text = match (all.len(), bad) {
                    (0, _) => "–".to_string(),
                    (n, 0) => format!("yes ({n})"),
                    (n, k) => format!("NO ({k} of {n})"),
                };
                (text, !all.is_empty())
            }
            Cell::ParamOf(p, param, or) => match self.first(p, row) {
                Some(r) => (
                    r.params
                        .get(param.name())
                        .cloned()
                        .unwrap_or_else(|| or.to_string()),
                    true,
                ),
                None => (or.to_string(), false),
            },
        }
    }

    /// The rows of a table, before anchors.
    fn rows(&self, rows: &Rows) -> Vec<Row<'a>> {
        let none = Row::default();
        match *rows {
            Rows::Records { pick, sort } => {
                let mut recs = self.picked(&pick, &none);
                recs.sort_by(|a, b| {
                    sort.iter()
                        .map(|k| cmp_values(key_of(*k, a), key_of(*k, b)))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                });
                recs.into_iter()
                    .map(|r| Row {
                        keys: Vec::new(),
                        record: Some(r),
                        exact: true,
                    })
                    .collect()
            }
            Rows::Keys { keys, from, order } => {
                let source: Vec<&Record> = match from {
                    Some(p) => self.picked(&p, &none),
                    None => self
                        .records
                        .iter()
                        .filter(|r| r.suite == self.suite)
                        .collect(),
                };
                let values = source.iter().filter_map(|r| {
                    keys.iter()
                        .map(|k| key_of(*k, r))
                        .collect::<Option<Vec<String>>>()
                });
                distinct(values, order)
                    .into_iter()
                    .map(|vals| Row {
                        keys: keys.iter().copied().zip(vals).collect(),
                        ..Row::default()
                    })
                    .collect()
            }
            Rows::Grid(axes) => {
                let mut out: Vec<Vec<(Key, String)>> = vec![Vec::new()];
                for (param, values) in axes {
                    out = out
                        .into_iter()
                        .flat_map(|keys| {
                            values.iter().map(move |v| {
                                let mut k = keys.clone();
                                k.push((Key::Param(*param), v.to_string()));
                                k
                            })
                        })
                        .collect();
                }
                out.into_iter()
                    .map(|keys| Row {
                        keys,
                        ..Row::default()
                    })
                    .collect()
            }
        }
    }
}

/// Compares two key values: as numbers where both are, else as text (absent first).
fn cmp_values(a: Option<String>, b: Option<String>) -> Ordering {
    let num = |x: &Option<String>| x.as_deref().and_then(|s| s.parse::<f64>().ok());
    match (num(&a), num(&b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.cmp(&b),
    }
}

fn render_table(scope: &Scope, table: &Table) -> Option<Pivot> {
    let mut scope = Scope::new(scope.suite, scope.records, scope.each);
    scope.bind(table.binds)?;
    let mut rows = Vec::new();
    for mut row in scope.rows(&table.rows) {
        if let Some(anchor) = &table.anchor {
            let best = scope
                .picked(&anchor.best, &row)
                .into_iter()
                .max_by(|a, b| a.value.total_cmp(&b.value));
            match best {
                Some(r) if anchor.needs.iter().all(|p| r.params.contains_key(p.name())) => {
                    row.record = Some(r)
                }
                _ => continue,
            }
        }
        let cells: Vec<(String, bool)> = table
            .columns
            .iter()
            .map(|c| scope.cell(&c.cell, &row))
            .collect();
        if !table.require.is_empty() && !table.require.iter().any(|&i| cells[i].1) {
            continue;
        }
        rows.push(cells.into_iter().map(|c| c.0).collect());
    }
    if rows.is_empty() {
        return None;
    }
    let mut note = scope.fill(table.note, None);
    if table.machine_note {
        note = format!("{note} {}", limit_note(scope.records));
    }
    Some(Pivot {
        title: scope.fill(table.title, None),
        header: table
            .columns
            .iter()
            .map(|c| scope.fill(c.head, None))
            .collect(),
        rows,
        note,
    })
}

fn render_chart(outer: &Scope, spec: &ChartSpec) -> Result<Vec<Chart>> {
    let mut scope = Scope::new(outer.suite, outer.records, outer.each);
    let none = Row::default();
    let chart = |title: String, svg: String| Chart {
        suite: outer.suite.to_string(),
        title,
        svg,
    };
    let num = |r: &Record, p: infermark_suites::report::Param| -> Option<f64> {
        r.params.get(p.name())?.parse().ok()
    };
    let mut out = Vec::new();
    match *spec {
        ChartSpec::Lines {
            title,
            metrics,
            stats,
            filter,
            x,
            x_label,
            series: by,
            flat,
            min_points,
        } => {
            for m in metrics {
                let pick = Pick {
                    metric: Some(m),
                    stats,
                    filter,
                };
                let points = scope.picked(&pick, &none);
                let xs: Vec<f64> = points.iter().filter_map(|r| num(r, x)).collect();
                let range = xs
                    .iter()
                    .copied()
                    .reduce(f64::min)
                    .zip(xs.iter().copied().reduce(f64::max));
                if flat && range.is_none() {
                    continue;
                }
                let mut series = Series::new();
                for r in &points {
                    let name = series_name(by, r);
                    match (num(r, x), range) {
                        (Some(v), _) => series.entry(name).or_default().push((v, r.value)),
                        (None, Some((lo, hi))) if flat => {
                            series.insert(name, vec![(lo, r.value), (hi, r.value)]);
                        }
                        _ => {}
                    }
                }
                if series.is_empty() || series.values().all(|s| s.len() < min_points) {
                    continue;
                }
                let unit = scope
                    .records
                    .iter()
                    .find(|r| r.suite == scope.suite && r.metric == m.name)
                    .map_or(m.unit, |r| r.unit.as_str());
                let title = scope.fill(title, Some(m));
                let svg = line_chart(&title, x_label, unit, &series)?;
                out.push(chart(title, svg));
            }
        }
        ChartSpec::Projection {
            title,
            pick,
            series: by,
            xs,
            divide_by,
            x_label,
            y_label,
        } => {
            let mut series = Series::new();
            for r in scope.picked(&pick, &none) {
                let line = xs.iter().map(|&c| (c, c * r.value / divide_by)).collect();
                series.insert(series_name(by, r), line);
            }
            if !series.is_empty() {
                let title = scope.fill(title, None);
                let svg = line_chart(&title, x_label, y_label, &series)?;
                out.push(chart(title, svg));
            }
        }
        ChartSpec::VsModel {
            title,
            binds,
            measured,
            model,
            x,
            series: by,
            x_label,
            y_label,
            reference,
        } => {
            if scope.bind(binds).is_none() {
                return Ok(out);
            }
            let lines = |pick: &Pick| {
                let mut s = Series::new();
                for r in scope.picked(pick, &none) {
                    if let Some(v) = num(r, x) {
                        s.entry(series_name(by, r)).or_default().push((v, r.value));
                    }
                }
                s
            };
            let points = lines(&measured);
            if points.is_empty() {
                return Ok(out);
            }
            let predicted = match model {
                Model::Metric(p) => lines(&p),
                Model::Powers(p, i) => {
                    let top = scope.binds[i].parse::<f64>().unwrap_or(0.0) as usize;
                    let mut s = Series::new();
                    for r in scope.picked(&p, &none) {
                        let curve = (1..=top)
                            .map(|k| (k as f64, r.value.powi(k as i32)))
                            .collect();
                        s.insert(series_name(by, r), curve);
                    }
                    s
                }
            };
            let title = scope.fill(title, None);
            let svg = measured_vs_model(&title, x_label, y_label, &points, &predicted, reference)?;
            out.push(chart(title, svg));
        }
        ChartSpec::Scatter {
            title,
            keys,
            fronts,
            x,
            x_over,
            y,
            x_label,
            y_label,
        } => {
            let all = scope.records.iter().filter(|r| r.suite == scope.suite);
            let tuples = all.filter_map(|r| {
                keys.iter()
                    .map(|&k| key_of(k, r))
                    .collect::<Option<Vec<String>>>()
            });
            let mut points = Vec::new();
            for vals in distinct(tuples, Order::FirstSeen) {
                let row = Row {
                    keys: keys.iter().copied().zip(vals.iter().cloned()).collect(),
                    ..Row::default()
                };
                let Some(xr) = scope.first(&x, &row) else {
                    continue;
                };
                let xv = x_over.map_or(xr.value, |o| o / xr.value);
                // The point's label: its keys' values, empty ones and the front's left out.
                let group = fronts.and_then(|k| key_of(k, xr)).unwrap_or_default();
                let label: Vec<String> = keys
                    .iter()
                    .zip(vals)
                    .filter(|(k, v)| !v.is_empty() && Some(**k) != fronts)
                    .map(|(_, v)| v)
                    .collect();
                if let Some(yr) = scope.first(&y, &row) {
                    points.push((label.join(" "), group, xv, yr.value));
                }
            }
            if !points.is_empty() {
                let title = scope.fill(title, None);
                let svg = scatter(&title, x_label, y_label, &points)?;
                out.push(chart(title, svg));
            }
        }
        ChartSpec::Front {
            title,
            keys,
            x,
            y,
            y_scale,
            markers,
            merge,
            x_label,
            y_label,
        } => {
            let rows = scope.rows(&Rows::Keys {
                keys,
                from: Some(y),
                order: Order::Sorted,
            });
            let mut lines = Series::new();
            let mut marks = Vec::new();
            for row in rows {
                let (Some(yr), Some(xr)) = (scope.first(&y, &row), scope.first(&x, &row)) else {
                    continue;
                };
                let p = (xr.value, y_scale * yr.value);
                if markers.contains(&yr.variant.as_str()) {
                    marks.push((yr.variant.clone(), p));
                } else {
                    let name = match merge {
                        Some((param, name)) if yr.params.contains_key(param.name()) => {
                            name.to_string()
                        }
                        _ => yr.variant.clone(),
                    };
                    lines.entry(name).or_default().push(p);
                }
            }
            if !marks.is_empty() || !lines.is_empty() {
                let title = scope.fill(title, None);
                let svg = front(&title, x_label, y_label, &lines, &marks)?;
                out.push(chart(title, svg));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use infermark_suites::metric::{
        DECODE_STEP_MS, DRAFT_COST_RATIO, GREEDY_EXACT, KV_PREFETCH_SHARE, KV_READ_GBPS,
        SPECULATIVE_SPEEDUP, TRIAD_GBPS,
    };
    use infermark_suites::report::{Anchor, Column, Param};

    use super::*;

    const W: Param = Param("workload");
    const G: Param = Param("gamma");
    const CTX: Param = Param("ctx");
    const BASE: Param = Param("baseline");

    fn rec(
        suite: &str,
        metric: &Metric,
        variant: &str,
        params: &[(&str, &str)],
        value: f64,
    ) -> Record {
        Record {
            run_id: "r".into(),
            suite: suite.into(),
            experiment: "e".into(),
            variant: variant.into(),
            backend: "flex".into(),
            device: "cpu".into(),
            scale: "smoke".into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            metric: metric.name.into(),
            value,
            unit: metric.unit.into(),
            stat: Stat::Median,
            n: 5,
            git_rev: "x".into(),
            timestamp: "t".into(),
            samples: Vec::new(),
        }
    }

    fn section(tables: &'static [Repeat<Table>]) -> Section {
        Section {
            tables,
            ..Section::EMPTY
        }
    }

    const PLAIN: Table = Table {
        title: "t",
        binds: &[],
        rows: Rows::Keys {
            keys: &[Key::Variant],
            from: None,
            order: Order::FirstSeen,
        },
        anchor: None,
        columns: &[
            Column {
                head: "format",
                cell: Cell::Key(Key::Variant),
            },
            Column {
                head: "ms",
                cell: Cell::Value(Src::Pick(Pick::headline(
                    &DECODE_STEP_MS,
                    &[Filter::Absent(BASE)],
                ))),
            },
            Column {
                head: "bits",
                cell: Cell::Over(
                    32.0,
                    Src::Pick(Pick::headline(&DECODE_STEP_MS, &[Filter::Absent(BASE)])),
                ),
            },
            Column {
                head: "speedup",
                cell: Cell::Ratio(
                    Src::Pick(Pick::headline(&DECODE_STEP_MS, &[Filter::Present(BASE)])),
                    Src::Pick(Pick::headline(&DECODE_STEP_MS, &[Filter::Absent(BASE)])),
                ),
            },
        ],
        require: &[1],
        note: "n",
        machine_note: false,
    };

    #[test]
    fn key_rows_join_their_cells_and_rows_without_a_required_value_are_left_out() {
        let recs = vec![
            rec("s", &DECODE_STEP_MS, "q8", &[], 4.0),
            rec("s", &DECODE_STEP_MS, "q8", &[("baseline", "f32")], 6.0),
            rec("s", &DECODE_STEP_MS, "q4", &[], 2.0),
            // Only a baseline: no value of its own, so no row.
            rec("s", &DECODE_STEP_MS, "f16", &[("baseline", "f32")], 1.0),
            // Another suite's record is never read.
            rec("other", &DECODE_STEP_MS, "q2", &[], 1.0),
        ];
        let out = tables(
            "s",
            &section(&[Repeat {
                each: None,
                items: &[PLAIN],
            }]),
            &recs,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].header, ["format", "ms", "bits", "speedup"]);
        assert_eq!(
            out[0].rows,
            [
                ["q8", "4.0000", "8.0000", "1.50×"],
                ["q4", "2.0000", "16.00", "–"]
            ]
        );
    }

    const BEST: Table = Table {
        title: "best on {each}",
        binds: &[Bind::Max {
            param: Param("batch"),
            pick: Pick {
                metric: None,
                stats: Stats::Any,
                filter: &[],
            },
            floor: Some(1.0),
        }],
        rows: Rows::Keys {
            keys: &[Key::Variant],
            from: None,
            order: Order::Sorted,
        },
        anchor: Some(Anchor {
            best: Pick::headline(&SPECULATIVE_SPEEDUP, &[Filter::Is(W, Val::Each)]),
            needs: &[G],
        }),
        columns: &[
            Column {
                head: "drafter",
                cell: Cell::Key(Key::Variant),
            },
            Column {
                head: "γ*",
                cell: Cell::Key(Key::Param(G)),
            },
            Column {
                head: "speedup",
                cell: Cell::Value(Src::Row),
            },
            Column {
                head: "c at γ*",
                cell: Cell::Value(Src::Pick(Pick::any(
                    &DRAFT_COST_RATIO,
                    &[Filter::Is(W, Val::Each), Filter::Is(G, Val::Anchor(G))],
                ))),
            },
            Column {
                head: "batch {0}",
                cell: Cell::AllOne(Pick::any(&GREEDY_EXACT, &[Filter::Is(W, Val::Each)])),
            },
        ],
        require: &[],
        note: "",
        machine_note: false,
    };

    #[test]
    fn an_anchor_is_the_best_record_and_its_params_feed_the_other_cells() {
        let recs = vec![
            rec(
                "s",
                &SPECULATIVE_SPEEDUP,
                "b",
                &[("workload", "w"), ("gamma", "2")],
                1.5,
            ),
            rec(
                "s",
                &SPECULATIVE_SPEEDUP,
                "b",
                &[("workload", "w"), ("gamma", "4")],
                1.9,
            ),
            rec(
                "s",
                &SPECULATIVE_SPEEDUP,
                "a",
                &[("workload", "w"), ("gamma", "2")],
                1.2,
            ),
            rec(
                "s",
                &SPECULATIVE_SPEEDUP,
                "a",
                &[("workload", "v"), ("gamma", "2")],
                3.0,
            ),
            rec(
                "s",
                &DRAFT_COST_RATIO,
                "b",
                &[("workload", "w"), ("gamma", "4")],
                0.25,
            ),
            rec(
                "s",
                &DRAFT_COST_RATIO,
                "b",
                &[("workload", "w"), ("gamma", "2")],
                0.5,
            ),
            rec(
                "s",
                &GREEDY_EXACT,
                "b",
                &[("workload", "w"), ("batch", "4")],
                1.0,
            ),
            rec("s", &GREEDY_EXACT, "b", &[("workload", "w")], 0.0),
        ];
        const PER_WORKLOAD: &[Repeat<Table>] = &[Repeat {
            each: Some(Each {
                param: W,
                from: None,
                order: Order::Sorted,
            }),
            items: &[BEST],
        }];
        let out = tables("s", &section(PER_WORKLOAD), &recs);
        let titles: Vec<&str> = out.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["best on v", "best on w"]);
        assert_eq!(out[1].header[4], "batch 4");
        assert_eq!(
            out[1].rows,
            [
                ["a", "2", "1.2000", "–", "–"],
                ["b", "4", "1.9000", "0.2500", "NO (1 of 2)"]
            ]
        );
    }

    const BANDWIDTH: Table = Table {
        title: "bw",
        binds: &[],
        rows: Rows::Records {
            pick: Pick::only(&KV_READ_GBPS, Stat::Median, &[]),
            sort: &[Key::Variant, Key::Param(CTX)],
        },
        anchor: None,
        columns: &[
            Column {
                head: "ctx",
                cell: Cell::Key(Key::Param(CTX)),
            },
            Column {
                head: "n",
                cell: Cell::Count(Src::Row),
            },
            Column {
                head: "of triad",
                cell: Cell::OfMachine(Src::Row, &TRIAD_GBPS),
            },
            Column {
                head: "prefetched",
                cell: Cell::Percent(Src::Pick(Pick::any(&KV_PREFETCH_SHARE, &[]))),
            },
        ],
        require: &[],
        note: "note.",
        machine_note: true,
    };

    #[test]
    fn record_rows_sort_numbers_as_numbers_and_read_companions_of_the_same_params() {
        let mut triad = rec("machine", &TRIAD_GBPS, "triad", &[], 40.0);
        triad.n = 9;
        let recs = vec![
            triad,
            rec("s", &KV_READ_GBPS, "gqa", &[("ctx", "4096")], 34.0),
            rec("s", &KV_READ_GBPS, "gqa", &[("ctx", "256")], 60.0),
            rec("s", &KV_PREFETCH_SHARE, "gqa", &[("ctx", "256")], 0.25),
            rec("s", &KV_PREFETCH_SHARE, "mla", &[("ctx", "4096")], 0.5),
        ];
        let out = tables(
            "s",
            &section(&[Repeat {
                each: None,
                items: &[BANDWIDTH],
            }]),
            &recs,
        );
        assert_eq!(
            out[0].rows,
            [["256", "5", "150%", "25%"], ["4096", "5", "85%", "–"]]
        );
        assert!(out[0].note.starts_with(
            "note. This machine's triad, measured in this run: 40.00 GB/s (median of n = 9"
        ));
    }

    const MASKING: Table = Table {
        title: "grid",
        binds: &[],
        rows: Rows::Grid(&[(Param("mask"), &["off", "on"]), (Param("set"), &["a", "b"])]),
        anchor: None,
        columns: &[
            Column {
                head: "mask",
                cell: Cell::Key(Key::Param(Param("mask"))),
            },
            Column {
                head: "set",
                cell: Cell::Key(Key::Param(Param("set"))),
            },
            Column {
                head: "ms",
                cell: Cell::Value(Src::Pick(Pick::any(
                    &DECODE_STEP_MS,
                    &[Filter::Variant("slm")],
                ))),
            },
        ],
        require: &[2],
        note: "",
        machine_note: false,
    };

    #[test]
    fn grid_rows_run_over_every_combination_in_order() {
        let recs = vec![
            rec(
                "s",
                &DECODE_STEP_MS,
                "slm",
                &[("mask", "on"), ("set", "b")],
                2.0,
            ),
            rec(
                "s",
                &DECODE_STEP_MS,
                "slm",
                &[("mask", "off"), ("set", "a")],
                1.0,
            ),
            rec(
                "s",
                &DECODE_STEP_MS,
                "other",
                &[("mask", "off"), ("set", "b")],
                9.0,
            ),
        ];
        let out = tables(
            "s",
            &section(&[Repeat {
                each: None,
                items: &[MASKING],
            }]),
            &recs,
        );
        assert_eq!(out[0].rows, [["off", "a", "1.0000"], ["on", "b", "2.0000"]]);
    }

    const BY_BLOCK: Section = Section {
        headline: None,
        tables: &[],
        charts: &[Repeat {
            each: None,
            items: &[ChartSpec::Lines {
                title: "{metric} by block",
                metrics: &[&DECODE_STEP_MS, &KV_READ_GBPS],
                stats: Stats::Summary,
                filter: &[],
                x: Param("block_size"),
                x_label: "block size",
                series: &[Key::Variant],
                flat: true,
                min_points: 0,
            }],
        }],
    };

    #[test]
    fn a_line_chart_per_metric_with_points_and_none_without() {
        let recs = vec![
            rec("s", &DECODE_STEP_MS, "paged", &[("block_size", "16")], 2.0),
            rec("s", &DECODE_STEP_MS, "paged", &[("block_size", "32")], 3.0),
            rec("s", &DECODE_STEP_MS, "contiguous", &[], 4.0),
        ];
        let out = charts("s", &BY_BLOCK, &recs).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].title, format!("{} by block", DECODE_STEP_MS.name));
        assert!(out[0].svg.contains("contiguous"));
    }
}
