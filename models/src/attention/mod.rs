//! Attention variants with prefill and cached single-token decode.
//!
//! - [`gqa`]: grouped-query attention (Ainslie et al. 2023); MHA when `n_kv_heads == n_heads`,
//!   MQA when `n_kv_heads == 1`.
//! - [`mla`]: multi-head latent attention (DeepSeek-V2, section 2.1) with a naive and an absorbed
//!   inference path over the same weights.
//! - [`cache`]: the contiguous per-layer cache both use (reserve capacity at creation).
//! - [`reference`]: plain-loop references that the tests check the modules against.

pub mod cache;
pub mod gqa;
pub mod mla;
pub mod reference;

pub use cache::ContiguousCache;
pub use gqa::{Gqa, GqaCache, GqaConfig};
pub use mla::{Mla, MlaCache, MlaConfig, MlaPath};

use burn::tensor::{backend::Backend, Tensor};

/// Bytes held by a tensor, from its shape and element type.
pub fn tensor_bytes<B: Backend, const D: usize>(t: &Tensor<B, D>) -> usize {
    t.shape().num_elements() * t.dtype().size()
}
