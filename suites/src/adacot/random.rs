//! `random`: think with a fixed probability, seeded; at the learned gate's trigger rate it shows
//! what learning *which* problems to think on buys.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::gate::{Decision, FirstStep, Gate, Verdict};

/// Thinks with probability `rate`.
pub struct Random {
    rate: f64,
    rng: StdRng,
}

impl Random {
    /// A random gate thinking with probability `rate` (clamped to [0, 1]), from `seed`.
    pub fn new(rate: f64, seed: u64) -> Self {
        Random {
            rate: rate.clamp(0.0, 1.0),
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Gate for Random {
    fn name(&self) -> &'static str {
        "random"
    }
    fn setting(&self) -> Option<(&'static str, String)> {
        Some(("rate", format!("{:.3}", self.rate)))
    }
    fn decide(&mut self, _: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        Ok(if self.rng.random_bool(self.rate) {
            Decision::Think
        } else {
            Decision::Direct
        }
        .into())
    }
}
