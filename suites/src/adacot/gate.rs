//! The gate seam: decide, per problem, whether to answer directly or think first. A gate sees
//! the prompt (the problem) and, if it likes, the model's own first-step outputs (its direct
//! attempt's token probabilities); only the oracle reads the oracle label. What a decision costs
//! and earns is the base model's own greedy answer in that format (deterministic), so gates are
//! compared on the very same answers.

use super::labels::Label;

/// Answer directly or think first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `D`: the answer right away.
    Direct,
    /// `T`: the scratchpad, then the answer.
    Think,
}

/// A thinking gate.
pub trait Gate {
    /// Variant name in records.
    fn name(&self) -> &'static str;
    /// The swept setting, if any (`("k", "2")`), a record param.
    fn setting(&self) -> Option<(&'static str, String)> {
        None
    }
    /// The decision for one problem.
    fn decide(&mut self, label: &Label) -> Decision;
    /// The gate answers directly first and thinks only after looking at that answer, so a
    /// `Think` decision also pays for the direct attempt (tokens and time).
    fn tries_direct_first(&self) -> bool {
        false
    }
}

/// What a gate's decision gave on one problem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Difficulty bucket.
    pub digits: u32,
    /// The decision; `None` for a learned gate's format error (neither `D` nor `T`).
    pub decision: Option<Decision>,
    /// The final answer was right.
    pub correct: bool,
    /// Response tokens, every attempt counted.
    pub tokens: usize,
    /// End-to-end wall time of the generations the decision ran, ms.
    pub ms: f64,
    /// The oracle label: the direct answer is wrong.
    pub needs_thinking: bool,
}

/// Runs `gate` over labelled problems.
pub fn route(gate: &mut dyn Gate, labels: &[Label]) -> Vec<Outcome> {
    labels
        .iter()
        .map(|l| {
            let d = gate.decide(l);
            let (correct, tokens, ms) = match d {
                Decision::Direct => (l.direct.correct, l.direct.tokens, l.direct.ms),
                Decision::Think if gate.tries_direct_first() => (
                    l.think.correct,
                    l.direct.tokens + l.think.tokens,
                    l.direct.ms + l.think.ms,
                ),
                Decision::Think => (l.think.correct, l.think.tokens, l.think.ms),
            };
            Outcome {
                digits: l.digits,
                decision: Some(d),
                correct,
                tokens,
                ms,
                needs_thinking: l.needs_thinking(),
            }
        })
        .collect()
}
