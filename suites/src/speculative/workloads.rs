//! The speculative suite's workloads: prompts for a target model, each meant to stress
//! speculation differently.
//!
//! - `stories`: continuation of validation-split story text (the `target` model's own domain;
//!   the trained `draft` model's too).
//! - `arith`: step-by-step (`T:`) arithmetic on the `arith` model: the scratchpad is very
//!   predictable, and repeats the prompt's digits (good for prompt lookup).
//! - `grounded`: a validation passage, a newline, then the passage's first words again: the
//!   continuation can repeat spans of the prompt (the "rewrite this" shape where prompt lookup
//!   shines on real models).
//! - `real-text` and `real-grounded`: the same two shapes on the real model (SmolLM2-135M,
//!   fetched by `ci/fetch-models.sh`) with passages of real text (its licence, or `--text`),
//!   tokenized by the model's own BPE tokenizer.

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::zoo::corpus::{self, tokenize, Format};

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Stories,
    Arith,
    Grounded,
    RealText,
    RealGrounded,
}

/// Seed of the arithmetic problems (disjoint from training, validation and the lm suite's test
/// problems).
const PROBLEM_SEED: u64 = 11;

/// Prompt tokens of the story and grounded workloads' passages.
const PASSAGE: usize = 64;

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Workload::Stories,
        Workload::Arith,
        Workload::Grounded,
        Workload::RealText,
        Workload::RealGrounded,
    ];

    /// Name used on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Stories => "stories",
            Workload::Arith => "arith",
            Workload::Grounded => "grounded",
            Workload::RealText => "real-text",
            Workload::RealGrounded => "real-grounded",
        }
    }

    /// Whether it runs on the real model.
    pub fn is_real(self) -> bool {
        matches!(self, Workload::RealText | Workload::RealGrounded)
    }

    /// The workload named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The committed target model it runs on.
    pub fn target(self) -> &'static str {
        match self {
            Workload::Arith => "arith",
            Workload::Stories | Workload::Grounded => "target",
            Workload::RealText | Workload::RealGrounded => crate::zoo::real::REAL,
        }
    }

    /// Tokens that end a continuation.
    pub fn stop(self) -> Vec<u32> {
        match self {
            Workload::Arith => vec![b'\n' as u32],
            _ => Vec::new(),
        }
    }

    /// `n` prompts of the real workloads: passages of `PASSAGE` tokens of `text` (tokenized),
    /// spread over it; `real-grounded` adds a newline and the passage's first 12 tokens.
    pub fn real_prompts(self, n: usize, text: &[u32], newline: &[u32]) -> Vec<Vec<u32>> {
        let stride = text.len().saturating_sub(PASSAGE) / n.max(1);
        (0..n)
            .map(|i| {
                let passage = &text[i * stride..(i * stride + PASSAGE).min(text.len())];
                let mut p = passage.to_vec();
                if self == Workload::RealGrounded {
                    p.extend_from_slice(newline);
                    p.extend_from_slice(&passage[..12.min(passage.len())]);
                }
                p
            })
            .collect()
    }

    /// `n` prompts (the byte-level workloads; see [`Workload::real_prompts`] for the others).
    pub fn prompts(self, n: usize) -> Vec<Vec<u32>> {
        match self {
            Workload::RealText | Workload::RealGrounded => {
                panic!("real workloads take their prompts from real_prompts")
            }
            Workload::Stories | Workload::Grounded => {
                let text = tokenize(&corpus::stories_split().valid);
                // Passages start after a sentence end, spread over the split.
                let stride = text.len() / (n + 1);
                (0..n)
                    .map(|i| {
                        let from = sentence_start(&text, i * stride);
                        let passage = &text[from..from + PASSAGE];
                        match self {
                            Workload::Stories => passage.to_vec(),
                            _ => {
                                let mut p = passage.to_vec();
                                p.push(b'\n' as u32);
                                p.extend_from_slice(&passage[..12]);
                                p
                            }
                        }
                    })
                    .collect()
            }
            Workload::Arith => {
                let mut rng = StdRng::seed_from_u64(PROBLEM_SEED);
                (0..n)
                    .map(|i| {
                        let p = corpus::problem(&mut rng, 3 + (i % 2) as u32);
                        tokenize(&format!("\n{}", p.prompt(Format::Think)))
                    })
                    .collect()
            }
        }
    }
}

/// The first token after the first ". " at or after `from`.
fn sentence_start(text: &[u32], from: usize) -> usize {
    let (dot, space) = (b'.' as u32, b' ' as u32);
    (from..text.len() - 1)
        .find(|&i| text[i] == dot && text[i + 1] == space)
        .map_or(from, |i| i + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_have_the_documented_shapes() {
        for w in Workload::ALL.into_iter().filter(|w| !w.is_real()) {
            let ps = w.prompts(3);
            assert_eq!(ps.len(), 3, "{}", w.name());
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
        let g = Workload::Grounded.prompts(2);
        assert_eq!(g[0].len(), PASSAGE + 13);
        assert_eq!(&g[0][PASSAGE + 1..], &g[0][..12]);
        let a = corpus::detokenize(&Workload::Arith.prompts(1)[0]);
        assert!(a.starts_with("\nT:") && a.ends_with('='), "{a:?}");
        let text: Vec<u32> = (0..500).collect();
        let r = Workload::RealGrounded.real_prompts(2, &text, &[9999]);
        assert_eq!(r[1].len(), PASSAGE + 13);
        assert_eq!(r[1][0], 218);
        assert_eq!(&r[1][PASSAGE..PASSAGE + 1], &[9999]);
        assert_eq!(
            Workload::RealText.real_prompts(2, &text, &[9999])[0].len(),
            PASSAGE
        );
    }
}
