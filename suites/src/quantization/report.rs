//! The quantization suite's part of the report: per scored model, each format's size and
//! accuracy against the FP32 reference, and bits per weight against perplexity change and
//! against KL divergence (one labelled point per format); a speed table (each format beside
//! FP32, timed alternately); FP8 training against FP32 (final losses, gap, curves).

use crate::metric::{
    COMPRESSION_VS_BF16, COMPRESSION_VS_FP32, DECODE_TOKENS_PER_S, KL_DIVERGENCE_MEAN,
    MATMUL_LATENCY_MS, MATVEC_LATENCY_MS, PERPLEXITY, PERPLEXITY_DELTA_PCT, QUANTIZE_SECONDS,
    TOP1_AGREEMENT, TRAIN_TOKENS_PER_S, TRIAD_GBPS, VALID_LOSS, VALID_LOSS_GAP_PCT,
    WEIGHT_READ_GBPS,
};
use crate::report::{
    Bind, Cell, Chart, Column, Each, Filter, Headline, Key, Order, Param, Pick, Repeat, Rows,
    Section, Src, Stats, Table, Val,
};
use crate::Stat;

/// The model a format was scored on (`target`, a real model).
pub const MODEL: Param = Param("model");
/// The text scored.
pub const TEXT: Param = Param("text");
/// Present on the FP32 product timed beside a format (`burn-f32`).
pub const BASELINE: Param = Param("baseline");
/// A layer's shape label (`512x512`; `target...` for the target model's own layers).
pub const SHAPE: Param = Param("shape");
/// The layer of the activation comparison (a shape label).
pub const LAYER: Param = Param("layer");
/// Rows of the prefill product.
pub const ROWS: Param = Param("rows");
/// What decode rows multiply the codes with (`f32`, `int8`).
pub const ACTIVATIONS: Param = Param("activations");
/// How weights were rounded to the format (`rtn`, `imatrix`, `gptq`, `awq`; real-model rows).
pub const METHOD: Param = Param("method");

/// Precision of a training run (`fp32`, or the FP8 recipe; training rows).
pub const PRECISION: Param = Param("precision");
/// Validation step of a training curve's point (absent: after training).
pub const STEP: Param = Param("step");
/// Steps trained (training rows).
pub const STEPS: Param = Param("steps");

/// Once per scored model (the `model` of the perplexity records, in record order).
const PER_MODEL: Option<Each> = Some(Each {
    param: MODEL,
    from: Some(&PERPLEXITY_DELTA_PCT),
    order: Order::FirstSeen,
});

/// Every format, in record order.
const FORMATS: Rows = Rows::Keys {
    keys: &[Key::Variant],
    from: None,
    order: Order::FirstSeen,
};

/// A format and the rounding method (`method=…`, empty where the records name none).
const FORMAT_METHOD: &[Key] = &[Key::Variant, Key::Setting(&[METHOD])];

/// Every format and method, in record order.
const FORMAT_METHODS: Rows = Rows::Keys {
    keys: FORMAT_METHOD,
    from: None,
    order: Order::FirstSeen,
};

const ON_MODEL: &[Filter] = &[Filter::Is(MODEL, Val::Each), Filter::Absent(BASELINE)];
const COMPRESSION: Pick = Pick::headline(&COMPRESSION_VS_FP32, ON_MODEL);

const X_BITS: &str = "bits per weight, whole model (32 / compression)";

/// Bits per weight of the whole model (32 / compression) against perplexity change.
const PPL_TRADEOFF: Chart = Chart::Scatter {
    title: "perplexity change against bits per weight, fronts per method ({each})",
    keys: FORMAT_METHOD,
    fronts: Some(Key::Setting(&[METHOD])),
    x: COMPRESSION,
    x_over: Some(32.0),
    y: Pick::headline(&PERPLEXITY_DELTA_PCT, ON_MODEL),
    x_label: X_BITS,
    y_label: "perplexity change (%)",
};

/// Bits per weight of the whole model against mean KL divergence.
const KL_TRADEOFF: Chart = Chart::Scatter {
    title: "KL divergence from FP32 against bits per weight, fronts per method ({each})",
    keys: FORMAT_METHOD,
    fronts: Some(Key::Setting(&[METHOD])),
    x: COMPRESSION,
    x_over: Some(32.0),
    y: Pick::headline(&KL_DIVERGENCE_MEAN, ON_MODEL),
    x_label: X_BITS,
    y_label: "mean KL (nats/token)",
};

const fn on_model(m: &'static crate::metric::Metric) -> Cell {
    Cell::Value(Src::Pick(Pick::headline(m, ON_MODEL)))
}

/// Each format's size against FP32 and against BF16 (where a deployment starts), and its
/// accuracy against the FP32 reference three ways: perplexity change, mean KL divergence of the
/// next-token distributions, top-1 agreement; with the text scored.
const ACCURACY: Table = Table {
    title: "Size and accuracy: {each}",
    binds: &[Bind::First {
        param: TEXT,
        pick: Pick {
            metric: None,
            stats: Stats::Any,
            filter: &[Filter::Is(MODEL, Val::Each)],
        },
        skip_prefix: None,
        or: Some("?"),
    }],
    rows: FORMAT_METHODS,
    anchor: None,
    columns: &[
        Column { head: "format", cell: Cell::Key(Key::Variant) },
        Column { head: "method", cell: Cell::Key(Key::Setting(&[METHOD])) },
        Column { head: "bits/weight", cell: Cell::Over(32.0, Src::Pick(COMPRESSION)) },
        Column { head: "× smaller than FP32", cell: on_model(&COMPRESSION_VS_FP32) },
        Column { head: "× smaller than BF16", cell: on_model(&COMPRESSION_VS_BF16) },
        Column { head: PERPLEXITY.name, cell: on_model(&PERPLEXITY) },
        Column { head: "perplexity change %", cell: on_model(&PERPLEXITY_DELTA_PCT) },
        Column { head: "mean KL (nats)", cell: on_model(&KL_DIVERGENCE_MEAN) },
        Column { head: "top-1 agreement", cell: on_model(&TOP1_AGREEMENT) },
        Column { head: "quantize s", cell: on_model(&QUANTIZE_SECONDS) },
    ],
    require: &[6],
    note: "Scored on `{0}` against the FP32 model; BF16 stores 2 bytes per parameter, the usual starting point of a deployment. Method: how weights were rounded to the format (rtn: round to nearest; imatrix: each group's scale searched under the mean square of its inputs; gptq: GPTQ; awq: AWQ channel scales and clipping, then round to nearest), calibrated methods on the calibration text named in the records; quantize s: wall time of the whole model's quantization, calibration included.",
    machine_note: false,
};

const BIG: &[Filter] = &[Filter::Is(SHAPE, Val::Bound(0)), Filter::Absent(BASELINE)];
const BIG_F32: &[Filter] = &[Filter::Is(SHAPE, Val::Bound(0)), Filter::Present(BASELINE)];
const MV: Src = Src::Pick(Pick::headline(&MATVEC_LATENCY_MS, BIG));
const MV_F32: Src = Src::Pick(Pick::headline(&MATVEC_LATENCY_MS, BIG_F32));
const MM: Src = Src::Pick(Pick::headline(&MATMUL_LATENCY_MS, BIG));
const MM_F32: Src = Src::Pick(Pick::headline(&MATMUL_LATENCY_MS, BIG_F32));
const GBPS: Src = Src::Pick(Pick::headline(&WEIGHT_READ_GBPS, BIG));
const GBPS_F32: Src = Src::Pick(Pick::headline(&WEIGHT_READ_GBPS, BIG_F32));
const DEC: Src = Src::Pick(Pick::headline(
    &DECODE_TOKENS_PER_S,
    &[Filter::Absent(BASELINE)],
));
const DEC_F32: Src = Src::Pick(Pick::headline(
    &DECODE_TOKENS_PER_S,
    &[Filter::Present(BASELINE)],
));
// The f32-against-int8 pair where the format has integer kernels (timed alternately on the
// same layer size).
const MV_A32: Src = Src::Pick(Pick::headline(
    &MATVEC_LATENCY_MS,
    &[
        Filter::Is(LAYER, Val::Bound(0)),
        Filter::Is(ACTIVATIONS, Val::Lit("f32")),
        Filter::Absent(BASELINE),
    ],
));
const MV_A8: Src = Src::Pick(Pick::headline(
    &MATVEC_LATENCY_MS,
    &[
        Filter::Is(LAYER, Val::Bound(0)),
        Filter::Is(ACTIVATIONS, Val::Lit("int8")),
        Filter::Absent(BASELINE),
    ],
));

/// Per format: decode (1 row) and prefill (many rows) products on the largest layer, beside
/// burn's FP32 product timed alternately, and whole-model decode tokens per second.
const SPEED: Table = Table {
    title: "Speed: {0} layer and whole-model decode",
    binds: &[
        // The largest layer: the first timed shape that is not one of the target model's own.
        Bind::First {
            param: SHAPE,
            pick: Pick::any(&MATVEC_LATENCY_MS, &[]),
            skip_prefix: Some("target"),
            or: None,
        },
        Bind::First {
            param: ROWS,
            pick: Pick::any(&MATMUL_LATENCY_MS, &[]),
            skip_prefix: None,
            or: None,
        },
    ],
    rows: FORMATS,
    anchor: None,
    columns: &[
        Column { head: "format", cell: Cell::Key(Key::Variant) },
        // The activations the matvec row ran with.
        Column {
            head: "activations",
            cell: Cell::ParamOf(Pick::any(&MATVEC_LATENCY_MS, BIG), ACTIVATIONS, "f32"),
        },
        Column { head: "matvec ms", cell: Cell::Value(MV) },
        Column { head: "FP32 matvec ms", cell: Cell::Value(MV_F32) },
        Column { head: "speedup", cell: Cell::Ratio(MV_F32, MV) },
        Column { head: "matvec weight GB/s", cell: Cell::Value(GBPS) },
        Column { head: "of triad", cell: Cell::OfMachine(GBPS, &TRIAD_GBPS) },
        Column { head: "FP32 of triad", cell: Cell::OfMachine(GBPS_F32, &TRIAD_GBPS) },
        Column { head: "matmul ms ({1} rows)", cell: Cell::Value(MM) },
        Column { head: "FP32 matmul ms", cell: Cell::Value(MM_F32) },
        Column { head: "speedup", cell: Cell::Ratio(MM_F32, MM) },
        Column { head: "decode tokens/s", cell: Cell::Value(DEC) },
        Column { head: "FP32 decode tokens/s", cell: Cell::Value(DEC_F32) },
        Column { head: "ratio", cell: Cell::Ratio(DEC, DEC_F32) },
        Column { head: "matvec ms, f32 activations", cell: Cell::Value(MV_A32) },
        Column { head: "matvec ms, int8 activations", cell: Cell::Value(MV_A8) },
        Column { head: "int8 speedup", cell: Cell::Ratio(MV_A32, MV_A8) },
    ],
    require: &[2, 11],
    note: "Medians; each format is timed alternately with burn's FP32 product on the same input (A B A B), so the ratios are side by side. Matvec uses the fused dequantize-and-multiply kernel; matmul dequantizes, then multiplies. Weight GB/s: the layer's weight bytes (codes and scales) over the matvec median. Activations: what decode rows multiply the codes with (int8: the input quantized to int8 blocks of 32 once per product and integer dot products, llama.cpp's arithmetic; f32: codes unpacked to f32); the last three columns time the same layer with f32 and with int8 activations alternately.",
    machine_note: true,
};

/// After training: records without a curve step.
const FINAL: &[Filter] = &[Filter::Absent(STEP)];

/// FP8 training against FP32 (same recipe, seed and steps): final validation loss, the relative
/// gap, the largest gap along the curve, and throughput.
const TRAINING: Table = Table {
    title: "FP8 training against FP32: {0}, {1} steps",
    binds: &[
        Bind::First {
            param: MODEL,
            pick: Pick::any(&VALID_LOSS_GAP_PCT, &[]),
            skip_prefix: None,
            or: None,
        },
        Bind::First {
            param: STEPS,
            pick: Pick::any(&VALID_LOSS_GAP_PCT, &[]),
            skip_prefix: None,
            or: None,
        },
    ],
    rows: Rows::Keys {
        keys: &[Key::Param(PRECISION)],
        from: Some(Pick::headline(&VALID_LOSS, FINAL)),
        order: Order::FirstSeen,
    },
    anchor: None,
    columns: &[
        Column { head: "precision", cell: Cell::Key(Key::Param(PRECISION)) },
        Column { head: "valid loss", cell: Cell::Value(Src::Pick(Pick::headline(&VALID_LOSS, FINAL))) },
        Column { head: "gap vs FP32 %", cell: Cell::Value(Src::Pick(Pick::headline(&VALID_LOSS_GAP_PCT, FINAL))) },
        Column { head: "largest gap on the curve %", cell: Cell::Value(Src::Pick(Pick::only(&VALID_LOSS_GAP_PCT, Stat::Max, &[]))) },
        Column { head: "train tokens/s", cell: Cell::Value(Src::Pick(Pick::headline(&TRAIN_TOKENS_PER_S, &[]))) },
    ],
    require: &[1],
    note: "Both runs from the same seed over the same batches and steps, validated on the same text with the FP32 forward of their FP32 master weights. FP8: the inputs of every attention and MLP product (forward, input gradient, weight gradient) rounded to FP8 with one scale per 1×128 activation or gradient tile and per 128×128 weight block (DeepSeek-V3 §3.3), simulated by rounding through the FP8 codec of the formats above; embeddings, norms, attention and head in FP32. Gap: (FP8 − FP32) / FP32 validation loss × 100; largest gap: the maximum of that gap over the validation points. Tokens/s include the periodic validation.",
    machine_note: false,
};

/// Validation loss along training, FP32 and FP8.
const CURVES: Chart = Chart::Lines {
    title: "validation loss during training, FP32 and FP8",
    metrics: &[&VALID_LOSS],
    stats: Stats::Headline,
    filter: &[Filter::Present(STEP)],
    x: STEP,
    x_label: "step",
    series: &[Key::Param(PRECISION)],
    flat: false,
    min_points: 2,
};

/// The quantization suite's section.
pub const REPORT: Section = Section {
    headline: Some(Headline {
        label: "perplexity change, mixed FP8 + INT4, trained target on its validation text",
        pick: Pick::headline(
            &PERPLEXITY_DELTA_PCT,
            &[
                Filter::Variant("mixed-fp8-int4"),
                Filter::Is(MODEL, Val::Lit("target")),
            ],
        ),
    }),
    tables: &[
        Repeat {
            each: PER_MODEL,
            items: &[ACCURACY],
        },
        Repeat {
            each: None,
            items: &[SPEED],
        },
        Repeat {
            each: None,
            items: &[TRAINING],
        },
    ],
    charts: &[
        Repeat {
            each: PER_MODEL,
            items: &[PPL_TRADEOFF, KL_TRADEOFF],
        },
        Repeat {
            each: None,
            items: &[CURVES],
        },
    ],
};
