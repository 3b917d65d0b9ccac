//! *perplexity*: validation perplexity of a model on its text, against a unigram baseline.

use std::time::Instant;

use infermark_models::decoder::Decoder;
use infermark_models::kernels::AttentionBackend;

use super::about::PERPLEXITY_EXPERIMENT;
use crate::metric::{EVAL_TOKENS_PER_S, UNIGRAM_PERPLEXITY, VALID_PERPLEXITY};
use crate::recorder::Recorder;
use crate::zoo::train::mean_nll;
use crate::Result;

pub(super) fn perplexity_records<B: AttentionBackend>(
    rec: &mut Recorder,
    model: &Decoder<B>,
    ids: &[u32],
    seq_len: usize,
    unigram: Option<f64>,
    device: &B::Device,
) -> Result<()> {
    let t0 = Instant::now();
    let nll = mean_nll(model, ids, seq_len, 16, device)?;
    let scored = ids.len() / seq_len * (seq_len - 1);
    let extra = [("tokens", scored.to_string())];
    rec.metric(PERPLEXITY_EXPERIMENT, &VALID_PERPLEXITY)
        .stat(crate::Stat::Exact, scored)
        .params(&extra)
        .value(nll.exp())?;
    if let Some(u) = unigram {
        rec.metric(PERPLEXITY_EXPERIMENT, &UNIGRAM_PERPLEXITY)
            .stat(crate::Stat::Exact, scored)
            .params(&extra)
            .value(u)?;
    }
    // One timed pass: a single sample, not an exact value.
    rec.metric(PERPLEXITY_EXPERIMENT, &EVAL_TOKENS_PER_S)
        .stat(crate::Stat::Median, 1)
        .params(&extra)
        .value(scored as f64 / t0.elapsed().as_secs_f64())?;
    Ok(())
}
