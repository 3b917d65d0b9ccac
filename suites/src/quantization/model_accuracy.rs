//! *model*: the trained model with quantized projections on its validation text: perplexity,
//! KL divergence against FP32, top-1 agreement, bytes and compression.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::decoder::Decoder;
use infermark_models::generation::argmax;
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::{dequantize_decoder, quantize_decoder, Assignment};

use super::about::Sizes;
use crate::measure::percentile_nearest_rank;
use crate::metric::{
    COMPRESSION_VS_BF16, COMPRESSION_VS_FP32, KL_DIVERGENCE_MEAN, KL_DIVERGENCE_P99, MODEL_BYTES,
    PERPLEXITY, PERPLEXITY_DELTA_PCT, TOP1_AGREEMENT,
};
use crate::recorder::Recorder;
use crate::zoo::corpus;
use crate::{Result, Stat, SuiteError};

/// Per validation token: NLL of the quantized model, KL(P_fp32 ‖ P_q), and whether the argmaxes
/// agree; plus the FP32 NLL.
pub(super) struct TokenStats {
    nll_ref: Vec<f64>,
    nll_q: Vec<f64>,
    kl: Vec<f64>,
    agree: Vec<bool>,
}

pub(super) fn compare<B: AttentionBackend>(
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

pub(super) fn model_records<B: AttentionBackend>(
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
