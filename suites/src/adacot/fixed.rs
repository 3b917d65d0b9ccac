//! The two ends of the front, one rule: `never` (always answer directly, AdaCoT's No-CoT) and
//! `always` (always think first, Full-CoT, the accuracy reference).

use super::gate::{Decision, FirstStep, Gate, Verdict};

/// Makes the same decision on every problem: `Fixed(Decision::Direct)` is `never`,
/// `Fixed(Decision::Think)` is `always`.
pub struct Fixed(pub Decision);

impl Gate for Fixed {
    fn name(&self) -> &'static str {
        match self.0 {
            Decision::Direct => "never",
            Decision::Think => "always",
        }
    }
    fn decide(&mut self, _: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        Ok(self.0.into())
    }
}
