//! The attention suite's part of the report: the KV read bandwidth of the decode core against
//! this machine's limit, and the analytic KV cache memory against context length.

use crate::metric::{
    KV_CACHE_BYTES_PER_TOKEN, KV_PREFETCH_SHARE, KV_READ_GBPS, READ_STREAM_GBPS, TRIAD_GBPS,
};
use crate::record::Stat;
use crate::report::{
    Cell, Chart, Column, Filter, Headline, Key, Param, Pick, Repeat, Rows, Section, Src, Table, Val,
};

/// Model shape preset (`gqa-8b`, ...).
pub const PRESET: Param = Param("preset");
/// Context length in tokens.
pub const CTX: Param = Param("ctx");
/// Where a value comes from: `analytic` (from shapes) or measured.
pub const SOURCE: Param = Param("source");

const BANDWIDTH: Table = Table {
    title: "KV read bandwidth of the decode core against this machine's limit",
    binds: &[],
    rows: Rows::Records {
        pick: Pick::only(&KV_READ_GBPS, Stat::Median, &[]),
        sort: &[Key::Param(PRESET), Key::Variant, Key::Param(CTX)],
    },
    anchor: None,
    columns: &[
        Column { head: "variant", cell: Cell::Key(Key::Variant) },
        Column { head: "preset", cell: Cell::Key(Key::Param(PRESET)) },
        Column { head: "ctx", cell: Cell::Key(Key::Param(CTX)) },
        Column { head: KV_READ_GBPS.name, cell: Cell::Value(Src::Row) },
        Column { head: "n", cell: Cell::Count(Src::Row) },
        Column { head: "of triad", cell: Cell::OfMachine(Src::Row, &TRIAD_GBPS) },
        Column { head: "of read stream", cell: Cell::OfMachine(Src::Row, &READ_STREAM_GBPS) },
        // The share of the core's calls that prefetched, recorded beside each bandwidth.
        Column {
            head: "calls prefetched",
            cell: Cell::Percent(Src::Pick(Pick::any(&KV_PREFETCH_SHARE, &[]))),
        },
    ],
    require: &[],
    note: "KV bytes one decode step reads over the core's median time. Above 100% the cache fits (partly) in the CPU caches. Calls prefetched: the share of the core's calls in which the flex kernel prefetched K/V rows, which it does only when a probe finds them coming from DRAM (0% where they sat in the CPU caches).",
    machine_note: true,
};

/// KV cache memory per layer and sequence against context, from the analytic bytes per token.
const KV_MEMORY: Chart = Chart::Projection {
    title: "KV cache per layer and sequence (f32)",
    pick: Pick::summary(
        &KV_CACHE_BYTES_PER_TOKEN,
        &[Filter::Is(SOURCE, Val::Lit("analytic"))],
    ),
    series: &[Key::Param(PRESET), Key::Variant],
    xs: &[256.0, 1024.0, 4096.0, 16384.0, 32768.0, 131072.0],
    divide_by: 1024.0 * 1024.0,
    x_label: "context length (tokens)",
    y_label: "MiB",
};

/// The attention suite's section.
pub const REPORT: Section = Section {
    headline: Some(Headline {
        label: "KV bytes per token and layer, MLA absorbed (DeepSeek-V2 shape, measured)",
        pick: Pick::headline(
            &KV_CACHE_BYTES_PER_TOKEN,
            &[
                Filter::Variant("mla-absorbed"),
                Filter::Is(PRESET, Val::Lit("deepseek-v2")),
                Filter::Is(SOURCE, Val::Lit("measured")),
            ],
        ),
    }),
    tables: &[Repeat {
        each: None,
        items: &[BANDWIDTH],
    }],
    charts: &[Repeat {
        each: None,
        items: &[KV_MEMORY],
    }],
};
