//! What the lm suite is (its name, models and experiments) and how large it runs at each scale.

use crate::{About, Scale};

/// The suite's name on the command line and in records.
pub const NAME: &str = "lm";

/// The committed models, evaluated by `infermark run`.
pub const MODELS: [&str; 5] = ["target", "target-mha", "target-mla", "draft", "arith"];

/// Seed of the arithmetic test problems (disjoint from the training and validation streams).
pub const TEST_SEED: u64 = 3;

pub(super) struct Sizes {
    /// Validation bytes scored (the whole split is 64 KiB).
    pub valid_bytes: usize,
    /// Arithmetic problems per bucket and format.
    pub problems: usize,
}

pub(super) fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            valid_bytes: 4 << 10,
            problems: 4,
        },
        Scale::Quick => Sizes {
            valid_bytes: 64 << 10,
            problems: 50,
        },
        Scale::Full => Sizes {
            valid_bytes: 64 << 10,
            problems: 250,
        },
    }
}

/// The experiment that scores a model on its validation text (it shares its name with the
/// quantization suite's `perplexity` metric; records say which by their `metric` field).
pub const PERPLEXITY_EXPERIMENT: &str = "perplexity";

/// What the suite is.
pub(super) const ABOUT: About = About {
    name: NAME,
    description: "trained reference models: validation perplexity vs the unigram baseline, arithmetic accuracy direct vs step by step",
    experiments: &[
            (
                PERPLEXITY_EXPERIMENT,
                "valid_perplexity and unigram_perplexity on the validation split",
            ),
            (
                "arith",
                "arith_accuracy and arith_generated_tokens per bucket and format",
            ),
            (
                "speed",
                "real model: prefill/decode_tokens_per_s and weight_read_gbps, f32, native and Q4_K_M (re-quantized by infermark) weights, f32 and int8 activations (A/B pairs)",
            ),
            (
                "profile",
                "real model: step_time_share per part of a batch-1 decode step, and the step's decode_latency_ms",
            ),
        ],
};
