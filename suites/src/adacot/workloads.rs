//! Traffic mixes: problems drawn bucket by bucket from a difficulty distribution, each from its
//! own seed (never a training seed: the corpus uses 1 and 2, the lm suite's test problems 3, the
//! adaptive fine-tuning 11 to 13).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::zoo::corpus::{problem, Problem, BUCKETS};

/// A traffic mix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    /// Name in records.
    pub name: &'static str,
    /// Probability of each bucket (1 to 4 digits).
    pub mix: [f64; 4],
    /// Seed of its problems.
    pub seed: u64,
}

/// The mixes: mostly 1-digit problems (AdaCoT's mobile traffic), mostly 4-digit ones, and a
/// uniform one for the gates' precision and recall.
pub const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "easy-heavy",
        mix: [0.70, 0.20, 0.07, 0.03],
        seed: 1201,
    },
    Workload {
        name: "hard-heavy",
        mix: [0.03, 0.07, 0.20, 0.70],
        seed: 1202,
    },
    Workload {
        name: "balanced",
        mix: [0.25, 0.25, 0.25, 0.25],
        seed: 1203,
    },
];

/// Looks a workload up by name.
pub fn find(name: &str) -> Option<Workload> {
    WORKLOADS.iter().copied().find(|w| w.name == name)
}

impl Workload {
    /// `n` problems of the mix.
    pub fn problems(&self, n: usize) -> Vec<Problem> {
        sample(&self.mix, self.seed, n)
    }
}

/// `n` problems with bucket probabilities `mix`, from `seed`.
pub fn sample(mix: &[f64; 4], seed: u64, n: usize) -> Vec<Problem> {
    let mut rng = StdRng::seed_from_u64(seed);
    let total: f64 = mix.iter().sum();
    (0..n)
        .map(|_| {
            let mut x = rng.random::<f64>() * total;
            let mut bucket = BUCKETS[BUCKETS.len() - 1];
            for (b, w) in BUCKETS.iter().zip(mix) {
                if x < *w {
                    bucket = *b;
                    break;
                }
                x -= w;
            }
            problem(&mut rng, bucket)
        })
        .collect()
}
