//! The decoder LM (Llama architecture; MLA blocks as in DeepSeek-V2), read top-down:
//! MLP → block → model → caches → forward. Every projection is a [`Proj`] (dense or quantized),
//! and the caches are the [`KvCache`] family, one per block, per sequence.

use burn::module::Module;
use burn::nn::Initializer;
use burn::nn::{Embedding, EmbeddingConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::{backend::Backend, Int, Tensor};

use super::config::DecoderConfig;
use crate::attention::{Attention, MlaPath};
use crate::kernels::AttentionBackend;
use crate::kv_cache::{ContiguousKv, KvCache, ModelCache, PagedCache, SeqId};
use crate::proj::Proj;
use crate::ModelError;

/// SwiGLU feed-forward: `down(silu(gate(x)) ⊙ up(x))` (Shazeer 2020).
#[derive(Module, Debug)]
pub struct SwiGlu<B: Backend> {
    /// `[d_model, d_ff]`
    pub gate: Proj<B>,
    /// `[d_model, d_ff]`
    pub up: Proj<B>,
    /// `[d_ff, d_model]`
    pub down: Proj<B>,
}

impl<B: AttentionBackend> SwiGlu<B> {
    /// # Shapes
    /// - `x`: `[batch, s, d_model]` → `[batch, s, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        use crate::profile::{scope, Part};
        let [g, u] = scope(Part::MlpProj, || {
            Proj::forward_group([&self.gate, &self.up], x)
        });
        let h = B::swiglu(&g, &u).unwrap_or_else(|| silu(g) * u);
        scope(Part::MlpProj, || self.down.forward(h))
    }
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

impl<B: AttentionBackend> Block<B> {
    /// The MLP half of the block, residual included.
    fn mlp_residual(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let n = crate::profile::scope(crate::profile::Part::Norm, || {
            self.mlp_norm.forward(x.clone())
        });
        x + self.mlp.forward(n)
    }

    /// The whole block over a ragged step (see
    /// [`crate::attention::AttentionLayer::forward_ragged`]), appending to `cache`.
    ///
    /// # Shapes
    /// - `x`: `[1, Σ lens, d_model]` → `[1, Σ lens, d_model]`
    pub fn forward_ragged(
        &self,
        x: Tensor<B, 3>,
        seqs: &[SeqId],
        lens: &[usize],
        cache: &mut dyn KvCache<B>,
    ) -> crate::Result<Tensor<B, 3>> {
        use crate::profile::{scope, Part};
        let n = scope(Part::Norm, || self.attn_norm.forward(x.clone()));
        let a = self.attn.forward_ragged(n, seqs, lens, cache)?;
        Ok(self.mlp_residual(x + a))
    }

    /// The whole block over whole sequences, causal, with no cache (training and scoring).
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]` → `[batch, s, d_model]`
    pub fn forward_full(&self, x: Tensor<B, 3>) -> crate::Result<Tensor<B, 3>> {
        let a = self.attn.forward_full(self.attn_norm.forward(x.clone()))?;
        Ok(self.mlp_residual(x + a))
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
    pub lm_head: Option<Proj<B>>,
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
        let lin = |i, o| Proj::init(i, o, device);
        let mut blocks = Vec::with_capacity(self.n_layers);
        for _ in 0..self.n_layers {
            let attn = self.init_attention(device)?;
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
        let model = Decoder {
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
        };
        // Drawn now, so that a clone (a draft sharing the weights, a quantized copy) holds the
        // same values as the original.
        materialize(&model);
        Ok(model)
    }
}

impl<B: AttentionBackend> Decoder<B> {
    /// Contiguous caches for every block: `max_seqs` sequences of up to `max_len` tokens, each
    /// reserved in full at admission.
    pub fn contiguous_cache(
        &self,
        max_seqs: usize,
        max_len: usize,
        device: &B::Device,
    ) -> ModelCache<B, ContiguousKv<B>> {
        ModelCache::new(
            self.blocks
                .iter()
                .map(|b| ContiguousKv::new(max_seqs, max_len, b.attn.cache_layout(), device))
                .collect(),
        )
    }

    /// Paged caches for every block: a pool of `n_blocks` blocks of `block_size` tokens each.
    pub fn paged_cache(
        &self,
        n_blocks: usize,
        block_size: usize,
        device: &B::Device,
    ) -> crate::Result<ModelCache<B, PagedCache<B>>> {
        let layers = self
            .blocks
            .iter()
            .map(|b| PagedCache::new(n_blocks, block_size, b.attn.cache_layout(), device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelCache::new(layers))
    }

    /// The same model with every MLA block on `path` (GQA blocks are unchanged).
    pub fn with_mla_path(mut self, path: MlaPath) -> Self {
        self.blocks = self
            .blocks
            .into_iter()
            .map(|mut b| {
                if let Attention::Mla(m) = b.attn {
                    b.attn = Attention::Mla(m.with_path(path));
                }
                b
            })
            .collect();
        self
    }

    /// The same model with only its first `k` blocks, its final norm and its head (a layer-skip
    /// draft, LayerSkip / Draft & Verify style). Shares nothing mutable with `self`.
    pub fn first_blocks(&self, k: usize) -> crate::Result<Self> {
        if k == 0 || k > self.blocks.len() {
            return Err(ModelError::InvalidConfig(format!(
                "a layer-skip draft keeps 1..={} blocks, not {k}",
                self.blocks.len()
            )));
        }
        let mut m = self.clone();
        m.blocks.truncate(k);
        Ok(m)
    }

    /// Longest sequence the model supports.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embed.weight.dims()[0]
    }

    /// Next-token logits for `s` new tokens of each of `seqs`, causal against their cached
    /// tokens and themselves: prefill or verification of one sequence (`batch == 1`), one decode
    /// token for many sequences at different lengths (`s == 1`), or several sequences of several
    /// tokens (run one sequence at a time). Ids are not range-checked here (that would cost a
    /// device round trip per decode step): whole sequences are checked by
    /// [`Decoder::forward_full`], host prompts by [`Decoder::check_tokens`].
    ///
    /// # Shapes
    /// - `tokens`: `[batch, s]` with `batch == seqs.len()`
    /// - output: `[batch, s, vocab]`
    pub fn forward<C: KvCache<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        seqs: &[SeqId],
        cache: &mut ModelCache<B, C>,
    ) -> crate::Result<Tensor<B, 3>> {
        let [b, s] = tokens.dims();
        if b != seqs.len() || cache.layers.len() != self.blocks.len() {
            return Err(ModelError::Shape {
                what: "decoder step",
                expected: format!(
                    "{} token rows and {} layer caches",
                    seqs.len(),
                    self.blocks.len()
                ),
                got: format!("{b} rows and {} layer caches", cache.layers.len()),
            });
        }
        if b > 1 && s > 1 {
            let flat = tokens.reshape([1, b * s]);
            let h = self.ragged_hidden(flat, seqs, &vec![s; b], cache)?;
            return Ok(self.head(h).reshape([b, s, self.vocab_size()]));
        }
        let mut x = self.embed.forward(tokens); // [b, s, d_model]
        for (block, layer) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            let a = block.attn.forward(
                crate::profile::scope(crate::profile::Part::Norm, || {
                    block.attn_norm.forward(x.clone())
                }),
                seqs,
                layer,
            )?;
            x = block.mlp_residual(x + a);
        }
        let h = crate::profile::scope(crate::profile::Part::Norm, || self.norm.forward(x));
        Ok(self.head(h))
    }

    /// One forward of a ragged batch: `lens[i]` new tokens for `seqs[i]` (0: the sequence sits
    /// this step out), flattened in sequence order, causal inside each sequence and over its own
    /// cache ([`crate::attention::AttentionLayer::forward_ragged`]). Returns the logits of every new token, or
    /// only of each fed sequence's last one. On error the layers may hold part of the step:
    /// roll the sequences back ([`crate::generation::Session`] does).
    ///
    /// # Shapes
    /// - `tokens`: `[1, Σ lens]`
    /// - output: `[Σ lens, vocab]` (`last_only`: `[sequences with lens > 0, vocab]`)
    pub fn forward_ragged<C: KvCache<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        seqs: &[SeqId],
        lens: &[usize],
        cache: &mut ModelCache<B, C>,
        last_only: bool,
    ) -> crate::Result<Tensor<B, 2>> {
        let h = self.ragged_hidden(tokens, seqs, lens, cache)?; // [1, t, d_model]
        Ok(self.ragged_logits(h, lens, last_only))
    }

    /// [`Decoder::forward_ragged`] that also returns the final hidden states (after the last
    /// RMSNorm, before the head) of every new token: what a feature-level drafter (EAGLE)
    /// reads. Same logits as `forward_ragged`.
    ///
    /// # Shapes
    /// - `tokens`: `[1, Σ lens]`
    /// - output: logits as [`Decoder::forward_ragged`]'s; hidden states `[Σ lens, d_model]`
    pub fn forward_ragged_with_hidden<C: KvCache<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        seqs: &[SeqId],
        lens: &[usize],
        cache: &mut ModelCache<B, C>,
        last_only: bool,
    ) -> crate::Result<(Tensor<B, 2>, Tensor<B, 2>)> {
        let h = self.ragged_hidden(tokens, seqs, lens, cache)?; // [1, t, d_model]
        let [_, t, d] = h.dims();
        let hidden = h.clone().reshape([t, d]);
        Ok((self.ragged_logits(h, lens, last_only), hidden))
    }

    /// The head on a ragged step's hidden states: every row, or each fed sequence's last.
    ///
    /// # Shapes
    /// - `h`: `[1, Σ lens, d_model]` → `[Σ lens, vocab]` (`last_only`: `[fed sequences, vocab]`)
    fn ragged_logits(&self, mut h: Tensor<B, 3>, lens: &[usize], last_only: bool) -> Tensor<B, 2> {
        let t = h.dims()[1];
        if last_only {
            let last: Vec<i64> = lens
                .iter()
                .scan(0usize, |end, &l| {
                    *end += l;
                    Some((l > 0).then(|| *end as i64 - 1))
                })
                .flatten()
                .collect();
            let n = last.len();
            let idx = Tensor::from_data(burn::tensor::TensorData::new(last, [n]), &h.device());
            h = h.select(1, idx);
        }
        let rows = h.dims()[1];
        debug_assert!(rows <= t);
        self.head(h).reshape([rows, self.vocab_size()])
    }

    /// The final hidden states of a ragged step (see [`Decoder::forward_ragged`]).
    ///
    /// # Shapes
    /// - `tokens`: `[1, Σ lens]` → `[1, Σ lens, d_model]`
    fn ragged_hidden<C: KvCache<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        seqs: &[SeqId],
        lens: &[usize],
        cache: &mut ModelCache<B, C>,
    ) -> crate::Result<Tensor<B, 3>> {
        let t = tokens.dims()[1];
        if seqs.len() != lens.len()
            || lens.iter().sum::<usize>() != t
            || t == 0
            || cache.layers.len() != self.blocks.len()
        {
            return Err(ModelError::Shape {
                what: "ragged decoder step",
                expected: format!(
                    "{} sequences with lengths summing to {t} > 0 and {} layer caches",
                    seqs.len(),
                    self.blocks.len()
                ),
                got: format!("lengths {lens:?} and {} layer caches", cache.layers.len()),
            });
        }
        let mut x = self.embed.forward(tokens); // [1, t, d_model]
        for (block, layer) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward_ragged(x, seqs, lens, layer)?;
        }
        Ok(crate::profile::scope(crate::profile::Part::Norm, || {
            self.norm.forward(x)
        }))
    }

    /// Logits of whole sequences with no cache (training and scoring); refuses ids outside the
    /// vocabulary.
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
        Ok(self.head(self.hidden_full_unchecked(tokens)?))
    }

    /// Final hidden states (after the last RMSNorm, before the head) of whole sequences with no
    /// cache: what a value head or any other head on this trunk reads; refuses ids outside the
    /// vocabulary.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, s]` → `[batch, s, d_model]`
    pub fn hidden_full(&self, tokens: Tensor<B, 2, Int>) -> crate::Result<Tensor<B, 3>> {
        use burn::tensor::ElementConversion;
        let (min, max) = (tokens.clone().min(), tokens.clone().max());
        self.check_range(
            min.into_scalar().elem::<i64>(),
            max.into_scalar().elem::<i64>(),
        )?;
        self.hidden_full_unchecked(tokens)
    }

    fn hidden_full_unchecked(&self, tokens: Tensor<B, 2, Int>) -> crate::Result<Tensor<B, 3>> {
        let mut x = self.embed.forward(tokens);
        for block in &self.blocks {
            x = block.forward_full(x)?;
        }
        Ok(self.norm.forward(x))
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
        crate::profile::scope(crate::profile::Part::Head, || self.head_unscoped(h))
    }

    fn head_unscoped(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(p) => p.forward(h),
            None => {
                let [b, s, d] = h.dims();
                let w = self.embed.weight.val().transpose(); // [d, vocab], a view
                let v = w.dims()[1];
                let h = h.reshape([b * s, d]);
                B::few_rows_matmul(&h, &w)
                    .unwrap_or_else(|| h.matmul(w))
                    .reshape([b, s, v])
            }
        }
    }
}

/// Draws every lazily initialized parameter now. burn creates `Embedding` weights on first use,
/// and a clone taken before that draws its own values; [`DecoderConfig::init`] calls this, so
/// every clone of a decoder holds the same weights.
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
