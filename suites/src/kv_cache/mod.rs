//! The KV cache suite: paged (PagedAttention, Kwon et al., SOSP 2023, with vLLM's admission
//! watermark) against reservation: of `max_len` tokens per sequence (`contiguous`), of the next
//! power of two of the true length (`orca-pow2`) and of exactly the true length (`orca-oracle`),
//! the vLLM paper's baselines.
//!
//! - *capacity*: each trace admitted first-come-first-served into one KV budget under each policy
//!   ([`sim`]): `kv_fragmentation` (time-averaged, and the worst step at the peak of reserved
//!   memory), `max_concurrent_sequences`, `kv_bytes_reserved_peak`, `kv_bytes_used_peak`,
//!   `preemptions`, `recomputed_tokens`.
//! - *throughput*: the one decoder (a GQA preset with random weights, [`decode`]) timed at a grid
//!   of batch sizes on contiguous and paged caches side by side (`decode_step_ms`), and its
//!   prefill; each policy's replay of the whole trace (arrivals if the trace has them, preemption
//!   and recomputation charged, the pool capped at the budget) is charged those costs step by
//!   step: `trace_tokens_per_s`, and `decode_throughput_gain` (over `contiguous`).
//! - *sharing*: parallel samples of one prompt and a system prompt shared by many requests, with
//!   copy-on-write forks: `kv_bytes_saved_by_sharing`.
//! - *overhead*: the attention core of one decode step over a paged and a contiguous cache at
//!   equal context, for several block sizes: `decode_latency_ms`.
//! - *equivalence*: `paged_vs_contiguous_max_abs_diff` over a decode run, for GQA-shaped and
//!   MLA-shaped (latent) caches.

pub mod about;
pub mod decode;
pub mod equivalence;
pub mod overhead;
pub mod real_model;
pub mod report;
pub mod sharing;
pub mod sim;
pub mod suite;
pub mod trace_replay;
pub mod traces;

pub use about::{MAX_LEN, NAME};
pub use suite::KvCacheSuite;
pub use trace_replay::WATERMARK;
