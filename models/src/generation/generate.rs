//! The generation loop: prefill each prompt of a batch (one sequence per forward), then decode
//! all live sequences together, one token each per forward, at their own lengths, until each
//! emits a stop token, spends its budget or reaches the model's longest sequence.

use std::time::{Duration, Instant};

use burn::tensor::{Int, Tensor, TensorData};

use super::sampler::Sampler;
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
    /// Model forwards (one per prefill, one per decode step of the batch).
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
    let data = logits.reshape([b * s * v]).into_data().convert::<f32>();
    let xs = data.as_slice::<f32>().expect("f32 logits");
    xs.chunks(v).map(<[f32]>::to_vec).collect()
}

/// Token ids as a `[rows, cols]` tensor.
pub(super) fn ids<B: AttentionBackend>(
    t: &[u32],
    rows: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = t.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [rows, t.len() / rows]), device)
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

/// Continues each prompt: prefills it into a new sequence of `cache`, then decodes all live
/// sequences together. The sequences are freed at the end.
pub fn generate<B: AttentionBackend, C: KvCache<B>>(
    model: &Decoder<B>,
    cache: &mut ModelCache<B, C>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    sampler: &mut Sampler,
    device: &B::Device,
) -> crate::Result<Generation> {
    check_prompts(model, prompts)?;
    let mut counters = Counters::default();
    let mut out = vec![Vec::new(); prompts.len()];
    if config.max_new == 0 {
        return Ok(Generation {
            tokens: out,
            counters,
        });
    }
    let mut seqs: Vec<SeqId> = Vec::with_capacity(prompts.len());
    let result = (|| {
        // (prompt index, sequence, next token) of every live sequence.
        let mut live = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let t0 = Instant::now();
            let seq = cache.add_sequence()?;
            seqs.push(seq);
            let logits = model.forward(ids::<B>(p, 1, device), &[seq], cache)?;
            let next = sampler.sample(&last_logits(logits)[0])?;
            counters.prefill_time += t0.elapsed();
            counters.forwards += 1;
            counters.prefill_tokens += p.len();
            live.push((i, seq, next));
        }
        loop {
            // Record each live sequence's token; keep those that go on.
            live.retain(|&(i, _, next)| {
                out[i].push(next);
                let len = prompts[i].len() + out[i].len();
                !(config.stop.contains(&next)
                    || out[i].len() >= config.max_new
                    || len >= model.max_seq_len())
            });
            if live.is_empty() {
                break;
            }
            let t0 = Instant::now();
            let batch: Vec<SeqId> = live.iter().map(|&(_, s, _)| s).collect();
            let tokens: Vec<u32> = live.iter().map(|&(_, _, t)| t).collect();
            let logits = model.forward(ids::<B>(&tokens, tokens.len(), device), &batch, cache)?;
            for (row, entry) in last_logits(logits).iter().zip(live.iter_mut()) {
                entry.2 = sampler.sample(row)?;
            }
            counters.decode_time += t0.elapsed();
            counters.forwards += 1;
        }
        Ok::<_, ModelError>(())
    })();
    for &s in &seqs {
        cache.free(s)?;
    }
    result?;
    counters.generated_tokens = out.iter().map(Vec::len).sum();
    Ok(Generation {
        tokens: out,
        counters,
    })
}
