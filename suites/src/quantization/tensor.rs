//! *tensor*: storage bits per weight, RMSE, max error and SQNR of each format, on Gaussian
//! weights and on the trained model's projections.

use burn::tensor::{Distribution, Tensor};
use infermark_models::decoder::{Attention, Decoder};
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::{QuantFormat, QuantizedTensor};

use super::about::Sizes;
use crate::metric::{BITS_PER_WEIGHT, EXACT_ROUNDTRIP, SQNR_DB, WEIGHT_MAX_ABS_ERR, WEIGHT_RMSE};
use crate::recorder::Recorder;
use crate::{Result, Stat, SuiteError};

/// Error statistics of one format on one matrix: (rmse, max abs error, Σw², Σerr²).
pub(super) fn errors(
    f: QuantFormat,
    w: &[f32],
    rows: usize,
    cols: usize,
) -> Result<(QuantizedTensor, f64, f64, f64)> {
    let q = QuantizedTensor::quantize(f, w, rows, cols)
        .map_err(SuiteError::model("quantizing weights"))?;
    let d = q.dequantize();
    // Fails on NaN and on a length mismatch, which the sums below would hide.
    infermark_models::diff::max_abs_diff(w, &d)
        .map_err(SuiteError::model("dequantized weights"))?;
    let (mut sig, mut err, mut max) = (0f64, 0f64, 0f64);
    for (a, b) in w.iter().zip(&d) {
        let e = (*a as f64) - (*b as f64);
        sig += (*a as f64).powi(2);
        err += e * e;
        max = max.max(e.abs());
    }
    Ok((q, max, sig, err))
}

/// Signal-to-quantization-noise ratio in dB from the summed squares of the weights and of the
/// errors; `None` for an exact round trip, whose SQNR is infinite (not a number to record: the
/// `exact_roundtrip` flag says it).
pub(super) fn sqnr_db(signal: f64, noise: f64) -> Option<f64> {
    (noise > 0.0).then(|| 10.0 * (signal / noise).log10())
}

/// `[d_out, d_in]` row-major copies of the target's projection weights.
pub(super) fn projections<B: AttentionBackend>(
    model: &Decoder<B>,
) -> Vec<(String, Vec<f32>, usize, usize)> {
    let device = model.embed.weight.val().device();
    let mut out = Vec::new();
    let mut push = |name: String, w: Tensor<B, 2>| {
        let [d_in, d_out] = w.dims();
        let data = w.transpose().into_data().convert::<f32>();
        out.push((name, data.to_vec::<f32>().expect("f32"), d_out, d_in));
    };
    for (i, b) in model.blocks.iter().enumerate() {
        if let Attention::Gqa(a) = &b.attn {
            push(format!("{i}.wq"), a.wq.weight(&device));
            push(format!("{i}.wk"), a.wk.weight(&device));
            push(format!("{i}.wv"), a.wv.weight(&device));
            push(format!("{i}.wo"), a.wo.weight(&device));
        }
        push(format!("{i}.gate"), b.mlp.gate.weight(&device));
        push(format!("{i}.up"), b.mlp.up.weight(&device));
        push(format!("{i}.down"), b.mlp.down.weight(&device));
    }
    out
}

pub(super) fn tensor_records<B: AttentionBackend>(
    rec: &mut Recorder,
    f: QuantFormat,
    model: &Decoder<B>,
    s: &Sizes,
    seed: u64,
    device: &B::Device,
) -> Result<()> {
    let n = s.big.min(1024);
    B::seed(device, seed);
    let gauss = Tensor::<B, 2>::random([n, n], Distribution::Normal(0.0, 0.02), device)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32");
    let mut sources = vec![("gaussian".to_string(), vec![(gauss, n, n)])];
    sources.push((
        "target".to_string(),
        projections(model)
            .into_iter()
            .map(|(_, w, r, c)| (w, r, c))
            .collect(),
    ));
    for (source, mats) in sources {
        let (mut bytes, mut count, mut max, mut sig, mut err) = (0usize, 0usize, 0f64, 0f64, 0f64);
        for (w, r, c) in &mats {
            let (q, m, sg, e) = errors(f, w, *r, *c)?;
            bytes += q.bytes();
            count += r * c;
            max = max.max(m);
            sig += sg;
            err += e;
        }
        let extra = [("source", source.clone())];
        let mut metrics = vec![
            (&BITS_PER_WEIGHT, bytes as f64 * 8.0 / count as f64),
            (&WEIGHT_RMSE, (err / count as f64).sqrt()),
            (&WEIGHT_MAX_ABS_ERR, max),
            (&EXACT_ROUNDTRIP, f64::from(u8::from(err == 0.0))),
        ];
        if let Some(db) = sqnr_db(sig, err) {
            metrics.push((&SQNR_DB, db));
        }
        for (metric, value) in metrics {
            rec.metric("tensor", metric)
                .stat(Stat::Exact, count)
                .params(&extra)
                .value(value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqnr_is_left_out_for_an_exact_round_trip() {
        assert_eq!(super::sqnr_db(4.0, 0.0), None);
        assert_eq!(super::sqnr_db(100.0, 1.0), Some(20.0));
    }
}
