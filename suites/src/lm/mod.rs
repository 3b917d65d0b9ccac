//! The `lm` suite: evaluates the trained reference models (or a user's checkpoint) loaded from the
//! [zoo](crate::zoo): perplexity, and arithmetic accuracy per format.
//!
//! - [`eval`]: the suite and its evaluation functions.

pub mod eval;
