//! The decoder LM (Llama architecture; MLA blocks as in DeepSeek-V2), read top-down:
//! MLP → attention choice → block → cache → model.

use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::{backend::Backend, Int, Tensor};

use super::config::DecoderConfig;
use crate::attention::{Gqa, GqaCache, Mla, MlaCache, MlaPath};
use crate::kernels::AttentionBackend;
use crate::ModelError;

/// SwiGLU feed-forward: `down(silu(gate(x)) ⊙ up(x))` (Shazeer 2020).
#[derive(Module, Debug)]
pub struct SwiGlu<B: Backend> {
    /// `[d_model, d_ff]`
    pub gate: Linear<B>,
    /// `[d_model, d_ff]`
    pub up: Linear<B>,
    /// `[d_ff, d_model]`
    pub down: Linear<B>,
}

impl<B: Backend> SwiGlu<B> {
    /// # Shapes
    /// - `x`: `[batch, s, d_model]` → `[batch, s, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.down
            .forward(silu(self.gate.forward(x.clone())) * self.up.forward(x))
    }
}

/// The attention of one block.
#[derive(Module, Debug)]
pub enum Attention<B: Backend> {
    /// GQA family.
    Gqa(Gqa<B>),
    /// Multi-head latent attention.
    Mla(Mla<B>),
}

/// One pre-norm block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// RMSNorm before attention.
    pub attn_norm: RmsNorm<B>,
    /// The attention layer.
    pub attn: Attention<B>,
    /// RMSNorm before the MLP.
    pub mlp_norm: RmsNorm<B>,
    /// The feed-forward layer.
    pub mlp: SwiGlu<B>,
}

/// The cache of one block.
#[derive(Debug, Clone)]
pub enum LayerCache<B: Backend> {
    /// K and V rows.
    Gqa(GqaCache<B>),
    /// MLA latent rows.
    Mla(MlaCache<B>),
}

/// Per-block caches and the MLA inference path they are read with.
#[derive(Debug, Clone)]
pub struct DecoderCache<B: Backend> {
    /// One cache per block.
    pub layers: Vec<LayerCache<B>>,
    /// How MLA blocks attend (ignored by GQA blocks).
    pub path: MlaPath,
}

impl<B: Backend> DecoderCache<B> {
    /// Tokens cached.
    pub fn len(&self) -> usize {
        match &self.layers[0] {
            LayerCache::Gqa(c) => c.len(),
            LayerCache::Mla(c) => c.len(),
        }
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops cached positions from `len` on (speculative rollback).
    pub fn truncate(&mut self, len: usize) {
        for layer in &mut self.layers {
            match layer {
                LayerCache::Gqa(c) => c.truncate(len),
                LayerCache::Mla(c) => c.truncate(len),
            }
        }
    }

    /// Bytes reserved by all blocks' caches.
    pub fn bytes_reserved(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                LayerCache::Gqa(c) => c.bytes_reserved(),
                LayerCache::Mla(c) => c.bytes_reserved(),
            })
            .sum()
    }
}

/// The decoder LM.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Token embedding `[vocab, d_model]`.
    pub embed: Embedding<B>,
    /// The blocks, bottom to top.
    pub blocks: Vec<Block<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// Untied LM head `[d_model, vocab]`; `None` when tied to the embedding.
    pub lm_head: Option<Linear<B>>,
    max_seq_len: usize,
}

impl DecoderConfig {
    /// Initializes a decoder with burn's default initializers.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Decoder<B>> {
        self.validate()?;
        let norm = |d| {
            RmsNormConfig::new(d)
                .with_epsilon(self.norm_eps)
                .init(device)
        };
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        let mut blocks = Vec::with_capacity(self.n_layers);
        for _ in 0..self.n_layers {
            let attn = match (self.gqa(), self.mla()) {
                (Some(g), _) => Attention::Gqa(g.init(device)?),
                (_, Some(m)) => Attention::Mla(m.init(device)?),
                _ => unreachable!("exactly one attention config"),
            };
            blocks.push(Block {
                attn_norm: norm(self.d_model),
                attn,
                mlp_norm: norm(self.d_model),
                mlp: SwiGlu {
                    gate: lin(self.d_model, self.d_ff),
                    up: lin(self.d_model, self.d_ff),
                    down: lin(self.d_ff, self.d_model),
                },
            });
        }
        Ok(Decoder {
            // GPT-2's 0.02: with a tied head, unit-variance embeddings would start the logits
            // at a standard deviation of sqrt(d_model).
            embed: EmbeddingConfig::new(self.vocab_size, self.d_model)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device),
            blocks,
            norm: norm(self.d_model),
            lm_head: (!self.tie_embeddings).then(|| lin(self.d_model, self.vocab_size)),
            max_seq_len: self.max_seq_len,
        })
    }
}

impl<B: AttentionBackend> Decoder<B> {
    /// Empty caches with room for `capacity` tokens per sequence.
    pub fn new_cache(
        &self,
        batch: usize,
        capacity: usize,
        path: MlaPath,
        device: &B::Device,
    ) -> DecoderCache<B> {
        let layers = self
            .blocks
            .iter()
            .map(|b| match &b.attn {
                Attention::Gqa(a) => LayerCache::Gqa(a.new_cache(batch, capacity, device)),
                Attention::Mla(a) => LayerCache::Mla(a.new_cache(batch, capacity, device)),
            })
            .collect();
        DecoderCache { layers, path }
    }

    /// Longest sequence the model supports.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embed.weight.dims()[0]
    }

    /// Next-token logits for `s` new tokens, causal against the cache and themselves: prefill
    /// when the cache is empty, single-token decode when `s == 1`. Ids are not range-checked
    /// here (that would cost a device round trip per decode step): whole sequences are checked
    /// by [`Decoder::forward_full`], host prompts by [`Decoder::check_tokens`].
    ///
    /// # Shapes
    /// - `tokens`: `[batch, s]`
    /// - output: `[batch, s, vocab]`
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut DecoderCache<B>,
    ) -> crate::Result<Tensor<B, 3>> {
        let mut x = self.embed.forward(tokens); // [b, s, d_model]
        let path = cache.path;
        for (block, layer) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            let h = block.attn_norm.forward(x.clone());
            let a = match (&block.attn, layer) {
                (Attention::Gqa(a), LayerCache::Gqa(c)) => a.forward(h, c)?,
                (Attention::Mla(a), LayerCache::Mla(c)) => a.forward(h, c, path)?,
                _ => {
                    return Err(ModelError::InvalidConfig(
                        "cache does not match the model's attention".into(),
                    ))
                }
            };
            x = x + a;
            x = x.clone() + block.mlp.forward(block.mlp_norm.forward(x));
        }
        Ok(self.head(self.norm.forward(x)))
    }

    /// Logits of a whole sequence with a fresh cache (training and scoring); refuses ids
    /// outside the vocabulary.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, s]` → `[batch, s, vocab]`
    pub fn forward_full(&self, tokens: Tensor<B, 2, Int>) -> crate::Result<Tensor<B, 3>> {
        let (min, max) = (tokens.clone().min(), tokens.clone().max());
        use burn::tensor::ElementConversion;
        let (min, max) = (
            min.into_scalar().elem::<i64>(),
            max.into_scalar().elem::<i64>(),
        );
        self.check_range(min, max)?;
        let [b, s] = tokens.dims();
        let mut cache = self.new_cache(b, s, MlaPath::Naive, &tokens.device());
        self.forward(tokens, &mut cache)
    }

    /// Checks token ids held on the host (a prompt) against the vocabulary.
    pub fn check_tokens(&self, ids: &[u32]) -> crate::Result<()> {
        let min = ids.iter().min().map_or(0, |&t| t as i64);
        let max = ids.iter().max().map_or(0, |&t| t as i64);
        self.check_range(min, max)
    }

    fn check_range(&self, min: i64, max: i64) -> crate::Result<()> {
        let vocab = self.vocab_size() as i64;
        if min < 0 || max >= vocab {
            return Err(ModelError::Shape {
                what: "token ids",
                expected: format!("ids in 0..{vocab}"),
                got: format!("ids in {min}..={max}"),
            });
        }
        Ok(())
    }

    /// The LM head (tied or untied) on final hidden states.
    ///
    /// # Shapes
    /// - `h`: `[batch, s, d_model]` → `[batch, s, vocab]`
    pub fn head(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(l) => l.forward(h),
            None => {
                let [b, s, d] = h.dims();
                let w = self.embed.weight.val(); // [vocab, d]
                let v = w.dims()[0];
                h.reshape([b * s, d])
                    .matmul(w.transpose())
                    .reshape([b, s, v])
            }
        }
    }
}

/// Draws every lazily initialized parameter now. burn creates `Linear` weights on first use, and
/// a clone taken before that draws its own values, so code that clones a fresh model calls this
/// first.
pub fn materialize<B: Backend>(model: &Decoder<B>) {
    struct Touch;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

/// Negative log-likelihood of each next token: position `t` predicts `tokens[t + 1]`.
///
/// # Shapes
/// - `logits`: `[batch, s, vocab]`, `tokens`: `[batch, s]`
/// - output: `[batch, s - 1]`
pub fn next_token_nll<B: Backend>(logits: Tensor<B, 3>, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [b, s, _] = logits.dims();
    let lp = log_softmax(logits.narrow(1, 0, s - 1), 2);
    let target = tokens.narrow(1, 1, s - 1).reshape([b, s - 1, 1]);
    lp.gather(2, target).reshape([b, s - 1]).neg()
}
