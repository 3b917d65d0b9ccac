//! The quantization suite on the real model (SmolLM2-135M, when fetched): each format applied to
//! its weights and scored on real text against the f32 model, as on `target`.
//!
//! The published weights are already 4-bit (Q4_1 projections, a Q8_0 embedding), and the f32
//! reference is their dequantization: these rows measure *re-quantizing a 4-bit model*, not
//! quantizing the original BF16 one. The `gguf-native` row is the file itself (its blocks held
//! natively): the same numbers as the reference by construction, at the file's size.
//!
//! Each row's `method` says how weights were rounded: `rtn` (round to nearest), or calibrated
//! on the Debian Policy Manual ([`crate::zoo::calibration`], `calibration` and
//! `calibration_tokens` in the params): `imatrix` (each group's grid searched under the mean
//! square of its inputs) and `gptq` (Frantar et al. 2022), both run block by block on the
//! partly quantized model (`infermark_models::quant::calibrate`), and `awq` (Lin et al. 2024:
//! activation-aware channel scales folded into the f32 model, clipping searched, then round to
//! nearest; `infermark_models::quant::awq`). In the mixed FP8 + INT4 assignment the calibrated
//! methods round the INT4 MLP; the FP8 attention is rounded to nearest by every method.

use std::collections::BTreeMap;

use burn::module::Module;

use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::calibrate::{quantize_decoder_calibrated, Method};
use infermark_models::quant::{dequantize_decoder, Assignment, QuantFormat};

use super::about::{mixed, MIXED, NAME};
use super::model_accuracy::score_records;
use crate::metric::QUANTIZE_SECONDS;
use crate::recorder::Recorder;
use crate::zoo::calibration::{calibration_tokens, CALIBRATION};
use crate::zoo::corpus::read_text;
use crate::zoo::gguf::{self, llama};
use crate::zoo::real::REAL;
use crate::{Record, Result, RunContext, Scale, Stat, SuiteError};

/// Variant of the file's own weights.
pub const NATIVE: &str = "gguf-native";

/// What the real model is run through at one scale.
struct Plan {
    /// Rounded to nearest (`method=rtn`).
    rtn: Vec<&'static str>,
    /// Also by the calibrated methods `imatrix` and `gptq`.
    calibrated: Vec<&'static str>,
    /// Also by AWQ (its α search runs the model 20 times per block: the costliest method).
    awq: Vec<&'static str>,
    /// Also by GPTQ with act-order (`gptq-act-order`).
    act_order: Vec<&'static str>,
    /// Evaluation tokens scored, in windows of `window`.
    tokens: usize,
    window: usize,
    /// Calibration tokens, in windows of `window`.
    calibration: usize,
}

/// The real-model rows at `scale`.
fn plan(scale: Scale) -> Plan {
    match scale {
        Scale::Smoke => Plan {
            rtn: vec!["int4-g32", "q4_0", MIXED],
            calibrated: vec!["int4-g32"],
            awq: vec!["int4-g32"],
            act_order: vec![],
            tokens: 128,
            window: 128,
            calibration: 512,
        },
        _ => Plan {
            rtn: vec![
                "f16",
                "bf16",
                "fp8-e4m3-channel",
                "int8",
                "int4-g32",
                "int4-g32-asym",
                "int4-g128",
                "int4-g128-asym",
                "q4_0",
                "q4_1",
                "q8_0",
                MIXED,
            ],
            calibrated: vec![
                "int4-g32",
                "int4-g128",
                "int4-g128-asym",
                "q4_0",
                "q4_1",
                MIXED,
            ],
            awq: vec!["int4-g32", "int4-g128", MIXED],
            act_order: vec!["int4-g32", "int4-g128"],
            tokens: if scale == Scale::Quick { 512 } else { 2048 },
            window: 256,
            calibration: if scale == Scale::Quick { 4096 } else { 16384 },
        },
    }
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
    let plan = plan(ctx.scale);
    let (tokens, window) = (plan.tokens, plan.window);
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
    let text_param = [("text", text_name.clone())];
    let n_params = dense.num_params();
    let calib = calibration_tokens(&tok, plan.calibration)?;
    let calib = Tensor::<B, 2, Int>::from_data(
        TensorData::new(
            calib.iter().map(|&t| t as i64).collect::<Vec<_>>(),
            [plan.calibration / window, window],
        ),
        device,
    );
    let method = |m: &str| m.parse::<Method>().expect("a method");
    let rows = plan
        .rtn
        .iter()
        .map(|&f| (f, Method::Rtn))
        .chain(
            [Method::Imatrix, method("gptq")]
                .into_iter()
                .flat_map(|m| plan.calibrated.iter().map(move |&f| (f, m))),
        )
        .chain(plan.awq.iter().map(|&f| (f, method("awq"))))
        .chain(
            plan.act_order
                .iter()
                .map(|&f| (f, method("gptq-act-order"))),
        );
    let mut out = Vec::new();
    for (name, method) in rows {
        (ctx.progress)(&format!("real model: {name}, {}", method.name()));
        let assign = if name == MIXED {
            mixed()
        } else {
            let f: QuantFormat = name.parse().map_err(|error| SuiteError::Model {
                context: "real-model format".into(),
                error,
            })?;
            Assignment::uniform(f)
        };
        let start = std::time::Instant::now();
        let (q, bytes) = quantize_decoder_calibrated(&dense, assign, method, calib.clone())
            .map_err(|error| SuiteError::Model {
                context: format!("quantizing {REAL} to {name} by {}", method.name()),
                error,
            })?;
        let seconds = start.elapsed().as_secs_f64();
        let q = dequantize_decoder(&q);
        let mut params = base.clone();
        params.insert("method".into(), method.name().into());
        if method != Method::Rtn {
            params.insert("calibration".into(), CALIBRATION.into());
            params.insert("calibration_tokens".into(), plan.calibration.to_string());
        }
        let mut rec = Recorder::new(ctx, NAME, name, params);
        rec.metric("model", &QUANTIZE_SECONDS)
            .stat(Stat::Exact, 1)
            .params(&text_param)
            .value(seconds)?;
        score_records(
            &mut rec,
            &dense,
            &q,
            (n_params, bytes.total()),
            ids,
            window,
            &text_param,
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
        &mut rec,
        &dense,
        &native,
        sizes,
        ids,
        window,
        &text_param,
        device,
    )?;
    out.extend(rec.records);
    Ok(out)
}
