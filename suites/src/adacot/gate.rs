//! The gate seam, as the engine defines it ([`infermark_models::generation::gate`]): decide,
//! per problem, whether to answer directly or think first, from the problem's tokens and, for a
//! gate that answers directly first, the model's direct attempt. No gate receives the label;
//! only the oracle is built with the answer key. What a decision costs and earns is the base
//! model's own greedy answer in that format (deterministic), so gates are compared on the very
//! same answers.

pub use infermark_models::generation::gate::{Decision, DirectAttempt, FirstStep, Gate, Verdict};

use super::labels::Label;
use crate::zoo::corpus::tokenize;
use crate::{Result, SuiteError};

/// What a gate's decision gave on one problem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Difficulty bucket.
    pub digits: u32,
    /// The decision; `None` for a learned gate's format error (neither `D` nor `T`).
    pub decision: Option<Decision>,
    /// The final answer was right.
    pub correct: bool,
    /// Response tokens, every attempt counted (a learned gate's decision token included).
    pub tokens: usize,
    /// End-to-end wall time of the generations the decision ran, ms.
    pub ms: f64,
    /// The oracle label: the direct answer is wrong.
    pub needs_thinking: bool,
}

/// The tokens a gate reads for `label`'s problem: `347+85=`, no format control token.
pub fn problem_ids(label: &Label) -> Vec<u32> {
    let p = &label.problem;
    tokenize(&format!("{}{}{}=", p.a, p.op, p.b))
}

/// Runs `gate` over labelled problems: each gate sees the problem's tokens (and the direct
/// attempt if it answers directly first), never the label; the label then scores the decision.
pub fn route(gate: &mut dyn Gate, labels: &[Label]) -> Result<Vec<Outcome>> {
    labels
        .iter()
        .map(|l| {
            let prompt = problem_ids(l);
            let step = FirstStep {
                prompt: &prompt,
                direct: gate.tries_direct_first().then_some(DirectAttempt {
                    tokens: &l.direct_answer,
                    min_prob: l.direct_min_prob,
                }),
            };
            let v = gate.decide(&step).map_err(|error| SuiteError::Model {
                context: format!("gate `{}`", gate.name()),
                error,
            })?;
            let (correct, tokens, ms) = match v.decision {
                Some(Decision::Direct) => (l.direct.correct, l.direct.tokens, l.direct.ms),
                Some(Decision::Think) if gate.tries_direct_first() => (
                    l.think.correct,
                    l.direct.tokens + l.think.tokens,
                    l.direct.ms + l.think.ms,
                ),
                Some(Decision::Think) => (l.think.correct, l.think.tokens, l.think.ms),
                None => (false, 0, 0.0),
            };
            Ok(Outcome {
                digits: l.digits,
                decision: v.decision,
                correct,
                tokens: v.tokens + tokens,
                ms: v.ms + ms,
                needs_thinking: l.needs_thinking(),
            })
        })
        .collect()
}
