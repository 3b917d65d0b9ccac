//! Drafters: what proposes the tokens the target verifies.
//!
//! - [`PromptLookup`] (Saxena 2023): the longest suffix n-gram of the text (n ≤ 3 by default) that
//!   also occurs earlier proposes the tokens that followed its latest earlier occurrence. No
//!   model, a point mass on each token.
//! - [`ModelDrafter`]: a decoder (a small draft model, the target quantized, the target's first
//!   blocks) with a cache of its own, one sequence per text of the batch, driven as a second
//!   [`Session`]. Its sequences follow the texts: what it drafted beyond the kept text is rolled
//!   back before the next proposal, the catch-up tokens of every sequence are fed in one ragged
//!   step, then the batch drafts one token per forward.

use crate::decoder::Decoder;
use crate::generation::sampler::Sampler;
use crate::generation::session::{Logits, Session};
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

    /// Whether this drafter reads the target's final hidden states (a feature-level drafter,
    /// EAGLE). When it does, the speculative loop hands it the hidden states of every text
    /// token but the last before each proposal ([`Proposer::observe_hidden`]): the prefill's,
    /// then each verification's kept rows. No by default.
    fn wants_hidden(&self) -> bool {
        false
    }

    /// The target's final hidden states of text `text`'s tokens `from..from + rows.len()`,
    /// replacing whatever the drafter held for that text from `from` on. Ignored by default.
    fn observe_hidden(
        &mut self,
        _text: usize,
        _from: usize,
        _rows: Vec<Vec<f32>>,
    ) -> crate::Result<()> {
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

/// A drafter that is itself a decoder, with a cache of its own (one sequence per text), driven
/// as a second [`Session`].
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

    /// Brings the slots of `wanted` texts up to date, in one step: each slot is rolled back to its
    /// longest common prefix with its text (keeping at least one text token to feed) and fed
    /// the rest. Returns each wanted slot's last-position logits.
    fn catch_up(&mut self, texts: &[&[u32]], wanted: &[usize]) -> crate::Result<Vec<Vec<f32>>> {
        let mut session = Session::new(&self.model, &mut self.cache, &self.device);
        let mut feeds = Vec::with_capacity(wanted.len());
        for &i in wanted {
            while self.slots.len() <= i {
                let seq = session.add()?;
                self.slots.push(Slot {
                    seq,
                    held: Vec::new(),
                });
            }
            let (slot, text) = (&mut self.slots[i], texts[i]);
            let common = slot
                .held
                .iter()
                .zip(text)
                .take_while(|(a, b)| a == b)
                .count()
                .min(text.len() - 1);
            session.rollback(slot.seq, common)?;
            slot.held.truncate(common);
            feeds.push((slot.seq, &text[common..]));
        }
        let rows = session.step(&feeds, Logits::Last)?;
        for (&i, (_, fed)) in wanted.iter().zip(&feeds) {
            self.slots[i].held.extend_from_slice(fed);
        }
        Ok(rows.into_iter().map(|mut r| r.swap_remove(0)).collect())
    }

    /// Feeds one token to each of `slots` in one step; returns their logits.
    fn feed_one(&mut self, slots: &[usize], tokens: &[u32]) -> crate::Result<Vec<Vec<f32>>> {
        let mut session = Session::new(&self.model, &mut self.cache, &self.device);
        let feeds: Vec<(SeqId, &[u32])> = slots
            .iter()
            .zip(tokens)
            .map(|(&i, t)| (self.slots[i].seq, std::slice::from_ref(t)))
            .collect();
        let rows = session.step(&feeds, Logits::Last)?;
        for (&i, &t) in slots.iter().zip(tokens) {
            self.slots[i].held.push(t);
        }
        Ok(rows.into_iter().map(|mut r| r.swap_remove(0)).collect())
    }
}

impl<B: AttentionBackend, C: KvCache<B>> Proposer for ModelDrafter<B, C> {
    fn prefill(&mut self, prompts: &[&[u32]]) -> crate::Result<()> {
        // Each prompt but its last token (which the first proposal feeds), in one step.
        let heads: Vec<&[u32]> = prompts
            .iter()
            .map(|p| &p[..p.len().saturating_sub(1)])
            .collect();
        let wanted: Vec<usize> = (0..prompts.len())
            .filter(|&i| !heads[i].is_empty())
            .collect();
        if !wanted.is_empty() {
            self.catch_up(&heads, &wanted)?;
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
        if wants.is_empty() {
            return Ok(drafts);
        }
        // Catch up every wanted slot in one step, then draft: each live slot draws a token, and
        // the slots that go on feed theirs together.
        let mut logits: Vec<Option<Vec<f32>>> = vec![None; n];
        for (&i, l) in wants.iter().zip(self.catch_up(texts, &wants)?) {
            logits[i] = Some(l);
        }
        let mut live = wants;
        let mut probs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); n];
        let greedy = sampler.config().is_greedy();
        let max_len = self.model.max_seq_len();
        loop {
            let mut next = Vec::with_capacity(live.len());
            for &i in &live {
                let l = logits[i].take().expect("logits of a live slot");
                // Greedy verification reads no draft distribution: draw the argmax, keep none.
                let t = if greedy {
                    sampler.sample(&l)?
                } else {
                    let p = sampler.probs(&l)?;
                    let t = sampler.draw(&p);
                    probs[i].push(p);
                    t
                };
                drafts[i].tokens.push(t);
                next.push(t);
            }
            let (go, toks): (Vec<usize>, Vec<u32>) = live
                .iter()
                .zip(next)
                .filter(|&(&i, _)| {
                    drafts[i].tokens.len() < gamma[i] && self.slots[i].held.len() + 1 < max_len
                })
                .map(|(&i, t)| (i, t))
                .unzip();
            if go.is_empty() {
                break;
            }
            for (&i, l) in go.iter().zip(self.feed_one(&go, &toks)?) {
                logits[i] = Some(l);
            }
            live = go;
        }
        if !greedy {
            for (d, p) in drafts.iter_mut().zip(probs) {
                d.probs = Some(p);
            }
        }
        Ok(drafts)
    }
}
