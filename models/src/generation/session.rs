//! The decoding engine: a [`Session`] over one decoder and one [`ModelCache`] holds a batch of
//! sequences and advances them together. Every token loop of the project drives it: plain
//! generation (one token per live sequence per step), speculative decoding (each sequence's
//! last token and its draft per step, verified in one forward), a model drafter (a second
//! session on the draft model) and the suites' timing harnesses.
//!
//! One [`Session::step`] is one forward for the whole batch, whatever the lengths: sequence `i`
//! feeds `tokens[i]` (0 tokens: it sits the step out; 1: a decode step; γ + 1: a verification;
//! a whole prompt: a prefill), attention is causal inside each sequence's new tokens and over its
//! own cache ([`Decoder::forward_ragged`]), and the logits come back per sequence. A row's
//! logits do not depend on the other rows of the step (the few-rows kernels take up to
//! [`crate::kernels::few_rows::STEP_ROWS`] rows, each row summed in the same order as alone).
//! A step that fails leaves every sequence at its length before the step.

use burn::tensor::{Int, Tensor, TensorData};

use crate::decoder::Decoder;
use crate::kernels::AttentionBackend;
use crate::kv_cache::{KvCache, ModelCache, SeqId};
use crate::ModelError;

/// Which logits a step hands back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// The last new token's of each fed sequence (prefill, decode).
    Last,
    /// Every new token's (verification, scoring).
    All,
}

/// A batch of sequences on one decoder and one cache.
pub struct Session<'a, B: AttentionBackend, C: KvCache<B>> {
    model: &'a Decoder<B>,
    cache: &'a mut ModelCache<B, C>,
    device: B::Device,
    /// Sequences this session admitted or forked (freed by [`Session::close`]).
    admitted: Vec<SeqId>,
}

impl<'a, B: AttentionBackend, C: KvCache<B>> Session<'a, B, C> {
    /// A session running `model` on `cache` (which may already hold sequences: a session can
    /// step those too, by id).
    pub fn new(model: &'a Decoder<B>, cache: &'a mut ModelCache<B, C>, device: &B::Device) -> Self {
        Self {
            model,
            cache,
            device: device.clone(),
            admitted: Vec::new(),
        }
    }

    /// The decoder.
    pub fn model(&self) -> &Decoder<B> {
        self.model
    }

    /// The cache (memory counters, layer access).
    pub fn cache(&self) -> &ModelCache<B, C> {
        self.cache
    }

    /// Admits a new, empty sequence.
    pub fn add(&mut self) -> crate::Result<SeqId> {
        let seq = self.cache.add_sequence()?;
        self.admitted.push(seq);
        Ok(seq)
    }

    /// A new sequence starting with `seq`'s tokens (shared where the cache can share).
    pub fn fork(&mut self, seq: SeqId) -> crate::Result<SeqId> {
        let child = self.cache.fork(seq)?;
        self.admitted.push(child);
        Ok(child)
    }

    /// Tokens `seq` holds.
    pub fn len(&self, seq: SeqId) -> crate::Result<usize> {
        Ok(self.cache.len(seq)?)
    }

    /// Keeps the first `len` tokens of `seq` (speculative rollback; a longer `len` keeps all).
    pub fn rollback(&mut self, seq: SeqId, len: usize) -> crate::Result<()> {
        Ok(self.cache.truncate(seq, len)?)
    }

    /// Drops `seq` and its memory.
    pub fn free(&mut self, seq: SeqId) -> crate::Result<()> {
        self.cache.free(seq)?;
        self.admitted.retain(|&s| s != seq);
        Ok(())
    }

    /// Frees every sequence this session admitted or forked.
    pub fn close(mut self) -> crate::Result<()> {
        for seq in std::mem::take(&mut self.admitted) {
            self.cache.free(seq)?;
        }
        Ok(())
    }

    /// One forward of the batch: `feeds[i] = (sequence, its new tokens)`, any lengths (0 sits
    /// the step out). Returns, per feed, the logits rows `which` asks for (none for 0 tokens).
    /// Refuses ids outside the vocabulary, a sequence fed twice, a step past the model's longest
    /// sequence or the cache's room; on any error every sequence is back at its length before
    /// the step.
    pub fn step(
        &mut self,
        feeds: &[(SeqId, &[u32])],
        which: Logits,
    ) -> crate::Result<Vec<Vec<Vec<f32>>>> {
        Ok(self.step_inner(feeds, which, false)?.0)
    }

    /// [`Session::step`] that also returns, per feed, the target's final hidden states (after
    /// the last RMSNorm, before the head) of every new token, in feed order: what a
    /// feature-level drafter (EAGLE) reads. Only the loops that drive such a drafter call it;
    /// the logits are [`Session::step`]'s.
    #[allow(clippy::type_complexity)]
    pub fn step_with_hidden(
        &mut self,
        feeds: &[(SeqId, &[u32])],
        which: Logits,
    ) -> crate::Result<(Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<f32>>>)> {
        self.step_inner(feeds, which, true)
    }

    #[allow(clippy::type_complexity)]
    fn step_inner(
        &mut self,
        feeds: &[(SeqId, &[u32])],
        which: Logits,
        hidden: bool,
    ) -> crate::Result<(Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<f32>>>)> {
        let seqs: Vec<SeqId> = feeds.iter().map(|&(s, _)| s).collect();
        let lens: Vec<usize> = feeds.iter().map(|(_, t)| t.len()).collect();
        let flat: Vec<u32> = feeds.iter().flat_map(|(_, t)| t.iter().copied()).collect();
        if flat.is_empty() {
            let none = vec![Vec::new(); feeds.len()];
            return Ok((none.clone(), none));
        }
        self.model.check_tokens(&flat)?;
        for (i, s) in seqs.iter().enumerate() {
            if seqs[..i].contains(s) {
                return Err(ModelError::InvalidConfig(format!(
                    "sequence {s} is fed twice in one step"
                )));
            }
        }
        let before = seqs
            .iter()
            .map(|&s| self.cache.len(s))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = flat.iter().map(|&t| t as i64).collect();
        let n = ids.len();
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &self.device);
        let last = which == Logits::Last;
        // Decode-sized steps on host backends keep the pool's other workers spinning for the
        // step (`with_spinning_workers`); prefill-sized ones are long enough to wake them.
        let spin = B::host_tensors() && n <= crate::kernels::few_rows::STEP_ROWS;
        let forward = || {
            if hidden {
                self.model
                    .forward_ragged_with_hidden(x, &seqs, &lens, self.cache, last)
                    .map(|(l, h)| (l, Some(h)))
            } else {
                self.model
                    .forward_ragged(x, &seqs, &lens, self.cache, last)
                    .map(|l| (l, None))
            }
        };
        let out = if spin {
            crate::kernels::with_spinning_workers(forward)
        } else {
            forward()
        };
        let (logits, states) = match out {
            Ok(l) => l,
            Err(e) => {
                for (&s, &len) in seqs.iter().zip(&before) {
                    self.cache.truncate(s, len)?;
                }
                return Err(e);
            }
        };
        let mut rows = host_rows_2d(logits).into_iter();
        let logits = lens
            .iter()
            .map(|&l| match (l, which) {
                (0, _) => Vec::new(),
                (_, Logits::Last) => rows.next().into_iter().collect(),
                (l, Logits::All) => rows.by_ref().take(l).collect(),
            })
            .collect();
        let states = match states {
            Some(h) => {
                let mut rows = host_rows_2d(h).into_iter();
                lens.iter()
                    .map(|&l| rows.by_ref().take(l).collect())
                    .collect()
            }
            None => vec![Vec::new(); feeds.len()],
        };
        Ok((logits, states))
    }
}

/// The rows of a `[rows, vocab]` tensor, on the host.
///
/// # Shapes
/// - `logits`: `[rows, vocab]` → `rows` vectors of `vocab`
pub fn host_rows_2d<B: AttentionBackend>(logits: Tensor<B, 2>) -> Vec<Vec<f32>> {
    let [_, v] = logits.dims();
    let data = logits.into_data().convert::<f32>();
    let xs = data.as_slice::<f32>().expect("f32 logits");
    xs.chunks(v).map(<[f32]>::to_vec).collect()
}
