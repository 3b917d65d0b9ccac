//! Timing: warm up, then repeat with the backend's sync inside the timed region; summarise with
//! nearest-rank percentiles.

use std::time::{Duration, Instant};

use burn::tensor::{backend::Backend, Tensor};

/// Waits for the backend to finish, keeping `y` alive until then so that lazy backends cannot
/// skip computing it. Every timed closure ends with it; a failed sync is an error.
pub fn sync_keep<B: Backend, const D: usize>(
    device: &B::Device,
    y: Tensor<B, D>,
) -> crate::Result<()> {
    sync::<B>(device)?;
    drop(y);
    Ok(())
}

/// Waits for the backend to finish; a failed sync is an error.
pub fn sync<B: Backend>(device: &B::Device) -> crate::Result<()> {
    B::sync(device).map_err(|e| crate::SuiteError::Backend(format!("sync: {e:?}")))
}

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
    /// Back-to-back calls in one sample of [`time_pair`] (the sample is their mean): for work
    /// of tens of microseconds, where one call is too short for the clock and the scheduler's
    /// jitter would decide the median. 1 unless set with [`Plan::calls_per_sample`].
    pub calls: usize,
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
            calls: 1,
        }
    }

    /// The same plan with `calls` back-to-back calls per sample of [`time_pair`] (at least 1).
    pub const fn calls_per_sample(self, calls: usize) -> Self {
        Plan {
            calls: if calls == 0 { 1 } else { calls },
            ..self
        }
    }
}

/// Fewest samples for which a p90 says more than the maximum (below it, nearest-rank p90 is
/// the largest sample).
pub const P90_MIN_SAMPLES: usize = 10;
/// Fewest samples for a p99.
pub const P99_MIN_SAMPLES: usize = 100;

/// Summary of timed samples, in milliseconds. Tail percentiles are there only with enough
/// samples to differ from the maximum ([`P90_MIN_SAMPLES`], [`P99_MIN_SAMPLES`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub min: f64,
    pub max: f64,
    pub n: usize,
    /// Every sample, in the order taken.
    pub samples: Vec<f64>,
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
            p90: (s.len() >= P90_MIN_SAMPLES).then(|| percentile_nearest_rank(&s, 90.0)),
            p99: (s.len() >= P99_MIN_SAMPLES).then(|| percentile_nearest_rank(&s, 99.0)),
            min: s[0],
            max: s[s.len() - 1],
            n: s.len(),
            samples: samples.to_vec(),
        }
    }
}

/// Times `step` under `plan`. `step` must include the backend sync so that asynchronous
/// backends are timed honestly; `between` runs untimed after each sample (e.g. a cache rollback).
/// Both get `state` (what they share, such as a cache). The first error of either ends the
/// measurement and is returned: no sample is skipped.
pub fn time<S, E, F, G>(
    plan: Plan,
    state: &mut S,
    mut step: F,
    mut between: G,
) -> Result<Summary, E>
where
    F: FnMut(&mut S) -> Result<(), E>,
    G: FnMut(&mut S) -> Result<(), E>,
{
    for _ in 0..plan.warmup {
        step(state)?;
        between(state)?;
    }
    let mut samples = Vec::with_capacity(plan.max_samples);
    let start = Instant::now();
    while samples.len() < plan.max_samples.max(1)
        && (samples.len() < plan.min_samples.max(1) || start.elapsed() < plan.budget)
    {
        let t = Instant::now();
        step(state)?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        between(state)?;
    }
    Ok(Summary::of(&samples))
}

/// Times `a` and `b` alternately in ABBA order (A B, B A, A B, ...), so that slow drifts of the
/// machine and any advantage of going first or second hit both alike; for ratios measured side
/// by side. Each sample of each counts toward `plan`; a sample is the mean of `plan.calls`
/// back-to-back calls. The first error ends the measurement and is returned.
pub fn time_pair<E, F, G>(plan: Plan, mut a: F, mut b: G) -> Result<(Summary, Summary), E>
where
    F: FnMut() -> Result<(), E>,
    G: FnMut() -> Result<(), E>,
{
    for i in 0..plan.warmup {
        if i % 2 == 0 {
            a()?;
            b()?;
        } else {
            b()?;
            a()?;
        }
    }
    let (mut sa, mut sb) = (
        Vec::with_capacity(plan.max_samples),
        Vec::with_capacity(plan.max_samples),
    );
    let calls = plan.calls.max(1);
    let timed = |f: &mut dyn FnMut() -> Result<(), E>, into: &mut Vec<f64>| -> Result<(), E> {
        let t = Instant::now();
        for _ in 0..calls {
            f()?;
        }
        into.push(t.elapsed().as_secs_f64() * 1e3 / calls as f64);
        Ok(())
    };
    let start = Instant::now();
    while sa.len() < plan.max_samples.max(1)
        && (sa.len() < plan.min_samples.max(1) || start.elapsed() < plan.budget)
    {
        if sa.len() % 2 == 0 {
            timed(&mut a, &mut sa)?;
            timed(&mut b, &mut sb)?;
        } else {
            timed(&mut b, &mut sb)?;
            timed(&mut a, &mut sa)?;
        }
    }
    Ok((Summary::of(&sa), Summary::of(&sb)))
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

    /// The order in which `time_pair` under `plan` calls its two sides (`a`, `b`), and the
    /// sample counts it reports.
    fn call_order(plan: Plan) -> (String, usize, usize) {
        let log = std::cell::RefCell::new(String::new());
        let side = |c: char| {
            let log = &log;
            move || -> Result<(), ()> {
                log.borrow_mut().push(c);
                Ok(())
            }
        };
        let (a, b) = time_pair(plan, side('a'), side('b')).unwrap();
        (log.into_inner(), a.n, b.n)
    }

    #[test]
    fn paired_timing_runs_in_abba_order_and_counts_both() {
        // Warm-up ab ba, then timed ab ba ab ba.
        let order = call_order(Plan::new(2, 4, 4, 10000));
        assert_eq!(order, ("abbaabbaabba".to_string(), 4, 4));
    }

    #[test]
    fn batched_samples_call_each_side_back_to_back() {
        // Warm-up ab (one call each), then aaa bbb, bbb aaa.
        let order = call_order(Plan::new(1, 2, 2, 10000).calls_per_sample(3));
        assert_eq!(order, ("abaaabbbbbbaaa".to_string(), 2, 2));
        assert_eq!(Plan::new(1, 1, 1, 1).calls_per_sample(0).calls, 1);
    }

    #[test]
    fn tail_percentiles_only_with_enough_samples() {
        let s = |n: usize| Summary::of(&(1..=n).map(|i| i as f64).collect::<Vec<_>>());
        assert_eq!((s(9).p90, s(9).p99), (None, None));
        assert_eq!((s(10).p90, s(10).p99), (Some(9.0), None));
        assert_eq!((s(100).p90, s(100).p99), (Some(90.0), Some(99.0)));
    }

    #[test]
    fn timing_respects_sample_bounds() {
        let mut calls = 0;
        let plan = Plan::new(2, 3, 5, 10000);
        let s = time::<_, (), _, _>(
            plan,
            &mut calls,
            |c| {
                *c += 1;
                Ok(())
            },
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(s.n, 5);
        assert_eq!(calls, 7);
    }

    #[test]
    fn an_error_inside_a_timed_region_ends_the_measurement() {
        let mut calls = 0;
        let plan = Plan::new(1, 3, 5, 10000);
        let step = |c: &mut i32| {
            *c += 1;
            if *c == 3 {
                Err("refused")
            } else {
                Ok(())
            }
        };
        assert_eq!(
            time(plan, &mut calls, step, |_| Ok(())).err(),
            Some("refused")
        );
        assert_eq!(calls, 3, "nothing ran after the failing sample");
        let mut n = 0;
        let r = time_pair(
            plan,
            || Ok(()),
            || {
                n += 1;
                if n == 2 {
                    Err("b failed")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r.err(), Some("b failed"));
    }
}
