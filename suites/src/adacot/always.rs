//! `always`: always think first (AdaCoT's Full-CoT end of the front, the accuracy reference).

use super::gate::{Decision, FirstStep, Gate, Verdict};

/// Always thinks.
pub struct Always;

impl Gate for Always {
    fn name(&self) -> &'static str {
        "always"
    }
    fn decide(&mut self, _: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        Ok(Decision::Think.into())
    }
}
