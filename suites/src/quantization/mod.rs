//! The quantization suite: each weight format (and a mixed FP8 + INT4 assignment) against FP32,
//! side by side in one run, at three levels:
//!
//! - **tensor**: storage bits per weight, RMSE, max error and SQNR, on Gaussian weights and on
//!   the trained `target` model's projections;
//! - **model**: the `target` model with its projections quantized (embeddings, norms and the tied
//!   head in FP32) on its validation text: perplexity and its change, KL divergence of the
//!   next-token distributions against FP32 (mean and p99 over tokens), top-1 agreement, bytes and
//!   compression, as llama.cpp's perplexity tool reports them;
//! - **speed**: decode matrix-vector and prefill matrix-matrix products at a 4096² layer and at the
//!   model's own shapes, each format timed alternately with burn's FP32 product (A B A B).
//!
//! - **training**: the `target` recipe trained in FP32 and with simulated FP8 products
//!   (DeepSeek-V3's fine-grained tiles), same seed and steps: loss curves and the final
//!   validation-loss gap ([`fp8_training`]).
//!
//! Model-level numbers use the dequantized weights: numerically `QuantLinear`'s reference
//! forward. Speed numbers use `QuantLinear::forward` (layers) and the decoder with quantized
//! projections (whole model): the fused kernel for decode rows on flex, dequantize-and-multiply
//! otherwise.

pub mod about;
pub mod decode_speed;
pub mod fp8_training;
pub mod layer_speed;
pub mod model_accuracy;
mod real;
pub mod report;
pub mod suite;
pub mod tensor;

pub use about::{FP8_TRAINING, MIXED, NAME};
pub use suite::QuantizationSuite;
