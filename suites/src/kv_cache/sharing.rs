//! *sharing*: bytes saved by copy-on-write forks of parallel samples and of a shared system
//! prompt.

use std::collections::BTreeMap;

use infermark_models::kv_cache::BlockPool;

use super::about::NAME;
use crate::metric::KV_BYTES_SAVED_BY_SHARING;
use crate::recorder::Recorder;
use crate::{Record, Result, RunContext, SuiteError};

/// Bytes saved by copy-on-write sharing, measured from the block pool after the real appends.
/// The scenarios use fixed ShareGPT-like lengths (its mean prompt and output), not a trace, so
/// they are recorded once per block size under the lengths they used.
pub(super) fn sharing(ctx: &RunContext, block: usize, bpt: usize) -> Result<Vec<Record>> {
    let mut rec = Recorder::new(
        ctx,
        NAME,
        "paged",
        BTreeMap::from([
            ("block_size".to_string(), block.to_string()),
            ("kv_bytes_per_token".to_string(), bpt.to_string()),
        ]),
    );
    let pool_err = |e: infermark_models::kv_cache::PoolError| SuiteError::Backend(e.to_string());
    // (scenario, shared prefix, requests, private prompt, generated)
    for (scenario, prefix, n, own, gen) in [
        ("parallel_sampling", 161, 4, 0, 338),
        ("parallel_sampling", 161, 8, 0, 338),
        ("system_prompt", 512, 16, 32, 64),
    ] {
        let mut shared = BlockPool::new(1 << 16, block).map_err(pool_err)?;
        let root = shared.add_sequence();
        shared.append(root, prefix).map_err(pool_err)?;
        for _ in 0..n {
            let s = shared.fork(root).map_err(pool_err)?;
            shared.append(s, own + gen).map_err(pool_err)?;
        }
        shared.free(root).map_err(pool_err)?;
        let mut alone = BlockPool::new(1 << 16, block).map_err(pool_err)?;
        for _ in 0..n {
            let s = alone.add_sequence();
            alone.append(s, prefix + own + gen).map_err(pool_err)?;
        }
        let saved = (alone.slots_reserved() - shared.slots_reserved()) * bpt;
        rec.metric("sharing", &KV_BYTES_SAVED_BY_SHARING)
            .params(&[
                ("scenario", scenario.into()),
                ("requests", n.to_string()),
                ("shared_tokens", prefix.to_string()),
                ("private_tokens", (own + gen).to_string()),
                (
                    "bytes_without_sharing",
                    (alone.slots_reserved() * bpt).to_string(),
                ),
            ])
            .value(saved as f64)?;
    }
    Ok(rec.records)
}
