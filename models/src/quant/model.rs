//! Quantizing a whole decoder: every attention and MLP projection in a chosen format (a
//! per-layer assignment allows mixed precision), embeddings, norms and the tied head in FP32.
//!
//! [`quantize_decoder`] returns the same [`Decoder`] with quantized projections (packed codes,
//! the fused kernel for decode rows); [`dequantize_decoder`] turns them back into dense weights,
//! the reference forward with batched GEMMs that model-level accuracy is scored with. The bytes
//! reported are those of the packed formats.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};

use super::act::Activations;
use super::format::QuantFormat;
use super::fp8_train::Fp8Training;
use super::linear::QuantLinear;
use crate::attention::Attention;
use crate::decoder::{Block, Decoder};
use crate::kernels::AttentionBackend;
use crate::proj::Proj;

/// Which formats a decoder's projections get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Attention projections (GQA: q, k, v, o; MLA: every projection and up-projection).
    pub attention: QuantFormat,
    /// MLP projections (gate, up, down).
    pub mlp: QuantFormat,
}

impl Assignment {
    /// Every projection in one format.
    pub fn uniform(f: QuantFormat) -> Self {
        Self {
            attention: f,
            mlp: f,
        }
    }
}

/// Storage of a quantized decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelBytes {
    /// Bytes of the quantized projections (codes, scales, zero points).
    pub quantized: usize,
    /// Bytes of everything kept in FP32 (embeddings and tied head, norms).
    pub fp32: usize,
}

impl ModelBytes {
    /// Everything.
    pub fn total(&self) -> usize {
        self.quantized + self.fp32
    }
}

/// Quantizes then dequantizes a per-head tensor `[h, d_c, d]` as one `[h·d_c, d]` matrix
/// (groups never straddle heads when `d_c` divides by the group size); returns it and its
/// packed bytes. MLA's up-projections are batched matrix products, not projections, so they are
/// held dequantized: accuracy is that of the format, memory is counted as packed.
fn per_head<B: AttentionBackend>(
    p: &mut Param<Tensor<B, 3>>,
    f: QuantFormat,
) -> crate::Result<usize> {
    let [h, c, d] = p.val().dims();
    let q = QuantLinear::from_weight(p.val().reshape([h * c, d]), f)?;
    let back = q.dequantized::<B>(&p.val().device());
    *p = Param::from_tensor(back.reshape([h, c, d]));
    Ok(q.weight.bytes())
}

/// The projections of one block's attention.
fn attention_projs<B: Backend>(a: &mut Attention<B>) -> Vec<&mut Proj<B>> {
    match a {
        Attention::Gqa(g) => vec![&mut g.wq, &mut g.wk, &mut g.wv, &mut g.wo],
        Attention::Mla(x) => vec![
            &mut x.w_dq,
            &mut x.w_uq,
            &mut x.w_qr,
            &mut x.w_dkv,
            &mut x.w_kr,
            &mut x.w_o,
        ],
    }
}

/// Quantizes one block's projections in place to `assign`'s formats (MLA's per-head
/// up-projections held dequantized, see [`per_head`]); returns (parameters quantized, their
/// packed bytes).
pub fn quantize_block<B: AttentionBackend>(
    block: &mut Block<B>,
    assign: Assignment,
    device: &B::Device,
) -> crate::Result<(usize, usize)> {
    let (mut bytes, mut params) = (0usize, 0usize);
    if let Attention::Mla(x) = &mut block.attn {
        for p in [&mut x.w_uk, &mut x.w_uv] {
            params += p.val().shape().num_elements();
            bytes += per_head(p, assign.attention)?;
        }
    }
    let mlp = [&mut block.mlp.gate, &mut block.mlp.up, &mut block.mlp.down];
    let projs = attention_projs(&mut block.attn)
        .into_iter()
        .map(|p| (p, assign.attention))
        .chain(mlp.into_iter().map(|p| (p, assign.mlp)));
    for (p, f) in projs {
        let (i, o) = p.dims();
        *p = p.quantize(f, device)?;
        params += i * o;
        bytes += p.bytes();
    }
    Ok((params, bytes))
}

/// A copy of `model` whose projections hold `assign`'s formats as packed codes
/// ([`crate::quant::QuantLinear`] behind [`Proj`]), and its storage. Embeddings, norms and the
/// tied head stay FP32.
pub fn quantize_decoder<B: AttentionBackend>(
    model: &Decoder<B>,
    assign: Assignment,
) -> crate::Result<(Decoder<B>, ModelBytes)> {
    let device = model.embed.weight.val().device();
    let mut m = model.clone();
    let (mut bytes, mut params) = (0usize, 0usize);
    for block in &mut m.blocks {
        let (p, b) = quantize_block(block, assign, &device)?;
        params += p;
        bytes += b;
    }
    let fp32 = (model.num_params() - params) * 4;
    Ok((
        m,
        ModelBytes {
            quantized: bytes,
            fp32,
        },
    ))
}

/// Quantizes `model`'s LM head to `format` (a tied head becomes its own quantized copy of the
/// embedding, which stays f32 for the lookup); returns the head's bytes. Deployed 4-bit models
/// keep the head at 6–8 bits (llama.cpp's Q4 files: Q6_K or Q8_0).
pub fn quantize_head<B: AttentionBackend>(
    model: &mut Decoder<B>,
    format: QuantFormat,
) -> crate::Result<usize> {
    let device = model.embed.weight.val().device();
    let w = match &model.lm_head {
        Some(h) => h.weight(&device),
        None => model.embed.weight.val().transpose(), // [d_model, vocab]
    };
    let head = Proj::quantized(QuantLinear::from_weight(w, format)?);
    let bytes = head.bytes();
    model.lm_head = Some(head);
    Ok(bytes)
}

/// Sets what every quantized projection of `model` (the head included) multiplies its codes
/// with on the fused decode path; dense projections are left as they are.
pub fn set_activations<B: Backend>(model: &mut Decoder<B>, activations: Activations) {
    for block in &mut model.blocks {
        let mlp = [&mut block.mlp.gate, &mut block.mlp.up, &mut block.mlp.down];
        for p in attention_projs(&mut block.attn).into_iter().chain(mlp) {
            p.set_activations(activations);
        }
    }
    if let Some(h) = &mut model.lm_head {
        h.set_activations(activations);
    }
}

/// Sets simulated FP8 training ([`Fp8Training`]) on every attention and MLP projection of
/// `model` (`None` turns it off); embeddings, norms and the head stay FP32, as in DeepSeek-V3,
/// and so do MLA's per-head up-projections `W_UK`, `W_UV` (batched products, not projections).
/// Quantized projections ignore it.
pub fn set_fp8_training<B: Backend>(model: &mut Decoder<B>, fp8: Option<Fp8Training>) {
    for block in &mut model.blocks {
        let mlp = [&mut block.mlp.gate, &mut block.mlp.up, &mut block.mlp.down];
        for p in attention_projs(&mut block.attn).into_iter().chain(mlp) {
            p.set_fp8_training(fp8);
        }
    }
}

/// A copy of `model` with every quantized projection replaced by its dequantized weights: the
/// reference forward (dequantize, then multiply) with batched GEMMs, for scoring long texts.
pub fn dequantize_decoder<B: AttentionBackend>(model: &Decoder<B>) -> Decoder<B> {
    let device = model.embed.weight.val().device();
    let mut m = model.clone();
    for block in &mut m.blocks {
        let mlp = [&mut block.mlp.gate, &mut block.mlp.up, &mut block.mlp.down];
        for p in attention_projs(&mut block.attn).into_iter().chain(mlp) {
            *p = p.dequantize(&device);
        }
    }
    m
}
