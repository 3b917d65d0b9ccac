//! *speed*: plain and speculative decoding of one workload, alternated A B B A in one run.

use infermark_models::decoder::Decoder;
use infermark_models::generation::speculative::{speculative_generate, Gamma, SpecStats};
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kernels::AttentionBackend;

use super::about::ADAPTIVE_MAX;
use super::drafters::Drafter;
use crate::{Result, SuiteError};

/// One setting of the sweep.
#[derive(Clone, Copy)]
pub(super) struct Setting {
    pub gamma: usize,
    pub temperature: f32,
    pub batch: usize,
}

impl Setting {
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("gamma", self.gamma.to_string()),
            ("temperature", self.temperature.to_string()),
            ("batch", self.batch.to_string()),
        ]
    }
}

/// What one A/B run of the workload produced.
pub(super) struct AbRun {
    pub plain_tps: Vec<f64>,
    pub spec_tps: Vec<f64>,
    /// Speculative over plain tokens/s of each prompt group in each repetition (the same group
    /// and repetition on both sides): the samples behind the speedup's interval.
    pub group_speedups: Vec<f64>,
    pub plain_tokens: Vec<Vec<u32>>,
    pub spec_tokens: Vec<Vec<u32>>,
    pub stats: SpecStats,
}

/// The workload decoded plainly and speculatively, `reps` times each, alternately (A B B A);
/// each repetition draws the same tokens (same seeds), so only the times vary.
#[allow(clippy::too_many_arguments)]
pub(super) fn ab_run<B: AttentionBackend>(
    target: &Decoder<B>,
    drafter: &mut Drafter<B>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    set: Setting,
    reps: usize,
    seed: u64,
    device: &B::Device,
) -> Result<AbRun> {
    let sampling = if set.temperature == 0.0 {
        SamplingConfig::greedy()
    } else {
        SamplingConfig::with_temperature(set.temperature)
    };
    let sampler = |i: usize| {
        Sampler::new(sampling, seed.wrapping_add(i as u64)).map_err(SuiteError::model("sampler"))
    };
    let gamma = if drafter.adaptive() {
        Gamma::Adaptive {
            initial: set.gamma,
            max: ADAPTIVE_MAX,
        }
    } else {
        Gamma::Fixed(set.gamma)
    };
    let mut cache = target.contiguous_cache(set.batch, target.max_seq_len(), device);
    let mut run = AbRun {
        plain_tps: Vec::new(),
        spec_tps: Vec::new(),
        group_speedups: Vec::new(),
        plain_tokens: Vec::new(),
        spec_tokens: Vec::new(),
        stats: SpecStats::default(),
    };
    for rep in 0..reps {
        // Tokens/s of each group, plain then speculative.
        let mut group_tps: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        // A B, then B A: drifts of the machine and any advantage of going first hit both.
        for spec in [rep % 2 == 1, rep % 2 == 0] {
            let (mut tokens, mut secs) = (0usize, 0f64);
            let mut outs = Vec::new();
            let mut stats = SpecStats::default();
            for (i, group) in prompts.chunks(set.batch).enumerate() {
                let mut sampler = sampler(i)?;
                let (g, st) = if spec {
                    let g = speculative_generate(
                        target,
                        &mut cache,
                        group,
                        drafter.proposer(),
                        gamma,
                        config,
                        &mut sampler,
                        device,
                    )
                    .map_err(SuiteError::model("speculative decoding"))?;
                    ((g.tokens, g.counters), Some(g.stats))
                } else {
                    let g = generate(target, &mut cache, group, config, &mut sampler, device)
                        .map_err(SuiteError::model("plain decoding"))?;
                    ((g.tokens, g.counters), None)
                };
                // Both loops prefill each prompt but its last token: their decode steps make
                // every generated token.
                tokens += g.1.generated_tokens;
                secs += g.1.decode_time.as_secs_f64();
                group_tps[usize::from(spec)]
                    .push(g.1.generated_tokens as f64 / g.1.decode_time.as_secs_f64());
                outs.extend(g.0);
                if let Some(st) = st {
                    stats.merge(&st);
                }
            }
            let tps = tokens as f64 / secs;
            match (spec, rep) {
                (true, 0) => {
                    run.spec_tps.push(tps);
                    run.spec_tokens = outs;
                    run.stats = stats;
                }
                (true, _) => run.spec_tps.push(tps),
                (false, 0) => {
                    run.plain_tps.push(tps);
                    run.plain_tokens = outs;
                }
                (false, _) => run.plain_tps.push(tps),
            }
        }
        let [plain, spec] = group_tps;
        run.group_speedups
            .extend(spec.iter().zip(&plain).map(|(s, p)| s / p));
    }
    Ok(run)
}

pub(super) fn median(xs: &[f64]) -> f64 {
    crate::measure::Summary::of(xs).median
}
