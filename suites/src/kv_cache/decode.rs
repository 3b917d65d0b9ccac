//! Decoding with real caches: the one decoder ([`Decoder`], a GQA preset with random weights)
//! runs batches of sequences on contiguous and paged KV caches, timed side by side at a grid of
//! batch sizes ([`StepCosts`]); a trace replay ([`super::sim::simulate`]) charges each of its
//! steps from them, so a throughput difference comes from the batches each policy admits over
//! the whole trace (a larger batch shares each weight read among more tokens), with preemption
//! and recomputation paid for.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::generation::{Logits, Session};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{KvCache, ModelCache, SeqId, Values};

use crate::measure::{self, Plan, Summary};
use crate::{Result, SuiteError};

/// The throughput model: `(d_model, heads, kv_heads, d_head, layers, mlp)` as a byte-level GQA
/// decoder. The SwiGLU width is two thirds of `mlp` (rounded to 64), so the MLP costs what a
/// two-matrix MLP of width `mlp` would.
pub fn config(stack: (usize, usize, usize, usize, usize, usize), max_len: usize) -> DecoderConfig {
    let (d_model, h, kv, d, layers, mlp) = stack;
    let d_ff = (2 * mlp / 3) / 64 * 64;
    DecoderConfig::new(
        256,
        d_model,
        layers,
        h,
        d,
        d_ff.max(64),
        AttentionKind::Gqa { n_kv_heads: kv },
    )
    .with_max_seq_len(max_len)
}

fn pool_err(e: infermark_models::kv_cache::PoolError) -> SuiteError {
    SuiteError::Backend(format!("KV cache: {e}"))
}

/// Measured costs of the throughput model from which a trace replay charges each step: decode
/// steps at a grid of batch sizes on a contiguous and on a paged cache (timed side by side),
/// and prefill per prompt token.
#[derive(Clone, Debug)]
pub struct StepCosts {
    /// Each timed batch size (ascending) with its decode step on a contiguous and on a paged
    /// cache (ms per step).
    pub decode: Vec<(usize, Summary, Summary)>,
    /// Prefill of one `ctx`-token prompt (ms).
    pub prefill: Summary,
    /// The context the steps were timed at.
    pub ctx: usize,
}

impl StepCosts {
    /// Median decode step (ms) at `batch` on a paged or contiguous cache: linear between the
    /// timed batch sizes, and along the last two beyond them.
    pub fn decode_ms(&self, paged: bool, batch: usize) -> f64 {
        let pick = |(b, c, p): &(usize, Summary, Summary)| {
            (*b as f64, if paged { p.median } else { c.median })
        };
        let pts: Vec<(f64, f64)> = self.decode.iter().map(pick).collect();
        let x = batch as f64;
        let i = pts
            .iter()
            .position(|&(b, _)| b >= x)
            .unwrap_or(pts.len() - 1);
        if pts.len() == 1 {
            return pts[0].1;
        }
        let (lo, hi) = if i == 0 { (0, 1) } else { (i - 1, i) };
        let ((x0, y0), (x1, y1)) = (pts[lo], pts[hi]);
        y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    }

    /// Prefill cost per prompt token (ms).
    pub fn prefill_ms_per_token(&self) -> f64 {
        self.prefill.median / self.ctx as f64
    }

    /// The costs of round `k` alone (each batch size's `k`-th decode sample on both caches; the
    /// prefill as measured), for the spread of what a replay charges; `None` past the rounds
    /// every batch size has.
    pub fn round(&self, k: usize) -> Option<StepCosts> {
        let one = |s: &Summary| s.samples.get(k).map(|&x| Summary::of(&[x]));
        let decode = self
            .decode
            .iter()
            .map(|(b, c, p)| Some((*b, one(c)?, one(p)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(StepCosts {
            decode,
            prefill: self.prefill.clone(),
            ctx: self.ctx,
        })
    }

    /// Seconds of a step that decodes `batch` sequences after prefilling `prefilled` tokens.
    pub fn step_seconds(&self, paged: bool, batch: usize, prefilled: usize) -> f64 {
        (self.decode_ms(paged, batch) + self.prefill_ms_per_token() * prefilled as f64) * 1e-3
    }
}

/// Batch sizes timed for a replay up to `max_batch`: powers of two below it, and it.
pub fn batch_grid(max_batch: usize) -> Vec<usize> {
    let mut grid: Vec<usize> = std::iter::successors(Some(1usize), |b| Some(b * 2))
        .take_while(|&b| b < max_batch)
        .collect();
    grid.push(max_batch.max(1));
    grid
}

/// KV bytes the caches timed round-robin may hold at once (both layouts): batch sizes are timed
/// in rounds within groups whose caches fit, so that a load spike on a shared machine spreads
/// over every point of a group's cost curve instead of bending the one being timed.
const ROUND_ROBIN_BYTES: usize = 2 << 30;

/// Times decode steps of the model at every batch size of `batches` (sequences starting at
/// `ctx` cached tokens, `bytes_per_token` KV bytes each) on a contiguous and a paged cache
/// (blocks of `block_size`), and the prefill of a `ctx`-token prompt. Each round times every
/// batch size of a group once on both caches (the pair's order and the batch order alternate
/// between rounds); each batch size's summary is over its rounds.
pub fn measure_costs<B: AttentionBackend>(
    model: &Decoder<B>,
    batches: &[usize],
    ctx: usize,
    block_size: usize,
    bytes_per_token: usize,
    plan: Plan,
    device: &B::Device,
) -> Result<StepCosts> {
    let steps = plan.warmup + plan.max_samples + 1;
    let mut decode = Vec::new();
    for group in round_robin_groups(batches, 2 * (ctx + steps) * bytes_per_token) {
        let mut pairs = Vec::new();
        for &batch in group {
            let mut contiguous = model.contiguous_cache(batch, ctx + steps, device);
            let per_seq = (ctx + steps).div_ceil(block_size);
            let mut paged = model
                .paged_cache(batch * per_seq + 1, block_size, device)
                .map_err(SuiteError::model("paged cache"))?;
            let cs = fill(&mut contiguous, batch, ctx, device)?;
            let ps = fill(&mut paged, batch, ctx, device)?;
            pairs.push((contiguous, cs, paged, ps));
        }
        let mut samples = vec![(Vec::new(), Vec::new()); group.len()];
        let start = Instant::now();
        for round in 0..plan.warmup + plan.max_samples.max(1) {
            let timed = round.saturating_sub(plan.warmup);
            if timed >= plan.min_samples.max(1)
                && start.elapsed() > plan.budget * group.len() as u32
            {
                break;
            }
            let order: Vec<usize> = if round % 2 == 0 {
                (0..group.len()).collect()
            } else {
                (0..group.len()).rev().collect()
            };
            for i in order {
                let (contiguous, cs, paged, ps) = &mut pairs[i];
                let (c, p) = if (round + i) % 2 == 0 {
                    let c = decode_step(model, contiguous, cs, device)?;
                    (c, decode_step(model, paged, ps, device)?)
                } else {
                    let p = decode_step(model, paged, ps, device)?;
                    (decode_step(model, contiguous, cs, device)?, p)
                };
                if round >= plan.warmup {
                    samples[i].0.push(c);
                    samples[i].1.push(p);
                }
            }
        }
        for (&batch, (c, p)) in group.iter().zip(samples) {
            decode.push((batch, Summary::of(&c), Summary::of(&p)));
        }
    }
    let mut cache = model.contiguous_cache(1, ctx, device);
    let mut session = Session::new(model, &mut cache, device);
    let seq = session.add().map_err(SuiteError::model("admission"))?;
    let prompt = vec![0u32; ctx];
    let prefill = measure::time(
        plan,
        &mut session,
        |s| {
            s.step(&[(seq, &prompt)], Logits::Last)
                .map_err(SuiteError::model("prefill"))?;
            crate::measure::sync::<B>(device)
        },
        |s| s.rollback(seq, 0).map_err(SuiteError::model("rollback")),
    )?;
    Ok(StepCosts {
        decode,
        prefill,
        ctx,
    })
}

/// Consecutive runs of `batches` whose caches (`bytes_per_seq` per sequence) fit in
/// [`ROUND_ROBIN_BYTES`] together; a batch size too large alone is a group of its own.
fn round_robin_groups(batches: &[usize], bytes_per_seq: usize) -> Vec<&[usize]> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, &b) in batches.iter().enumerate() {
        let more = b.saturating_mul(bytes_per_seq);
        if i > start && bytes.saturating_add(more) > ROUND_ROBIN_BYTES {
            groups.push(&batches[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(more);
    }
    if start < batches.len() {
        groups.push(&batches[start..]);
    }
    groups
}

/// One timed decode step (ms, sync included) of every sequence of `seqs` on `cache`: what
/// [`measure_costs`] times; the first failure is returned.
pub fn decode_step<B: AttentionBackend, C: KvCache<B>>(
    model: &Decoder<B>,
    cache: &mut ModelCache<B, C>,
    seqs: &[SeqId],
    device: &B::Device,
) -> Result<f64> {
    let one = [0u32];
    let feeds: Vec<(SeqId, &[u32])> = seqs.iter().map(|&s| (s, &one[..])).collect();
    let t = Instant::now();
    Session::new(model, cache, device)
        .step(&feeds, Logits::Last)
        .map_err(SuiteError::model("decode step"))?;
    crate::measure::sync::<B>(device)?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Adds `batch` sequences holding `ctx` random cached tokens in every layer (what a prefill
/// would leave behind; decode cost does not depend on the values).
fn fill<B: AttentionBackend, C: KvCache<B>>(
    cache: &mut ModelCache<B, C>,
    batch: usize,
    ctx: usize,
    device: &B::Device,
) -> Result<Vec<SeqId>> {
    let seqs = (0..batch)
        .map(|_| cache.add_sequence())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pool_err)?;
    let rand =
        |shape: [usize; 3]| Tensor::<B, 3>::random(shape, Distribution::Normal(0.0, 1.0), device);
    for layer in &mut cache.layers {
        let l = layer.layout();
        for &s in &seqs {
            let v = match l.values {
                Values::Separate(w) => Some(rand([l.heads, ctx, w])),
                Values::PrefixOfKeys(_) => None,
            };
            layer
                .append(s, rand([l.heads, ctx, l.k_width]), v)
                .map_err(pool_err)?;
        }
    }
    Ok(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: f64) -> Summary {
        Summary::of(&[ms])
    }

    #[test]
    fn step_costs_interpolate_between_timed_batches() {
        let costs = StepCosts {
            decode: vec![
                (1, s(2.0), s(3.0)),
                (4, s(5.0), s(9.0)),
                (8, s(9.0), s(17.0)),
            ],
            prefill: s(10.0),
            ctx: 100,
        };
        assert_eq!(costs.decode_ms(false, 1), 2.0);
        assert_eq!(costs.decode_ms(false, 2), 3.0);
        assert_eq!(costs.decode_ms(true, 6), 13.0);
        // Beyond the grid: along the last segment.
        assert_eq!(costs.decode_ms(false, 10), 11.0);
        assert_eq!(costs.step_seconds(false, 4, 50), (5.0 + 0.1 * 50.0) * 1e-3);
        assert_eq!(batch_grid(5), vec![1, 2, 4, 5]);
        assert_eq!(batch_grid(4), vec![1, 2, 4]);
        assert_eq!(batch_grid(1), vec![1]);
    }

    #[test]
    fn a_round_takes_each_batch_sizes_kth_sample() {
        let costs = StepCosts {
            decode: vec![
                (1, Summary::of(&[2.0, 4.0]), Summary::of(&[3.0, 7.0])),
                (4, Summary::of(&[5.0, 6.0]), Summary::of(&[9.0, 8.0])),
            ],
            prefill: s(10.0),
            ctx: 100,
        };
        let r = costs.round(1).unwrap();
        assert_eq!(r.decode_ms(false, 1), 4.0);
        assert_eq!(r.decode_ms(true, 4), 8.0);
        assert_eq!(r.prefill_ms_per_token(), 0.1);
        assert!(costs.round(2).is_none());
    }
}
