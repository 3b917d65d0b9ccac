//! KV cache memory management (PagedAttention, Kwon et al., SOSP 2023).
//!
//! - [`block_pool`]: the tensor-free block pool and per-sequence block tables: allocation on
//!   demand, freeing, reference counts, copy-on-write fork for shared prefixes, and truncation for
//!   speculative rollback. Its logic is tested on its own, with no tensors.
//!
//! - [`paged`]: the tensor-backed paged cache of one layer; attention reads it through the block
//!   table (flex streams rows through the table; other backends gather blocks first).

//! - [`contiguous`]: the pre-paging baseline behind the same [`KvCache`] trait.

pub mod block_pool;
pub mod contiguous;
pub mod paged;

pub use block_pool::{BlockPool, PoolError, SeqId};
pub use contiguous::ContiguousKv;
pub use paged::{PagedCache, Values};

use burn::tensor::Tensor;

use crate::kernels::{AttentionBackend, Visibility};

/// The KV cache of one layer for many sequences.
pub trait KvCache<B: AttentionBackend> {
    /// Admits a new, empty sequence (the contiguous cache reserves its `max_len` here).
    fn add_sequence(&mut self) -> Result<SeqId, PoolError>;
    /// Appends `s` tokens.
    ///
    /// # Shapes
    /// - `k`: `[heads, s, k_width]`; `v`: `[heads, s, v_width]`, or `None` when the values are
    ///   part of the key rows (MLA)
    fn append(
        &mut self,
        seq: SeqId,
        k: Tensor<B, 3>,
        v: Option<Tensor<B, 3>>,
    ) -> Result<(), PoolError>;
    /// Tokens held by `seq`.
    fn len(&self, seq: SeqId) -> Result<usize, PoolError>;
    /// Keeps the first `len` tokens (speculative rollback).
    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<(), PoolError>;
    /// A new sequence starting with `seq`'s tokens (shared where the cache can share).
    fn fork(&mut self, seq: SeqId) -> Result<SeqId, PoolError>;
    /// Drops `seq` and its memory.
    fn free(&mut self, seq: SeqId) -> Result<(), PoolError>;
    /// Attention of `q` over `seq`'s tokens.
    ///
    /// # Shapes
    /// - `q`: `[1, heads, rows, k_width]` → `[1, heads, rows, v_width]`
    fn attend(
        &self,
        q: Tensor<B, 4>,
        seq: SeqId,
        vis: Visibility,
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError>;
    /// Bytes reserved for the sequences held.
    fn bytes_reserved(&self) -> usize;
    /// Bytes holding live tokens.
    fn bytes_used(&self) -> usize;
}
