//! The speculative decoding suite: four drafters (and adaptive γ) against plain decoding of the
//! same target, on three workloads, swept over γ, temperature and batch. For every setting it
//! records what was accepted (rate, α, tokens per target forward, per position), what drafting
//! and verification cost against a target step (c, v), the decode speed of both A/B interleaved,
//! the speedup Leviathan et al.'s theory predicts from those measurements, whether greedy
//! speculation reproduced greedy decoding token for token, and at T > 0 how far sampled
//! speculation's next-token distribution is from plain sampling's.

pub mod ab_run;
pub mod about;
pub mod bound;
mod drafters;
pub mod report;
pub mod sampling;
pub mod setting;
pub mod suite;
pub mod workloads;

pub use about::{DRAFTERS, NAME};
pub use bound::{analytic_speedup, verify_cost_at};
pub use suite::SpeculativeSuite;
