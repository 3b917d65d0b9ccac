//! The speculative loop: each step the drafter proposes tokens for every live sequence, one
//! target forward scores every sequence's last text token and its draft together, the rule keeps
//! a prefix and adds one token, and the target's cache is rolled back to the kept text
//! ([`ModelCache::truncate`]). Greedy settings give plain greedy decoding's tokens; sampling
//! settings give tokens distributed as plain sampling's.

use std::time::Instant;

use super::drafters::Proposer;
use super::verify::{verify_greedy, verify_sampled, Outcome};
use crate::decoder::Decoder;
use crate::generation::generate::{check_prompts, prefill, Counters, GenerateConfig};
use crate::generation::sampler::{check_logits, Sampler};
use crate::generation::session::{Logits, Session};
use crate::kernels::AttentionBackend;
use crate::kv_cache::{KvCache, ModelCache, SeqId};
use crate::ModelError;

/// How many tokens to draft per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gamma {
    /// Always γ (fewer only near the token budget or the model's longest sequence).
    Fixed(usize),
    /// Hugging Face's heuristic, per sequence: start at `initial`; after a step that kept every
    /// drafted token, draft 2 more, otherwise 1 fewer; never below 1 nor above `max`.
    Adaptive { initial: usize, max: usize },
}

impl Gamma {
    /// The first step's γ.
    pub fn initial(self) -> usize {
        match self {
            Gamma::Fixed(g) => g,
            Gamma::Adaptive { initial, .. } => initial,
        }
    }

    /// Most tokens ever drafted in one step.
    pub fn max(self) -> usize {
        match self {
            Gamma::Fixed(g) => g,
            Gamma::Adaptive { max, .. } => max,
        }
    }

    /// The next step's γ after a step that drafted `proposed` and kept `accepted`.
    pub fn next(self, current: usize, o: &Outcome) -> usize {
        match self {
            Gamma::Fixed(g) => g,
            Gamma::Adaptive { max, .. } if o.proposed > 0 && o.accepted == o.proposed => {
                (current + 2).min(max)
            }
            Gamma::Adaptive { .. } if o.proposed > 0 => current.saturating_sub(1).max(1),
            Gamma::Adaptive { .. } => current,
        }
    }
}

/// Counters of a speculative run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecStats {
    /// Drafted tokens offered.
    pub proposed: usize,
    /// Drafted tokens kept.
    pub accepted: usize,
    /// Verification steps: one sequence verified once (a batch step verifies each live sequence;
    /// a step that drafted nothing counts), the prompt's prefill not counted.
    pub steps: usize,
    /// Steps that rejected a drafted token.
    pub rejections: usize,
    /// `accepted_at[i]`: steps whose draft position `i + 1` was kept.
    pub accepted_at: Vec<usize>,
    /// `proposed_at[i]`: steps that drafted a position `i + 1`.
    pub proposed_at: Vec<usize>,
}

impl SpecStats {
    /// Adds one step's outcome.
    pub fn add(&mut self, o: &Outcome) {
        self.steps += 1;
        self.proposed += o.proposed;
        self.accepted += o.accepted;
        self.rejections += usize::from(o.accepted < o.proposed);
        if self.proposed_at.len() < o.proposed {
            self.proposed_at.resize(o.proposed, 0);
            self.accepted_at.resize(o.proposed, 0);
        }
        for i in 0..o.proposed {
            self.proposed_at[i] += 1;
            self.accepted_at[i] += usize::from(i < o.accepted);
        }
    }

    /// Adds another run's counters (e.g. the next batch of a workload).
    pub fn merge(&mut self, other: &SpecStats) {
        self.proposed += other.proposed;
        self.accepted += other.accepted;
        self.steps += other.steps;
        self.rejections += other.rejections;
        let n = self.proposed_at.len().max(other.proposed_at.len());
        self.proposed_at.resize(n, 0);
        self.accepted_at.resize(n, 0);
        for (i, (&p, &a)) in other.proposed_at.iter().zip(&other.accepted_at).enumerate() {
            self.proposed_at[i] += p;
            self.accepted_at[i] += a;
        }
    }

    /// Kept over offered draft tokens (the accepted prefix only); `None` before any draft.
    pub fn acceptance_rate(&self) -> Option<f64> {
        (self.proposed > 0).then(|| self.accepted as f64 / self.proposed as f64)
    }

    /// Tokens each verification step produced, the bonus or correction token included (vLLM's
    /// mean acceptance length); `None` before any step.
    pub fn mean_accepted_length(&self) -> Option<f64> {
        (self.steps > 0).then(|| (self.accepted + self.steps) as f64 / self.steps as f64)
    }

    /// The per-token acceptance probability α of Leviathan et al.'s model (each drafted token
    /// kept independently with probability α, until the first rejection): its maximum-likelihood
    /// estimate, kept tokens over tokens the rule examined (kept + first rejections). `None`
    /// when nothing was examined.
    pub fn alpha(&self) -> Option<f64> {
        let examined = self.accepted + self.rejections;
        (examined > 0).then(|| self.accepted as f64 / examined as f64)
    }

    /// vLLM's per-position acceptance rate: steps that kept a drafted token at position `pos`
    /// (1-based) over *all* verification steps (a step that drafted nothing, or fewer than `pos`
    /// tokens, counts in the denominator). So `1 + Σ_pos acceptance_at(pos)` is
    /// [`SpecStats::mean_accepted_length`]. `None` before any step or past the longest draft.
    pub fn acceptance_at(&self, pos: usize) -> Option<f64> {
        let kept = *self.accepted_at.get(pos.checked_sub(1)?)?;
        (self.steps > 0).then(|| kept as f64 / self.steps as f64)
    }

    /// The conditional rate: of the steps that drafted position `pos` (1-based), the share that
    /// kept its token. `None` when no step drafted `pos`.
    pub fn acceptance_at_if_drafted(&self, pos: usize) -> Option<f64> {
        let n = *self.proposed_at.get(pos.checked_sub(1)?)?;
        (n > 0).then(|| self.accepted_at[pos - 1] as f64 / n as f64)
    }
}

/// The continuations of a batch of prompts, the acceptance counters and the time spent.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecGeneration {
    /// New tokens per prompt, in prompt order (stop token included).
    pub tokens: Vec<Vec<u32>>,
    /// Acceptance counters.
    pub stats: SpecStats,
    /// Forwards of the target and wall time: prefill (each prompt but its last token, by the
    /// target and the drafter) and decode (drafting and verification: every generated token).
    pub counters: Counters,
}

/// One sequence of the batch.
struct Live {
    seq: SeqId,
    text: Vec<u32>,
    out: Vec<u32>,
    gamma: usize,
    done: bool,
}

/// Continues each prompt by speculative decoding with `drafter`, `gamma` tokens per step, on a
/// [`Session`] of the target: each step, the drafter proposes for every live sequence, then one
/// target forward verifies them all (sequence `i` feeds its last text token and its `γ_i` drafted
/// tokens, any `γ_i` from 0 up, no padding), the rule keeps a prefix per sequence, and each
/// sequence is rolled back to its kept text. The sequences are freed at the end.
#[allow(clippy::too_many_arguments)]
pub fn speculative_generate<B: AttentionBackend, C: KvCache<B>>(
    target: &Decoder<B>,
    cache: &mut ModelCache<B, C>,
    prompts: &[Vec<u32>],
    drafter: &mut dyn Proposer,
    gamma: Gamma,
    config: &GenerateConfig,
    sampler: &mut Sampler,
    device: &B::Device,
) -> crate::Result<SpecGeneration> {
    check_prompts(target, prompts)?;
    let mut stats = SpecStats::default();
    let mut counters = Counters::default();
    let max_len = target.max_seq_len();
    let mut session = Session::new(target, cache, device);
    let mut live: Vec<Live> = Vec::with_capacity(prompts.len());
    let result = (|| {
        // The target's cache holds each text but its last token, which each step feeds.
        // A feature-level drafter (EAGLE) reads the target's hidden states of every text token
        // but the last: the prefill's now, each verification's kept rows below.
        let hidden = drafter.wants_hidden();
        let (seqs, states) = prefill(&mut session, prompts, &mut counters, hidden)?;
        live.extend(seqs.iter().zip(prompts).map(|(&seq, p)| Live {
            seq,
            text: p.clone(),
            out: Vec::new(),
            gamma: gamma.initial(),
            done: config.max_new == 0 || p.len() >= max_len,
        }));
        let t0 = Instant::now();
        let texts: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        if hidden {
            for (i, rows) in states.into_iter().enumerate() {
                drafter.observe_hidden(i, 0, rows)?;
            }
        }
        drafter.prefill(&texts)?;
        counters.prefill_time += t0.elapsed();
        while live.iter().any(|l| !l.done) {
            let t0 = Instant::now();
            // Draft γ tokens, fewer where the budget or the model's length leaves less room;
            // finished sequences ask for none (text i stays text i for the drafter).
            let room = |l: &Live| (config.max_new - l.out.len()).min(max_len - l.text.len());
            let gs: Vec<usize> = live
                .iter()
                .map(|l| if l.done { 0 } else { l.gamma.min(room(l) - 1) })
                .collect();
            let texts: Vec<&[u32]> = live.iter().map(|l| l.text.as_slice()).collect();
            let mut drafts = drafter.propose(&texts, &gs, sampler)?;
            let inputs: Vec<Vec<u32>> = live
                .iter()
                .zip(drafts.iter_mut())
                .zip(&gs)
                .map(|((l, d), &g)| {
                    d.tokens.truncate(g);
                    if l.done {
                        return Vec::new();
                    }
                    let mut input = vec![*l.text.last().expect("non-empty text")];
                    input.extend_from_slice(&d.tokens);
                    input
                })
                .collect();
            let feeds: Vec<(SeqId, &[u32])> = live
                .iter()
                .zip(&inputs)
                .map(|(l, t)| (l.seq, t.as_slice()))
                .collect();
            let (rows, mut states) = if hidden {
                session.step_with_hidden(&feeds, Logits::All)?
            } else {
                (session.step(&feeds, Logits::All)?, Vec::new())
            };
            counters.forwards += 1;
            for (i, ((l, draft), rows)) in live.iter_mut().zip(&drafts).zip(rows).enumerate() {
                if l.done {
                    continue;
                }
                let d = draft.tokens.len();
                let o = if sampler.config().is_greedy() {
                    rows.iter().try_for_each(|r| check_logits(r))?;
                    verify_greedy(&rows, &draft.tokens)
                } else {
                    let p = rows
                        .iter()
                        .map(|r| sampler.probs(r))
                        .collect::<crate::Result<Vec<_>>>()?;
                    let q = draft.probs.as_ref().map(|q| &q[..d]);
                    verify_sampled(&p, q, &draft.tokens, sampler)
                };
                stats.add(&o);
                l.gamma = gamma.next(l.gamma, &o);
                // Roll the cache back to the kept text (it holds text + the draft now).
                session.rollback(l.seq, l.text.len() + o.accepted)?;
                if hidden {
                    // The kept rows: the last text token's and the accepted drafts'.
                    let mut kept = std::mem::take(&mut states[i]);
                    kept.truncate(o.accepted + 1);
                    drafter.observe_hidden(i, l.text.len() - 1, kept)?;
                }
                let mut new: Vec<u32> = draft.tokens[..o.accepted].to_vec();
                new.push(o.next_token);
                let stop = new.iter().position(|t| config.stop.contains(t));
                if let Some(s) = stop {
                    new.truncate(s + 1);
                }
                l.text.extend_from_slice(&new);
                l.out.extend_from_slice(&new);
                l.done = stop.is_some() || room(l) == 0;
            }
            counters.decode_time += t0.elapsed();
        }
        Ok::<_, ModelError>(())
    })();
    let closed = session.close();
    result?;
    closed?;
    let tokens: Vec<Vec<u32>> = live.into_iter().map(|l| l.out).collect();
    counters.generated_tokens = tokens.iter().map(Vec::len).sum();
    Ok(SpecGeneration {
        tokens,
        stats,
        counters,
    })
}
