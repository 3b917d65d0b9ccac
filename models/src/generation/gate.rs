//! The first-step hook of adaptive reasoning (AdaCoT, Lou et al. 2025): before the engine
//! generates an answer, a [`Gate`] decides whether to answer directly or think first, from the
//! request and the model's own outputs on it ([`FirstStep`]).
//!
//! A gate cannot read the answer key: [`FirstStep`] holds the prompt and model outputs only, so
//! no gate can see whether an answer is right. A gate that needs the key (the oracle) has to be
//! handed it when it is built, where a reader sees it:
//!
//! ```compile_fail
//! use infermark_models::generation::gate::FirstStep;
//! // There is no label in what a gate receives: this does not compile.
//! fn peek(step: &FirstStep<'_>) -> bool {
//!     step.correct
//! }
//! ```

/// Answer directly or think first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `D`: the answer right away.
    Direct,
    /// `T`: the scratchpad, then the answer.
    Think,
}

/// The model's direct attempt, for a gate that answers directly first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirectAttempt<'a> {
    /// The greedy direct answer's tokens.
    pub tokens: &'a [u32],
    /// The smallest probability the model gave any of them (teacher-forced).
    pub min_prob: f64,
}

/// What a gate sees of one request when it decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirstStep<'a> {
    /// The request's tokens, with no format control token (arithmetic: `347+85=`).
    pub prompt: &'a [u32],
    /// The direct attempt: present only for a gate that [`Gate::tries_direct_first`], which
    /// pays for it.
    pub direct: Option<DirectAttempt<'a>>,
}

/// A gate's decision and what deciding itself cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// The decision; `None` when the gate gave none (a learned gate's format error).
    pub decision: Option<Decision>,
    /// Tokens generated to decide (a learned gate's decision token).
    pub tokens: usize,
    /// Wall time of deciding, ms (0 for rules).
    pub ms: f64,
}

impl From<Decision> for Verdict {
    /// A rule's decision: free.
    fn from(d: Decision) -> Self {
        Verdict {
            decision: Some(d),
            tokens: 0,
            ms: 0.0,
        }
    }
}

/// A thinking gate.
pub trait Gate {
    /// Variant name in records.
    fn name(&self) -> &'static str;
    /// The swept setting, if any (`("k", "2")`), a record param.
    fn setting(&self) -> Option<(&'static str, String)> {
        None
    }
    /// The decision for one request.
    fn decide(&mut self, step: &FirstStep<'_>) -> crate::Result<Verdict>;
    /// The gate answers directly first and decides after looking at that answer, so a `Think`
    /// decision also pays for the direct attempt (tokens and time).
    fn tries_direct_first(&self) -> bool {
        false
    }
}
