//! Generation: the one loop that turns a [`Decoder`](crate::decoder::Decoder) and a cache
//! family into text, and the sampler it draws tokens with.
//!
//! - [`sampler`]: argmax, temperature, top-k, top-p (in vLLM's order), seeded; it also returns
//!   the processed probability vector, which speculative rejection sampling needs.
//! - [`generate`](mod@generate): prompts of a batch prefilled one by one, then decoded together
//!   (one token per live sequence per forward), with stop tokens, a token budget and counters.
//! - [`speculative`]: the verification rule (greedy and rejection sampling), drafters and the
//!   batched speculative loop.

pub mod generate;
pub mod sampler;
pub mod speculative;

pub use generate::{generate, last_logits, Counters, GenerateConfig, Generation};
pub use sampler::{argmax, Sampler, SamplingConfig};
