//! What the KV cache suite is (its name and experiments) and how large it runs at each scale.

use crate::measure::Plan;
use crate::{About, Scale};

/// Suite name.
pub const NAME: &str = "kv_cache";

/// Contiguous reservation per sequence (OPT's and the vLLM paper's 2048-token maximum).
pub const MAX_LEN: usize = 2048;

pub(super) struct Sizes {
    pub requests: usize,
    pub budget_tokens: usize,
    pub block_sizes: &'static [usize],
    /// The throughput model: d_model, heads, KV heads, head width, layers, MLP width.
    pub stack: (usize, usize, usize, usize, usize, usize),
    pub decode_plan: Plan,
    pub overhead: (usize, usize, &'static [usize]),
    pub overhead_plan: Plan,
    pub equivalence_steps: usize,
}

/// Back-to-back attention calls per timed sample of the paged-overhead pair: one call at the
/// smoke sizes takes tens of microseconds, too short for one clock reading to be more than
/// scheduler jitter. Recorded as the `calls_per_sample` parameter.
pub(super) const OVERHEAD_CALLS: usize = 16;

pub(super) fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            requests: 100,
            budget_tokens: 8192,
            block_sizes: &[16, 32],
            stack: (256, 4, 2, 64, 2, 1024),
            decode_plan: Plan::new(2, 9, 9, 400),
            overhead: (2, 32, &[256, 1024]),
            overhead_plan: Plan::new(2, 5, 30, 100).calls_per_sample(OVERHEAD_CALLS),
            equivalence_steps: 8,
        },
        Scale::Quick => Sizes {
            requests: 1000,
            budget_tokens: 32768,
            block_sizes: &[8, 16, 32, 64],
            stack: (1024, 16, 4, 64, 4, 4096),
            decode_plan: Plan::new(2, 5, 12, 3000),
            overhead: (8, 128, &[1024, 4096]),
            overhead_plan: Plan::new(3, 10, 60, 1500).calls_per_sample(OVERHEAD_CALLS),
            equivalence_steps: 16,
        },
        Scale::Full => Sizes {
            requests: 5000,
            budget_tokens: 131072,
            block_sizes: &[8, 16, 32, 64],
            stack: (2048, 16, 4, 128, 8, 8192),
            decode_plan: Plan::new(2, 10, 30, 10000),
            overhead: (8, 128, &[1024, 4096, 16384]),
            overhead_plan: Plan::new(5, 20, 200, 4000).calls_per_sample(OVERHEAD_CALLS),
            equivalence_steps: 32,
        },
    }
}

/// What the suite is.
pub(super) const ABOUT: About = About {
    name: NAME,
    description: "paged vs contiguous KV cache: fragmentation, capacity and decode throughput under one budget, prefix sharing, paged read overhead",
    experiments: &[
            (
                "capacity",
                "trace admitted into one KV budget: fragmentation, concurrency, peak bytes",
            ),
            (
                "throughput",
                "decode_tokens_per_s of the GQA decoder at the batch each policy admits",
            ),
            (
                "sharing",
                "kv_bytes_saved_by_sharing for parallel samples and a shared system prompt",
            ),
            (
                "overhead",
                "decode_latency_ms of attention over paged vs contiguous caches, per block size",
            ),
            (
                "equivalence",
                "paged_vs_contiguous_max_abs_diff over a decode run (GQA and MLA rows)",
            ),
        ],
};
