//! *speed* of one layer: decode matrix-vector and prefill matrix-matrix products against burn's
//! FP32 product, and f32 against int8 activations.

use burn::nn::LinearConfig;
use burn::tensor::{Distribution, Tensor};
use infermark_models::decoder::Decoder;
use infermark_models::kernels::few_rows::STEP_ROWS;
use infermark_models::kernels::isa;
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::int_dot::IntPath;
use infermark_models::quant::Activations;
use infermark_models::quant::{QuantFormat, QuantLinear};

use super::about::Sizes;
use crate::measure::{sync_keep, time_pair};
use crate::metric::{MATMUL_LATENCY_MS, MATVEC_LATENCY_MS, SPEEDUP_VS_F32, WEIGHT_READ_GBPS};
use crate::recorder::Recorder;
use crate::{Result, Stat, SuiteError};

/// The big layer's decode product (one row) with f32 activations (codes unpacked to f32, one
/// FMA per weight) and with int8 activations (integer dot products, one FMA per block), timed
/// alternately (A B B A) on the same input. Params: `layer` (not `shape`, so that these rows
/// stay out of the speed experiment's comparisons with burn) and `activations`.
pub(super) fn activation_records<B: AttentionBackend>(
    rec: &mut Recorder,
    f: QuantFormat,
    s: &Sizes,
    device: &B::Device,
) -> Result<()> {
    let linear = LinearConfig::new(s.big, s.big)
        .with_bias(false)
        .init::<B>(device);
    let q = QuantLinear::from_linear(&linear, f).map_err(SuiteError::model("quantizing layer"))?;
    let (qf, qi) = (
        q.clone().with_activations(Activations::F32),
        q.with_activations(Activations::Int8),
    );
    let x = Tensor::<B, 2>::random([1, s.big], Distribution::Normal(0.0, 1.0), device);
    let (tf, ti) = time_pair(
        s.plan,
        || sync_keep(device, qf.forward(x.clone())),
        || sync_keep(device, qi.forward(x.clone())),
    )?;
    let layer = format!("{0}x{0}", s.big);
    for (acts, t) in [("f32", &tf), ("int8", &ti)] {
        rec.timing(
            "activations",
            &MATVEC_LATENCY_MS,
            t,
            &[
                ("layer", layer.clone()),
                ("activations", acts.to_string()),
                (
                    "int_path",
                    IntPath::for_isa(isa::active()).name().to_string(),
                ),
            ],
        )?;
    }
    Ok(())
}

pub(super) fn speed_records<B: AttentionBackend>(
    rec: &mut Recorder,
    f: QuantFormat,
    model: &Decoder<B>,
    s: &Sizes,
    device: &B::Device,
) -> Result<()> {
    // (label, d_out, d_in): the big layer, then the target's own projection shapes.
    let mut shapes = vec![(format!("{0}x{0}", s.big), s.big, s.big)];
    let cfg = &model.blocks[0];
    let (d_in_mlp, d_ff) = cfg.mlp.up.dims();
    shapes.push((format!("target-mlp-up {d_ff}x{d_in_mlp}"), d_ff, d_in_mlp));
    shapes.push((format!("target-mlp-down {d_in_mlp}x{d_ff}"), d_in_mlp, d_ff));
    for (label, d_out, d_in) in shapes {
        let linear = LinearConfig::new(d_in, d_out)
            .with_bias(false)
            .init::<B>(device);
        let q =
            QuantLinear::from_linear(&linear, f).map_err(SuiteError::model("quantizing layer"))?;
        for (metric, rows) in [
            (&MATVEC_LATENCY_MS, 1),
            (&MATMUL_LATENCY_MS, s.prefill_rows),
        ] {
            let x = Tensor::<B, 2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), device);
            let (fp32, quant) = time_pair(
                s.plan,
                || sync_keep(device, linear.forward(x.clone())),
                || {
                    let y = if f == QuantFormat::F32 {
                        linear.forward(x.clone())
                    } else {
                        q.forward(x.clone())
                    };
                    sync_keep(device, y)
                },
            )?;
            // Decode rows of integer formats take int8 activations (the default); prefill-sized
            // products and the other formats multiply f32 activations.
            let acts = if rows <= STEP_ROWS && q.int8_active() {
                "int8"
            } else {
                "f32"
            };
            let extra = [
                ("shape", label.clone()),
                ("rows", rows.to_string()),
                ("activations", acts.to_string()),
            ];
            rec.timing("speed", metric, &quant, &extra)?;
            let baseline = [
                ("shape", label.clone()),
                ("rows", rows.to_string()),
                ("baseline", "burn-f32".to_string()),
            ];
            rec.timing("speed", metric, &fp32, &baseline)?;
            if rows == 1 {
                // The weight bytes one product must read over its median time: comparable with
                // the machine's triad bandwidth (report: fraction of triad).
                let gbps = |bytes: usize, ms: f64| bytes as f64 / (ms * 1e-3) / 1e9;
                let q_bytes = if f == QuantFormat::F32 {
                    d_in * d_out * 4
                } else {
                    q.weight.bytes()
                };
                rec.metric("speed", &WEIGHT_READ_GBPS)
                    .stat(Stat::Median, quant.n)
                    .params(&extra)
                    .value(gbps(q_bytes, quant.median))?;
                rec.metric("speed", &WEIGHT_READ_GBPS)
                    .stat(Stat::Median, fp32.n)
                    .params(&baseline)
                    .value(gbps(d_in * d_out * 4, fp32.median))?;
            }
            rec.metric("speed", &SPEEDUP_VS_F32)
                .stat(Stat::Median, quant.n)
                .params(&[
                    ("shape", label.clone()),
                    ("rows", rows.to_string()),
                    ("activations", acts.to_string()),
                    (
                        "op",
                        metric.name.trim_end_matches("_latency_ms").to_string(),
                    ),
                ])
                .value(fp32.median / quant.median)?;
        }
    }
    Ok(())
}
