//! The `lm` suite: evaluates the trained reference models (or a user's checkpoint) loaded from the
//! [zoo](crate::zoo): perplexity against the unigram baseline, arithmetic accuracy per format,
//! and the real model's rows.
//!
//! - [`suite`]: the suite's cases and their dispatch; [`about`]: its name and sizes.
//! - [`perplexity`], [`arith`]: the evaluations.
//! - [`real`]: the real-model rows (a GGUF on real text, f32 and native weights).

pub mod about;
pub mod arith;
pub mod perplexity;
pub mod real;
pub mod report;
pub mod suite;

pub use about::{MODELS, NAME, TEST_SEED};
pub use arith::arith_eval;
pub use suite::{model_case, LmSuite};
