//! *equivalence*: paged against contiguous attention outputs over a decode run.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use infermark_models::diff::max_abs_diff;
use infermark_models::kernels::{grouped_attention_generic, AttentionBackend, Visibility};
use infermark_models::kv_cache::{CacheLayout, KvCache, PagedCache, PoolError, Values};

use super::about::{Sizes, NAME};
use super::overhead::rand;
use crate::metric::PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF;
use crate::recorder::Recorder;
use crate::{Record, Result, RunContext, Stat, SuiteError};

/// Largest |paged − contiguous| attention output over a decode run, for GQA-shaped and
/// MLA-shaped caches.
pub(super) fn equivalence<B: AttentionBackend>(
    s: &Sizes,
    ctx: &RunContext,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let err = |e: PoolError| SuiteError::Backend(e.to_string());
    let mut out = Vec::new();
    // (layout, heads, key width, value width (MLA: latent prefix), query rows); at most 8 rows,
    // so the paged side takes flex's streaming kernel rather than the path shared with the
    // reference.
    for (layout, heads, wk, wv, rows) in [("gqa", 2, 32, 32, 4), ("mla", 1, 80, 64, 8)] {
        (ctx.progress)(&format!("equivalence ({layout})"));
        let values = if layout == "mla" {
            Values::PrefixOfKeys(wv)
        } else {
            Values::Separate(wv)
        };
        let block = s.block_sizes[0];
        let cache_layout = CacheLayout {
            heads,
            k_width: wk,
            values,
        };
        let mut cache = PagedCache::<B>::new(64, block, cache_layout, device).map_err(err)?;
        let seq = cache.add_sequence().map_err(err)?;
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        let mut worst = 0f32;
        for step in 0..s.equivalence_steps {
            let n = if step == 0 { 37 } else { 1 };
            let k = rand::<B, 3>([heads, n, wk], device);
            let v = if layout == "mla" {
                k.clone().narrow(2, 0, wv)
            } else {
                rand::<B, 3>([heads, n, wv], device)
            };
            cache
                .append(seq, k.clone(), (layout == "gqa").then(|| v.clone()))
                .map_err(err)?;
            ks.push(k);
            vs.push(v);
            let q = rand::<B, 4>([1, heads, rows, wk], device);
            let want = grouped_attention_generic(
                q.clone(),
                Tensor::cat(ks.clone(), 1).unsqueeze_dim(0),
                Tensor::cat(vs.clone(), 1).unsqueeze_dim(0),
                Visibility::All,
                0.1,
            );
            let got = cache.attend(q, seq, Visibility::All, 0.1).map_err(err)?;
            let host = |t: Tensor<B, 4>| t.into_data().convert::<f32>().to_vec::<f32>();
            let (got, want) = match (host(got), host(want)) {
                (Ok(g), Ok(w)) => (g, w),
                _ => return Err(SuiteError::Backend("attention output is not f32".into())),
            };
            let d = max_abs_diff(&got, &want).map_err(|error| SuiteError::Model {
                context: format!("paged vs contiguous ({layout})"),
                error,
            })?;
            if d > worst {
                worst = d;
            }
        }
        let mut rec = Recorder::new(
            ctx,
            NAME,
            "paged",
            BTreeMap::from([
                ("layout".to_string(), layout.to_string()),
                ("block_size".to_string(), block.to_string()),
            ]),
        );
        rec.metric("equivalence", &PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF)
            .stat(Stat::Max, s.equivalence_steps)
            .value(worst as f64)?;
        out.extend(rec.records);
    }
    Ok(out)
}
