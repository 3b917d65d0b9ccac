//! KV cache memory management (PagedAttention, Kwon et al., SOSP 2023).
//!
//! - [`block_pool`]: the tensor-free block pool and per-sequence block tables: allocation on
//!   demand, freeing, reference counts, copy-on-write fork for shared prefixes, and truncation for
//!   speculative rollback. Its logic is tested on its own, with no tensors.
//!
//! The tensor-backed paged cache, its attention path and the `kv_cache` suite build on this.

pub mod block_pool;

pub use block_pool::{BlockPool, PoolError, SeqId};
