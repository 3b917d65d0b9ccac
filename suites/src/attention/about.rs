//! What the attention suite is (its name and experiments) and how large it runs at each scale.

use crate::measure::Plan;
use crate::{About, Scale};

/// Suite name.
pub const NAME: &str = "attention";

pub(super) const EXPERIMENTS: [(&str, &str); 5] = [
    (
        "kv_memory",
        "kv_cache_bytes_per_token, analytic and measured from the cache tensors",
    ),
    (
        "flops",
        "flops_per_token of one decode step, analytic, per context length",
    ),
    (
        "decode",
        "decode_latency_ms (layer and core) and kv_read_gbps over context lengths",
    ),
    ("prefill", "prefill_latency_ms of a causal prompt"),
    (
        "equivalence",
        "mla_absorbed_vs_naive_max_abs_diff over a decode run, relative to output scale",
    ),
];

/// What a scale runs.
pub(super) struct Sizes {
    pub contexts: &'static [usize],
    pub prefill: usize,
    pub equivalence: (usize, usize),
    pub plan: Plan,
}

pub(super) fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            contexts: &[64, 128, 256],
            prefill: 64,
            equivalence: (8, 8),
            plan: Plan::new(10, 5, 200, 150),
        },
        Scale::Quick => Sizes {
            contexts: &[256, 512, 1024, 2048, 4096],
            prefill: 256,
            equivalence: (16, 16),
            plan: Plan::new(3, 7, 60, 1200),
        },
        Scale::Full => Sizes {
            contexts: &[512, 1024, 2048, 4096, 8192, 16384, 32768],
            prefill: 2048,
            equivalence: (64, 32),
            plan: Plan::new(5, 10, 200, 5000),
        },
    }
}

/// What the suite is.
pub(super) const ABOUT: About = About {
    name: NAME,
    description: "MLA (naive, absorbed) vs the GQA family (MHA, GQA, MQA): KV memory, decode/prefill latency, KV read bandwidth, FLOPs",
    experiments: &EXPERIMENTS,
};
