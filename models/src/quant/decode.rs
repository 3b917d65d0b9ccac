//! A GQA decoder whose seven projections per block are [`QuantLinear`] layers: the decode path
//! that whole-model speed is measured on. Embeddings, norms, RoPE, the attention core and the
//! LM head are the FP32 model's own.

use burn::tensor::activation::silu;
use burn::tensor::{Int, Tensor};

use super::linear::QuantLinear;
use super::model::Assignment;
use crate::decoder::{Attention, Decoder, DecoderCache, LayerCache};
use crate::kernels::AttentionBackend;
use crate::ModelError;

/// The quantized projections of one block.
#[derive(Clone, Debug)]
struct QuantBlock<B: AttentionBackend> {
    wq: QuantLinear<B>,
    wk: QuantLinear<B>,
    wv: QuantLinear<B>,
    wo: QuantLinear<B>,
    gate: QuantLinear<B>,
    up: QuantLinear<B>,
    down: QuantLinear<B>,
}

/// A GQA decoder with quantized projections.
#[derive(Clone, Debug)]
pub struct QuantDecoder<B: AttentionBackend> {
    base: Decoder<B>,
    blocks: Vec<QuantBlock<B>>,
}

impl<B: AttentionBackend> QuantDecoder<B> {
    /// Quantizes `model`'s projections by `assign`. MLA models are refused (their up-projections
    /// are per-head tensors, not linear layers).
    pub fn new(model: &Decoder<B>, assign: Assignment) -> crate::Result<Self> {
        crate::decoder::materialize(model);
        let mut blocks = Vec::new();
        for b in &model.blocks {
            let Attention::Gqa(a) = &b.attn else {
                return Err(ModelError::InvalidConfig(
                    "QuantDecoder supports GQA-family models only".into(),
                ));
            };
            let (fa, fm) = (assign.attention, assign.mlp);
            blocks.push(QuantBlock {
                wq: QuantLinear::from_linear(&a.wq, fa)?,
                wk: QuantLinear::from_linear(&a.wk, fa)?,
                wv: QuantLinear::from_linear(&a.wv, fa)?,
                wo: QuantLinear::from_linear(&a.wo, fa)?,
                gate: QuantLinear::from_linear(&b.mlp.gate, fm)?,
                up: QuantLinear::from_linear(&b.mlp.up, fm)?,
                down: QuantLinear::from_linear(&b.mlp.down, fm)?,
            });
        }
        Ok(Self {
            base: model.clone(),
            blocks,
        })
    }

    /// Bytes of the quantized projections.
    pub fn projection_bytes(&self) -> usize {
        self.blocks
            .iter()
            .flat_map(|b| [&b.wq, &b.wk, &b.wv, &b.wo, &b.gate, &b.up, &b.down])
            .map(|l| l.weight.bytes())
            .sum()
    }

    /// As [`Decoder::forward`], with the quantized projections.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, s]` → `[batch, s, vocab]`
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut DecoderCache<B>,
    ) -> crate::Result<Tensor<B, 3>> {
        let mut x = self.base.embed.forward(tokens); // [b, s, d_model]
        for ((block, q), layer) in self
            .base
            .blocks
            .iter()
            .zip(&self.blocks)
            .zip(cache.layers.iter_mut())
        {
            let (Attention::Gqa(a), LayerCache::Gqa(c)) = (&block.attn, layer) else {
                return Err(ModelError::InvalidConfig(
                    "cache does not match the model".into(),
                ));
            };
            let hn = block.attn_norm.forward(x.clone());
            let (qp, kp, vp) = (
                q.wq.forward(hn.clone()),
                q.wk.forward(hn.clone()),
                q.wv.forward(hn),
            );
            let p = a.prepare_projected(qp, kp, vp, c)?;
            let o = a.merge_heads(a.attend(&p, c), p.s);
            x = x + q.wo.forward(o);
            let m = block.mlp_norm.forward(x.clone());
            x = x + q
                .down
                .forward(silu(q.gate.forward(m.clone())) * q.up.forward(m));
        }
        Ok(self.base.head(self.base.norm.forward(x)))
    }
}
