//! The quantization suite on the real model (SmolLM2-135M, when fetched): each format applied to
//! its weights and scored on real text against the f32 model, as on `target`.
//!
//! The published weights are already 4-bit (Q4_1 projections, a Q8_0 embedding), and the f32
//! reference is their dequantization: these rows measure *re-quantizing a 4-bit model*, not
//! quantizing the original BF16 one. The `gguf-native` row is the file itself (its blocks held
//! natively): the same numbers as the reference by construction, at the file's size.

use std::collections::BTreeMap;

use burn::module::Module;

use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::{dequantize_decoder, quantize_decoder, Assignment, QuantFormat};

use super::about::{mixed, MIXED, NAME};
use super::model_accuracy::score_records;
use crate::recorder::Recorder;
use crate::zoo::corpus::read_text;
use crate::zoo::gguf::{self, llama};
use crate::zoo::real::REAL;
use crate::{Record, Result, RunContext, Scale, SuiteError};

/// Variant of the file's own weights.
pub const NATIVE: &str = "gguf-native";

/// Formats applied to the real model at `scale`, and tokens scored in windows of `window`.
fn plan(scale: Scale) -> (Vec<String>, usize, usize) {
    let names: &[&str] = match scale {
        Scale::Smoke => &["int4-g32", "q4_0", MIXED],
        _ => &[
            "f16",
            "bf16",
            "fp8-e4m3-channel",
            "int8",
            "int4-g32",
            "int4-g32-asym",
            "int4-g128",
            "q4_0",
            "q4_1",
            "q8_0",
            MIXED,
        ],
    };
    let (tokens, window) = match scale {
        Scale::Smoke => (128, 128),
        Scale::Quick => (512, 256),
        Scale::Full => (2048, 256),
    };
    (
        names.iter().map(|s| s.to_string()).collect(),
        tokens,
        window,
    )
}

/// Every real-model row.
pub fn run<B: AttentionBackend>(ctx: &RunContext, device: &B::Device) -> Result<Vec<Record>> {
    let path = gguf::smollm2().map_err(SuiteError::Input)?;
    (ctx.progress)("real model: loading");
    let (dense, tok, info) = llama::load::<B>(&path, llama::Weights::F32, device)?;
    let (text, text_name) = match &ctx.inputs.text {
        Some(p) => (read_text(p)?, p.display().to_string()),
        None => (gguf::real_text()?, gguf::REAL_TEXT_FILE.to_string()),
    };
    let (formats, tokens, window) = plan(ctx.scale);
    let ids = tok.encode(&text, false)?;
    let ids = &ids[..ids.len().min(tokens) / window * window];
    if ids.is_empty() {
        return Err(SuiteError::Input(format!(
            "text {text_name} has fewer than {window} tokens"
        )));
    }
    let base = BTreeMap::from([
        ("model".to_string(), REAL.to_string()),
        ("reference".to_string(), "dequantized-gguf".to_string()),
    ]);
    let params = [("text", text_name.clone())];
    let n_params = dense.num_params();
    let mut out = Vec::new();
    for name in &formats {
        (ctx.progress)(&format!("real model: {name}"));
        let assign = if name == MIXED {
            mixed()
        } else {
            let f: QuantFormat = name.parse().map_err(|error| SuiteError::Model {
                context: "real-model format".into(),
                error,
            })?;
            Assignment::uniform(f)
        };
        let (q, bytes) = quantize_decoder(&dense, assign).map_err(|error| SuiteError::Model {
            context: format!("quantizing {REAL} to {name}"),
            error,
        })?;
        let q = dequantize_decoder(&q);
        let mut rec = Recorder::new(ctx, NAME, name, base.clone());
        score_records(
            &mut rec,
            &dense,
            &q,
            (n_params, bytes.total()),
            ids,
            window,
            &params,
            device,
        )?;
        out.extend(rec.records);
    }
    (ctx.progress)("real model: the file's own weights");
    let (native, _, _) = llama::load::<B>(&path, llama::Weights::Native, device)?;
    let native = dequantize_decoder(&native);
    let mut rec = Recorder::new(ctx, NAME, NATIVE, base);
    let sizes = (n_params, info.file_bytes as usize);
    score_records(
        &mut rec, &dense, &native, sizes, ids, window, &params, device,
    )?;
    out.extend(rec.records);
    Ok(out)
}
