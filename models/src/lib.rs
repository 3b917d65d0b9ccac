//! infermark models: pure burn components (no file system, no CLI, no reports), each with
//! equivalence tests against a plain reference.
//!
//! - [`attention`]: the GQA family (MHA, GQA, MQA) and MLA (DeepSeek-V2) with naive and absorbed
//!   inference paths, each with prefill and cached single-token decode.
//! - [`kernels`]: the grouped attention core, generic over the backend, with a fused CPU kernel for
//!   the flex backend.
//! - [`kv_cache`]: the one cache family ([`kv_cache::KvCache`]: contiguous and paged), per
//!   sequence, per layer.
//! - [`proj`]: the projection seam (dense or quantized weights).
//! - [`decoder`]: the one decoder LM; a quantized model, a draft and a real model are this
//!   decoder with other weights.
//! - [`quant`]: weight formats, quantized linear layers and whole-model quantization.
//! - [`generation`]: the sampler and the one generation loop.
//! - [`diff`]: the one difference helper (fails on NaN, empty or unequal inputs).

pub mod attention;
pub mod decoder;
pub mod diff;
pub mod generation;
pub mod kernels;
pub mod kv_cache;
pub mod profile;
pub mod proj;
pub mod quant;

/// Errors of the model components. Each names the offending value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// A configuration that cannot describe a valid layer.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// An input tensor whose shape does not match the layer.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    Shape {
        what: &'static str,
        expected: String,
        got: String,
    },
    /// A KV cache refused an operation (unknown sequence, pool exhausted, rows of the wrong shape).
    #[error("KV cache: {0}")]
    Cache(#[from] kv_cache::PoolError),
    /// Appending more tokens than a cache was sized for.
    #[error("KV cache full: {len} tokens cached + {adding} new exceeds capacity {capacity}")]
    CacheFull {
        len: usize,
        adding: usize,
        capacity: usize,
    },
}

pub type Result<T> = std::result::Result<T, ModelError>;
