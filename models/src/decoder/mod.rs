//! A small Llama-architecture decoder LM (RMSNorm, RoPE, SwiGLU) whose attention is chosen by
//! config: the GQA family or DeepSeek-V2's MLA. Prefill and cached single-token decode share one
//! `forward`; training uses [`Decoder::forward_full`] on an autodiff backend.
//!
//! - [`config`]: sizes, attention choice, parameter and cache counting.
//! - [`model`]: the modules and the forward pass.
//! - [`presets`]: the named models infermark trains (`--model NAME`).

pub mod config;
pub mod model;
pub mod presets;

pub use crate::attention::Attention;
pub use config::{AttentionKind, DecoderConfig};
pub use model::{materialize, next_token_nll, Block, Decoder, SwiGlu};
pub use presets::{preset, presets, CorpusKind, Preset};
