//! *prefill*: a causal prefill of a prompt into an empty cache.

use burn::tensor::{Distribution, Tensor};
use infermark_models::attention::Attention;
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::KvCache;

use super::cache::{cache_err, new_cache};
use super::presets::Shape;
use crate::measure::{self, sync_keep, Plan};
use crate::metric::PREFILL_LATENCY_MS;
use crate::recorder::Recorder;
use crate::{Result, SuiteError};

/// Times a causal prefill of `tokens` tokens into an empty cache.
pub fn prefill<B: AttentionBackend>(
    layer: &Attention<B>,
    shape: &Shape,
    tokens: usize,
    plan: Plan,
    rec: &mut Recorder,
    device: &B::Device,
) -> Result<()> {
    let x = Tensor::<B, 3>::random(
        [1, tokens, shape.d_model()],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let (mut cache, seq) = new_cache(layer.cache_layout(), tokens, device)?;
    let summary = measure::time(
        plan,
        &mut cache,
        |cache| {
            let y = layer
                .forward(x.clone(), &[seq], cache)
                .map_err(SuiteError::model("prefill"))?;
            sync_keep(device, y)
        },
        |cache| cache.truncate(seq, 0).map_err(cache_err),
    )?;
    rec.timing(
        "prefill",
        &PREFILL_LATENCY_MS,
        &summary,
        &[("tokens", tokens.to_string())],
    )
}
