//! A suite's part of the report, declared as data next to its code: which tables and charts it
//! wants, over which of its metrics ([`Metric`]) and parameters ([`Param`]). The reports crate
//! renders any [`Section`] with generic pieces and knows no suite by name; every transform a
//! section needs (a ratio, a share of the machine's bandwidth, a model curve) is named here and
//! implemented once there.
//!
//! Vocabulary, from the outside in:
//! - [`Section`]: tables, then charts, each in a [`Repeat`] (once, or once per value of a param);
//! - [`Table`]: rows ([`Rows`]), columns ([`Column`] = header + [`Cell`]), a note;
//! - [`Chart`]: a line chart of a metric over a numeric param, a projection of a per-unit value,
//!   measured against a model ([`Model`]), a labelled scatter, an accuracy/cost front;
//! - [`Pick`]: which records of the suite a cell, row set or series reads ([`Stats`], [`Filter`]);
//! - [`Val`], [`Bind`]: the values a filter compares with (a literal, the repeated param's value,
//!   a value bound once per table or chart, the row's anchor record);
//! - [`Text`]: a title, header or note with `{each}`, `{metric}`, `{0}`, `{1}` placeholders.

use crate::metric::Metric;
use crate::record::Stat;

/// A parameter key of a suite's records, declared once as a constant next to the suite's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param(pub &'static str);

impl Param {
    /// The key as records carry it.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

/// A title, header or note. Placeholders: `{each}` (the repeated param's value), `{metric}` (the
/// chart's metric), `{0}`, `{1}`, ... (the table's or chart's [`Bind`]s, in order).
pub type Text = &'static str;

/// A suite's part of the report: its tables, then its charts, in this order.
#[derive(Clone, Copy, Debug)]
pub struct Section {
    /// The one figure the run's summary screen shows for the suite.
    pub headline: Option<Headline>,
    /// Tables, in order.
    pub tables: &'static [Repeat<Table>],
    /// Charts, in order.
    pub charts: &'static [Repeat<Chart>],
}

/// A suite's headline: the first record `pick` reads, shown with its conditions (stat, n,
/// spread, backend, ISA path) on the run's summary screen.
#[derive(Clone, Copy, Debug)]
pub struct Headline {
    /// What it is, in words.
    pub label: &'static str,
    /// The record (filters with literal values only).
    pub pick: Pick,
}

impl Section {
    /// A section with nothing of the suite's own (the generic tables and sweep charts only).
    pub const EMPTY: Section = Section {
        headline: None,
        tables: &[],
        charts: &[],
    };

    /// Every metric the section reads, for checks that the suite records them.
    pub fn metrics(&self) -> Vec<&'static Metric> {
        let mut out = Vec::new();
        if let Some(h) = &self.headline {
            if let Some(m) = h.pick.metric {
                out.push(m);
            }
        }
        for t in self.tables.iter().flat_map(|r| r.items) {
            t.metrics(&mut out);
        }
        for c in self.charts.iter().flat_map(|r| r.items) {
            c.metrics(&mut out);
        }
        for each in self
            .tables
            .iter()
            .filter_map(|r| r.each)
            .chain(self.charts.iter().filter_map(|r| r.each))
        {
            out.extend(each.from);
        }
        out
    }
}

/// Items rendered once, or once per value of a param (e.g. one table per workload).
#[derive(Clone, Copy, Debug)]
pub struct Repeat<T: 'static> {
    /// The param whose values repeat the items; `None`: once.
    pub each: Option<Each>,
    /// What is rendered (per value, all items in order).
    pub items: &'static [T],
}

/// The values a [`Repeat`] runs over.
#[derive(Clone, Copy, Debug)]
pub struct Each {
    /// The param.
    pub param: Param,
    /// Only the values on records of this metric; any record of the suite when `None`.
    pub from: Option<&'static Metric>,
    /// Their order.
    pub order: Order,
}

/// An order of distinct values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// As first seen in the records.
    FirstSeen,
    /// Sorted as strings.
    Sorted,
}

/// Which statistics of a metric a pick reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stats {
    /// Exact, median and mean records.
    Headline,
    /// One record per variant and params, by the summary tables' rule (exact, else median, else
    /// mean, else max).
    Summary,
    /// Only this statistic.
    Only(Stat),
    /// Any statistic.
    Any,
}

/// The records a cell, row set, series or binding reads: the suite's records of `metric` (any
/// metric when `None`) with `stats`, that pass every filter.
#[derive(Clone, Copy, Debug)]
pub struct Pick {
    /// The metric; every metric when `None`.
    pub metric: Option<&'static Metric>,
    /// Which statistics.
    pub stats: Stats,
    /// Conditions on the record.
    pub filter: &'static [Filter],
}

impl Pick {
    /// Headline records of `metric` that pass `filter`.
    pub const fn headline(metric: &'static Metric, filter: &'static [Filter]) -> Pick {
        Pick {
            metric: Some(metric),
            stats: Stats::Headline,
            filter,
        }
    }

    /// Records of any statistic of `metric` that pass `filter`.
    pub const fn any(metric: &'static Metric, filter: &'static [Filter]) -> Pick {
        Pick {
            metric: Some(metric),
            stats: Stats::Any,
            filter,
        }
    }

    /// Records of `metric` with statistic `stat` that pass `filter`.
    pub const fn only(metric: &'static Metric, stat: Stat, filter: &'static [Filter]) -> Pick {
        Pick {
            metric: Some(metric),
            stats: Stats::Only(stat),
            filter,
        }
    }

    /// Records of `metric` as the summary tables show them, that pass `filter`.
    pub const fn summary(metric: &'static Metric, filter: &'static [Filter]) -> Pick {
        Pick {
            metric: Some(metric),
            stats: Stats::Summary,
            filter,
        }
    }
}

/// A condition on a record.
#[derive(Clone, Copy, Debug)]
pub enum Filter {
    /// The param has this value.
    Is(Param, Val),
    /// The param is absent.
    Absent(Param),
    /// The param is present.
    Present(Param),
    /// The param is absent or has this value (e.g. `digits` absent or `all`: overall).
    AbsentOr(Param, &'static str),
    /// The record's variant is this one.
    Variant(&'static str),
}

/// A value a filter compares with.
#[derive(Clone, Copy, Debug)]
pub enum Val {
    /// This text.
    Lit(&'static str),
    /// The value the enclosing [`Repeat`] is at.
    Each,
    /// The table's or chart's binding of this index.
    Bound(usize),
    /// The param's value on the row's anchor record ([`Table::anchor`]).
    Anchor(Param),
}

/// A value computed once per table or chart (after [`Each`]), used in filters and texts.
#[derive(Clone, Copy, Debug)]
pub enum Bind {
    /// The largest numeric value of `param` among the picked records (at least `floor` when
    /// given); without `floor` and without records, the table or chart is left out.
    Max {
        param: Param,
        pick: Pick,
        floor: Option<f64>,
    },
    /// The first value of `param` in record order among the picked records, skipping values
    /// that start with `skip_prefix`; where none, `or`, or the table or chart is left out.
    First {
        param: Param,
        pick: Pick,
        skip_prefix: Option<&'static str>,
        or: Option<&'static str>,
    },
}

/// A key that identifies a row or names a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// The record's variant.
    Variant,
    /// A param's value.
    Param(Param),
    /// The swept settings a record carries, `k=v` joined by spaces (empty when none).
    Setting(&'static [Param]),
}

/// How a table finds its rows. Every [`Pick`] of a row's cells is joined with its row: the
/// keys agree (for [`Rows::Records`]: the variant and every param).
#[derive(Clone, Copy, Debug)]
pub enum Rows {
    /// One row per picked record, sorted by these keys (numbers as numbers).
    Records { pick: Pick, sort: &'static [Key] },
    /// One row per distinct value of the keys among the picked records (every record of the
    /// suite when `None`); records missing a key are skipped.
    Keys {
        keys: &'static [Key],
        from: Option<Pick>,
        order: Order,
    },
    /// One row per combination of these param values, in order.
    Grid(&'static [(Param, &'static [&'static str])]),
}

/// The record a row is about, beyond its keys: the picked record with the highest value
/// (rows without one, or whose anchor lacks a `needs` param, are left out).
#[derive(Clone, Copy, Debug)]
pub struct Anchor {
    /// Candidates, joined with the row.
    pub best: Pick,
    /// Params the anchor must carry.
    pub needs: &'static [Param],
}

/// A column: header and cell.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Header.
    pub head: Text,
    /// Cell of each row.
    pub cell: Cell,
}

/// Where a numeric cell reads its value.
#[derive(Clone, Copy, Debug)]
pub enum Src {
    /// The first picked record joined with the row.
    Pick(Pick),
    /// The row's own record ([`Rows::Records`]) or anchor.
    Row,
}

/// What a cell shows.
#[derive(Clone, Copy, Debug)]
pub enum Cell {
    /// A key of the row (or its record's), as text; empty where absent.
    Key(Key),
    /// The value, about four significant digits, `–` where none.
    Value(Src),
    /// `k / value` (e.g. bits per weight from compression: 32 / compression).
    Over(f64, Src),
    /// `a / b` as `1.23×`.
    Ratio(Src, Src),
    /// The value as a share of this machine's bandwidth limit (a machine metric of the run).
    OfMachine(Src, &'static Metric),
    /// The value (a share in [0, 1]) as a whole percentage.
    Percent(Src),
    /// The sample count behind the value.
    Count(Src),
    /// Whether every picked record is 1: `yes (n)`, `NO (k of n)`, `–` where none.
    AllOne(Pick),
    /// A param of the first picked record, or `or`.
    ParamOf(Pick, Param, &'static str),
}

/// A table of the section.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// Title.
    pub title: Text,
    /// Values bound once per table.
    pub binds: &'static [Bind],
    /// Its rows.
    pub rows: Rows,
    /// The record each row is about, where it is not a key.
    pub anchor: Option<Anchor>,
    /// Columns.
    pub columns: &'static [Column],
    /// Rows are kept only where one of these columns has a value (all rows when empty).
    pub require: &'static [usize],
    /// How the numbers were measured.
    pub note: Text,
    /// Whether the note ends with how this machine's bandwidth limit was measured.
    pub machine_note: bool,
}

/// How a series is named: its keys joined by `/` (`-` for an absent param).
pub type SeriesBy = &'static [Key];

/// What a measured series is drawn against (dashed, in the same colour).
#[derive(Clone, Copy, Debug)]
pub enum Model {
    /// Another metric over the same x.
    Metric(Pick),
    /// `value^x` for x = 1 ..= the binding of this index (e.g. acceptance α^pos).
    Powers(Pick, usize),
}

/// A chart of the section.
#[derive(Clone, Copy, Debug)]
pub enum Chart {
    /// Log-log lines of each metric over a numeric param, one chart per metric (title with
    /// `{metric}`, y axis in its unit). Records without the param are drawn flat over the
    /// others' range when `flat`, else skipped; no chart unless some series has `min_points`.
    Lines {
        title: Text,
        metrics: &'static [&'static Metric],
        stats: Stats,
        filter: &'static [Filter],
        x: Param,
        x_label: Text,
        series: SeriesBy,
        flat: bool,
        min_points: usize,
    },
    /// Log-log lines of a per-unit value projected over `xs`: x ↦ x · value / `divide_by`.
    Projection {
        title: Text,
        pick: Pick,
        series: SeriesBy,
        xs: &'static [f64],
        divide_by: f64,
        x_label: Text,
        y_label: Text,
    },
    /// Linear lines of a measured metric over a numeric param, each with its model dashed
    /// beside it, and a grey line at `reference`.
    VsModel {
        title: Text,
        binds: &'static [Bind],
        measured: Pick,
        model: Model,
        x: Param,
        series: SeriesBy,
        x_label: Text,
        y_label: Text,
        reference: Option<f64>,
    },
    /// One labelled point per distinct combination of the keys (labelled by their non-empty
    /// values): x = `x_over / x`'s value (or x's value when `x_over` is `None`), y = y's value;
    /// keys without both are skipped. With `fronts`, the points are coloured by that key's value
    /// (left out of their labels), and each value's Pareto front (lower is better on both axes)
    /// is drawn as a line in the legend.
    Scatter {
        title: Text,
        keys: &'static [Key],
        fronts: Option<Key>,
        x: Pick,
        x_over: Option<f64>,
        y: Pick,
        x_label: Text,
        y_label: Text,
    },
    /// An accuracy/cost front: per key, (x, `y_scale` · y); keys whose variant is one of
    /// `markers` are labelled points, the others lines by variant (records carrying
    /// `merge.0` form the one line `merge.1`).
    Front {
        title: Text,
        keys: &'static [Key],
        x: Pick,
        y: Pick,
        y_scale: f64,
        markers: &'static [&'static str],
        merge: Option<(Param, &'static str)>,
        x_label: Text,
        y_label: Text,
    },
}

fn pick_metrics(p: &Pick, out: &mut Vec<&'static Metric>) {
    out.extend(p.metric);
}

fn src_metrics(s: &Src, out: &mut Vec<&'static Metric>) {
    if let Src::Pick(p) = s {
        pick_metrics(p, out);
    }
}

fn bind_metrics(b: &Bind, out: &mut Vec<&'static Metric>) {
    match b {
        Bind::Max { pick, .. } | Bind::First { pick, .. } => pick_metrics(pick, out),
    }
}

impl Table {
    fn metrics(&self, out: &mut Vec<&'static Metric>) {
        self.binds.iter().for_each(|b| bind_metrics(b, out));
        match &self.rows {
            Rows::Records { pick, .. } => pick_metrics(pick, out),
            Rows::Keys { from: Some(p), .. } => pick_metrics(p, out),
            _ => {}
        }
        if let Some(a) = &self.anchor {
            pick_metrics(&a.best, out);
        }
        for c in self.columns {
            match &c.cell {
                Cell::Key(_) => {}
                Cell::Value(s) | Cell::Over(_, s) | Cell::Percent(s) | Cell::Count(s) => {
                    src_metrics(s, out)
                }
                Cell::Ratio(a, b) => {
                    src_metrics(a, out);
                    src_metrics(b, out);
                }
                Cell::OfMachine(s, m) => {
                    src_metrics(s, out);
                    out.push(m);
                }
                Cell::AllOne(p) | Cell::ParamOf(p, _, _) => pick_metrics(p, out),
            }
        }
    }
}

impl Chart {
    fn metrics(&self, out: &mut Vec<&'static Metric>) {
        match self {
            Chart::Lines { metrics, .. } => out.extend(metrics.iter().copied()),
            Chart::Projection { pick, .. } => pick_metrics(pick, out),
            Chart::VsModel {
                binds,
                measured,
                model,
                ..
            } => {
                binds.iter().for_each(|b| bind_metrics(b, out));
                pick_metrics(measured, out);
                match model {
                    Model::Metric(p) | Model::Powers(p, _) => pick_metrics(p, out),
                }
            }
            Chart::Scatter { x, y, .. } | Chart::Front { x, y, .. } => {
                pick_metrics(x, out);
                pick_metrics(y, out);
            }
        }
    }
}
