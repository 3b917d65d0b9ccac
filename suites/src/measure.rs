//! Timing: warm up, then repeat with the backend's sync inside the timed region; summarise with
//! nearest-rank percentiles.

use std::time::{Duration, Instant};

/// How long and how often to time one thing.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Untimed runs first (caches, allocator, lazy initialisation).
    pub warmup: usize,
    /// At least this many timed samples.
    pub min_samples: usize,
    /// At most this many timed samples.
    pub max_samples: usize,
    /// Stop adding samples (above `min_samples`) once this much time was spent timing.
    pub budget: Duration,
}

impl Plan {
    /// `warmup` untimed runs, then between `min_samples` and `max_samples` timed ones, adding
    /// samples above the minimum only while less than `budget_ms` milliseconds were spent.
    pub const fn new(
        warmup: usize,
        min_samples: usize,
        max_samples: usize,
        budget_ms: u64,
    ) -> Self {
        Plan {
            warmup,
            min_samples,
            max_samples,
            budget: Duration::from_millis(budget_ms),
        }
    }
}

/// Summary of timed samples, in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// Nearest-rank percentile (the smallest sample with at least `p`% of samples at or below it).
/// `sorted` must be sorted ascending and non-empty.
pub fn percentile_nearest_rank(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    /// Summarises samples (ms). Panics on an empty slice: every timing has at least one sample.
    pub fn of(samples: &[f64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        Summary {
            median: percentile_nearest_rank(&s, 50.0),
            p90: percentile_nearest_rank(&s, 90.0),
            p99: percentile_nearest_rank(&s, 99.0),
            min: s[0],
            max: s[s.len() - 1],
            n: s.len(),
        }
    }
}

/// Times `step` under `plan`. `step` must include the backend sync so that asynchronous
/// backends are timed honestly; `between` runs untimed after each sample (e.g. a cache rollback).
/// Both get `state` (what they share, such as a cache).
pub fn time<S, F: FnMut(&mut S), G: FnMut(&mut S)>(
    plan: Plan,
    state: &mut S,
    mut step: F,
    mut between: G,
) -> Summary {
    for _ in 0..plan.warmup {
        step(state);
        between(state);
    }
    let mut samples = Vec::with_capacity(plan.max_samples);
    let start = Instant::now();
    while samples.len() < plan.max_samples.max(1)
        && (samples.len() < plan.min_samples.max(1) || start.elapsed() < plan.budget)
    {
        let t = Instant::now();
        step(state);
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        between(state);
    }
    Summary::of(&samples)
}

/// Times `a` and `b` alternately (A B A B ...), so that slow drifts of the machine hit both
/// alike; for ratios measured side by side. Each sample of each counts toward `plan`.
pub fn time_pair<F: FnMut(), G: FnMut()>(plan: Plan, mut a: F, mut b: G) -> (Summary, Summary) {
    for _ in 0..plan.warmup {
        a();
        b();
    }
    let (mut sa, mut sb) = (
        Vec::with_capacity(plan.max_samples),
        Vec::with_capacity(plan.max_samples),
    );
    let start = Instant::now();
    while sa.len() < plan.max_samples.max(1)
        && (sa.len() < plan.min_samples.max(1) || start.elapsed() < plan.budget)
    {
        let t = Instant::now();
        a();
        sa.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        b();
        sb.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (Summary::of(&sa), Summary::of(&sb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_ten() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile_nearest_rank(&s, 50.0), 5.0);
        assert_eq!(percentile_nearest_rank(&s, 90.0), 9.0);
        assert_eq!(percentile_nearest_rank(&s, 99.0), 10.0);
        assert_eq!(percentile_nearest_rank(&s, 0.0), 1.0);
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
    }

    #[test]
    fn paired_timing_alternates_and_counts_both() {
        let log = std::cell::RefCell::new(String::new());
        let plan = Plan::new(1, 2, 2, 10000);
        let (a, b) = time_pair(
            plan,
            || log.borrow_mut().push('a'),
            || log.borrow_mut().push('b'),
        );
        assert_eq!(log.into_inner(), "ababab");
        assert_eq!((a.n, b.n), (2, 2));
    }

    #[test]
    fn timing_respects_sample_bounds() {
        let mut calls = 0;
        let plan = Plan::new(2, 3, 5, 10000);
        let s = time(plan, &mut calls, |c| *c += 1, |_| {});
        assert_eq!(s.n, 5);
        assert_eq!(calls, 7);
    }
}
