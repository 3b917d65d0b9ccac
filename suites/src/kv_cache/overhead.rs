//! *overhead*: the attention core of one decode step over paged and contiguous caches at equal
//! context, timed side by side.

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Distribution, Tensor};
use infermark_models::kernels::{AttentionBackend, Visibility};
use infermark_models::kv_cache::{
    CacheLayout, ContiguousKv, KvCache, PagedCache, PoolError, Values,
};

use super::about::{Sizes, NAME};
use crate::measure::{self};
use crate::metric::{DECODE_LATENCY_MS, PAGED_OVER_CONTIGUOUS_LATENCY};
use crate::recorder::Recorder;
use crate::{Record, Result, RunContext, Stat, SuiteError};

pub(super) fn rand<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Attention core of one decode step, paged against contiguous, at equal context; each block
/// size is timed alternately with the contiguous cache (A B A B ...).
pub(super) fn overhead<B: AttentionBackend>(
    s: &Sizes,
    ctx: &RunContext,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let pool_err = |e: PoolError| SuiteError::Backend(e.to_string());
    let (kv, d, contexts) = s.overhead;
    let layout = CacheLayout {
        heads: kv,
        k_width: d,
        values: Values::Separate(d),
    };
    let rows = 4;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = Vec::new();
    for &t in contexts {
        (ctx.progress)(&format!("overhead at context {t}"));
        let (k, v, q) = (
            rand::<B, 4>([1, kv, t, d], device),
            rand::<B, 4>([1, kv, t, d], device),
            rand::<B, 4>([1, kv, rows, d], device),
        );
        let mut contiguous = ContiguousKv::<B>::new(1, t, layout, device);
        let cseq = contiguous.add_sequence().map_err(pool_err)?;
        let sq = |x: &Tensor<B, 4>| x.clone().squeeze_dim::<3>(0);
        contiguous
            .append(cseq, sq(&k), Some(sq(&v)))
            .map_err(pool_err)?;
        let params = BTreeMap::from([
            ("ctx".to_string(), t.to_string()),
            ("part".to_string(), "core".to_string()),
            ("kv_heads".to_string(), kv.to_string()),
            ("d_head".to_string(), d.to_string()),
            (
                "calls_per_sample".to_string(),
                s.overhead_plan.calls.to_string(),
            ),
        ]);
        for (i, &b) in s.block_sizes.iter().enumerate() {
            let mut cache =
                PagedCache::<B>::new(2 * t.div_ceil(b) + 4, b, layout, device).map_err(pool_err)?;
            // Two interleaved sequences, so the measured one's blocks are not in order.
            let seq = cache.add_sequence().map_err(pool_err)?;
            let other = cache.add_sequence().map_err(pool_err)?;
            let chunk = b * 4;
            for at in (0..t).step_by(chunk) {
                let n = chunk.min(t - at);
                let part = |x: &Tensor<B, 4>| x.clone().narrow(2, at, n).squeeze_dim::<3>(0);
                cache
                    .append(seq, part(&k), Some(part(&v)))
                    .map_err(pool_err)?;
                cache
                    .append(
                        other,
                        rand::<B, 3>([kv, n, d], device),
                        Some(rand::<B, 3>([kv, n, d], device)),
                    )
                    .map_err(pool_err)?;
            }
            let (c, p) = measure::time_pair(
                s.overhead_plan,
                || {
                    let o = contiguous
                        .attend(q.clone(), cseq, Visibility::All, scale)
                        .map_err(pool_err)?;
                    measure::sync_keep(device, o)
                },
                || {
                    let o = cache
                        .attend(q.clone(), seq, Visibility::All, scale)
                        .map_err(pool_err)?;
                    measure::sync_keep(device, o)
                },
            )?;
            if i == 0 {
                let mut rec = Recorder::new(ctx, NAME, "contiguous", params.clone());
                rec.timing("overhead", &DECODE_LATENCY_MS, &c, &[])?;
                out.extend(rec.records);
            }
            let mut rec = Recorder::new(ctx, NAME, "paged", params.clone());
            let bs = ("block_size", b.to_string());
            rec.timing(
                "overhead",
                &DECODE_LATENCY_MS,
                &p,
                std::slice::from_ref(&bs),
            )?;
            rec.metric("overhead", &PAGED_OVER_CONTIGUOUS_LATENCY)
                .stat(Stat::Median, p.n)
                .params(&[bs])
                .value(p.median / c.median)?;
            out.extend(rec.records);
        }
    }
    Ok(out)
}
