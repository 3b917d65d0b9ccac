//! KV cache memory management (PagedAttention, Kwon et al., SOSP 2023).
//!
//! - [`block_pool`]: the tensor-free block pool and per-sequence block tables: allocation on
//!   demand, freeing, reference counts, copy-on-write fork for shared prefixes, and truncation for
//!   speculative rollback. Its logic is tested on its own, with no tensors.
//!
//! - [`paged`]: the tensor-backed paged cache of one layer; attention reads it through the block
//!   table (flex streams rows through the table; other backends gather blocks first).

pub mod block_pool;
pub mod paged;

pub use block_pool::{BlockPool, PoolError, SeqId};
pub use paged::{PagedCache, Values};
