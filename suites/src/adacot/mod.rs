//! The AdaCoT suite (Lou et al., "AdaCoT: Pareto-optimal adaptive chain-of-thought triggering
//! via reinforcement learning", arXiv 2505.11896): when should a model think? The committed
//! `arith` model answers directly (`D:`, right on 1-digit problems, often wrong on 4-digit ones)
//! or with a scratchpad (`T:`, right almost always, ten times the tokens). Every gate decides per
//! problem on three traffic mixes, and the suite records the front between accuracy and response
//! tokens, the gates' precision and recall against the oracle labels, and end-to-end time.
//!
//! Gates (one file each; `never` and `always` are one rule, `fixed`): `never`, `always`, `oracle`,
//! `random` (rate swept, and at each learned
//! gate's own rate), `difficulty` (k swept), `confidence` (τ swept, a failed direct attempt
//! paid for), and `learned`: the `arith-adaptive-l*` checkpoints (SFT on oracle labels,
//! imitation of the oracle decision on a larger table, then RL on the decision token with GRPO
//! at several λ; [`finetune`]) that write their own decision,
//! and `learned-route`, their decision token routed to the base model's answers (the decision
//! alone, on the same answers as every other gate).
//! Deviation from the paper: the table gates are scored on the base model's own greedy answers,
//! generated once per problem and format at batch 1 and timed; a gate's end-to-end time per
//! problem is the time of the generations it chose (both, for a confidence fallback). The
//! learned gate is run end to end.

pub mod about;
pub mod confidence;
pub mod difficulty;
pub mod finetune;
pub mod fixed;
pub mod gate;
pub mod gates_case;
pub mod labels;
pub mod learned;
pub mod oracle;
pub mod random;
pub mod report;
pub mod rl;
pub mod rl_case;
pub mod score;
pub mod slm;
pub mod suite;
pub mod workloads;

pub use about::{adaptive_name, LAMBDAS, NAME};
pub use suite::AdacotSuite;
