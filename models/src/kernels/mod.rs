//! The attention core shared by every attention variant: softmax(q·kᵀ·scale)·v over a cache,
//! with query heads grouped against the key/value head they share, so that grouped K/V is never
//! repeated in memory.
//!
//! [`AttentionBackend::grouped_attention`] has a generic implementation made of burn ops
//! (matmul, softmax, matmul) that every backend gets, and a fused CPU kernel for flex
//! ([`flex_cpu`]) that streams each K and V row once, in the spirit of FlashDecoding
//! (split the context into chunks, combine partial softmaxes).

pub mod few_rows;
mod flex_cpu;
mod grouped;

pub use grouped::{
    gather_blocks, grouped_attention_generic, paged_attention_gather, AttentionBackend, Visibility,
};
