//! Calibrated quantization of a whole decoder: GPTQ ([`super::gptq`]) or the importance-weighted
//! search ([`super::imatrix`]) per projection, fed by the projection's own inputs as calibration
//! tokens run through the model; or AWQ ([`super::awq`]), which transforms the f32 model and
//! rounds it to nearest. Projections whose format has no group grids (the FP8 half of a mixed
//! assignment) are rounded to nearest by every method.
//!
//! As in the GPTQ reference code (`llama.py`, `--true-sequential`), blocks are taken bottom to
//! top and, inside a block, the projections in the order the forward reaches them: q, k, v
//! from the attention norm's output; o from the attention core's output (the block's
//! attention with an identity in place of o, its q, k, v already quantized); gate and up from
//! the MLP norm's output; down from `silu(gate)·up`. Each projection's inputs are those of the
//! model with every projection before it already quantized, and the next block sees the
//! quantized block's output. Embeddings, norms and the head stay FP32, as in
//! [`super::quantize_decoder`], whose result round-to-nearest ([`Method::Rtn`]) is.
//!
//! The importance matrix is taken from the same sequential inputs (llama.cpp collects it from
//! the unquantized model once; here each method sees what its layer will see).

use burn::module::{Module, Param};
use burn::tensor::activation::silu;
use burn::tensor::{Int, Tensor};

use super::awq::{awq_transform, AwqConfig};
use super::format::QuantFormat;
use super::gptq::{gptq, GptqConfig};
use super::imatrix::imatrix;
use super::linear::QuantLinear;
use super::model::{quantize_decoder, Assignment, ModelBytes};
use crate::attention::{Attention, AttentionLayer};
use crate::decoder::Decoder;
use crate::kernels::AttentionBackend;
use crate::proj::Proj;
use crate::ModelError;

/// How weights are rounded to a format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Round to nearest, each group on its own (no calibration).
    Rtn,
    /// Round to nearest with each group's grid searched under `mean(x²)` of its inputs.
    Imatrix,
    /// GPTQ with these options.
    Gptq(GptqConfig),
    /// AWQ with these options.
    Awq(AwqConfig),
}

impl Method {
    /// Name in records: `rtn`, `imatrix`, `gptq` (`gptq-act-order` with act-order).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Rtn => "rtn",
            Method::Imatrix => "imatrix",
            Method::Gptq(c) if c.act_order => "gptq-act-order",
            Method::Gptq(_) => "gptq",
            Method::Awq(_) => "awq",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = ModelError;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "rtn" => Ok(Method::Rtn),
            "imatrix" => Ok(Method::Imatrix),
            "gptq" => Ok(Method::Gptq(GptqConfig::default())),
            "gptq-act-order" => Ok(Method::Gptq(GptqConfig {
                act_order: true,
                ..GptqConfig::default()
            })),
            "awq" => Ok(Method::Awq(AwqConfig::default())),
            _ => Err(ModelError::InvalidConfig(format!(
                "unknown quantization method `{s}`; known: rtn, imatrix, gptq, gptq-act-order, awq"
            ))),
        }
    }
}

/// Calibration statistics of one projection's inputs.
enum Stats {
    /// `H = 2·XᵀX / N`, `[d_in, d_in]`.
    Hessian(Vec<f64>),
    /// `mean(x_j²)` per input channel.
    Importance(Vec<f32>),
}

/// The statistics `method` needs from inputs `x` (`[..., d_in]`).
fn stats<B: AttentionBackend, const D: usize>(method: Method, x: &Tensor<B, D>) -> Stats {
    let d_in = x.dims()[D - 1];
    let rows = x.shape().num_elements() / d_in;
    let x = x.clone().reshape([rows, d_in]);
    match method {
        Method::Gptq(_) => {
            let xtx = x.clone().transpose().matmul(x).into_data().convert::<f32>();
            let scale = 2.0 / rows as f64;
            Stats::Hessian(
                xtx.as_slice::<f32>()
                    .expect("f32 data")
                    .iter()
                    .map(|&v| v as f64 * scale)
                    .collect(),
            )
        }
        _ => {
            let m = (x.clone() * x).mean_dim(0).into_data().convert::<f32>();
            Stats::Importance(m.to_vec::<f32>().expect("f32 data"))
        }
    }
}

/// Refuses calibration `tokens` outside `model`'s vocabulary (negative ids included).
pub(super) fn check_tokens<B: AttentionBackend>(
    model: &Decoder<B>,
    tokens: &Tensor<B, 2, Int>,
) -> crate::Result<()> {
    let ids = tokens.clone().into_data().convert::<i64>();
    let ids: Vec<u32> = ids
        .as_slice::<i64>()
        .expect("i64 ids")
        .iter()
        .map(|&t| u32::try_from(t).unwrap_or(u32::MAX))
        .collect();
    model.check_tokens(&ids)
}

/// `p` quantized to `format` under `stats` and `method`.
fn quantize_proj<B: AttentionBackend>(
    p: &Proj<B>,
    format: QuantFormat,
    method: Method,
    stats: &Stats,
    device: &B::Device,
) -> crate::Result<Proj<B>> {
    let w = p.weight(device); // [d_in, d_out]
    let [d_in, d_out] = w.dims();
    let t = w.transpose().into_data().convert::<f32>();
    let values = t.as_slice::<f32>().expect("f32 weights");
    if !super::grid::supports(format) {
        return p.quantize(format, device);
    }
    let q = match (method, stats) {
        (Method::Gptq(cfg), Stats::Hessian(h)) => gptq(format, values, d_out, d_in, h, &cfg)?,
        (Method::Imatrix, Stats::Importance(m)) => imatrix(format, values, d_out, d_in, m)?,
        _ => unreachable!("stats are taken for the method"),
    };
    Ok(Proj::quantized(QuantLinear::new(q)))
}

/// A copy of `model` whose projections hold `assign`'s formats, rounded by `method` with
/// calibration `tokens` (`[n, s]`, each row a window of text), and its storage. Refuses, for
/// calibrated methods, assignments without a 4-bit group format, MLA blocks, and token ids
/// outside the vocabulary.
///
/// # Shapes
/// - `tokens`: `[n, s]` with `s` at most the model's context
pub fn quantize_decoder_calibrated<B: AttentionBackend>(
    model: &Decoder<B>,
    assign: Assignment,
    method: Method,
    tokens: Tensor<B, 2, Int>,
) -> crate::Result<(Decoder<B>, ModelBytes)> {
    match method {
        Method::Rtn => return quantize_decoder(model, assign),
        Method::Awq(cfg) => {
            let (m, _) = awq_transform(model, assign, tokens, &cfg)?;
            return quantize_decoder(&m, assign);
        }
        _ => {}
    }
    if !super::grid::supports(assign.attention) && !super::grid::supports(assign.mlp) {
        return Err(super::grid::unsupported(assign.attention, method.name()));
    }
    check_tokens(model, &tokens)?;
    let device = model.embed.weight.val().device();
    let mut m = model.clone();
    let mut x = m.embed.forward(tokens);
    let (mut bytes, mut params) = (0usize, 0usize);
    let mut count = |p: &Proj<B>| {
        let (i, o) = p.dims();
        params += i * o;
        bytes += p.bytes();
    };
    for (layer, block) in m.blocks.iter_mut().enumerate() {
        let Attention::Gqa(attn) = &mut block.attn else {
            return Err(ModelError::InvalidConfig(format!(
                "block {layer} is MLA; calibrated quantization walks GQA blocks only"
            )));
        };
        let fa = assign.attention;
        let h = block.attn_norm.forward(x.clone());
        let s = stats(method, &h);
        for p in [&mut attn.wq, &mut attn.wk, &mut attn.wv] {
            *p = quantize_proj(p, fa, method, &s, &device)?;
            count(p);
        }
        // The attention core's output: the block's attention with an identity in place of o.
        let mut probe = attn.clone();
        let (d_attn, _) = probe.wo.dims();
        probe.wo = Proj::dense(Param::from_tensor(Tensor::eye(d_attn, &device)));
        let core = probe.forward_full(h)?;
        attn.wo = quantize_proj(&attn.wo, fa, method, &stats(method, &core), &device)?;
        count(&attn.wo);
        let x2 = x + attn.wo.forward(core);
        let fm = assign.mlp;
        let mlp = &mut block.mlp;
        let n = block.mlp_norm.forward(x2.clone());
        let s = stats(method, &n);
        for p in [&mut mlp.gate, &mut mlp.up] {
            *p = quantize_proj(p, fm, method, &s, &device)?;
            count(p);
        }
        let (g, u) = (mlp.gate.forward(n.clone()), mlp.up.forward(n));
        let mid = B::swiglu(&g, &u).unwrap_or_else(|| silu(g) * u);
        mlp.down = quantize_proj(&mlp.down, fm, method, &stats(method, &mid), &device)?;
        count(&mlp.down);
        x = x2 + mlp.down.forward(mid);
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
