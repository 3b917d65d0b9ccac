//! The attention core shared by every attention variant: softmax(q·kᵀ·scale)·v over a cache,
//! with query heads grouped against the key/value head they share, so that grouped K/V is never
//! repeated in memory.
//!
//! [`AttentionBackend::grouped_attention`] has a generic implementation made of burn ops
//! (matmul, softmax, matmul) that every backend gets, and a fused CPU kernel for flex
//! ([`flex_cpu`]) that streams each K and V row once, in the spirit of FlashDecoding
//! (split the context into chunks, combine partial softmaxes).

mod driver;
pub mod few_rows;
mod flex_cpu;
mod grouped;
pub mod isa;
pub mod probe;

pub use driver::{on_pool_worker, with_spinning_workers};
pub use grouped::{
    gather_blocks, grouped_attention_generic, paged_attention_gather, AttentionBackend, Visibility,
};

pub use flex_cpu::{prefetch_calls, silu_mul, Prefetch};

/// The fused flex attention core ([`AttentionBackend::grouped_attention`] on flex) with its
/// streaming kernel on an explicit SIMD path and prefetch policy, so that tests can check every
/// path the CPU has, with and without prefetching (which must not change a bit).
///
/// # Shapes
/// - `q`: `[batch, heads, rows, d_k]`, `k`: `[batch, heads, t, d_k]`, `v`: `[batch, heads, t, d_v]`
///   → `[batch, heads, rows, d_v]`
///
/// # Panics
/// When this CPU lacks `isa`.
pub fn flex_grouped_attention_with(
    isa: isa::Isa,
    prefetch: Prefetch,
    q: burn::tensor::Tensor<burn::backend::Flex, 4>,
    k: burn::tensor::Tensor<burn::backend::Flex, 4>,
    v: burn::tensor::Tensor<burn::backend::Flex, 4>,
    vis: Visibility,
    scale: f32,
) -> burn::tensor::Tensor<burn::backend::Flex, 4> {
    assert!(
        isa.supported(),
        "ISA path {isa} is not supported by this CPU"
    );
    flex_cpu::grouped_attention_with(isa, prefetch, q, k, v, vis, scale)
}
