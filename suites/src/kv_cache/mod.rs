//! The KV cache suite (in progress): paged versus contiguous KV memory.
//!
//! - [`sim`]: trace-driven admission under a KV budget, the capacity and fragmentation model.

pub mod sim;
