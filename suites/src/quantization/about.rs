//! What the quantization suite is (its name, variants and experiments) and how large it runs at
//! each scale.

use infermark_models::quant::{Assignment, Fp8Kind, Fp8Scaling, QuantFormat};

use crate::measure::Plan;
use crate::{About, Scale};

/// The suite's name on the command line and in records.
pub const NAME: &str = "quantization";

/// The mixed-precision variant: FP8 E4M3 (per channel) attention, INT4 (groups of 32) MLP,
/// FP32 embeddings and head.
pub const MIXED: &str = "mixed-fp8-int4";

/// The FP8-training variant: the `target` recipe trained in FP32 and in simulated FP8, side by
/// side.
pub const FP8_TRAINING: &str = "fp8-training";

pub(crate) fn mixed() -> Assignment {
    Assignment {
        attention: QuantFormat::Fp8(Fp8Kind::E4M3, Fp8Scaling::Channel),
        mlp: QuantFormat::Int4 {
            group: 32,
            asym: false,
        },
    }
}

pub(super) struct Sizes {
    /// Side of the square Gaussian test matrix and of the large speed layer.
    pub big: usize,
    /// Rows of the prefill-shaped product.
    pub prefill_rows: usize,
    /// Validation bytes scored.
    pub valid_bytes: usize,
    pub plan: Plan,
}

pub(super) fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            big: 512,
            prefill_rows: 64,
            valid_bytes: 4 << 10,
            plan: Plan::new(1, 3, 20, 30),
        },
        Scale::Quick => Sizes {
            big: 4096,
            prefill_rows: 512,
            valid_bytes: 32 << 10,
            plan: Plan::new(3, 15, 60, 600),
        },
        Scale::Full => Sizes {
            big: 4096,
            prefill_rows: 512,
            valid_bytes: 64 << 10,
            plan: Plan::new(5, 30, 200, 3000),
        },
    }
}

/// Variant names: every format, then the mixed assignment.
pub(super) fn variant_names() -> Vec<String> {
    let mut v: Vec<String> = QuantFormat::all().iter().map(|f| f.name()).collect();
    v.push(MIXED.into());
    v
}

/// What the suite is.
pub(super) const ABOUT: About = About {
    name: NAME,
    description: "FP8 (E4M3, E5M2), INT8, INT4 and Q4_0 weights against FP32: bits per weight, tensor error, perplexity/KL/top-1 on the trained target model, decode and prefill speed; FP8 mixed-precision training against FP32",
    experiments: &[
            ("tensor", "bits_per_weight, weight_rmse, weight_max_abs_err, exact_roundtrip, sqnr_db"),
            (
                "model",
                "perplexity, perplexity_delta_pct, kl_divergence_mean/p99, top1_agreement, model_bytes, compression_vs_fp32 on target; on the real model per method (rtn, imatrix, gptq, awq: calibrated on the Debian Policy Manual) with quantize_seconds",
            ),
            (
                "speed",
                "matvec_latency_ms (1 row), matmul_latency_ms (prefill rows) and speedup_vs_f32 per format, FP32 alongside",
            ),
            ("decode", "decode_tokens_per_s of target with quantized projections, FP32 alongside"),
            (
                "training",
                "valid_loss and train_loss per validation step and after training, train_tokens_per_s, valid_loss_gap_pct (FP8 against FP32, final, per step, max and min) of target trained in FP32 and in simulated FP8 (DeepSeek-V3 tiles), same seed and steps",
            ),
            (
                "activations",
                "matvec_latency_ms of the big layer with f32 and with int8 activations, alternately (integer formats)",
            ),
        ],
};
