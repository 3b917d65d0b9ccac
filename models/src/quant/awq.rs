//! AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han 2024, "AWQ: Activation-aware Weight Quantization
//! for LLM Compression and Acceleration", §3.2, and its reference code `llm-awq`'s `auto_scale`
//! and `auto_clip`): before round-to-nearest, each projection's input channels are scaled by
//! `s = mean|x|^α` (normalised by `sqrt(max s · min s)`), the weights multiplied by `s` and the
//! inverse folded into the operation that produces the input, so the f32 model computes the same
//! function while the channels that meet large activations keep more of their precision. `α` is
//! searched over `{0, 1/20, …, 19/20}` per group of projections that share an input, to minimise
//! the mean squared error of the output of what they feed after simulated quantization:
//!
//! | projections | folded into | error measured on |
//! |---|---|---|
//! | q, k, v | the attention norm's weight | the attention's output (o included) |
//! | gate, up | the MLP norm's weight | the MLP's output |
//! | down | up's output columns (`silu(g)·u/s = (silu(g)·u)/s`) | down's output |
//!
//! Then each group of weights of v, o, gate, up and down (not q and k, as in the reference) gets
//! its clipping range searched: `max|w|·(1 − i/20)` for `i < 10`, keeping the one whose rounding
//! error `e` (against the unclipped weights) has the smallest `eᵀ·G·e` with `G = XᵀX / N` of the
//! (scaled) inputs, which is the mean squared error of that group's share of the output over the
//! calibration tokens. The result is an f32 model ([`awq_transform`]); round-to-nearest of it
//! ([`super::quantize_decoder`]) gives the same formats and bytes as round-to-nearest alone.
//!
//! As in the reference, every block's calibration inputs come from the f32 model, scales are
//! searched on the block before any of its weights change, and only projections whose format has
//! group grids ([`super::grid::supports`]) are scaled or clipped (an FP8 or INT8 part of a mixed
//! assignment is left as it is). Where this deviates from the reference: o is not scaled (the
//! reference skips it too when v and o differ in shape, as under GQA); the α search runs over the
//! first `search_tokens` calibration tokens, while the channel means and the clipping use all of
//! them (the reference subsamples 512 tokens for clipping); clipping errors are exact quadratic
//! forms rather than sums over sampled tokens.

use burn::module::Param;
use burn::tensor::activation::silu;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::format::QuantFormat;
use super::grid::{self, Grid};
use super::matvec::dot;
use super::model::Assignment;
use super::tensor::absmax;
use crate::attention::{Attention, AttentionLayer};
use crate::decoder::Decoder;
use crate::kernels::AttentionBackend;
use crate::proj::Proj;
use crate::ModelError;

/// AWQ's options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AwqConfig {
    /// Points of the α grid, `α = i / grid` for `i < grid` (the paper: 20).
    pub grid: usize,
    /// A fixed α instead of the search (`Some(0.0)` gives round-to-nearest's weights).
    pub alpha: Option<f32>,
    /// Search each group's clipping range after scaling (the reference's `auto_clip`).
    pub clip: bool,
    /// Calibration tokens the α search runs each block over (whole windows, at least one).
    pub search_tokens: usize,
}

impl Default for AwqConfig {
    fn default() -> Self {
        Self {
            grid: 20,
            alpha: None,
            clip: true,
            search_tokens: 1024,
        }
    }
}

/// Steps of the clipping search: shrink `max|w|` by `i / CLIP_GRID` for `i < CLIP_STEPS` (the
/// reference: `n_grid = 20`, `max_shrink = 0.5`).
const CLIP_GRID: usize = 20;
const CLIP_STEPS: usize = 10;

/// The α chosen for each group of projections of one block (`None` where its format has no
/// group grids).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockAlphas {
    /// q, k, v.
    pub qkv: Option<f32>,
    /// gate, up.
    pub gate_up: Option<f32>,
    /// down.
    pub down: Option<f32>,
}

/// `s = max(mean^α, 1e-4) / sqrt(max s · min s)`, per input channel.
pub fn scales(mean_abs: &[f32], alpha: f32) -> Vec<f32> {
    let s: Vec<f32> = mean_abs.iter().map(|m| m.powf(alpha).max(1e-4)).collect();
    let (lo, hi) = s
        .iter()
        .fold((f32::MAX, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let norm = (hi * lo).sqrt();
    s.iter().map(|v| v / norm).collect()
}

fn host<B: AttentionBackend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
}

/// `mean |x_j|` over every row of `x` (`[..., d]`).
fn mean_abs<B: AttentionBackend>(x: &Tensor<B, 3>) -> Vec<f32> {
    let d = x.dims()[2];
    let rows = x.shape().num_elements() / d;
    host(x.clone().reshape([rows, d]).abs().mean_dim(0))
}

/// `XᵀX / N` of `x` (`[..., d]`), `[d, d]` row-major.
fn gram<B: AttentionBackend>(x: &Tensor<B, 3>) -> Vec<f32> {
    let d = x.dims()[2];
    let rows = x.shape().num_elements() / d;
    let x = x.clone().reshape([rows, d]);
    host(x.clone().transpose().matmul(x) / rows as f32)
}

fn vector<B: AttentionBackend>(v: &[f32], device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// `p` with its input rows multiplied by `s` (`[d_in]`).
fn scale_rows<B: AttentionBackend>(p: &Proj<B>, s: &[f32], device: &B::Device) -> Proj<B> {
    let w = p.weight(device);
    let s = vector::<B>(s, device).reshape([s.len(), 1]);
    Proj::dense(Param::from_tensor(w * s))
}

/// `p` with its output columns divided by `s` (`[d_out]`).
fn unscale_cols<B: AttentionBackend>(p: &Proj<B>, s: &[f32], device: &B::Device) -> Proj<B> {
    let w = p.weight(device);
    let s = vector::<B>(s, device).reshape([1, s.len()]);
    Proj::dense(Param::from_tensor(w / s))
}

/// A projection's weights on the host, `[d_out, d_in]` row-major (a row per output).
struct HostRows {
    w: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

impl HostRows {
    fn of<B: AttentionBackend>(p: &Proj<B>, device: &B::Device) -> Self {
        let w = p.weight(device);
        let [d_in, d_out] = w.dims();
        Self {
            w: host(w.transpose()),
            d_in,
            d_out,
        }
    }

    /// The dense projection `Q(diag(s)·W) / s`: these weights as they compute after scaling
    /// and rounding to nearest (each group through [`Grid::rtn`], which is
    /// `QuantizedTensor::quantize`'s rounding exactly).
    fn simulated<B: AttentionBackend>(
        &self,
        s: &[f32],
        format: QuantFormat,
        device: &B::Device,
    ) -> Proj<B> {
        let g = format.group();
        let mut out = vec![0f32; self.w.len()];
        out.par_chunks_mut(self.d_in)
            .zip(self.w.par_chunks(self.d_in))
            .for_each(|(o, r)| {
                let mut padded = vec![0f32; g];
                for ((o, r), s) in o.chunks_mut(g).zip(r.chunks(g)).zip(s.chunks(g)) {
                    padded.fill(0.0);
                    for ((p, &x), &s) in padded.iter_mut().zip(r).zip(s) {
                        *p = x * s;
                    }
                    let grid = Grid::rtn(format, &padded)
                        .expect("a group format")
                        .prepare();
                    for ((o, &p), &s) in o.iter_mut().zip(&padded).zip(s) {
                        *o = grid.round(p) / s;
                    }
                }
            });
        let t = Tensor::<B, 2>::from_data(TensorData::new(out, [self.d_out, self.d_in]), device);
        Proj::dense(Param::from_tensor(t.transpose()))
    }
}

fn mse<B: AttentionBackend>(a: Tensor<B, 3>, b: Tensor<B, 3>) -> crate::Result<f64> {
    let d = a - b;
    let e = host((d.clone() * d).mean())[0] as f64;
    if e.is_finite() {
        Ok(e)
    } else {
        Err(ModelError::InvalidConfig(format!(
            "AWQ's search met a non-finite output error ({e}); check the calibration inputs"
        )))
    }
}

/// The α (and its scales) with the smallest `loss`, over the grid or the fixed α; ties go to the
/// smaller α.
fn search(
    cfg: &AwqConfig,
    mean: &[f32],
    mut loss: impl FnMut(&[f32]) -> crate::Result<f64>,
) -> crate::Result<(f32, Vec<f32>)> {
    if let Some(a) = cfg.alpha {
        return Ok((a, scales(mean, a)));
    }
    let mut best: Option<(f64, f32, Vec<f32>)> = None;
    for i in 0..cfg.grid {
        let a = i as f32 / cfg.grid as f32;
        let s = scales(mean, a);
        let e = loss(&s)?;
        if best.as_ref().is_none_or(|(b, _, _)| e < *b) {
            best = Some((e, a, s));
        }
    }
    let (_, a, s) = best.expect("a grid of at least one point");
    Ok((a, s))
}

/// Clips one group `w` in place (its inputs' Gram block `gram`, `[len, len]` with row stride
/// `stride`) to the shrink of `max|w|` whose rounding error has the smallest `eᵀ·G·e`, ties to
/// the smaller shrink.
pub fn clip_group(format: QuantFormat, w: &mut [f32], gram: &[f32], stride: usize) {
    let len = w.len();
    let amax = absmax(w);
    if amax == 0.0 {
        return;
    }
    // The grid sees the group as quantization does: padded with zeros to the format's group.
    let mut padded = vec![0f32; format.group()];
    let mut err = vec![0f32; len];
    let (mut best, mut best_max) = (f64::INFINITY, amax);
    for i in 0..CLIP_STEPS {
        let max = amax * (1.0 - i as f32 / CLIP_GRID as f32);
        for (p, &x) in padded.iter_mut().zip(w.iter()) {
            *p = x.clamp(-max, max);
        }
        let g = Grid::rtn(format, &padded)
            .expect("a group format")
            .prepare();
        for ((e, &x), &c) in err.iter_mut().zip(w.iter()).zip(&padded) {
            *e = x - g.round(c);
        }
        let total: f64 = (0..len)
            .map(|a| err[a] as f64 * dot(&gram[a * stride..a * stride + len], &err) as f64)
            .sum();
        if total < best {
            (best, best_max) = (total, max);
        }
    }
    for x in w.iter_mut() {
        *x = x.clamp(-best_max, best_max);
    }
}

/// `p` with every group's clipping range searched under `gram` (`[d_in, d_in]`).
fn clip<B: AttentionBackend>(
    p: &Proj<B>,
    format: QuantFormat,
    gram: &[f32],
    device: &B::Device,
) -> Proj<B> {
    let w = p.weight(device); // [d_in, d_out]
    let [d_in, d_out] = w.dims();
    let mut rows = host(w.transpose()); // [d_out, d_in]
    let g = format.group();
    rows.par_chunks_mut(d_in).for_each(|row| {
        for (j, group) in row.chunks_mut(g).enumerate() {
            clip_group(format, group, &gram[j * g * d_in + j * g..], d_in);
        }
    });
    let t = Tensor::<B, 2>::from_data(TensorData::new(rows, [d_out, d_in]), device);
    Proj::dense(Param::from_tensor(t.transpose()))
}

/// The first whole windows of `x` (`[n, s, d]`) holding at most `tokens` tokens (at least one).
fn prefix<B: AttentionBackend>(x: &Tensor<B, 3>, tokens: usize) -> Tensor<B, 3> {
    let [n, s, _] = x.dims();
    let k = (tokens / s).clamp(1, n);
    x.clone().narrow(0, 0, k)
}

/// AWQ's f32 model for `assign` (scales folded, weights clipped) from calibration `tokens`
/// (`[n, s]`, each row a window of text), and the α chosen per block. Round-to-nearest of it
/// is AWQ's quantized model. Refuses MLA blocks, token ids outside the vocabulary, an empty
/// α grid, and assignments with no 4-bit group format.
///
/// # Shapes
/// - `tokens`: `[n, s]` with `s` at most the model's context
pub fn awq_transform<B: AttentionBackend>(
    model: &Decoder<B>,
    assign: Assignment,
    tokens: Tensor<B, 2, Int>,
    cfg: &AwqConfig,
) -> crate::Result<(Decoder<B>, Vec<BlockAlphas>)> {
    let (fa, fm) = (assign.attention, assign.mlp);
    if !grid::supports(fa) && !grid::supports(fm) {
        return Err(grid::unsupported(fa, "AWQ"));
    }
    if cfg.grid == 0 || cfg.alpha.is_some_and(|a| !a.is_finite()) {
        return Err(ModelError::InvalidConfig(format!(
            "AWQ needs an α grid of at least one point and a finite fixed α (got grid {}, α {:?})",
            cfg.grid, cfg.alpha
        )));
    }
    super::calibrate::check_tokens(model, &tokens)?;
    let device = model.embed.weight.val().device();
    let mut m = model.clone();
    let mut x = m.embed.forward(tokens);
    let mut alphas = Vec::with_capacity(m.blocks.len());
    for (layer, block) in m.blocks.iter_mut().enumerate() {
        let Attention::Gqa(attn) = &mut block.attn else {
            return Err(ModelError::InvalidConfig(format!(
                "block {layer} is MLA; AWQ walks GQA blocks only"
            )));
        };
        let mut chosen = BlockAlphas {
            qkv: None,
            gate_up: None,
            down: None,
        };
        // The next block's inputs: this block of the f32 model.
        let next = model.blocks[layer].forward_full(x.clone())?;
        let xs = prefix(&x, cfg.search_tokens);
        // 1. q, k, v: scales searched on the attention's output, folded into the norm.
        if grid::supports(fa) {
            let mean = mean_abs(&block.attn_norm.forward(x.clone()));
            let hs = block.attn_norm.forward(xs.clone());
            let reference = attn.forward_full(hs.clone())?;
            let host = [&attn.wq, &attn.wk, &attn.wv].map(|p| HostRows::of(p, &device));
            let (a, s) = search(cfg, &mean, |s| {
                let mut probe = attn.clone();
                let [q, k, v] = host.each_ref().map(|h| h.simulated(s, fa, &device));
                (probe.wq, probe.wk, probe.wv) = (q, k, v);
                mse(probe.forward_full(hs.clone())?, reference.clone())
            })?;
            let gamma = block.attn_norm.gamma.val() / vector::<B>(&s, &device);
            block.attn_norm.gamma = Param::from_tensor(gamma);
            for p in [&mut attn.wq, &mut attn.wk, &mut attn.wv] {
                *p = scale_rows(p, &s, &device);
            }
            chosen.qkv = Some(a);
        }
        let h = block.attn_norm.forward(x.clone());
        let x2 = x + attn.forward_full(h.clone())?;
        // 2. gate, up: searched on the MLP's output, folded into the norm; 3. down: on its
        // own output, folded into up's columns.
        let mlp = &mut block.mlp;
        if grid::supports(fm) {
            let x2s = prefix(&x2, cfg.search_tokens);
            let mean = mean_abs(&block.mlp_norm.forward(x2.clone()));
            let ns = block.mlp_norm.forward(x2s.clone());
            let reference = mlp.forward(ns.clone());
            let host = [&mlp.gate, &mlp.up].map(|p| HostRows::of(p, &device));
            let (a, s) = search(cfg, &mean, |s| {
                let mut probe = mlp.clone();
                let [gate, up] = host.each_ref().map(|h| h.simulated(s, fm, &device));
                (probe.gate, probe.up) = (gate, up);
                mse(probe.forward(ns.clone()), reference.clone())
            })?;
            let gamma = block.mlp_norm.gamma.val() / vector::<B>(&s, &device);
            block.mlp_norm.gamma = Param::from_tensor(gamma);
            for p in [&mut mlp.gate, &mut mlp.up] {
                *p = scale_rows(p, &s, &device);
            }
            chosen.gate_up = Some(a);
            let mid = |n: Tensor<B, 3>| silu(mlp.gate.forward(n.clone())) * mlp.up.forward(n);
            let mean = mean_abs(&mid(block.mlp_norm.forward(x2.clone())));
            let ms = mid(block.mlp_norm.forward(x2s));
            let reference = mlp.down.forward(ms.clone());
            let host = HostRows::of(&mlp.down, &device);
            let (a, s) = search(cfg, &mean, |s| {
                mse(
                    host.simulated(s, fm, &device).forward(ms.clone()),
                    reference.clone(),
                )
            })?;
            mlp.up = unscale_cols(&mlp.up, &s, &device);
            mlp.down = scale_rows(&mlp.down, &s, &device);
            chosen.down = Some(a);
        }
        // Clipping, each projection under its inputs in the scaled f32 block (q and k are left
        // unclipped, as in the reference).
        if cfg.clip {
            if grid::supports(fa) {
                let mut probe = attn.clone();
                let (d_attn, _) = probe.wo.dims();
                probe.wo = Proj::dense(Param::from_tensor(Tensor::eye(d_attn, &device)));
                let core = gram(&probe.forward_full(h.clone())?);
                attn.wv = clip(&attn.wv, fa, &gram(&h), &device);
                attn.wo = clip(&attn.wo, fa, &core, &device);
            }
            if grid::supports(fm) {
                let n = block.mlp_norm.forward(x2);
                let mid = gram(&(silu(mlp.gate.forward(n.clone())) * mlp.up.forward(n.clone())));
                let g = gram(&n);
                mlp.gate = clip(&mlp.gate, fm, &g, &device);
                mlp.up = clip(&mlp.up, fm, &g, &device);
                mlp.down = clip(&mlp.down, fm, &mid, &device);
            }
        }
        x = next;
        alphas.push(chosen);
    }
    Ok((m, alphas))
}
