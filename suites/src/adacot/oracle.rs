//! `oracle`: think exactly when the direct answer would be wrong, the best any gate can do with
//! this model. It is the one gate built with the answer key ([`Oracle::new`] takes the labels);
//! like every gate it decides from the problem's tokens alone.

use std::collections::HashMap;

use super::gate::{problem_ids, Decision, FirstStep, Gate, Verdict};
use super::labels::Label;

/// Thinks exactly on the problems whose direct answer is wrong.
pub struct Oracle {
    /// Problem tokens → the direct answer is wrong.
    key: HashMap<Vec<u32>, bool>,
}

impl Oracle {
    /// The oracle of `labels`: it is handed their answer key here.
    pub fn new(labels: &[Label]) -> Self {
        Oracle {
            key: labels
                .iter()
                .map(|l| (problem_ids(l), l.needs_thinking()))
                .collect(),
        }
    }
}

impl Gate for Oracle {
    fn name(&self) -> &'static str {
        "oracle"
    }
    fn decide(&mut self, step: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        let needs = self.key.get(step.prompt).ok_or_else(|| {
            infermark_models::ModelError::InvalidConfig(
                "the oracle was asked about a problem outside its answer key".into(),
            )
        })?;
        Ok(if *needs {
            Decision::Think
        } else {
            Decision::Direct
        }
        .into())
    }
}
