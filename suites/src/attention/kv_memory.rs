//! *kv_memory*: KV cache bytes per token, measured from the tensors a cache holds.

use burn::tensor::{Distribution, Tensor};
use infermark_models::diff::max_abs_diff;
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{stored_bytes, KvCache, Values};

use super::cache::{cache_err, new_cache};
use super::presets::Shape;
use crate::metric::KV_CACHE_BYTES_PER_TOKEN;
use crate::recorder::Recorder;
use crate::{Result, SuiteError};

/// Analytic bytes per token (from the shape's formula), and bytes per token measured from what
/// a filled cache holds: its stored rows read back (element type as stored), which must equal
/// the rows written.
pub(super) fn kv_memory<B: AttentionBackend>(
    shape: &Shape,
    rec: &mut Recorder,
    device: &B::Device,
) -> Result<()> {
    const FILLED: usize = 10;
    let layout = shape.cache_layout();
    let (mut cache, seq) = new_cache::<B>(layout, 16, device)?;
    let rows = |w| {
        Tensor::<B, 3>::random(
            [layout.heads, FILLED, w],
            Distribution::Normal(0.0, 1.0),
            device,
        )
    };
    let k = rows(layout.k_width);
    let v = match layout.values {
        Values::Separate(w) => Some(rows(w)),
        Values::PrefixOfKeys(_) => None,
    };
    cache.append(seq, k.clone(), v.clone()).map_err(cache_err)?;
    let (k_back, v_back) = cache.stored(seq).map_err(cache_err)?;
    let host = |t: Tensor<B, 3>| {
        t.into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default()
    };
    let same =
        |a: Tensor<B, 3>, b: Tensor<B, 3>| max_abs_diff(&host(a), &host(b)).is_ok_and(|d| d == 0.0);
    let back = |t: Tensor<B, 4>| t.squeeze_dim::<3>(0);
    let written = same(back(k_back), k)
        && match (v, v_back) {
            (Some(v), Some(vb)) => same(back(vb), v),
            (None, None) => true,
            _ => false,
        };
    if !written {
        return Err(SuiteError::Backend(
            "KV cache: the rows read back differ from the rows written".into(),
        ));
    }
    let measured = stored_bytes(&cache, seq).map_err(cache_err)? as f64 / FILLED as f64;
    rec.metric("kv_memory", &KV_CACHE_BYTES_PER_TOKEN)
        .params(&[("source", "analytic".into()), ("dtype", "f32".into())])
        .value(shape.kv_bytes_per_token() as f64)?;
    rec.metric("kv_memory", &KV_CACHE_BYTES_PER_TOKEN)
        .params(&[("source", "measured".into()), ("dtype", "f32".into())])
        .value(measured)?;
    Ok(())
}
