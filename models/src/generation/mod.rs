//! Generation: one decoding engine ([`Session`]) that turns a
//! [`Decoder`](crate::decoder::Decoder) and a cache family into text, the loops that drive it,
//! and the sampler they draw tokens with.
//!
//! - [`session`]: a batch of sequences on one decoder and one cache; each step is one forward
//!   of ragged new tokens per sequence (0, 1, γ + 1 or a whole prompt), with rollback and fork.
//! - [`sampler`]: argmax, temperature, top-k, top-p (in vLLM's order), seeded; it also returns
//!   the processed probability vector, which speculative rejection sampling needs.
//! - [`generate`](mod@generate): the session with one token per live sequence per step, with
//!   stop tokens, a token budget and counters.
//! - [`gate`]: the first-step hook of adaptive reasoning (answer directly or think first),
//!   which sees the prompt and model outputs only, never an answer key.
//! - [`speculative`]: the verification rule (greedy and rejection sampling), drafters (a model
//!   drafter is a second session) and the session with a [`speculative::Proposer`]: every
//!   sequence verified in one forward per step.

pub mod gate;
pub mod generate;
pub mod sampler;
pub mod session;
pub mod speculative;

pub use generate::{generate, last_logits, Counters, GenerateConfig, Generation};
pub use sampler::{argmax, Sampler, SamplingConfig};
pub use session::{Logits, Session};
