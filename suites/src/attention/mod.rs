//! The attention suite: MHA, GQA and MQA (the GQA family) against MLA's naive and absorbed paths,
//! at real-model shapes, for KV cache memory, decode and prefill latency, KV read bandwidth,
//! analytic FLOPs, and the numerical agreement of MLA's two paths.
//!
//! Decode is timed twice per context length: the whole layer step (projections, RoPE, cache
//! append, attention, output projection) and the attention core alone (what reads the cache).
//! `kv_read_gbps` divides the cache bytes one step must read by the core's median time. The cache
//! is filled with random rows before timing: decode cost does not depend on the values, and it
//! keeps a 4096-token prefill out of every decode measurement.

pub mod about;
pub mod cache;
pub mod decode;
pub mod equivalence;
pub mod kv_memory;
pub mod prefill;
pub mod presets;
pub mod report;
pub mod suite;

pub use about::NAME;
pub use suite::AttentionSuite;
