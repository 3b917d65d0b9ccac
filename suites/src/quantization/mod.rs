//! The quantization suite: each weight format (and a mixed FP8 + INT4 assignment) against FP32,
//! side by side in one run, at three levels:
//!
//! - **tensor**: storage bits per weight, RMSE, max error and SQNR, on Gaussian weights and on
//!   the trained `target` model's projections;
//! - **model**: the `target` model with its projections quantized (embeddings, norms and the tied
//!   head in FP32) on its validation text: perplexity and its change, KL divergence of the
//!   next-token distributions against FP32 (mean and p99 over tokens), top-1 agreement, bytes and
//!   compression, as llama.cpp's perplexity tool reports them;
//! - **speed**: decode matrix-vector and prefill matrix-matrix products at a 4096² layer and at the
//!   model's own shapes, each format timed alternately with burn's FP32 product (A B A B).
//!
//! Model-level numbers use the dequantized weights: numerically `QuantLinear`'s reference
//! forward. Speed numbers use `QuantLinear::forward` (layers) and the decoder with quantized
//! projections (whole model): the fused kernel for decode rows on flex, dequantize-and-multiply
//! otherwise.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use infermark_models::decoder::{Attention, Decoder};
use infermark_models::generation::argmax;
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::{
    dequantize_decoder, quantize_decoder, Assignment, Fp8Kind, Fp8Scaling, QuantFormat,
    QuantLinear, QuantizedTensor,
};

use infermark_models::kernels::few_rows::STEP_ROWS;
use infermark_models::kernels::isa;
use infermark_models::quant::act::default_activations;
use infermark_models::quant::int_dot::{self, IntPath};
use infermark_models::quant::Activations;

use crate::measure::{percentile_nearest_rank, sync_keep, time_pair, Plan};
use crate::metric::{
    BITS_PER_WEIGHT, COMPRESSION_VS_BF16, COMPRESSION_VS_FP32, DECODE_TOKENS_PER_S,
    EXACT_ROUNDTRIP, KL_DIVERGENCE_MEAN, KL_DIVERGENCE_P99, MATMUL_LATENCY_MS, MATVEC_LATENCY_MS,
    MODEL_BYTES, PERPLEXITY, PERPLEXITY_DELTA_PCT, SPEEDUP_VS_F32, SQNR_DB, TOP1_AGREEMENT,
    WEIGHT_MAX_ABS_ERR, WEIGHT_READ_GBPS, WEIGHT_RMSE,
};
use crate::recorder::Recorder;
use crate::stepper::Stepper;
use crate::zoo::real::REAL;
use crate::zoo::{checkpoint, corpus};
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Stat, Suite, SuiteError};

mod real;

/// The suite's name on the command line and in records.
pub const NAME: &str = "quantization";

/// The mixed-precision variant: FP8 E4M3 (per channel) attention, INT4 (groups of 32) MLP,
/// FP32 embeddings and head.
pub const MIXED: &str = "mixed-fp8-int4";

pub(crate) fn mixed() -> Assignment {
    Assignment {
        attention: QuantFormat::Fp8(Fp8Kind::E4M3, Fp8Scaling::Channel),
        mlp: QuantFormat::Int4 {
            group: 32,
            asym: false,
        },
    }
}

/// The quantization suite.
pub struct QuantizationSuite;

struct Sizes {
    /// Side of the square Gaussian test matrix and of the large speed layer.
    big: usize,
    /// Rows of the prefill-shaped product.
    prefill_rows: usize,
    /// Validation bytes scored.
    valid_bytes: usize,
    plan: Plan,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            big: 512,
            prefill_rows: 64,
            valid_bytes: 4 << 10,
            plan: Plan::new(1, 3, 20, 30),
        },
        Scale::Quick => Sizes {
            big: 4096,
            prefill_rows: 512,
            valid_bytes: 32 << 10,
            plan: Plan::new(3, 15, 60, 600),
        },
        Scale::Full => Sizes {
            big: 4096,
            prefill_rows: 512,
            valid_bytes: 64 << 10,
            plan: Plan::new(5, 30, 200, 3000),
        },
    }
}

/// Variant names: every format, then the mixed assignment.
fn variant_names() -> Vec<String> {
    let mut v: Vec<String> = QuantFormat::all().iter().map(|f| f.name()).collect();
    v.push(MIXED.into());
    v
}

/// What the suite is.
const ABOUT: About = About {
    name: NAME,
    description: "FP8 (E4M3, E5M2), INT8, INT4 and Q4_0 weights against FP32: bits per weight, tensor error, perplexity/KL/top-1 on the trained target model, decode and prefill speed",
    experiments: &[
            ("tensor", "bits_per_weight, weight_rmse, weight_max_abs_err, exact_roundtrip, sqnr_db"),
            (
                "model",
                "perplexity, perplexity_delta_pct, kl_divergence_mean/p99, top1_agreement, model_bytes, compression_vs_fp32 on target",
            ),
            (
                "speed",
                "matvec_latency_ms (1 row), matmul_latency_ms (prefill rows) and speedup_vs_f32 per format, FP32 alongside",
            ),
            ("decode", "decode_tokens_per_s of target with quantized projections, FP32 alongside"),
            (
                "activations",
                "matvec_latency_ms of the big layer with f32 and with int8 activations, alternately (integer formats)",
            ),
        ],
};

impl Suite for QuantizationSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn variants(&self) -> Vec<&'static str> {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        NAMES
            .get_or_init(|| {
                let mut v = variant_names();
                v.extend([REAL.to_string(), real::NATIVE.to_string()]);
                v
            })
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// One case per format (the mixed assignment has no tensor or speed part of its own), and
    /// one for the real model's rows when it has been fetched.
    fn cases(&self, _scale: Scale) -> Vec<Case> {
        let mut cases: Vec<Case> = variant_names()
            .into_iter()
            .map(|v| Case {
                params: BTreeMap::from([("preset".to_string(), "target".to_string())]),
                variant: v,
            })
            .collect();
        if crate::zoo::gguf::smollm2().is_ok() {
            cases.push(Case {
                params: BTreeMap::from([("preset".to_string(), REAL.to_string())]),
                variant: REAL.into(),
            });
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        match crate::zoo::gguf::smollm2() {
            Ok(_) => Vec::new(),
            Err(why) => vec![format!("no {REAL} rows: {why}")],
        }
    }

    /// - S: the marginal cost of one more weight in a one-row product (decode, `rows = 1`) over
    ///   the weight matrix's elements, against burn's FP32 product timed alternately beside it
    ///   (`baseline = burn-f32`): what a format costs per weight it reads and decodes.
    /// - C: the spread of that product at the largest shape; retention = FP32 perplexity /
    ///   the variant's perplexity on the same model and tokens (capped at 1). FP32 is the
    ///   reference and gets no retention.
    /// - I: what quantizing and evaluating produce (weight errors, SQNR, exact round trips,
    ///   perplexity, KL, top-1 agreement); not bits per weight, model bytes or compression,
    ///   formulas of the format and shapes.
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::metric as m;
        use crate::suite::{Accuracy, MaturityInputs, Reference, Scaling};
        MaturityInputs {
            scaling: Some(Scaling {
                metric: &m::MATVEC_LATENCY_MS,
                filter: &[("rows", "1")],
                over: "shape",
                group_by: "rows",
                reference: Reference::Param("baseline", "burn-f32"),
            }),
            accuracy: &[Accuracy {
                metric: &m::PERPLEXITY,
                reference: Reference::Variant("f32"),
            }],
            outcomes: &[
                &m::WEIGHT_RMSE,
                &m::WEIGHT_MAX_ABS_ERR,
                &m::SQNR_DB,
                &m::EXACT_ROUNDTRIP,
                &m::PERPLEXITY,
                &m::PERPLEXITY_DELTA_PCT,
                &m::KL_DIVERGENCE_MEAN,
                &m::KL_DIVERGENCE_P99,
                &m::TOP1_AGREEMENT,
            ],
        }
    }
}

impl Experiment for QuantizationSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let variant = case.variant.as_str();
        if variant == REAL {
            return real::run::<B>(ctx, device);
        }
        let s = sizes(ctx.scale);
        let mut rec = Recorder::new(ctx, NAME, variant, BTreeMap::new());
        let (assign, format) = if variant == MIXED {
            (mixed(), None)
        } else {
            let f: QuantFormat = variant.parse().map_err(|e| SuiteError::Model {
                context: "quantization variant".into(),
                error: e,
            })?;
            (Assignment::uniform(f), Some(f))
        };
        (ctx.progress)(&format!("{variant}: loading target"));
        let (model, card) = checkpoint::load::<B>(&checkpoint::committed("target"), device)?;
        if let Some(f) = format {
            (ctx.progress)(&format!("{variant}: tensor error"));
            tensor_records::<B>(&mut rec, f, &model, &s, ctx.seed, device)?;
        }
        (ctx.progress)(&format!("{variant}: model accuracy"));
        model_records(&mut rec, &model, assign, card.seq_len, &s, device)?;
        // FP32 runs burn's own product and decoder on both sides of each pair (the baseline
        // against itself: a check on the pairing, speedup ≈ 1).
        if let Some(f) = format {
            (ctx.progress)(&format!("{variant}: layer speed"));
            speed_records::<B>(&mut rec, f, &model, &s, device)?;
            if int_dot::supports(f) {
                (ctx.progress)(&format!("{variant}: f32 against int8 activations"));
                activation_records::<B>(&mut rec, f, &s, device)?;
            }
        }
        (ctx.progress)(&format!("{variant}: decode speed"));
        decode_records::<B>(&mut rec, &model, assign, &s, device)?;
        Ok(rec.records)
    }
}

/// Error statistics of one format on one matrix: (rmse, max abs error, Σw², Σerr²).
fn errors(
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
fn sqnr_db(signal: f64, noise: f64) -> Option<f64> {
    (noise > 0.0).then(|| 10.0 * (signal / noise).log10())
}

/// `[d_out, d_in]` row-major copies of the target's projection weights.
fn projections<B: AttentionBackend>(model: &Decoder<B>) -> Vec<(String, Vec<f32>, usize, usize)> {
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

fn tensor_records<B: AttentionBackend>(
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

/// Per validation token: NLL of the quantized model, KL(P_fp32 ‖ P_q), and whether the argmaxes
/// agree; plus the FP32 NLL.
struct TokenStats {
    nll_ref: Vec<f64>,
    nll_q: Vec<f64>,
    kl: Vec<f64>,
    agree: Vec<bool>,
}

fn compare<B: AttentionBackend>(
    reference: &Decoder<B>,
    quant: &Decoder<B>,
    ids: &[u32],
    seq_len: usize,
    device: &B::Device,
) -> Result<TokenStats> {
    let mut st = TokenStats {
        nll_ref: Vec::new(),
        nll_q: Vec::new(),
        kl: Vec::new(),
        agree: Vec::new(),
    };
    let windows: Vec<&[u32]> = ids.chunks_exact(seq_len).collect();
    for group in windows.chunks(16) {
        let flat: Vec<i64> = group
            .iter()
            .flat_map(|w| w.iter().map(|&t| t as i64))
            .collect();
        let b = group.len();
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(flat.clone(), [b, seq_len]), device);
        let lp = |m: &Decoder<B>| -> Result<Vec<f32>> {
            let logits = m
                .forward_full(x.clone())
                .map_err(SuiteError::model("model forward"))?;
            let lp = log_softmax(logits.narrow(1, 0, seq_len - 1), 2);
            Ok(lp
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32"))
        };
        let (p, q) = (lp(reference)?, lp(quant)?);
        let v = reference.vocab_size();
        for w in 0..b {
            for t in 0..seq_len - 1 {
                let off = (w * (seq_len - 1) + t) * v;
                let (pr, qr) = (&p[off..off + v], &q[off..off + v]);
                let next = flat[w * seq_len + t + 1] as usize;
                st.nll_ref.push(-pr[next] as f64);
                st.nll_q.push(-qr[next] as f64);
                let kl: f64 = pr
                    .iter()
                    .zip(qr)
                    .map(|(&a, &b)| (a as f64).exp() * (a as f64 - b as f64))
                    .sum();
                st.kl.push(kl.max(0.0));
                st.agree.push(argmax(pr) == argmax(qr));
            }
        }
    }
    Ok(st)
}

fn model_records<B: AttentionBackend>(
    rec: &mut Recorder,
    model: &Decoder<B>,
    assign: Assignment,
    seq_len: usize,
    s: &Sizes,
    device: &B::Device,
) -> Result<()> {
    let (quant, bytes) =
        quantize_decoder(model, assign).map_err(SuiteError::model("quantizing target"))?;
    // Scored with the dequantized weights as dense projections: the same numbers as the packed
    // path (tested), with batched GEMMs over the long validation text.
    let quant = dequantize_decoder(&quant);
    let split = corpus::stories_split();
    let ids = corpus::tokenize(&split.valid[..s.valid_bytes.min(split.valid.len())]);
    let extra = [
        ("model", "target".to_string()),
        ("text", TARGET_TEXT.to_string()),
    ];
    let sizes = (model.num_params(), bytes.total());
    score_records(rec, model, &quant, sizes, &ids, seq_len, &extra, device)
}

/// The text the trained target is scored on: the validation part of its own corpus, which it
/// predicts almost perfectly (perplexity about 1.4), so small losses hardly show there; the real
/// model's rows score real text.
pub const TARGET_TEXT: &str = "stories-valid";

/// Perplexity, its change, KL divergence (mean, p99 where there are 100+ tokens), top-1
/// agreement of `candidate` against `reference` on `ids`, and its bytes and compression against
/// FP32 and against BF16 (`sizes`: parameters, candidate bytes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_records<B: AttentionBackend>(
    rec: &mut Recorder,
    reference: &Decoder<B>,
    candidate: &Decoder<B>,
    sizes: (usize, usize),
    ids: &[u32],
    seq_len: usize,
    params: &[(&str, String)],
    device: &B::Device,
) -> Result<()> {
    let st = compare(reference, candidate, ids, seq_len, device)?;
    let n = st.kl.len();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ppl_ref, ppl_q) = (mean(&st.nll_ref).exp(), mean(&st.nll_q).exp());
    let mut kl = st.kl.clone();
    kl.sort_by(|a, b| a.total_cmp(b));
    let mut extra = params.to_vec();
    extra.push(("tokens", n.to_string()));
    rec.metric("model", &PERPLEXITY)
        .stat(Stat::Exact, n)
        .params(&extra)
        .value(ppl_q)?;
    rec.metric("model", &PERPLEXITY_DELTA_PCT)
        .stat(Stat::Exact, n)
        .params(&extra)
        .value((ppl_q / ppl_ref - 1.0) * 100.0)?;
    rec.metric("model", &KL_DIVERGENCE_MEAN)
        .stat(Stat::Mean, n)
        .params(&extra)
        .value(mean(&st.kl))?;
    if n >= crate::measure::P99_MIN_SAMPLES {
        rec.metric("model", &KL_DIVERGENCE_P99)
            .stat(Stat::P99, n)
            .params(&extra)
            .value(percentile_nearest_rank(&kl, 99.0))?;
    }
    let agree = st.agree.iter().filter(|&&a| a).count() as f64 / n as f64;
    rec.metric("model", &TOP1_AGREEMENT)
        .stat(Stat::Mean, n)
        .params(&extra)
        .value(agree)?;
    let (params, bytes) = sizes;
    rec.metric("model", &MODEL_BYTES)
        .params(&extra)
        .value(bytes as f64)?;
    rec.metric("model", &COMPRESSION_VS_FP32)
        .params(&extra)
        .value((params * 4) as f64 / bytes as f64)?;
    rec.metric("model", &COMPRESSION_VS_BF16)
        .params(&extra)
        .value((params * 2) as f64 / bytes as f64)?;
    Ok(())
}

/// Whole-model decode: one token at a time after a 64-token prompt (the cache is rolled back
/// after each step, so every step sees the same context), FP32 decoder and quantized-projection
/// decoder alternately.
fn decode_records<B: AttentionBackend>(
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

/// The big layer's decode product (one row) with f32 activations (codes unpacked to f32, one
/// FMA per weight) and with int8 activations (integer dot products, one FMA per block), timed
/// alternately (A B B A) on the same input. Params: `layer` (not `shape`, so that these rows
/// stay out of the speed experiment's comparisons with burn) and `activations`.
fn activation_records<B: AttentionBackend>(
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

fn speed_records<B: AttentionBackend>(
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

#[cfg(test)]
mod tests {
    #[test]
    fn sqnr_is_left_out_for_an_exact_round_trip() {
        assert_eq!(super::sqnr_db(4.0, 0.0), None);
        assert_eq!(super::sqnr_db(100.0, 1.0), Some(20.0));
    }
}
