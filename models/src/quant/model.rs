//! Quantizing a whole decoder: every attention and MLP projection in a chosen format (a
//! per-layer assignment allows mixed precision), embeddings, norms and the tied head in FP32.
//!
//! [`quantize_decoder`] returns the decoder with each projection replaced by its dequantized
//! weights: numerically the reference forward of [`super::QuantLinear`] (dequantize, then
//! multiply), on any backend and with the same attention code, which is what model-level accuracy
//! needs. The bytes reported are those of the packed formats.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::format::QuantFormat;
use super::tensor::QuantizedTensor;
use crate::decoder::{Attention, Decoder};

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

/// Quantizes then dequantizes a weight stored burn-style `[d_in, d_out]`; returns it and its
/// packed bytes.
fn round_trip<B: Backend>(w: Tensor<B, 2>, f: QuantFormat) -> crate::Result<(Tensor<B, 2>, usize)> {
    let [d_in, d_out] = w.dims();
    let device = w.device();
    let data = w.transpose().into_data().convert::<f32>();
    let q = QuantizedTensor::quantize(f, data.as_slice::<f32>().expect("f32"), d_out, d_in)?;
    let back = Tensor::<B, 2>::from_data(TensorData::new(q.dequantize(), [d_out, d_in]), &device);
    Ok((back.transpose(), q.bytes()))
}

fn linear<B: Backend>(
    l: &mut Linear<B>,
    f: QuantFormat,
    bytes: &mut usize,
) -> crate::Result<usize> {
    let (w, b) = round_trip(l.weight.val(), f)?;
    l.weight = Param::from_tensor(w);
    *bytes += b;
    Ok(l.weight.val().shape().num_elements())
}

/// Per-head up-projections `[h, d_c, d]` as one `[h·d_c, d]` matrix (groups never straddle
/// heads when `d_c` divides by the group size).
fn per_head<B: Backend>(
    p: &mut Param<Tensor<B, 3>>,
    f: QuantFormat,
    bytes: &mut usize,
) -> crate::Result<usize> {
    let [h, c, d] = p.val().dims();
    let (w, b) = round_trip(p.val().reshape([h * c, d]), f)?;
    *p = Param::from_tensor(w.reshape([h, c, d]));
    *bytes += b;
    Ok(h * c * d)
}

/// A copy of `model` whose projections went through `assign`'s formats, and its storage.
pub fn quantize_decoder<B: Backend>(
    model: &Decoder<B>,
    assign: Assignment,
) -> crate::Result<(Decoder<B>, ModelBytes)> {
    crate::decoder::materialize(model);
    let mut m = model.clone();
    let (mut bytes, mut params) = (0usize, 0usize);
    for block in &mut m.blocks {
        let a = assign.attention;
        match &mut block.attn {
            Attention::Gqa(g) => {
                for l in [&mut g.wq, &mut g.wk, &mut g.wv, &mut g.wo] {
                    params += linear(l, a, &mut bytes)?;
                }
            }
            Attention::Mla(x) => {
                for l in [
                    &mut x.w_dq,
                    &mut x.w_uq,
                    &mut x.w_qr,
                    &mut x.w_dkv,
                    &mut x.w_kr,
                    &mut x.w_o,
                ] {
                    params += linear(l, a, &mut bytes)?;
                }
                params += per_head(&mut x.w_uk, a, &mut bytes)?;
                params += per_head(&mut x.w_uv, a, &mut bytes)?;
            }
        }
        for l in [&mut block.mlp.gate, &mut block.mlp.up, &mut block.mlp.down] {
            params += linear(l, assign.mlp, &mut bytes)?;
        }
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
