//! *speed* of the whole model: decode steps with quantized projections against FP32, side by
//! side.

use infermark_models::decoder::Decoder;
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::act::default_activations;
use infermark_models::quant::{quantize_decoder, Assignment, QuantFormat};

use super::about::Sizes;
use crate::measure::time_pair;
use crate::metric::DECODE_TOKENS_PER_S;
use crate::recorder::Recorder;
use crate::stepper::Stepper;
use crate::zoo::corpus;
use crate::{Result, Stat, SuiteError};

/// Whole-model decode: one token at a time after a 64-token prompt (the cache is rolled back
/// after each step, so every step sees the same context), FP32 decoder and quantized-projection
/// decoder alternately.
pub(super) fn decode_records<B: AttentionBackend>(
    rec: &mut Recorder,
    model: &Decoder<B>,
    assign: Assignment,
    s: &Sizes,
    device: &B::Device,
) -> Result<()> {
    let is_f32 = assign == Assignment::uniform(QuantFormat::F32);
    // FP32 "quantized" projections would dequantize every call: the FP32 row runs the model.
    let q = if is_f32 {
        model.clone()
    } else {
        quantize_decoder(model, assign)
            .map_err(SuiteError::model("quantized decoder"))?
            .0
    };
    let prompt = &corpus::tokenize(&corpus::stories(7, 256))[..64];
    let mut a = Stepper::new(model, prompt, 1, device)?;
    let mut b = Stepper::new(&q, prompt, 1, device)?;
    let len = prompt.len();
    let (fp32, quant) = time_pair(s.plan, || a.step(1), || b.step(1))?;
    let acts = default_activations().name().to_string();
    let extra = [
        ("model", "target".to_string()),
        ("ctx", len.to_string()),
        ("activations", acts),
    ];
    rec.metric("decode", &DECODE_TOKENS_PER_S)
        .stat(Stat::Median, quant.n)
        .params(&extra)
        .value(1e3 / quant.median)?;
    let base = [
        ("model", "target".to_string()),
        ("ctx", len.to_string()),
        ("baseline", "burn-f32".to_string()),
    ];
    rec.metric("decode", &DECODE_TOKENS_PER_S)
        .stat(Stat::Median, fp32.n)
        .params(&base)
        .value(1e3 / fp32.median)?;
    Ok(())
}
