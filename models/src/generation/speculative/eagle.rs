//! EAGLE (Li et al. 2024, "EAGLE: Speculative Sampling Requires Rethinking Feature
//! Uncertainty"): a feature-level draft head. At position `t` it reads the target's final hidden
//! state `h_t` and the embedding of the next token `x_{t+1}`, fuses them with one linear layer
//! `fc([h_t; e(x_{t+1})])` (2·d → d), runs one Llama decoder block of the target's width (the
//! crate's own [`Block`]: RMSNorm, GQA attention with RoPE, SwiGLU) and predicts `ĥ_{t+1}`; the
//! target's frozen LM head turns `ĥ_{t+1}` into the token `x_{t+2}`. Drafting γ tokens is one
//! catch-up step over the positions whose true features are known, then γ − 1 cached
//! single-token steps that feed the head's own predictions back (chain drafting).
//!
//! The features are the target's final-norm **outputs** (what the LM head reads, what
//! [`Decoder::forward_ragged_with_hidden`] returns): EAGLE's reference reads the base model's
//! last hidden states after its final norm and applies the LM head to the draft's output
//! directly, and the normed features have a bounded scale (the residual stream before the norm
//! carries a few very large channels that a smooth-L1 regression would chase). So tokens come
//! from the frozen LM head alone; applying the final norm again to a normed prediction would
//! change it (RMSNorm is not idempotent once it has gains).
//!
//! The LM head the drafts are read from may be restricted to a draft vocabulary (EAGLE-3 and
//! FR-Spec, Zhao et al. 2025: the most frequent tokens; a draft step then reads a fraction of
//! the head, and tokens outside it are never drafted) and held quantized
//! ([`FrozenTarget::restrict`], [`FrozenTarget::quantize`], [`EagleHead::quantize`]).
//!
//! Deviations: the block keeps its attention RMSNorm (EAGLE's reference drops the first
//! layer's input norm); the features are concatenated as `[h; e]` (the reference's order is
//! `[e; h]`, an equivalent permutation of `fc`'s rows); no tree drafting yet.

use burn::module::Module;
use burn::nn::RmsNormConfig;
use burn::tensor::{backend::AutodiffBackend, backend::Backend, Int, Tensor, TensorData};

use super::drafters::{Draft, Proposer};
use crate::decoder::{Block, Decoder, DecoderConfig, SwiGlu};
use crate::generation::sampler::Sampler;
use crate::generation::session::host_rows_2d;
use crate::kernels::AttentionBackend;
use crate::kv_cache::{ContiguousKv, KvCache, ModelCache, SeqId};
use crate::proj::Proj;
use crate::quant::{quantize_block, Assignment, QuantFormat, QuantLinear};
use crate::ModelError;

/// The target's frozen parts the head reads: its token embedding and its LM head, the head
/// optionally restricted to a draft vocabulary (EAGLE-3's reduced draft vocabulary, FR-Spec's
/// frequency-ranked subset: the most frequent tokens of the training data) and optionally
/// quantized for drafting.
#[derive(Clone, Debug)]
pub struct FrozenTarget<B: Backend> {
    /// `[vocab, d_model]`
    embed: Tensor<B, 2>,
    /// `[d_model, k]`: the LM head's columns of the draft vocabulary (all `vocab` when none)
    head: Tensor<B, 2>,
    /// The head as packed codes for drafting ([`FrozenTarget::quantize`]).
    packed: Option<Proj<B>>,
    /// Column `j` of `head` scores token `vocab[j]`; `None`: column `j` is token `j`.
    vocab: Option<Vec<u32>>,
}

impl<B: AttentionBackend> FrozenTarget<B> {
    /// The embedding and LM head of `target` (shared, not copied).
    pub fn of(target: &Decoder<B>) -> Self {
        let embed = target.embed.weight.val();
        let head = match &target.lm_head {
            Some(p) => p.weight(&embed.device()),
            None => embed.clone().transpose(),
        };
        Self {
            embed,
            head,
            packed: None,
            vocab: None,
        }
    }

    /// The same target with its head restricted to the tokens `vocab` (distinct ids of the
    /// target's vocabulary, at least one): logits then score only these, column `j` token
    /// `vocab[j]`.
    pub fn restrict(self, vocab: &[u32]) -> crate::Result<Self> {
        let n = self.vocab_size();
        let mut seen = vec![false; n];
        for &t in vocab {
            match seen.get_mut(t as usize) {
                Some(s) if !*s => *s = true,
                Some(_) => {
                    return Err(ModelError::InvalidConfig(format!(
                        "draft vocabulary: token {t} appears twice"
                    )))
                }
                None => {
                    return Err(ModelError::InvalidConfig(format!(
                        "draft vocabulary: token {t} is outside the target's {n} tokens"
                    )))
                }
            }
        }
        if vocab.is_empty() {
            return Err(ModelError::InvalidConfig(
                "draft vocabulary: no token".into(),
            ));
        }
        let device = self.embed.device();
        let full = match self.vocab {
            Some(old) => {
                return Err(ModelError::InvalidConfig(format!(
                    "draft vocabulary: the head is already restricted to {} tokens",
                    old.len()
                )))
            }
            None => self.head,
        };
        let ids: Vec<i64> = vocab.iter().map(|&t| i64::from(t)).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [vocab.len()]), &device);
        Ok(Self {
            embed: self.embed,
            head: full.select(1, idx),
            packed: None,
            vocab: Some(vocab.to_vec()),
        })
    }

    /// The same target with its (restricted) head held as packed codes in `format`, multiplied
    /// by the fused kernel when drafting. Training reads the dense head ([`Self::lift`]).
    pub fn quantize(mut self, format: QuantFormat) -> crate::Result<Self> {
        self.packed = Some(Proj::quantized(QuantLinear::from_weight(
            self.head.clone(),
            format,
        )?));
        Ok(self)
    }

    /// The same tensors on an autodiff backend, as constants (training the head only; the dense
    /// head).
    pub fn lift<A: AutodiffBackend<InnerBackend = B>>(self) -> FrozenTarget<A> {
        FrozenTarget {
            embed: Tensor::from_inner(self.embed),
            head: Tensor::from_inner(self.head),
            packed: None,
            vocab: self.vocab,
        }
    }

    /// Width of the target's hidden states.
    pub fn d_model(&self) -> usize {
        self.embed.dims()[1]
    }

    /// Tokens of the target's vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.embed.dims()[0]
    }

    /// Columns of [`Self::logits`]: the draft vocabulary's size, or the target's.
    pub fn draft_vocab_size(&self) -> usize {
        self.head.dims()[1]
    }

    /// The token column `j` of [`Self::logits`] scores.
    pub fn token(&self, j: usize) -> u32 {
        match &self.vocab {
            Some(v) => v[j],
            None => j as u32,
        }
    }

    /// The draft vocabulary, if the head is restricted.
    pub fn vocab(&self) -> Option<&[u32]> {
        self.vocab.as_deref()
    }

    /// Token embeddings.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, s]` → `[batch, s, d_model]`
    pub fn embed(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, s] = tokens.dims();
        let d = self.d_model();
        self.embed
            .clone()
            .select(0, tokens.reshape([b * s]))
            .reshape([b, s, d])
    }

    /// The LM head on hidden states, over the draft vocabulary when restricted.
    ///
    /// # Shapes
    /// - `h`: `[batch, s, d_model]` → `[batch, s, k]` (`k` = [`Self::draft_vocab_size`])
    pub fn logits(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        if let Some(p) = &self.packed {
            return p.forward(h);
        }
        let [b, s, d] = h.dims();
        let v = self.head.dims()[1];
        let h = h.reshape([b * s, d]);
        B::few_rows_matmul(&h, &self.head)
            .unwrap_or_else(|| h.matmul(self.head.clone()))
            .reshape([b, s, v])
    }
}

/// The EAGLE head: `fc` then one decoder block of the target's width.
#[derive(Module, Debug)]
pub struct EagleHead<B: Backend> {
    /// Feature fusion `[2·d_model, d_model]`: rows `0..d` read `h_t`, rows `d..2d` read
    /// `e(x_{t+1})`.
    pub fc: Proj<B>,
    /// One Llama block (the target's attention variant, heads and MLP width).
    pub block: Block<B>,
}

impl DecoderConfig {
    /// An EAGLE head for a target of this configuration: one block of its width, heads, MLP
    /// width, RoPE and norm epsilon, with burn's default initializers.
    pub fn init_eagle<B: Backend>(&self, device: &B::Device) -> crate::Result<EagleHead<B>> {
        self.validate()?;
        let norm = || {
            RmsNormConfig::new(self.d_model)
                .with_epsilon(self.norm_eps)
                .init(device)
        };
        let lin = |i, o| Proj::init(i, o, device);
        Ok(EagleHead {
            fc: lin(2 * self.d_model, self.d_model),
            block: Block {
                attn_norm: norm(),
                attn: self.init_attention(device)?,
                mlp_norm: norm(),
                mlp: SwiGlu {
                    gate: lin(self.d_model, self.d_ff),
                    up: lin(self.d_model, self.d_ff),
                    down: lin(self.d_ff, self.d_model),
                },
            },
        })
    }
}

impl<B: AttentionBackend> EagleHead<B> {
    /// Width of the features.
    pub fn d_model(&self) -> usize {
        self.fc.dims().1
    }

    /// The head with `fc` and the block's projections as packed codes in `format` (drafting on
    /// the fused kernels; the norms stay f32).
    pub fn quantize(&self, format: QuantFormat) -> crate::Result<Self> {
        let device = self.block.attn_norm.gamma.val().device();
        let mut q = self.clone();
        q.fc = q.fc.quantize(format, &device)?;
        quantize_block(&mut q.block, Assignment::uniform(format), &device)?;
        Ok(q)
    }

    /// `fc([h; e(x)])`.
    ///
    /// # Shapes
    /// - `feats`: `[batch, s, d_model]`, `next`: `[batch, s]` → `[batch, s, d_model]`
    fn fuse(
        &self,
        frozen: &FrozenTarget<B>,
        feats: Tensor<B, 3>,
        next: Tensor<B, 2, Int>,
    ) -> crate::Result<Tensor<B, 3>> {
        let ([b, s, d], [bn, sn]) = (feats.dims(), next.dims());
        if (b, s) != (bn, sn) || d != self.d_model() || frozen.d_model() != d {
            return Err(ModelError::Shape {
                what: "EAGLE head input",
                expected: format!("features [b, s, {}] and tokens [b, s]", self.d_model()),
                got: format!(
                    "features [{b}, {s}, {d}], tokens [{bn}, {sn}], target width {}",
                    frozen.d_model()
                ),
            });
        }
        let x = Tensor::cat(vec![feats, frozen.embed(next)], 2);
        Ok(self.fc.forward(x))
    }

    /// The predicted next features of whole sequences, causal, with no cache (training): row
    /// `t` reads `feats[t] = h_t` and `next[t] = x_{t+1}` and predicts `h_{t+1}`.
    ///
    /// # Shapes
    /// - `feats`: `[batch, s, d_model]`, `next`: `[batch, s]`
    /// - output: `[batch, s, d_model]`
    pub fn forward(
        &self,
        frozen: &FrozenTarget<B>,
        feats: Tensor<B, 3>,
        next: Tensor<B, 2, Int>,
    ) -> crate::Result<Tensor<B, 3>> {
        let x = self.fuse(frozen, feats, next)?;
        self.block.forward_full(x)
    }

    /// A ragged cached step of the head: `lens[i]` new positions of `seqs[i]`, flattened in
    /// sequence order, causal inside each and over the head's own cache.
    ///
    /// # Shapes
    /// - `feats`: `[1, Σ lens, d_model]`, `next`: `[1, Σ lens]`
    /// - output: `[1, Σ lens, d_model]`
    pub fn forward_ragged<C: KvCache<B>>(
        &self,
        frozen: &FrozenTarget<B>,
        feats: Tensor<B, 3>,
        next: Tensor<B, 2, Int>,
        seqs: &[SeqId],
        lens: &[usize],
        cache: &mut ModelCache<B, C>,
    ) -> crate::Result<Tensor<B, 3>> {
        let [layer] = &mut cache.layers[..] else {
            return Err(ModelError::Shape {
                what: "EAGLE head cache",
                expected: "one layer cache".into(),
                got: format!("{} layer caches", cache.layers.len()),
            });
        };
        let x = self.fuse(frozen, feats, next)?;
        self.block.forward_ragged(x, seqs, lens, layer)
    }

    /// A contiguous cache for the head's one block: `max_seqs` sequences of up to `max_len`
    /// positions.
    pub fn contiguous_cache(
        &self,
        max_seqs: usize,
        max_len: usize,
        device: &B::Device,
    ) -> ModelCache<B, ContiguousKv<B>> {
        ModelCache::new(vec![ContiguousKv::new(
            max_seqs,
            max_len,
            self.block.attn.cache_layout(),
            device,
        )])
    }
}

/// One text of an [`EagleDrafter`]: its head-cache sequence, the text it last saw, the target's
/// features of that text's tokens, and how many head positions hold true features.
struct Slot {
    seq: SeqId,
    text: Vec<u32>,
    feats: Vec<Vec<f32>>,
    fed: usize,
}

/// A chain drafter on an [`EagleHead`]: reads the target's hidden states of the kept text
/// ([`Proposer::observe_hidden`]), catches the head's cache up on them in one ragged step, then
/// drafts one token per cached step for the whole batch, feeding back its own predicted
/// features. Head position `j` reads `(h_j, x_{j+1})`; positions fed with predicted features
/// are rolled back before the next proposal.
pub struct EagleDrafter<B: AttentionBackend, C: KvCache<B>> {
    head: EagleHead<B>,
    frozen: FrozenTarget<B>,
    cache: ModelCache<B, C>,
    slots: Vec<Slot>,
    max_len: usize,
    device: B::Device,
}

impl<B: AttentionBackend, C: KvCache<B>> EagleDrafter<B, C> {
    /// A drafter running `head` for `target` on `cache` (one sequence per text of the largest
    /// batch proposed for, each up to the target's longest sequence), drafting over the whole
    /// vocabulary.
    pub fn new(
        head: EagleHead<B>,
        target: &Decoder<B>,
        cache: ModelCache<B, C>,
        device: &B::Device,
    ) -> Self {
        Self::with_frozen(head, FrozenTarget::of(target), target, cache, device)
    }

    /// As [`Self::new`], reading tokens through `frozen` (a restricted or quantized head of
    /// `target`'s).
    pub fn with_frozen(
        head: EagleHead<B>,
        frozen: FrozenTarget<B>,
        target: &Decoder<B>,
        cache: ModelCache<B, C>,
        device: &B::Device,
    ) -> Self {
        Self {
            head,
            frozen,
            cache,
            slots: Vec::new(),
            max_len: target.max_seq_len(),
            device: device.clone(),
        }
    }

    /// The head.
    pub fn head(&self) -> &EagleHead<B> {
        &self.head
    }

    fn slot(&mut self, i: usize) -> crate::Result<&mut Slot> {
        while self.slots.len() <= i {
            let seq = self.cache.add_sequence()?;
            self.slots.push(Slot {
                seq,
                text: Vec::new(),
                feats: Vec::new(),
                fed: 0,
            });
        }
        Ok(&mut self.slots[i])
    }

    /// Feeds `lens[k]` positions to slot `idx[k]`'s sequence: features `feats` (flattened
    /// rows) and next tokens `next`. Returns each slot's last predicted features.
    ///
    /// # Shapes
    /// - `feats`: `[1, Σ lens, d_model]` → `[1, slots, d_model]`
    fn feed(
        &mut self,
        idx: &[usize],
        lens: &[usize],
        feats: Tensor<B, 3>,
        next: Vec<u32>,
    ) -> crate::Result<Tensor<B, 3>> {
        let seqs: Vec<SeqId> = idx.iter().map(|&i| self.slots[i].seq).collect();
        let n = next.len();
        let ids: Vec<i64> = next.into_iter().map(i64::from).collect();
        let next = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &self.device);
        let out =
            self.head
                .forward_ragged(&self.frozen, feats, next, &seqs, lens, &mut self.cache)?;
        let last: Vec<i64> = lens
            .iter()
            .scan(0usize, |end, &l| {
                *end += l;
                Some(*end as i64 - 1)
            })
            .collect();
        let k = last.len();
        Ok(out.select(
            1,
            Tensor::from_data(TensorData::new(last, [k]), &self.device),
        ))
    }
}

impl<B: AttentionBackend, C: KvCache<B>> Proposer for EagleDrafter<B, C> {
    fn wants_hidden(&self) -> bool {
        true
    }

    fn observe_hidden(
        &mut self,
        text: usize,
        from: usize,
        rows: Vec<Vec<f32>>,
    ) -> crate::Result<()> {
        let d = self.head.d_model();
        if let Some(r) = rows.iter().find(|r| r.len() != d) {
            return Err(ModelError::Shape {
                what: "EAGLE features",
                expected: format!("rows of {d}"),
                got: format!("a row of {}", r.len()),
            });
        }
        let slot = self.slot(text)?;
        if from > slot.feats.len() {
            return Err(ModelError::InvalidConfig(format!(
                "EAGLE drafter holds features of {} tokens of text {text}, got rows from {from}",
                slot.feats.len()
            )));
        }
        slot.feats.truncate(from);
        slot.feats.extend(rows);
        slot.fed = slot.fed.min(from);
        Ok(())
    }

    fn propose(
        &mut self,
        texts: &[&[u32]],
        gamma: &[usize],
        sampler: &mut Sampler,
    ) -> crate::Result<Vec<Draft>> {
        let n = texts.len();
        let mut drafts = vec![Draft::default(); n];
        // A text of one token has no feature to draft from.
        let wants: Vec<usize> = (0..n)
            .filter(|&i| gamma[i] > 0 && texts[i].len() >= 2)
            .collect();
        if wants.is_empty() {
            return Ok(drafts);
        }
        // Catch up: each slot keeps the head positions whose inputs are unchanged (at least one
        // is re-fed, so that its last prediction comes back) and feeds the rest in one step.
        let d = self.head.d_model();
        let (mut lens, mut flat, mut next) = (Vec::new(), Vec::new(), Vec::new());
        for &i in &wants {
            let text = texts[i];
            self.slot(i)?;
            let slot = &mut self.slots[i];
            let known = text.len() - 1;
            if slot.feats.len() < known {
                return Err(ModelError::InvalidConfig(format!(
                    "EAGLE drafter holds features of {} tokens of text {i}, needs {known}",
                    slot.feats.len()
                )));
            }
            let common = slot
                .text
                .iter()
                .zip(text)
                .take_while(|(a, b)| a == b)
                .count();
            let keep = slot.fed.min(common.saturating_sub(1)).min(known - 1);
            self.cache.truncate(slot.seq, keep)?;
            for j in keep..known {
                flat.extend_from_slice(&slot.feats[j]);
                next.push(text[j + 1]);
            }
            lens.push(known - keep);
            slot.fed = known;
            slot.text = text.to_vec();
        }
        let t = next.len();
        let feats = Tensor::<B, 3>::from_data(TensorData::new(flat, [1, t, d]), &self.device);
        let mut pred = self.feed(&wants, &lens, feats, next)?; // [1, live, d]
        let mut live = wants;
        let mut probs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); n];
        let greedy = sampler.config().is_greedy();
        loop {
            let logits = self.frozen.logits(pred.clone()); // [1, live, vocab]
            let [_, k, v] = logits.dims();
            let rows = host_rows_2d(logits.reshape([k, v]));
            let mut toks = Vec::with_capacity(k);
            for (&i, l) in live.iter().zip(rows) {
                // Over the draft vocabulary: column j is token `frozen.token(j)`; q is zero
                // outside it.
                let t = if greedy {
                    self.frozen.token(sampler.sample(&l)? as usize)
                } else {
                    let p = sampler.probs(&l)?;
                    let t = self.frozen.token(sampler.draw(&p) as usize);
                    probs[i].push(match self.frozen.vocab() {
                        None => p,
                        Some(vocab) => {
                            let mut q = vec![0f32; self.frozen.vocab_size()];
                            vocab.iter().zip(p).for_each(|(&t, p)| q[t as usize] = p);
                            q
                        }
                    });
                    t
                };
                drafts[i].tokens.push(t);
                toks.push(t);
            }
            let go: Vec<usize> = (0..live.len())
                .filter(|&r| {
                    let i = live[r];
                    drafts[i].tokens.len() < gamma[i]
                        && texts[i].len() + drafts[i].tokens.len() < self.max_len
                })
                .collect();
            if go.is_empty() {
                break;
            }
            let pick = Tensor::from_data(
                TensorData::new(go.iter().map(|&r| r as i64).collect(), [go.len()]),
                &self.device,
            );
            let feats = pred.select(1, pick); // [1, go, d]
            let idx: Vec<usize> = go.iter().map(|&r| live[r]).collect();
            let next: Vec<u32> = go.iter().map(|&r| toks[r]).collect();
            pred = self.feed(&idx, &vec![1; idx.len()], feats, next)?;
            live = idx;
        }
        if !greedy {
            for (d, p) in drafts.iter_mut().zip(probs) {
                d.probs = Some(p);
            }
        }
        Ok(drafts)
    }
}
