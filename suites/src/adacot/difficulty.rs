//! `difficulty`: a hand rule, think when an operand has more than `k` digits.

use super::gate::{Decision, FirstStep, Gate, Verdict};
use crate::zoo::corpus::detokenize;

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
    /// Digits of the larger operand, read from the problem's tokens.
    fn decide(&mut self, step: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        let text = detokenize(step.prompt);
        let digits = text
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .filter(|&d| d > 0)
            .ok_or_else(|| {
                infermark_models::ModelError::InvalidConfig(format!(
                    "the difficulty gate found no operand in the problem {text:?}"
                ))
            })? as u32;
        Ok(if digits > self.k {
            Decision::Think
        } else {
            Decision::Direct
        }
        .into())
    }
}
