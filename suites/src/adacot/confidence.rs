//! `confidence`: answer directly, and think after all when the direct answer's least likely
//! token had probability below τ (an early-exit rule in the spirit of DEER, Yang et al. 2025,
//! turned around: the direct attempt comes first). A fallback pays for both attempts.

use super::gate::{Decision, FirstStep, Gate, Verdict};

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
    /// Needs the direct attempt ([`Gate::tries_direct_first`] asks for it).
    fn decide(&mut self, step: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        let attempt = step.direct.ok_or_else(|| {
            infermark_models::ModelError::InvalidConfig(
                "the confidence gate decides after the direct attempt, and got none".into(),
            )
        })?;
        Ok(if attempt.min_prob < self.tau {
            Decision::Think
        } else {
            Decision::Direct
        }
        .into())
    }
    fn tries_direct_first(&self) -> bool {
        true
    }
}
