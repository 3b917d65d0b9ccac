//! Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a cheap drafter proposes
//! tokens, the target checks them all in one forward, and a rule keeps a prefix so that the
//! output is what the target alone would give (greedy) or is distributed as it (sampling).
//!
//! - [`verify`]: the rule, tensor-free (greedy and rejection sampling).
//! - [`drafters`]: the [`Proposer`] seam, prompt lookup and any decoder as a drafter.
//! - [`eagle`]: EAGLE's feature-level draft head (Li et al. 2024) and its chain drafter.
//! - [`run`]: the batched loop with fixed or adaptive γ, and its counters.

pub mod drafters;
pub mod eagle;
pub mod run;
pub mod verify;

pub use drafters::{prompt_lookup, Draft, ModelDrafter, PromptLookup, Proposer};
pub use eagle::{EagleDrafter, EagleHead, FrozenTarget};
pub use run::{speculative_generate, Gamma, SpecGeneration, SpecStats};
pub use verify::{accepts, residual, verify_greedy, verify_sampled, Outcome};
