//! The model zoo: everything the suites load models and texts from, so that no suite depends on
//! another.
//!
//! - [`corpus`]: seeded story and arithmetic generators, the byte tokenizer, the answer checker.
//! - [`checkpoint`]: infermark's own checkpoints (safetensors weights plus a JSON card), and where
//!   the committed ones live.
//! - [`train`]: AdamW training of the decoder presets with resumable checkpoints.
//! - [`hf`]: Hugging Face Llama directories loaded into the same decoder.
//! - [`eagle`]: training data (target hidden states) and training of an EAGLE draft head.
//! - [`gguf`]: llama.cpp's GGUF files: the reader, dequantization, Llama models and their
//!   tokenizers.
//! - [`real`]: the real model (SmolLM2-135M): its name, where it is, how a GGUF is named.

pub mod calibration;
pub mod checkpoint;
pub mod corpus;
pub mod eagle;
pub mod gguf;
pub mod hf;
pub mod real;
pub mod train;
