//! Scores of a gate's outcomes: accuracy, trigger rate (overall and per bucket), tokens, the
//! gate's precision and recall against the oracle labels (positive = needs thinking, predicted
//! positive = decided to think; AdaCoT Table 1), and end-to-end time.

use std::collections::BTreeMap;

use super::gate::{Decision, Outcome};
use crate::measure::Summary;

/// Accuracy and trigger rate of one bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Problems.
    pub n: usize,
    /// Share answered right.
    pub accuracy: f64,
    /// Share the gate thought on.
    pub trigger_rate: f64,
    /// Response tokens per problem (every attempt counted): median, min, p90 where n ≥ 10.
    pub tokens: Summary,
}

/// Everything recorded per gate and workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// Problems.
    pub n: usize,
    /// Share answered right.
    pub accuracy: f64,
    /// Share the gate thought on (format errors are not thinking).
    pub trigger_rate: f64,
    /// Mean response tokens, every attempt counted.
    pub mean_tokens: f64,
    /// Of the problems thought on, the share that needed it; `None` when it never thought.
    pub precision: Option<f64>,
    /// Of the problems that needed thinking, the share thought on; `None` when none needed it.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall, where both exist and are not both 0.
    pub f1: Option<f64>,
    /// Decisions that were neither `D` nor `T` (learned gate only).
    pub format_errors: usize,
    /// Per bucket (digits of the larger operand).
    pub buckets: BTreeMap<u32, Bucket>,
    /// Per-problem end-to-end time, ms.
    pub latency: Summary,
    /// Problems / total end-to-end time.
    pub problems_per_s: f64,
}

fn share(k: usize, n: usize) -> f64 {
    k as f64 / n.max(1) as f64
}

/// Scores outcomes; `None` when there are none.
pub fn score(o: &[Outcome]) -> Option<Score> {
    if o.is_empty() {
        return None;
    }
    let n = o.len();
    let think = |x: &Outcome| x.decision == Some(Decision::Think);
    let right = o.iter().filter(|x| x.correct).count();
    let thought = o.iter().filter(|x| think(x)).count();
    let positives = o.iter().filter(|x| x.needs_thinking).count();
    let tp = o.iter().filter(|x| think(x) && x.needs_thinking).count();
    let precision = (thought > 0).then(|| share(tp, thought));
    let recall = (positives > 0).then(|| share(tp, positives));
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        _ => None,
    };
    let mut buckets = BTreeMap::new();
    let mut digits: Vec<u32> = o.iter().map(|x| x.digits).collect();
    digits.sort_unstable();
    digits.dedup();
    for d in digits {
        let b: Vec<&Outcome> = o.iter().filter(|x| x.digits == d).collect();
        buckets.insert(
            d,
            Bucket {
                n: b.len(),
                accuracy: share(b.iter().filter(|x| x.correct).count(), b.len()),
                trigger_rate: share(b.iter().filter(|x| think(x)).count(), b.len()),
                tokens: Summary::of(&b.iter().map(|x| x.tokens as f64).collect::<Vec<_>>()),
            },
        );
    }
    let ms: Vec<f64> = o.iter().map(|x| x.ms).collect();
    let total_s: f64 = ms.iter().sum::<f64>() / 1e3;
    Some(Score {
        n,
        accuracy: share(right, n),
        trigger_rate: share(thought, n),
        mean_tokens: o.iter().map(|x| x.tokens as f64).sum::<f64>() / n as f64,
        precision,
        recall,
        f1,
        format_errors: o.iter().filter(|x| x.decision.is_none()).count(),
        buckets,
        latency: Summary::of(&ms),
        problems_per_s: n as f64 / total_s.max(1e-12),
    })
}
