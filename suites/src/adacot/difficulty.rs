//! `difficulty`: a hand rule, think when an operand has more than `k` digits.

use super::gate::{Decision, Gate};
use super::labels::Label;

/// Thinks when the larger operand has more than `k` digits.
pub struct Difficulty {
    /// The threshold.
    pub k: u32,
}

impl Gate for Difficulty {
    fn name(&self) -> &'static str {
        "difficulty"
    }
    fn setting(&self) -> Option<(&'static str, String)> {
        Some(("k", self.k.to_string()))
    }
    fn decide(&mut self, l: &Label) -> Decision {
        if l.digits > self.k {
            Decision::Think
        } else {
            Decision::Direct
        }
    }
}
