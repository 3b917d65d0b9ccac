//! *decode*: one decode step of a layer at a context length, and its attention core.

use burn::tensor::{Distribution, Tensor};
use infermark_models::attention::Attention;
use infermark_models::kernels::{prefetch_calls, AttentionBackend};
use infermark_models::kv_cache::KvCache;

use super::cache::{cache_err, fill, new_cache};
use super::presets::Shape;
use crate::measure::{self, sync_keep, Plan};
use crate::metric::{DECODE_LATENCY_MS, KV_PREFETCH_SHARE, KV_READ_GBPS};
use crate::recorder::Recorder;
use crate::{Result, Stat, SuiteError};

/// Times one decode step at context `t`: the whole layer, and the attention core alone.
pub(super) fn decode<B: AttentionBackend>(
    layer: &Attention<B>,
    shape: &Shape,
    t: usize,
    plan: Plan,
    rec: &mut Recorder,
    device: &B::Device,
) -> Result<()> {
    let d_model = shape.d_model();
    let (mut cache, seq) = new_cache(layer.cache_layout(), t + 1, device)?;
    fill(&mut cache, seq, t, device)?;
    let x = Tensor::<B, 3>::random([1, 1, d_model], Distribution::Normal(0.0, 1.0), device);
    let whole = measure::time(
        plan,
        &mut cache,
        |cache| {
            let y = layer
                .forward(x.clone(), &[seq], cache)
                .map_err(SuiteError::model("decode step"))?;
            sync_keep(device, y)
        },
        |cache| cache.truncate(seq, t).map_err(cache_err),
    )?;
    // The core alone: prepare the decode token once (appending it), then time what reads the
    // cache.
    let p = layer
        .prepare(x, &[seq], &mut cache)
        .map_err(SuiteError::model("decode prepare"))?;
    let calls_before = prefetch_calls();
    let core = measure::time(
        plan,
        &mut cache,
        |c| {
            let o = layer
                .attend_core(&p, &[seq], c)
                .map_err(SuiteError::model("decode core"))?;
            sync_keep(device, o)
        },
        |_| Ok(()),
    )?;
    let ctx = ("ctx", t.to_string());
    rec.timing(
        "decode",
        &DECODE_LATENCY_MS,
        &whole,
        &[ctx.clone(), ("part", "layer".into())],
    )?;
    rec.timing(
        "decode",
        &DECODE_LATENCY_MS,
        &core,
        &[ctx.clone(), ("part", "core".into())],
    )?;
    let kv_bytes = (shape.kv_bytes_per_token() * (t + 1)) as f64;
    let gbps = kv_bytes / (core.median * 1e-3) / 1e9;
    rec.metric("decode", &KV_READ_GBPS)
        .stat(Stat::Median, core.n)
        .params(&[ctx.clone(), ("part", "core".into())])
        .value(gbps)?;
    // Which regime that was: the flex kernel prefetches only when K/V come from DRAM. Other
    // backends (and the generic core) make no such calls.
    let after = prefetch_calls();
    let [off, on] = [0, 1].map(|i| after[i] - calls_before[i]);
    if off + on > 0 {
        rec.metric("decode", &KV_PREFETCH_SHARE)
            .stat(Stat::Mean, (off + on) as usize)
            .params(&[ctx, ("part", "core".into())])
            .value(on as f64 / (off + on) as f64)?;
    }
    Ok(())
}
