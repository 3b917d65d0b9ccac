//! The KV cache suite's part of the report: the decode step costs its trace replay charges
//! against batch size, and its policy metrics (fragmentation, admitted sequences, recomputed
//! tokens, trace throughput) against block size.

use crate::metric::{
    Metric, DECODE_STEP_MS, DECODE_THROUGHPUT_GAIN, KV_FRAGMENTATION, MAX_CONCURRENT_SEQUENCES,
    RECOMPUTED_TOKENS, TRACE_TOKENS_PER_S,
};
use crate::report::{Chart, Filter, Headline, Key, Param, Pick, Repeat, Section, Stats, Val};

/// The request trace a replay ran.
pub const TRACE: Param = Param("trace");
/// Sequences decoded together in one step.
pub const BATCH: Param = Param("batch");
/// Tokens per block of the paged cache (absent for the reservation policies).
pub const BLOCK_SIZE: Param = Param("block_size");
/// A point in a replay a value was taken at (e.g. `peak_reserved`).
pub const AT: Param = Param("at");

/// The measured step costs a trace replay charges: decode step time against batch size, per
/// trace and cache (medians).
const STEP_COST: Chart = Chart::Lines {
    title: "decode step cost by batch size (charged by the trace replay)",
    metrics: &[&DECODE_STEP_MS],
    stats: Stats::Summary,
    filter: &[Filter::Present(TRACE)],
    x: BATCH,
    x_label: "batch (sequences)",
    series: &[Key::Param(TRACE), Key::Variant],
    flat: false,
    min_points: 2,
};

/// KV-cache policy metrics drawn against block size: one series per trace for the paged cache,
/// and the reservation policies (which have no block size) as flat lines for comparison.
const PER_BLOCK_SIZE: [&Metric; 4] = [
    &KV_FRAGMENTATION,
    &MAX_CONCURRENT_SEQUENCES,
    &RECOMPUTED_TOKENS,
    &TRACE_TOKENS_PER_S,
];

const BY_BLOCK_SIZE: Chart = Chart::Lines {
    title: "{metric} by block size (reservation policies: flat)",
    metrics: &PER_BLOCK_SIZE,
    stats: Stats::Summary,
    filter: &[Filter::Absent(AT), Filter::Present(TRACE)],
    x: BLOCK_SIZE,
    x_label: "block size (tokens)",
    series: &[Key::Param(TRACE), Key::Variant],
    flat: true,
    min_points: 0,
};

/// The KV cache suite's section.
pub const REPORT: Section = Section {
    headline: Some(Headline {
        label: "decode throughput gain, paged (blocks of 16) over contiguous, ShareGPT-like trace",
        pick: Pick::headline(
            &DECODE_THROUGHPUT_GAIN,
            &[
                Filter::Variant("paged"),
                Filter::Is(BLOCK_SIZE, Val::Lit("16")),
                Filter::Is(TRACE, Val::Lit("sharegpt")),
            ],
        ),
    }),
    tables: &[],
    charts: &[Repeat {
        each: None,
        items: &[STEP_COST, BY_BLOCK_SIZE],
    }],
};
