//! `always`: always think first (AdaCoT's Full-CoT end of the front, the accuracy reference).

use super::gate::{Decision, Gate};
use super::labels::Label;

/// Always thinks.
pub struct Always;

impl Gate for Always {
    fn name(&self) -> &'static str {
        "always"
    }
    fn decide(&mut self, _: &Label) -> Decision {
        Decision::Think
    }
}
