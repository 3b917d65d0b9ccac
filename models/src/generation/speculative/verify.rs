//! The verification rule, tensor-free: a draft of γ tokens and the target's distributions at the
//! γ + 1 positions decide how many drafted tokens are kept and which token comes next.
//!
//! - Greedy (T = 0): keep drafted tokens while each is the target's argmax; the next token is the
//!   target's argmax at the first mismatch, or at the bonus position after γ acceptances. The
//!   output is then token for token what plain greedy decoding of the target gives.
//! - Sampling (Leviathan et al., ICML 2023, Algorithm 1; Chen et al. 2023): keep drafted token x
//!   with probability min(1, p(x)/q(x)); on the first rejection draw from norm(max(0, p − q));
//!   after γ acceptances draw the bonus token from p. The tokens emitted are distributed exactly
//!   as p. `p` and `q` are the processed distributions (temperature, top-k, top-p applied, as
//!   vLLM does) that [`crate::generation::Sampler::probs`] returns; a deterministic drafter has q = a point
//!   mass on its token.

use crate::generation::sampler::{argmax, Sampler};

/// What one verification step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Drafted tokens kept (a prefix of the draft).
    pub accepted: usize,
    /// Drafted tokens offered.
    pub proposed: usize,
    /// The token that follows the kept prefix: the correction at the first rejection, or the
    /// bonus token when every drafted token was kept.
    pub next_token: u32,
}

impl Outcome {
    /// Tokens this step adds to the text: the kept draft and the next token.
    pub fn emitted(&self) -> usize {
        self.accepted + 1
    }
}

/// Greedy verification.
///
/// `target` holds the target's logits (or probabilities) at the γ + 1 positions: row `i` is the
/// distribution of the token after the text plus `drafted[..i]`.
///
/// # Panics
/// When `target` does not have exactly `drafted.len() + 1` rows.
pub fn verify_greedy(target: &[Vec<f32>], drafted: &[u32]) -> Outcome {
    assert_eq!(target.len(), drafted.len() + 1, "γ + 1 target rows");
    let accepted = drafted
        .iter()
        .zip(target)
        .take_while(|(&d, row)| argmax(row) == d)
        .count();
    Outcome {
        accepted,
        proposed: drafted.len(),
        next_token: argmax(&target[accepted]),
    }
}

/// Whether a drafted token with target probability `p` and draft probability `q` is kept by the
/// uniform draw `u` in [0, 1): `u < min(1, p / q)`, written without a division. A token the
/// drafter could not have drawn (`q = 0`) is never kept.
pub fn accepts(p: f32, q: f32, u: f64) -> bool {
    q > 0.0 && u * (q as f64) < p as f64
}

/// The distribution drawn from after a rejection: norm(max(0, p − q)). Where p ≤ q everywhere
/// (p = q), it is p itself, which the rule then never needs.
pub fn residual(p: &[f32], q: &[f32]) -> Vec<f32> {
    assert_eq!(p.len(), q.len(), "p and q over the same vocabulary");
    let r: Vec<f32> = p.iter().zip(q).map(|(&a, &b)| (a - b).max(0.0)).collect();
    let z: f32 = r.iter().sum();
    if z > 0.0 {
        r.iter().map(|x| x / z).collect()
    } else {
        p.to_vec()
    }
}

/// Rejection-sampling verification.
///
/// `p` holds the target's processed distributions at the γ + 1 positions; `q` the drafter's at
/// the γ drafted positions, or `None` for a deterministic drafter (a point mass on each drafted
/// token). Uniforms and draws come from `sampler`'s seeded generator.
///
/// # Panics
/// When `p` does not have γ + 1 rows or `q` does not have γ.
pub fn verify_sampled(
    p: &[Vec<f32>],
    q: Option<&[Vec<f32>]>,
    drafted: &[u32],
    sampler: &mut Sampler,
) -> Outcome {
    let gamma = drafted.len();
    assert_eq!(p.len(), gamma + 1, "γ + 1 target rows");
    if let Some(q) = q {
        assert_eq!(q.len(), gamma, "γ draft rows");
    }
    for (i, &x) in drafted.iter().enumerate() {
        let x = x as usize;
        let q_row = q.map(|q| q[i].clone()).unwrap_or_else(|| {
            let mut m = vec![0f32; p[i].len()];
            m[x] = 1.0;
            m
        });
        if !accepts(p[i][x], q_row[x], sampler.uniform()) {
            let next = sampler.draw(&residual(&p[i], &q_row));
            return Outcome {
                accepted: i,
                proposed: gamma,
                next_token: next,
            };
        }
    }
    Outcome {
        accepted: gamma,
        proposed: gamma,
        next_token: sampler.draw(&p[gamma]),
    }
}
