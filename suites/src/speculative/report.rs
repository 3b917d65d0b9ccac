//! The speculative suite's part of the report: a table of each drafter's best γ with the
//! quantities that explain its speedup; per workload, measured speedup against γ for each
//! drafter with Leviathan et al.'s analytic curve (from the measured α, c, v) dashed beside it,
//! and acceptance per draft position with the i.i.d. model α^pos dashed.

use crate::metric::{
    ACCEPTANCE_ALPHA, ACCEPTANCE_AT_POSITION, ANALYTIC_SPEEDUP, DRAFT_COST_RATIO, GREEDY_EXACT,
    MEAN_ACCEPTED_LENGTH, SPECULATIVE_SPEEDUP, SPEEDUP_VS_BOUND, VERIFY_COST_RATIO,
};
use crate::report::{
    Anchor, Bind, Cell, Chart, Column, Each, Filter, Headline, Key, Model, Order, Param, Pick,
    Repeat, Rows, Section, Src, Stats, Table, Val,
};

/// The prompts and target a case decodes (`target`, `arith`, real workloads).
pub const WORKLOAD: Param = Param("workload");
/// Drafted tokens per step.
pub const GAMMA: Param = Param("gamma");
/// Sampling temperature (`0`: greedy).
pub const TEMPERATURE: Param = Param("temperature");
/// Sequences decoded together.
pub const BATCH: Param = Param("batch");
/// Draft position (1-based).
pub const POS: Param = Param("pos");

/// Greedy, one sequence, on the repeated workload.
const GREEDY_B1: &[Filter] = &[
    Filter::Is(TEMPERATURE, Val::Lit("0")),
    Filter::Is(BATCH, Val::Lit("1")),
    Filter::Is(WORKLOAD, Val::Each),
];

/// The same at the largest γ drafted (binding 0).
const GREEDY_B1_TOP: &[Filter] = &[
    Filter::Is(TEMPERATURE, Val::Lit("0")),
    Filter::Is(BATCH, Val::Lit("1")),
    Filter::Is(WORKLOAD, Val::Each),
    Filter::Is(GAMMA, Val::Bound(0)),
];

const SPEEDUP: Chart = Chart::VsModel {
    title: "{each}: speedup over plain decoding by γ (T 0, batch 1; dashed: analytic)",
    binds: &[],
    measured: Pick::headline(&SPECULATIVE_SPEEDUP, GREEDY_B1),
    model: Model::Metric(Pick::headline(&ANALYTIC_SPEEDUP, GREEDY_B1)),
    x: GAMMA,
    series: &[Key::Variant],
    x_label: "γ (drafted tokens per step)",
    y_label: "speedup (×)",
    reference: Some(1.0),
};

/// Acceptance per position at the largest γ, with α^pos from each drafter's α there.
const POSITIONS: Chart = Chart::VsModel {
    title: "{each}: acceptance by draft position (γ {0}, T 0, batch 1; dashed: α^pos)",
    binds: &[Bind::Max {
        param: GAMMA,
        pick: Pick::headline(&ACCEPTANCE_AT_POSITION, GREEDY_B1),
        floor: None,
    }],
    measured: Pick::headline(&ACCEPTANCE_AT_POSITION, GREEDY_B1_TOP),
    model: Model::Powers(Pick::headline(&ACCEPTANCE_ALPHA, GREEDY_B1_TOP), 0),
    x: POS,
    series: &[Key::Variant],
    x_label: "draft position",
    y_label: "share of steps kept",
    reference: None,
};

/// Greedy, one sequence, at the row's best γ.
const AT_BEST: &[Filter] = &[
    Filter::Is(TEMPERATURE, Val::Lit("0")),
    Filter::Is(BATCH, Val::Lit("1")),
    Filter::Is(GAMMA, Val::Anchor(GAMMA)),
];

/// Per (workload, drafter): the γ with the best measured speedup at T 0, batch 1, and there α,
/// c, v, mean accepted length, measured and analytic speedup; the speedup at the largest batch
/// for the same γ; whether every greedy run was exact.
const SUMMARY: Table = Table {
    title: "Speculative decoding: each drafter at its best γ (T 0, batch 1)",
    binds: &[Bind::Max {
        param: BATCH,
        pick: Pick {
            metric: None,
            stats: Stats::Any,
            filter: &[],
        },
        floor: Some(1.0),
    }],
    rows: Rows::Keys {
        keys: &[Key::Param(WORKLOAD), Key::Variant],
        from: None,
        order: Order::Sorted,
    },
    anchor: Some(Anchor {
        best: Pick::headline(
            &SPECULATIVE_SPEEDUP,
            &[
                Filter::Is(TEMPERATURE, Val::Lit("0")),
                Filter::Is(BATCH, Val::Lit("1")),
            ],
        ),
        needs: &[GAMMA],
    }),
    columns: &[
        Column { head: "workload", cell: Cell::Key(Key::Param(WORKLOAD)) },
        Column { head: "drafter", cell: Cell::Key(Key::Variant) },
        Column { head: "γ*", cell: Cell::Key(Key::Param(GAMMA)) },
        Column {
            head: "α",
            cell: Cell::Value(Src::Pick(Pick::headline(&ACCEPTANCE_ALPHA, AT_BEST))),
        },
        Column {
            head: "c",
            cell: Cell::Value(Src::Pick(Pick::any(&DRAFT_COST_RATIO, &[]))),
        },
        Column {
            head: "v(γ*)",
            cell: Cell::Value(Src::Pick(Pick::any(
                &VERIFY_COST_RATIO,
                &[Filter::Is(GAMMA, Val::Anchor(GAMMA))],
            ))),
        },
        Column {
            head: "tokens / target forward",
            cell: Cell::Value(Src::Pick(Pick::headline(&MEAN_ACCEPTED_LENGTH, AT_BEST))),
        },
        Column { head: "speedup", cell: Cell::Value(Src::Row) },
        Column {
            head: "analytic",
            cell: Cell::Value(Src::Pick(Pick::headline(&ANALYTIC_SPEEDUP, AT_BEST))),
        },
        Column {
            head: "measured / analytic",
            cell: Cell::Value(Src::Pick(Pick::headline(&SPEEDUP_VS_BOUND, AT_BEST))),
        },
        Column {
            head: "speedup at batch {0}",
            cell: Cell::Value(Src::Pick(Pick::headline(
                &SPECULATIVE_SPEEDUP,
                &[
                    Filter::Is(TEMPERATURE, Val::Lit("0")),
                    Filter::Is(BATCH, Val::Bound(0)),
                    Filter::Is(GAMMA, Val::Anchor(GAMMA)),
                ],
            ))),
        },
        Column { head: "greedy exact", cell: Cell::AllOne(Pick::any(&GREEDY_EXACT, &[])) },
    ],
    require: &[],
    note: "Speedup: decode tokens/s of speculative over plain decoding of the same prompts, timed alternately in one run (medians). α: per-token acceptance (kept / (kept + first rejections)); c: a drafter step over a one-token target step (prompt lookup: one lookup call); v: a target forward over γ + 1 tokens over one token. Analytic: (1 − α^(γ+1)) / ((1 − α)(γc + v)) (Leviathan et al. 2023, Thm 3.8, with the measured verify cost). Tokens per target forward include the bonus or correction token. Adaptive γ has no analytic value (γ varies).",
    machine_note: false,
};

/// The speculative suite's section.
pub const REPORT: Section = Section {
    headline: Some(Headline {
        label: "speedup, draft model on stories (γ 4, T 0, batch 1)",
        pick: Pick::headline(
            &SPECULATIVE_SPEEDUP,
            &[
                Filter::Variant("draft"),
                Filter::Is(WORKLOAD, Val::Lit("stories")),
                Filter::Is(GAMMA, Val::Lit("4")),
                Filter::Is(TEMPERATURE, Val::Lit("0")),
                Filter::Is(BATCH, Val::Lit("1")),
            ],
        ),
    }),
    tables: &[Repeat {
        each: None,
        items: &[SUMMARY],
    }],
    charts: &[Repeat {
        each: Some(Each {
            param: WORKLOAD,
            from: None,
            order: Order::Sorted,
        }),
        items: &[SPEEDUP, POSITIONS],
    }],
};
