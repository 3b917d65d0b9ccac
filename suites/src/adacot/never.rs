//! `never`: always answer directly (AdaCoT's No-CoT end of the front).

use super::gate::{Decision, Gate};
use super::labels::Label;

/// Never thinks.
pub struct Never;

impl Gate for Never {
    fn name(&self) -> &'static str {
        "never"
    }
    fn decide(&mut self, _: &Label) -> Decision {
        Decision::Direct
    }
}
