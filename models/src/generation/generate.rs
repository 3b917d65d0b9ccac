//! Plain generation on a [`Session`]: prefill every prompt of a batch (one forward), then decode
//! all live sequences together, one token each per forward, at their own lengths, until each
//! emits a stop token, spends its budget or reaches the model's longest sequence.

use std::time::{Duration, Instant};

use burn::tensor::Tensor;

use super::sampler::Sampler;
use super::session::{Logits, Session};
use super::speculative::{speculative_generate, Gamma, PromptLookup};
use crate::decoder::Decoder;
use crate::kernels::AttentionBackend;
use crate::kv_cache::{KvCache, ModelCache, SeqId};
use crate::ModelError;

/// When to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateConfig {
    /// Most new tokens per sequence.
    pub max_new: usize,
    /// Tokens that end a sequence (the stop token is kept in the output).
    pub stop: Vec<u32>,
}

/// What a generation run cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Model forwards (one for the batch's prefill, one per decode step of the batch).
    pub forwards: usize,
    /// Prompt tokens prefilled.
    pub prefill_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Wall time of the prefills.
    pub prefill_time: Duration,
    /// Wall time of the decode steps.
    pub decode_time: Duration,
}

/// The continuations of a batch of prompts, and the counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// New tokens per prompt, in prompt order (stop token included).
    pub tokens: Vec<Vec<u32>>,
    /// What it cost.
    pub counters: Counters,
}

/// The last position's logits of each row, on the host.
///
/// # Shapes
/// - `logits`: `[batch, s, vocab]` → `batch` vectors of `vocab`
pub fn last_logits<B: AttentionBackend>(logits: Tensor<B, 3>) -> Vec<Vec<f32>> {
    let s = logits.dims()[1];
    host_rows(logits.narrow(1, s - 1, 1))
}

/// Every position's logits of every row, on the host, row-major (batch, then position).
///
/// # Shapes
/// - `logits`: `[batch, s, vocab]` → `batch·s` vectors of `vocab`
pub fn host_rows<B: AttentionBackend>(logits: Tensor<B, 3>) -> Vec<Vec<f32>> {
    let [b, s, v] = logits.dims();
    super::session::host_rows_2d(logits.reshape([b * s, v]))
}

/// Refuses an empty prompt, a token outside the vocabulary, or a prompt longer than the model's
/// longest sequence.
pub(super) fn check_prompts<B: AttentionBackend>(
    model: &Decoder<B>,
    prompts: &[Vec<u32>],
) -> crate::Result<()> {
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(ModelError::InvalidConfig(format!("prompt {i} is empty")));
        }
        model.check_tokens(p)?;
        if p.len() > model.max_seq_len() {
            return Err(ModelError::CacheFull {
                len: 0,
                adding: p.len(),
                capacity: model.max_seq_len(),
            });
        }
    }
    Ok(())
}

/// Continues each prompt on a [`Session`]: one step prefills every prompt but its last token
/// (one forward for the batch), then each step feeds every live sequence its pending token (the
/// prompt's last, then each sampled one) and samples the next. This is the speculative loop with
/// a proposer asked for no drafts (γ = 0): one decoding loop serves both. The sequences are
/// freed at the end.
pub fn generate<B: AttentionBackend, C: KvCache<B>>(
    model: &Decoder<B>,
    cache: &mut ModelCache<B, C>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    sampler: &mut Sampler,
    device: &B::Device,
) -> crate::Result<Generation> {
    let g = speculative_generate(
        model,
        cache,
        prompts,
        // γ = 0: prompt lookup is asked for nothing and proposes nothing.
        &mut PromptLookup { max_ngram: 0 },
        Gamma::Fixed(0),
        config,
        sampler,
        device,
    )?;
    Ok(Generation {
        tokens: g.tokens,
        counters: g.counters,
    })
}

/// Admits one sequence per prompt and prefills each with its prompt but the last token, all in
/// one step (the last token is fed by the first decode or verification step, so that plain and
/// speculative decoding put the same rows through the same forwards).
///
/// With `hidden`, also returns each prompt's final hidden states of the prefilled tokens (see
/// [`Session::step_with_hidden`]); otherwise empty rows.
#[allow(clippy::type_complexity)]
pub(crate) fn prefill<B: AttentionBackend, C: KvCache<B>>(
    session: &mut Session<'_, B, C>,
    prompts: &[Vec<u32>],
    counters: &mut Counters,
    hidden: bool,
) -> crate::Result<(Vec<SeqId>, Vec<Vec<Vec<f32>>>)> {
    let t0 = Instant::now();
    let seqs = prompts
        .iter()
        .map(|_| session.add())
        .collect::<crate::Result<Vec<_>>>()?;
    let feeds: Vec<(SeqId, &[u32])> = seqs
        .iter()
        .zip(prompts)
        .map(|(&s, p)| (s, &p[..p.len() - 1]))
        .collect();
    let mut states = vec![Vec::new(); prompts.len()];
    if feeds.iter().any(|(_, t)| !t.is_empty()) {
        if hidden {
            states = session.step_with_hidden(&feeds, Logits::Last)?.1;
        } else {
            session.step(&feeds, Logits::Last)?;
        }
        counters.forwards += 1;
    }
    counters.prefill_tokens += feeds.iter().map(|(_, t)| t.len()).sum::<usize>();
    counters.prefill_time += t0.elapsed();
    Ok((seqs, states))
}
