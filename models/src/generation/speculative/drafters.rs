//! Drafters: what proposes the tokens the target verifies.
//!
//! - [`PromptLookup`] (Saxena 2023): the longest suffix n-gram of the text (n ≤ 3 by default) that
//!   also occurs earlier proposes the tokens that followed its latest earlier occurrence. No
//!   model, a point mass on each token.
//! - [`ModelDrafter`]: a decoder (a small draft model, the target quantized, the target's first
//!   blocks) with a cache of its own, one sequence per text of the batch. Its sequences follow the
//!   texts: what it drafted beyond the kept text is rolled back before the next proposal, the
//!   catch-up tokens are fed (sequences with one token to feed together), then the batch drafts
//!   one token per forward.

use crate::decoder::Decoder;
use crate::generation::generate::{ids, last_logits};
use crate::generation::sampler::{argmax, Sampler};
use crate::kernels::AttentionBackend;
use crate::kv_cache::{KvCache, ModelCache, SeqId};

/// Prompt lookup: the longest n-gram (`max_ngram` down to 1 tokens) ending the text that also
/// occurs earlier in it proposes up to `gamma` tokens that followed its latest earlier
/// occurrence. Nothing when no n-gram recurs.
pub fn prompt_lookup(text: &[u32], max_ngram: usize, gamma: usize) -> Vec<u32> {
    for n in (1..=max_ngram.min(text.len().saturating_sub(1))).rev() {
        let suffix = &text[text.len() - n..];
        // Latest earlier occurrence that has at least one token after it.
        let found = (0..text.len() - n)
            .rev()
            .find(|&start| &text[start..start + n] == suffix);
        if let Some(start) = found {
            let from = start + n;
            let to = (from + gamma).min(text.len());
            return text[from..to].to_vec();
        }
    }
    Vec::new()
}

/// Tokens a drafter proposes for one text, with the distributions it drew them from when it has
/// them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Draft {
    /// Up to γ tokens to follow the text.
    pub tokens: Vec<u32>,
    /// The drafter's processed distribution at each drafted position (`None`: a deterministic
    /// drafter, a point mass on each token).
    pub probs: Option<Vec<Vec<f32>>>,
}

/// A drafter: proposes tokens to follow each text of a batch.
pub trait Proposer {
    /// Up to `gamma[i]` tokens to follow `texts[i]`, drawn with `sampler`'s settings. Text `i`
    /// of one call continues text `i` of the previous call (or replaces it: a drafter with state
    /// keeps only the longest common prefix).
    fn propose(
        &mut self,
        texts: &[&[u32]],
        gamma: &[usize],
        sampler: &mut Sampler,
    ) -> crate::Result<Vec<Draft>>;

    /// Takes in the prompts before the first proposal (a model drafter prefills them, so that
    /// the cost lands in the prefill, not in the decode steps). Nothing by default.
    fn prefill(&mut self, _prompts: &[&[u32]]) -> crate::Result<()> {
        Ok(())
    }
}

/// The model-free prompt-lookup drafter.
#[derive(Clone, Copy, Debug)]
pub struct PromptLookup {
    /// Longest n-gram matched (Saxena 2023: 3).
    pub max_ngram: usize,
}

impl Proposer for PromptLookup {
    fn propose(
        &mut self,
        texts: &[&[u32]],
        gamma: &[usize],
        _: &mut Sampler,
    ) -> crate::Result<Vec<Draft>> {
        Ok(texts
            .iter()
            .zip(gamma)
            .map(|(t, &g)| Draft {
                tokens: prompt_lookup(t, self.max_ngram, g),
                probs: None,
            })
            .collect())
    }
}

/// One sequence of a [`ModelDrafter`]: its id and the tokens its cache holds.
struct Slot {
    seq: SeqId,
    held: Vec<u32>,
}

/// A drafter that is itself a decoder, with a cache of its own (one sequence per text).
pub struct ModelDrafter<B: AttentionBackend, C: KvCache<B>> {
    model: Decoder<B>,
    cache: ModelCache<B, C>,
    slots: Vec<Slot>,
    device: B::Device,
}

impl<B: AttentionBackend, C: KvCache<B>> ModelDrafter<B, C> {
    /// A drafter running `model` on `cache`; the cache needs room for one sequence per text of
    /// the largest batch proposed for.
    pub fn new(model: Decoder<B>, cache: ModelCache<B, C>, device: &B::Device) -> Self {
        Self {
            model,
            cache,
            slots: Vec::new(),
            device: device.clone(),
        }
    }

    /// The drafting model.
    pub fn model(&self) -> &Decoder<B> {
        &self.model
    }

    /// Feeds `tokens[j]` to slot `slots[j]` (all of one length, or a single slot) and returns
    /// each slot's last-position logits.
    fn feed(&mut self, slots: &[usize], tokens: &[Vec<u32>]) -> crate::Result<Vec<Vec<f32>>> {
        let flat: Vec<u32> = tokens.concat();
        let seqs: Vec<SeqId> = slots.iter().map(|&i| self.slots[i].seq).collect();
        let x = ids::<B>(&flat, slots.len(), &self.device);
        let logits = self.model.forward(x, &seqs, &mut self.cache)?;
        for (&i, t) in slots.iter().zip(tokens) {
            self.slots[i].held.extend_from_slice(t);
        }
        Ok(last_logits(logits))
    }

    /// Rolls slot `i` back to its longest common prefix with `text` (keeping at least one text
    /// token to feed) and returns the tokens to feed.
    fn catch_up(&mut self, i: usize, text: &[u32]) -> crate::Result<Vec<u32>> {
        if self.slots.len() <= i {
            let seq = self.cache.add_sequence()?;
            self.slots.push(Slot {
                seq,
                held: Vec::new(),
            });
        }
        let slot = &mut self.slots[i];
        let common = slot
            .held
            .iter()
            .zip(text)
            .take_while(|(a, b)| a == b)
            .count()
            .min(text.len() - 1);
        self.cache.truncate(slot.seq, common)?;
        slot.held.truncate(common);
        Ok(text[common..].to_vec())
    }
}

impl<B: AttentionBackend, C: KvCache<B>> Proposer for ModelDrafter<B, C> {
    fn prefill(&mut self, prompts: &[&[u32]]) -> crate::Result<()> {
        for (i, p) in prompts.iter().enumerate().filter(|(_, p)| p.len() > 1) {
            let feed = self.catch_up(i, &p[..p.len() - 1])?;
            if !feed.is_empty() {
                self.feed(&[i], &[feed])?;
            }
        }
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
        let wants: Vec<usize> = (0..n)
            .filter(|&i| gamma[i] > 0 && !texts[i].is_empty())
            .collect();
        // Catch up: slots with one token to feed share a forward, the others run alone.
        let mut logits: Vec<Option<Vec<f32>>> = vec![None; n];
        let mut single = Vec::new();
        let mut feeds = Vec::new();
        for &i in &wants {
            let feed = self.catch_up(i, texts[i])?;
            if feed.len() == 1 {
                single.push(i);
                feeds.push(feed);
            } else {
                logits[i] = Some(self.feed(&[i], &[feed])?.swap_remove(0));
            }
        }
        if !single.is_empty() {
            for (&i, l) in single.iter().zip(self.feed(&single, &feeds)?) {
                logits[i] = Some(l);
            }
        }
        // Draft: each live slot draws a token, then the live slots feed theirs together.
        let mut live = wants;
        let mut probs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); n];
        loop {
            let mut next = Vec::with_capacity(live.len());
            for &i in &live {
                let l = logits[i].take().expect("logits of a live slot");
                let p = sampler.probs(&l)?;
                let t = if sampler.config().is_greedy() {
                    argmax(&l)
                } else {
                    sampler.draw(&p)
                };
                drafts[i].tokens.push(t);
                probs[i].push(p);
                next.push(t);
            }
            let max_len = self.model.max_seq_len();
            let (go, toks): (Vec<usize>, Vec<Vec<u32>>) = live
                .iter()
                .zip(next)
                .filter(|&(&i, _)| {
                    drafts[i].tokens.len() < gamma[i] && self.slots[i].held.len() + 1 < max_len
                })
                .map(|(&i, t)| (i, vec![t]))
                .unzip();
            if go.is_empty() {
                break;
            }
            for (&i, l) in go.iter().zip(self.feed(&go, &toks)?) {
                logits[i] = Some(l);
            }
            live = go;
        }
        for (d, p) in drafts.iter_mut().zip(probs) {
            d.probs = Some(p);
        }
        Ok(drafts)
    }
}
