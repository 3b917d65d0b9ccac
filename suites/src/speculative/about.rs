//! What the speculative suite is (its name, drafters and experiments) and how large it runs at
//! each scale.

use crate::measure::Plan;
use crate::{About, Scale};

/// The suite's name on the command line and in records.
pub const NAME: &str = "speculative";

/// Drafter variants: the trained draft model (fixed and adaptive γ), the target quantized to
/// INT4 g32, the target's first blocks, prompt lookup, and the real model's trained EAGLE head.
pub const DRAFTERS: [&str; 6] = [
    "draft",
    "draft-adaptive",
    "int4-self",
    "layer-skip",
    "prompt-lookup",
    "eagle",
];

/// Largest γ adaptive drafting may grow to.
pub(super) const ADAPTIVE_MAX: usize = 16;

pub(super) struct Sizes {
    pub gammas: &'static [usize],
    pub temperatures: &'static [f32],
    pub batches: &'static [usize],
    /// Prompts per workload (decoded in groups of `batch`).
    pub prompts: usize,
    /// New tokens per prompt.
    pub max_new: usize,
    /// A/B repetitions of the whole workload.
    pub reps: usize,
    /// Timing of c and v.
    pub plan: Plan,
    /// Next-token draws per side of the sampling distance.
    pub tv_draws: usize,
}

pub(super) fn sizes(scale: Scale, real: bool) -> Sizes {
    match (scale, real) {
        (Scale::Smoke, false) => Sizes {
            gammas: &[2, 4],
            temperatures: &[0.0, 1.0],
            batches: &[1, 2],
            prompts: 2,
            max_new: 24,
            reps: 2,
            plan: Plan::new(2, 5, 15, 20),
            tv_draws: 4000,
        },
        (Scale::Quick, false) => Sizes {
            gammas: &[1, 2, 3, 4, 6, 8],
            temperatures: &[0.0, 0.7, 1.0],
            batches: &[1, 4],
            prompts: 4,
            max_new: 48,
            reps: 3,
            plan: Plan::new(3, 15, 60, 120),
            tv_draws: 20_000,
        },
        (Scale::Full, false) => Sizes {
            gammas: &[1, 2, 3, 4, 6, 8],
            temperatures: &[0.0, 0.7, 1.0],
            batches: &[1, 4, 8],
            prompts: 8,
            max_new: 128,
            reps: 5,
            plan: Plan::new(5, 30, 200, 1000),
            tv_draws: 100_000,
        },

        // The real model decodes ~40 tokens/s on a 2-core CPU: smaller sweeps.
        (Scale::Smoke, true) => Sizes {
            gammas: &[4],
            temperatures: &[0.0],
            batches: &[1],
            prompts: 1,
            max_new: 16,
            reps: 1,
            plan: Plan::new(1, 3, 3, 50),
            tv_draws: 0,
        },
        // Four prompts: one 48-token continuation holds too few drafting steps for α and τ.
        (Scale::Quick, true) => Sizes {
            gammas: &[2, 4],
            temperatures: &[0.0],
            batches: &[1],
            prompts: 4,
            max_new: 48,
            reps: 2,
            plan: Plan::new(1, 5, 10, 300),
            tv_draws: 0,
        },
        (Scale::Full, true) => Sizes {
            gammas: &[1, 2, 3, 4, 6, 8],
            temperatures: &[0.0, 0.7, 1.0],
            batches: &[1, 4],
            prompts: 4,
            max_new: 64,
            reps: 3,
            plan: Plan::new(2, 10, 30, 2000),
            tv_draws: 20_000,
        },
    }
}

/// What the suite is.
pub(super) const ABOUT: About = About {
    name: NAME,
    description: "speculative decoding: draft model, INT4 self-draft, layer skip, prompt lookup and an EAGLE head against plain decoding; acceptance, cost ratios, measured vs analytic speedup, greedy exactness",
    experiments: &[
        (
            "acceptance",
            "acceptance_rate, acceptance_alpha, mean_accepted_length (bonus included), acceptance_at_position per (workload, γ, T, batch)",
        ),
        (
            "cost",
            "draft_cost_ratio c and verify_cost_ratio v (per γ) against a one-token target step",
        ),
        (
            "speed",
            "decode_tokens_per_s plain and speculative (A/B interleaved), speculative_speedup, analytic_speedup, speedup_vs_bound",
        ),
        (
            "exactness",
            "greedy_exact (and first_divergence_index) at T = 0; sampling_tv_distance at T > 0",
        ),
    ],
};
