//! Weight quantization: FP32 reference, F16, BF16, FP8 (OCP E4M3 and E5M2, per-tensor or
//! per-channel scales, saturating), INT8 per-channel symmetric, INT4 group-wise (symmetric, or
//! asymmetric with a zero point; two codes per byte), and llama.cpp's block layouts (Q4_0, Q4_1,
//! Q5_0, Q8_0, and the K-quant super-blocks Q4_K, Q5_K, Q6_K with their quantizers: [`kquant`]).
//!
//! - [`format`]: the formats, their names and storage cost.
//! - [`tensor`]: quantize and dequantize a `[out, in]` matrix.
//! - [`matvec`]: fused dequantize-and-multiply for decode (a few rows), f32 activations.
//! - [`act`] and [`int_dot`]: int8 activation blocks and integer dot products against them
//!   (W4A8 / W8A8, llama.cpp's decode arithmetic).
//! - [`linear`]: `QuantLinear`, a linear layer that holds only codes and scales.
//! - [`grid`], [`gptq`], [`imatrix`], [`linalg`], [`calibrate`]: calibrated rounding to the
//!   4-bit group formats (GPTQ, importance-weighted round-to-nearest), per matrix and for a
//!   whole decoder run on calibration text.
//! - [`fp8_train`]: FP8 rounding with fine-grained tiles for simulated FP8 training
//!   (DeepSeek-V3 §3.3), through the same codec as the FP8 formats.
//! - [`model`]: a whole decoder's projections through a format (or a mixed assignment), as
//!   quantized [`crate::proj::Proj`]s of the one decoder.
//!
//! Number conversion uses the `float8` and `half` crates (round to nearest even; FP8 saturates to
//! the largest finite value, NaN stays NaN).

pub mod act;
pub mod awq;
pub mod calibrate;
pub mod format;
pub mod fp8_train;
pub mod gptq;
pub mod grid;
pub mod imatrix;
pub mod int_dot;
pub mod kquant;
pub mod linalg;
pub mod linear;
pub mod matvec;
pub mod model;
pub mod tensor;

pub use act::Activations;
pub use format::{Fp8Kind, Fp8Scaling, QuantFormat};
pub use fp8_train::{Fp8Tiles, Fp8Training};
pub use linear::QuantLinear;
pub use model::{
    dequantize_decoder, quantize_block, quantize_decoder, quantize_head, set_activations,
    set_fp8_training, Assignment, ModelBytes,
};
pub use tensor::{QuantizedTensor, Scales};
