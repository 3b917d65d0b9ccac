//! `confidence`: answer directly, and think after all when the direct answer's least likely
//! token had probability below τ (an early-exit rule in the spirit of DEER, Yang et al. 2025,
//! turned around: the direct attempt comes first). A fallback pays for both attempts.

use super::gate::{Decision, Gate};
use super::labels::Label;

/// Falls back to thinking when the direct answer's minimum token probability is below `tau`.
pub struct Confidence {
    /// The threshold τ.
    pub tau: f64,
}

impl Gate for Confidence {
    fn name(&self) -> &'static str {
        "confidence"
    }
    fn setting(&self) -> Option<(&'static str, String)> {
        Some(("tau", self.tau.to_string()))
    }
    fn decide(&mut self, l: &Label) -> Decision {
        if l.direct_min_prob < self.tau {
            Decision::Think
        } else {
            Decision::Direct
        }
    }
    fn tries_direct_first(&self) -> bool {
        true
    }
}
