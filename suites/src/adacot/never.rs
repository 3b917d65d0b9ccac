//! `never`: always answer directly (AdaCoT's No-CoT end of the front).

use super::gate::{Decision, FirstStep, Gate, Verdict};

/// Never thinks.
pub struct Never;

impl Gate for Never {
    fn name(&self) -> &'static str {
        "never"
    }
    fn decide(&mut self, _: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        Ok(Decision::Direct.into())
    }
}
