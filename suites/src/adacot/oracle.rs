//! `oracle`: think exactly when the direct answer would be wrong, the best any gate can do with
//! this model (it reads the label, which no real gate can).

use super::gate::{Decision, Gate};
use super::labels::Label;

/// Thinks exactly on the problems whose direct answer is wrong.
pub struct Oracle;

impl Gate for Oracle {
    fn name(&self) -> &'static str {
        "oracle"
    }
    fn decide(&mut self, l: &Label) -> Decision {
        if l.needs_thinking() {
            Decision::Think
        } else {
            Decision::Direct
        }
    }
}
