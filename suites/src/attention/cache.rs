//! The contiguous caches the experiments time attention over.

use burn::tensor::{Distribution, Tensor};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{CacheLayout, ContiguousKv, KvCache, PoolError, SeqId, Values};

use crate::{Result, SuiteError};

/// A contiguous cache for `layer` with one sequence of up to `capacity` tokens.
pub(super) fn new_cache<B: AttentionBackend>(
    layout: CacheLayout,
    capacity: usize,
    device: &B::Device,
) -> Result<(ContiguousKv<B>, SeqId)> {
    let mut cache = ContiguousKv::new(1, capacity, layout, device);
    let seq = cache.add_sequence().map_err(cache_err)?;
    Ok((cache, seq))
}

/// Appends `n` random rows to `seq` (decode cost does not depend on the values).
pub(super) fn fill<B: AttentionBackend>(
    cache: &mut ContiguousKv<B>,
    seq: SeqId,
    n: usize,
    device: &B::Device,
) -> Result<()> {
    let l = cache.layout();
    let rand = |w| Tensor::random([l.heads, n, w], Distribution::Normal(0.0, 1.0), device);
    let v = match l.values {
        Values::Separate(w) => Some(rand(w)),
        Values::PrefixOfKeys(_) => None,
    };
    cache.append(seq, rand(l.k_width), v).map_err(cache_err)
}

pub(super) fn cache_err(e: PoolError) -> SuiteError {
    SuiteError::Backend(format!("KV cache: {e}"))
}
