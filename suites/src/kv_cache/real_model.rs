//! The real model's KV bytes per token and the requests one GiB admits.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{
    stored_bytes, CacheLayout, KvCache, PagedCache, PoolError, Values,
};

use super::about::{MAX_LEN, NAME};
use super::sim::{simulate, Policy, Reservation};
use super::trace_replay::WATERMARK;
use super::traces;
use crate::metric::MAX_CONCURRENT_SEQUENCES;
use crate::recorder::Recorder;
use crate::{Record, Result, RunContext, SuiteError};

/// KV memory the real model's decoding reserves in one GiB.
pub(super) const REAL_BUDGET_BYTES: usize = 1 << 30;

/// The real model (SmolLM2-135M; its configuration from the GGUF header, no weights): KV bytes
/// per token measured from the rows paged caches of its layer shape hold, read back, across all
/// blocks (f32 elements; a 16-bit cache halves them), and how many ShareGPT-like requests one GiB of KV memory admits
/// under contiguous reservation and under paging.
pub(super) fn real_model<B: AttentionBackend>(
    ctx: &RunContext,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let path = crate::zoo::gguf::smollm2().map_err(SuiteError::Input)?;
    let cfg = crate::zoo::gguf::llama::config(&crate::zoo::gguf::GgufFile::open(&path)?)?;
    let gqa = cfg
        .gqa()
        .ok_or_else(|| SuiteError::Input("the real model is not GQA".into()))?;
    let layout = CacheLayout {
        heads: gqa.n_kv_heads,
        k_width: gqa.d_head,
        values: Values::Separate(gqa.d_head),
    };
    (ctx.progress)("real model: KV bytes per token");
    let pool_err = |e: PoolError| SuiteError::Backend(e.to_string());
    let tokens = 64;
    let mut used = 0;
    for _ in 0..cfg.n_layers {
        let mut c = PagedCache::<B>::new(tokens / 16, 16, layout, device).map_err(pool_err)?;
        let seq = c.add_sequence().map_err(pool_err)?;
        let k: Tensor<B, 3> = Tensor::zeros([layout.heads, tokens, layout.k_width], device);
        c.append(seq, k.clone(), Some(k)).map_err(pool_err)?;
        used += stored_bytes(&c, seq).map_err(pool_err)?;
    }
    let bpt = used / tokens;
    let budget = REAL_BUDGET_BYTES / bpt;
    let model = crate::zoo::real::REAL;
    let mut out = Vec::new();
    let trace = traces::built_in(1000, ctx.seed)
        .into_iter()
        .find(|t| t.name == "sharegpt")
        .expect("the built-in ShareGPT-like trace");
    for (variant, policy) in [
        ("contiguous", Policy::Reserve(Reservation::MaxLen(MAX_LEN))),
        (
            "paged",
            Policy::Paged {
                block_size: 16,
                watermark: WATERMARK,
            },
        ),
    ] {
        let params = BTreeMap::from([
            ("preset".to_string(), model.to_string()),
            ("model".to_string(), model.to_string()),
        ]);
        let mut rec = Recorder::new(ctx, NAME, variant, params);
        if variant == "paged" {
            rec.metric("model", &crate::metric::KV_CACHE_BYTES_PER_TOKEN)
                .params(&[
                    ("source", "measured".into()),
                    ("scope", "all_layers".into()),
                ])
                .value(bpt as f64)?;
        }
        let o = simulate(&trace.requests, policy, budget, &|_, _| 0.0)
            .map_err(|e| SuiteError::Input(format!("trace {}: {e}", trace.name)))?;
        rec.metric("model", &MAX_CONCURRENT_SEQUENCES)
            .params(&[
                ("budget_bytes", REAL_BUDGET_BYTES.to_string()),
                ("budget_tokens", budget.to_string()),
                ("requests", trace.name.clone()),
            ])
            .value(o.max_concurrent as f64)?;
        out.extend(rec.records);
    }
    Ok(out)
}
