//! The adacot suite's part of the report: per workload, the gates' accuracy, tokens, trigger
//! rate by difficulty, precision and recall against the oracle labels (AdaCoT Table 1) and the
//! front of accuracy against mean response tokens (swept gates as lines, never/always/oracle as
//! labelled markers); and the selective loss masking table.

use crate::metric::{
    Metric, ACCURACY, ACCURACY_DELTA_VS_ALWAYS, COT_TRIGGER_RATE, GATE_F1, GATE_PRECISION,
    GATE_RECALL, MEAN_RESPONSE_TOKENS, TOKENS_VS_ORACLE, TOKEN_REDUCTION_VS_ALWAYS,
};
use crate::record::Stat;
use crate::report::{
    Bind, Cell, Chart, Column, Each, Filter, Headline, Key, Order, Param, Pick, Repeat, Rows,
    Section, Src, Stats, Table, Val,
};

/// The problem set a gate answers.
pub const WORKLOAD: Param = Param("workload");
/// Problem difficulty (`1` ..= `4` digits, `all`).
pub const DIGITS: Param = Param("digits");
/// The swept setting of each gate.
pub const K: Param = Param("k");
/// A confidence gate's threshold.
pub const TAU: Param = Param("tau");
/// A random gate's trigger rate.
pub const RATE: Param = Param("rate");
/// The learned gate's RL penalty on thinking.
pub const LAMBDA: Param = Param("lambda");
/// The learned gate whose rate a random gate copies.
pub const RATE_OF: Param = Param("rate_of");
/// Whether the decision token's loss was masked (`before`, `off`, `on`).
pub const MASK: Param = Param("mask");
/// The problem set scored (`skewed`, `easy-heavy`).
pub const SET: Param = Param("set");
/// RL steps.
pub const STEPS: Param = Param("steps");

/// The swept settings of the gates.
const SETTINGS: &[Param] = &[K, TAU, RATE, LAMBDA, RATE_OF];
/// A gate and its setting.
const GATE: &[Key] = &[Key::Variant, Key::Setting(SETTINGS)];

/// Overall (`digits` absent or `all`) means on the repeated workload.
const OVERALL: &[Filter] = &[
    Filter::Is(WORKLOAD, Val::Each),
    Filter::AbsentOr(DIGITS, "all"),
];

const fn overall(m: &'static Metric) -> Pick {
    Pick::only(m, Stat::Mean, OVERALL)
}

const fn column(m: &'static Metric) -> Column {
    Column {
        head: m.name,
        cell: Cell::Value(Src::Pick(overall(m))),
    }
}

/// The trigger rate on problems of one difficulty.
const fn by_digits(head: &'static str, filter: &'static [Filter]) -> Column {
    Column {
        head,
        cell: Cell::Value(Src::Pick(Pick::any(&COT_TRIGGER_RATE, filter))),
    }
}

const fn digits(d: &'static str) -> [Filter; 2] {
    [
        Filter::Is(WORKLOAD, Val::Each),
        Filter::Is(DIGITS, Val::Lit(d)),
    ]
}

/// Per gate and setting: accuracy, tokens, reduction, trigger rate overall and per digits,
/// precision, recall, F1.
const GATES: Table = Table {
    title: "AdaCoT gates on {each}: accuracy, tokens, trigger rate by difficulty, precision and recall",
    binds: &[],
    rows: Rows::Keys {
        keys: GATE,
        from: Some(overall(&ACCURACY)),
        order: Order::Sorted,
    },
    anchor: None,
    columns: &[
        Column { head: "gate", cell: Cell::Key(Key::Variant) },
        Column { head: "setting", cell: Cell::Key(Key::Setting(SETTINGS)) },
        column(&ACCURACY),
        column(&MEAN_RESPONSE_TOKENS),
        column(&TOKEN_REDUCTION_VS_ALWAYS),
        column(&ACCURACY_DELTA_VS_ALWAYS),
        column(&TOKENS_VS_ORACLE),
        column(&COT_TRIGGER_RATE),
        column(&GATE_PRECISION),
        column(&GATE_RECALL),
        column(&GATE_F1),
        by_digits("trigger rate, 1 digit", &digits("1")),
        by_digits("trigger rate, 2 digits", &digits("2")),
        by_digits("trigger rate, 3 digits", &digits("3")),
        by_digits("trigger rate, 4 digits", &digits("4")),
    ],
    require: &[],
    note: "Every gate answers the same problems with the base arith model's own greedy answers (learned: the fine-tuned model end to end; learned-route: its decision token, then the base answers). Positive class = the direct answer is wrong (oracle label); precision and recall of deciding to think, AdaCoT Table 1. Tokens count every attempt (a confidence fallback pays for its direct try; the learned gate's decision token counts).",
    machine_note: false,
};

/// Accuracy against mean response tokens per gate and setting.
const FRONT: Chart = Chart::Front {
    title: "AdaCoT front, {each}: accuracy vs mean response tokens",
    keys: GATE,
    x: overall(&MEAN_RESPONSE_TOKENS),
    y: overall(&ACCURACY),
    y_scale: 100.0,
    markers: &["never", "always", "oracle"],
    merge: Some((RATE_OF, "random at learned rate")),
    x_label: "mean response tokens per problem",
    y_label: "accuracy (%)",
};

/// The `slm` case's records.
const SLM: &[Filter] = &[Filter::Variant("slm")];

const fn slm(m: &'static Metric) -> Column {
    Column {
        head: m.name,
        cell: Cell::Value(Src::Pick(Pick::any(m, SLM))),
    }
}

/// The `slm` case: per masking setting (before training, masked off, on) and set (the skewed
/// training set, fresh easy-heavy traffic), trigger rate, accuracy and tokens.
const MASKING: Table = Table {
    title: "Selective loss masking: the decision before and after RL on a skewed set",
    binds: &[Bind::First {
        param: STEPS,
        pick: Pick {
            metric: None,
            stats: Stats::Any,
            filter: SLM,
        },
        skip_prefix: None,
        or: Some(""),
    }],
    rows: Rows::Grid(&[(MASK, &["before", "off", "on"]), (SET, &["skewed", "easy-heavy"])]),
    anchor: None,
    columns: &[
        Column { head: "decision loss masked", cell: Cell::Key(Key::Param(MASK)) },
        Column { head: "set", cell: Cell::Key(Key::Param(SET)) },
        slm(&COT_TRIGGER_RATE),
        slm(&ACCURACY),
        slm(&MEAN_RESPONSE_TOKENS),
    ],
    require: &[3],
    note: "From the imitation checkpoint, {0} GRPO steps on a mostly-hard set (hard-heavy mix), the answer anchor training in both runs; `before` is the start. Greedy decisions routed to the base model's answers.",
    machine_note: false,
};

const PER_WORKLOAD: Option<Each> = Some(Each {
    param: WORKLOAD,
    from: None,
    order: Order::Sorted,
});

/// The adacot suite's section.
pub const REPORT: Section = Section {
    headline: Some(Headline {
        label: "accuracy, learned gate (λ 0.5), balanced mix",
        pick: Pick::headline(
            &ACCURACY,
            &[
                Filter::Variant("learned"),
                Filter::Is(LAMBDA, Val::Lit("0.5")),
                Filter::Is(WORKLOAD, Val::Lit("balanced")),
                Filter::AbsentOr(DIGITS, "all"),
            ],
        ),
    }),
    tables: &[
        Repeat {
            each: PER_WORKLOAD,
            items: &[GATES],
        },
        Repeat {
            each: None,
            items: &[MASKING],
        },
    ],
    charts: &[Repeat {
        each: PER_WORKLOAD,
        items: &[FRONT],
    }],
};
