//! What the AdaCoT suite is (its name, λ grid and experiments) and how large it runs at each
//! scale.

use crate::{About, Scale};

/// The suite's name on the command line and in records.
pub const NAME: &str = "adacot";

/// λ of the committed learned gates (`arith-adaptive-l{λ}`).
pub const LAMBDAS: [f64; 4] = [0.1, 0.5, 1.0, 2.0];

/// Stem name of the committed learned gate at `lambda`: λ in hundredths, three digits
/// (`arith-adaptive-l050` for 0.5; no dot, which a file stem would lose to its extension).
pub fn adaptive_name(lambda: f64) -> String {
    format!("arith-adaptive-l{:03}", (lambda * 100.0).round() as u64)
}

pub(super) struct Sizes {
    /// Problems per workload.
    pub problems: usize,
    pub difficulty_k: &'static [u32],
    pub taus: &'static [f64],
    pub rates: &'static [f64],
    /// RL steps per algorithm in the `rl` case.
    pub rl_steps: usize,
    /// GRPO steps per masking setting in the `slm` case.
    pub slm_steps: usize,
    /// Problems in each of the `slm` case's tables.
    pub slm_problems: usize,
}

pub(super) fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            problems: 24,
            difficulty_k: &[1, 2, 3],
            taus: &[0.5, 0.9, 0.99],
            rates: &[0.25, 0.5],
            rl_steps: 4,
            slm_steps: 4,
            slm_problems: 64,
        },
        Scale::Quick => Sizes {
            problems: 400,
            difficulty_k: &[1, 2, 3],
            taus: &[0.3, 0.5, 0.7, 0.9, 0.95, 0.99],
            rates: &[0.1, 0.25, 0.5, 0.75],
            rl_steps: 30,
            slm_steps: 40,
            slm_problems: 512,
        },
        Scale::Full => Sizes {
            problems: 1000,
            difficulty_k: &[1, 2, 3],
            taus: &[0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999],
            rates: &[0.1, 0.25, 0.5, 0.75],
            rl_steps: 200,
            slm_steps: 200,
            slm_problems: 1024,
        },
    }
}

pub(super) const ABOUT: About = About {
    name: NAME,
    description: "adaptive chain-of-thought gating (AdaCoT): never/always/oracle/random/difficulty/confidence/learned gates on arith, the accuracy-tokens front; GRPO vs PPO",
    experiments: &[
        (
            "gates",
            "accuracy, cot_trigger_rate (overall and per digits), mean_response_tokens, token_reduction_vs_always, accuracy_delta_vs_always, gate_precision/recall/f1, end_to_end_latency_ms, problems_per_s, tokens_vs_oracle per (gate, setting, workload)",
        ),
        (
            "rl",
            "rl_step_ms, rl_peak_bytes, rl_reward, rl_reward_per_s of GRPO and PPO (critic of the policy's size) on the decision token",
        ),
        (
            "slm",
            "selective loss masking: cot_trigger_rate, accuracy, mean_response_tokens before and after GRPO on a skewed (mostly hard) set, decision loss masked or not, on that set and on easy-heavy traffic",
        ),
    ],
};
