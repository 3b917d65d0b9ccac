//! *sampling*: total variation distance between plain and speculative sampling.

use infermark_models::decoder::Decoder;
use infermark_models::generation::speculative::verify_sampled;
use infermark_models::generation::{Sampler, SamplingConfig};
use infermark_models::kernels::AttentionBackend;

use super::about::Sizes;
use super::drafters::{self, Drafter};
use crate::metric::SAMPLING_TV_DISTANCE;
use crate::recorder::Recorder;
use crate::{Result, Stat, SuiteError};

/// Total variation distance between two count vectors over the same tokens.
pub(super) fn tv(a: &[usize], b: &[usize]) -> f64 {
    let (na, nb) = (
        a.iter().sum::<usize>().max(1) as f64,
        b.iter().sum::<usize>().max(1) as f64,
    );
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 / na - y as f64 / nb).abs())
        .sum::<f64>()
        / 2.0
}

/// The next token after `prompt` sampled `tv_draws` times by the rule (drafter proposes one
/// token, kept or replaced from the residual) and plainly from the target twice: the distance
/// of the rule's samples from plain ones, and of two plain sample sets (the noise floor).
pub(super) fn tv_records<B: AttentionBackend>(
    rec: &mut Recorder,
    drafter: &mut Drafter<B>,
    target: &Decoder<B>,
    prompt: &[u32],
    temperature: f32,
    s: &Sizes,
    device: &B::Device,
) -> Result<()> {
    let cfg = SamplingConfig::with_temperature(temperature);
    let mut sampler = Sampler::new(cfg, 17).map_err(SuiteError::model("sampler"))?;
    let p = sampler
        .probs(&drafters::last_logits(target, prompt, device)?)
        .map_err(SuiteError::model("target distribution"))?;
    let vocab = p.len();
    let (mut spec, mut plain, mut plain2) = (vec![0; vocab], vec![0; vocab], vec![0; vocab]);
    // The drafter's proposal at the prompt (its distribution q, or a point mass) is the same
    // for every draw: draft once, then draw from q on the host.
    let draft = drafter
        .proposer()
        .propose(&[prompt], &[1], &mut sampler)
        .map_err(SuiteError::model("drafting"))?
        .remove(0);
    let target_rows = [p.clone(), p.clone()];
    for _ in 0..s.tv_draws {
        // The drafted token: drawn from q, or the deterministic drafter's own (q a point mass).
        let drafted = match (&draft.probs, draft.tokens.first()) {
            (Some(q), Some(_)) => Some(sampler.draw(&q[0])),
            (None, Some(&x)) => Some(x),
            (_, None) => None,
        };
        let first = match drafted {
            Some(x) => {
                let q = draft.probs.as_ref().map(|q| &q[..1]);
                let o = verify_sampled(&target_rows, q, &[x], &mut sampler);
                if o.accepted == 1 {
                    x
                } else {
                    o.next_token
                }
            }
            None => sampler.draw(&p),
        };
        spec[first as usize] += 1;
        plain[sampler.draw(&p) as usize] += 1;
        plain2[sampler.draw(&p) as usize] += 1;
    }
    for (pair, d) in [
        ("spec-vs-plain", tv(&spec, &plain)),
        ("plain-vs-plain", tv(&plain2, &plain)),
    ] {
        rec.metric("exactness", &SAMPLING_TV_DISTANCE)
            .stat(Stat::Exact, s.tv_draws)
            .param("temperature", temperature)
            .param("pair", pair)
            .value(d)?;
    }
    Ok(())
}
