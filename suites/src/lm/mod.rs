//! The `lm` suite: evaluates the trained reference models (or a user's checkpoint) loaded from the
//! [zoo](crate::zoo): perplexity, and arithmetic accuracy per format.
//!
//! - [`eval`]: the suite and its evaluation functions.
//! - [`real`]: the real-model rows (a GGUF on real text, f32 and native weights).

pub mod eval;
pub mod real;

pub use eval::NAME;
