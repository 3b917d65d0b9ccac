//! Trained reference language models: corpora, training, checkpoints, evaluation.
//!
//! - [`corpus`]: seeded story and arithmetic generators, the byte tokenizer, the answer checker.
//! - [`train`]: AdamW training of the decoder presets with resumable checkpoints.
//! - [`checkpoint`]: safetensors weights plus a JSON card.
//! - [`hf`]: Hugging Face Llama directories loaded into the same decoder.
//! - [`eval`]: the `lm` suite (perplexity, arithmetic accuracy).

pub mod checkpoint;
pub mod corpus;
pub mod eval;
pub mod hf;
pub mod train;
