//! Speculative decoding's decision logic, tensor-free: the verification rule that turns a draft of
//! γ tokens and the target's distributions at the γ + 1 positions into how many drafted tokens are
//! kept and which token comes next, and the model-free prompt-lookup drafter.
//!
//! - Greedy (T = 0): keep drafted tokens while each is the target's argmax; the next token is the
//!   target's argmax at the first mismatch, or at the bonus position after γ acceptances. The
//!   output is then token for token what plain greedy decoding of the target gives.
//! - Sampling (Leviathan et al., ICML 2023, Algorithm 1; Chen et al. 2023): keep drafted token x
//!   with probability min(1, p(x)/q(x)); on the first rejection draw from norm(max(0, p − q));
//!   after γ acceptances draw the bonus token from p. The tokens emitted are distributed exactly
//!   as p. `p` and `q` are the processed distributions (temperature, top-k, top-p applied, as
//!   vLLM does) that [`super::Sampler::probs`] returns; a deterministic drafter has q = a point
//!   mass on its token.
//! - Prompt lookup (Saxena 2023): the longest suffix n-gram of the text (n ≤ 3 by default) that
//!   also occurs earlier proposes the tokens that followed its latest earlier occurrence.
//!
//! Rolling the caches back to the kept prefix is [`crate::kv_cache::ModelCache::truncate`].

use super::generate::{host_rows, ids, GenerateConfig};
use super::sampler::{argmax, Sampler};
use crate::decoder::Decoder;
use crate::kernels::AttentionBackend;
use crate::kv_cache::{KvCache, ModelCache, SeqId};
use crate::ModelError;

/// What one verification step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Drafted tokens kept (a prefix of the draft).
    pub accepted: usize,
    /// Drafted tokens offered.
    pub proposed: usize,
    /// The token that follows the kept prefix: the correction at the first rejection, or the
    /// bonus token when every drafted token was kept.
    pub next_token: u32,
}

impl Outcome {
    /// Tokens this step adds to the text: the kept draft and the next token.
    pub fn emitted(&self) -> usize {
        self.accepted + 1
    }
}

/// Greedy verification.
///
/// `target` holds the target's logits (or probabilities) at the γ + 1 positions: row `i` is the
/// distribution of the token after the text plus `drafted[..i]`.
///
/// # Panics
/// When `target` does not have exactly `drafted.len() + 1` rows.
pub fn verify_greedy(target: &[Vec<f32>], drafted: &[u32]) -> Outcome {
    assert_eq!(target.len(), drafted.len() + 1, "γ + 1 target rows");
    let accepted = drafted
        .iter()
        .zip(target)
        .take_while(|(&d, row)| argmax(row) == d)
        .count();
    Outcome {
        accepted,
        proposed: drafted.len(),
        next_token: argmax(&target[accepted]),
    }
}

/// Whether a drafted token with target probability `p` and draft probability `q` is kept by the
/// uniform draw `u` in [0, 1): `u < min(1, p / q)`, written without a division. A token the
/// drafter could not have drawn (`q = 0`) is never kept.
pub fn accepts(p: f32, q: f32, u: f64) -> bool {
    q > 0.0 && u * (q as f64) < p as f64
}

/// The distribution drawn from after a rejection: norm(max(0, p − q)). Where p ≤ q everywhere
/// (p = q), it is p itself, which the rule then never needs.
pub fn residual(p: &[f32], q: &[f32]) -> Vec<f32> {
    assert_eq!(p.len(), q.len(), "p and q over the same vocabulary");
    let r: Vec<f32> = p.iter().zip(q).map(|(&a, &b)| (a - b).max(0.0)).collect();
    let z: f32 = r.iter().sum();
    if z > 0.0 {
        r.iter().map(|x| x / z).collect()
    } else {
        p.to_vec()
    }
}

/// Rejection-sampling verification.
///
/// `p` holds the target's processed distributions at the γ + 1 positions; `q` the drafter's at
/// the γ drafted positions, or `None` for a deterministic drafter (a point mass on each drafted
/// token). Uniforms and draws come from `sampler`'s seeded generator.
///
/// # Panics
/// When `p` does not have γ + 1 rows or `q` does not have γ.
pub fn verify_sampled(
    p: &[Vec<f32>],
    q: Option<&[Vec<f32>]>,
    drafted: &[u32],
    sampler: &mut Sampler,
) -> Outcome {
    let gamma = drafted.len();
    assert_eq!(p.len(), gamma + 1, "γ + 1 target rows");
    if let Some(q) = q {
        assert_eq!(q.len(), gamma, "γ draft rows");
    }
    for (i, &x) in drafted.iter().enumerate() {
        let x = x as usize;
        let q_row = q.map(|q| q[i].clone()).unwrap_or_else(|| {
            let mut m = vec![0f32; p[i].len()];
            m[x] = 1.0;
            m
        });
        if !accepts(p[i][x], q_row[x], sampler.uniform()) {
            let next = sampler.draw(&residual(&p[i], &q_row));
            return Outcome {
                accepted: i,
                proposed: gamma,
                next_token: next,
            };
        }
    }
    Outcome {
        accepted: gamma,
        proposed: gamma,
        next_token: sampler.draw(&p[gamma]),
    }
}

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

/// Tokens a drafter proposes, with the distributions it drew them from when it has them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Draft {
    /// Up to γ tokens to follow the text.
    pub tokens: Vec<u32>,
    /// The drafter's processed distribution at each drafted position (`None`: a deterministic
    /// drafter, a point mass on each token).
    pub probs: Option<Vec<Vec<f32>>>,
}

/// A drafter: proposes up to γ tokens to follow a text.
pub trait Proposer {
    /// Up to `gamma` tokens to follow `text`, drawn with `sampler`'s settings.
    fn propose(
        &mut self,
        text: &[u32],
        gamma: usize,
        sampler: &mut Sampler,
    ) -> crate::Result<Draft>;
}

/// The model-free prompt-lookup drafter.
#[derive(Clone, Copy, Debug)]
pub struct PromptLookup {
    /// Longest n-gram matched (Saxena 2023: 3).
    pub max_ngram: usize,
}

impl Proposer for PromptLookup {
    fn propose(&mut self, text: &[u32], gamma: usize, _: &mut Sampler) -> crate::Result<Draft> {
        Ok(Draft {
            tokens: prompt_lookup(text, self.max_ngram, gamma),
            probs: None,
        })
    }
}

/// A drafter that is itself a decoder (a small draft model, the target quantized, or the target's
/// first blocks), with a cache of its own that follows the text: what it drafted beyond the
/// kept text is rolled back before the next proposal.
pub struct ModelDrafter<B: AttentionBackend, C: KvCache<B>> {
    model: Decoder<B>,
    cache: ModelCache<B, C>,
    seq: SeqId,
    /// The tokens the cache holds.
    held: Vec<u32>,
    device: B::Device,
}

impl<B: AttentionBackend, C: KvCache<B>> ModelDrafter<B, C> {
    /// A drafter running `model` on `cache` (one sequence of it).
    pub fn new(
        model: Decoder<B>,
        mut cache: ModelCache<B, C>,
        device: &B::Device,
    ) -> crate::Result<Self> {
        let seq = cache.add_sequence()?;
        Ok(Self {
            model,
            cache,
            seq,
            held: Vec::new(),
            device: device.clone(),
        })
    }

    /// Feeds `tokens` and returns the last position's logits.
    fn feed(&mut self, tokens: &[u32]) -> crate::Result<Vec<f32>> {
        let x = ids::<B>(tokens, 1, &self.device);
        let logits = self.model.forward(x, &[self.seq], &mut self.cache)?;
        self.held.extend_from_slice(tokens);
        Ok(super::last_logits(logits).swap_remove(0))
    }
}

impl<B: AttentionBackend, C: KvCache<B>> Proposer for ModelDrafter<B, C> {
    fn propose(
        &mut self,
        text: &[u32],
        gamma: usize,
        sampler: &mut Sampler,
    ) -> crate::Result<Draft> {
        if gamma == 0 || text.is_empty() {
            return Ok(Draft::default());
        }
        // Keep the longest held prefix of the text (at least one text token must be fed).
        let common = self
            .held
            .iter()
            .zip(text)
            .take_while(|(a, b)| a == b)
            .count()
            .min(text.len() - 1);
        self.cache.truncate(self.seq, common)?;
        self.held.truncate(common);
        let mut logits = self.feed(&text[common..])?;
        let (mut tokens, mut probs) = (Vec::with_capacity(gamma), Vec::with_capacity(gamma));
        loop {
            let p = sampler.probs(&logits)?;
            let t = if sampler.config().is_greedy() {
                argmax(&logits)
            } else {
                sampler.draw(&p)
            };
            tokens.push(t);
            probs.push(p);
            if tokens.len() == gamma || self.held.len() + 1 >= self.model.max_seq_len() {
                break;
            }
            logits = self.feed(&[t])?;
        }
        Ok(Draft {
            tokens,
            probs: Some(probs),
        })
    }
}

/// Counters of a speculative run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecStats {
    /// Drafted tokens offered.
    pub proposed: usize,
    /// Drafted tokens kept.
    pub accepted: usize,
    /// Target forwards (verification steps; the prompt's prefill not counted).
    pub steps: usize,
    /// `accepted_at[i]`: steps whose draft position `i + 1` was kept.
    pub accepted_at: Vec<usize>,
    /// `proposed_at[i]`: steps that drafted a position `i + 1`.
    pub proposed_at: Vec<usize>,
}

/// Continues `prompt` by speculative decoding: each step the drafter proposes up to `gamma`
/// tokens, one target forward scores the last text token and the draft together, the rule keeps a
/// prefix and adds one token, and the target's cache is rolled back to the kept text.
///
/// Greedy settings give plain greedy decoding's tokens; sampling settings give tokens distributed
/// as plain sampling's.
#[allow(clippy::too_many_arguments)]
pub fn speculative_generate<B: AttentionBackend, C: KvCache<B>>(
    target: &Decoder<B>,
    cache: &mut ModelCache<B, C>,
    prompt: &[u32],
    drafter: &mut dyn Proposer,
    gamma: usize,
    config: &GenerateConfig,
    sampler: &mut Sampler,
    device: &B::Device,
) -> crate::Result<(Vec<u32>, SpecStats)> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidConfig("empty prompt".into()));
    }
    target.check_tokens(prompt)?;
    let seq = cache.add_sequence()?;
    let mut stats = SpecStats {
        accepted_at: vec![0; gamma],
        proposed_at: vec![0; gamma],
        ..Default::default()
    };
    let mut text = prompt.to_vec();
    let mut out = Vec::new();
    let result = (|| {
        // The target's cache holds the text but its last token, which each step feeds.
        if prompt.len() > 1 {
            target.forward(
                ids::<B>(&prompt[..prompt.len() - 1], 1, device),
                &[seq],
                cache,
            )?;
        }
        while out.len() < config.max_new && text.len() < target.max_seq_len() {
            let room = (config.max_new - out.len()).min(target.max_seq_len() - text.len());
            let g = gamma.min(room - 1);
            let mut draft = drafter.propose(&text, g, sampler)?;
            draft.tokens.truncate(g);
            let d = draft.tokens.len();
            let mut input = vec![*text.last().expect("non-empty text")];
            input.extend_from_slice(&draft.tokens);
            let logits = target.forward(ids::<B>(&input, 1, device), &[seq], cache)?;
            let rows = host_rows(logits);
            let o = if sampler.config().is_greedy() {
                verify_greedy(&rows, &draft.tokens)
            } else {
                let p = rows
                    .iter()
                    .map(|r| sampler.probs(r))
                    .collect::<crate::Result<Vec<_>>>()?;
                let q = draft.probs.as_ref().map(|q| &q[..d]);
                verify_sampled(&p, q, &draft.tokens, sampler)
            };
            stats.steps += 1;
            stats.proposed += d;
            stats.accepted += o.accepted;
            for i in 0..d {
                stats.proposed_at[i] += 1;
                if i < o.accepted {
                    stats.accepted_at[i] += 1;
                }
            }
            // Roll the cache back to the kept text (it holds text + the draft now).
            cache.truncate(seq, text.len() + o.accepted)?;
            let mut new: Vec<u32> = draft.tokens[..o.accepted].to_vec();
            new.push(o.next_token);
            if let Some(stop) = new.iter().position(|t| config.stop.contains(t)) {
                new.truncate(stop + 1);
                text.extend_from_slice(&new);
                out.extend_from_slice(&new);
                break;
            }
            text.extend_from_slice(&new);
            out.extend_from_slice(&new);
        }
        Ok::<_, ModelError>(())
    })();
    cache.free(seq)?;
    result?;
    Ok((out, stats))
}
