//! 95% confidence intervals for timed claims, distribution-free and exact at small n.
//!
//! - One record (a median of samples, e.g. a speedup over repetitions): the order-statistic
//!   interval of the median from the sign test: `[x(k), x(n+1−k)]` covers the population median
//!   with probability `1 − 2·P(B ≤ k−1)`, `B ~ Binomial(n, ½)`, for any continuous
//!   distribution. It exists at 95% from n = 6 on.
//! - Two records (a ratio of two timed medians): the Hodges–Lehmann/Moses interval of the shift
//!   between the two samples' logarithms, from the exact Mann–Whitney distribution:
//!   `[D(k), D(mn+1−k)]` of the `m·n` sorted differences `ln aᵢ − ln bⱼ`, with `k` the largest
//!   rank such that `P(U ≤ k−1) ≤ 2.5%`. It covers the true ratio when the two distributions
//!   differ by a factor (a shift in log scale), whatever their shape; pairing in time is not
//!   assumed, so machine drifts widen it rather than bias it. It exists at 95% from m = n = 4.
//!
//! Both are exact: no bootstrap, no normal approximation below 2,500 pairs (above it the
//! Mann–Whitney normal approximation with continuity correction, where it is accurate).

/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// A confidence interval and the level it attains (at least [`LEVEL`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
    /// The exact coverage of the order-statistic interval (≥ [`LEVEL`]).
    pub coverage: f64,
}

/// Why no interval.
#[derive(Clone, Debug, PartialEq)]
pub enum NoInterval {
    /// Too few samples for a 95% distribution-free interval: the smallest one needs `needs`
    /// (per side).
    TooFew { needs: usize },
    /// A sample is not finite (or, for a ratio, not positive): nothing to order or divide.
    BadSample(f64),
}
use NoInterval::{BadSample, TooFew};

/// `P(B ≤ j)` for `B ~ Binomial(n, ½)`.
fn binom_cdf_half(n: usize, j: usize) -> f64 {
    let mut p = 0.5f64.powi(n as i32);
    let mut sum = 0.0;
    for i in 0..=j.min(n) {
        sum += p;
        p *= (n - i) as f64 / (i + 1) as f64;
    }
    sum
}

/// Sorted copy.
fn sorted(x: &[f64]) -> Vec<f64> {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The 95% sign-test interval of the median of `x`. Samples must be finite.
pub fn median(x: &[f64]) -> Result<Interval, NoInterval> {
    if let Some(&bad) = x.iter().find(|v| !v.is_finite()) {
        return Err(BadSample(bad));
    }
    let s = sorted(x);
    let n = s.len();
    // The largest k with 2·P(B ≤ k−1) ≤ 1 − LEVEL.
    let k = (1..=n / 2)
        .take_while(|&k| 2.0 * binom_cdf_half(n, k - 1) <= 1.0 - LEVEL + 1e-12)
        .last();
    match k {
        Some(k) => Ok(Interval {
            lo: s[k - 1],
            hi: s[n - k],
            coverage: 1.0 - 2.0 * binom_cdf_half(n, k - 1),
        }),
        None => Err(TooFew { needs: 6 }),
    }
}

/// `P(U ≤ u)` for `u = 0..` of the Mann–Whitney statistic of samples of sizes `m`, `n` under
/// the null (exact, by the counting recursion), as a vector indexed by u up to `m·n`.
fn mann_whitney_cdf(m: usize, n: usize) -> Vec<f64> {
    // f[j][u]: arrangements of i x's and j y's with statistic u, built up over i.
    let max = m * n;
    let mut f = vec![vec![0f64; max + 1]; n + 1];
    for row in f.iter_mut() {
        row[0] = 1.0; // zero x's: one arrangement, U = 0.
    }
    for i in 1..=m {
        let mut g = vec![vec![0f64; max + 1]; n + 1];
        g[0][0] = 1.0;
        for j in 1..=n {
            for u in 0..=i * j {
                // The largest element is an x (it beats all j y's) or a y.
                let with_x = if u >= j { f[j][u - j] } else { 0.0 };
                g[j][u] = with_x + g[j - 1][u];
            }
        }
        f = g;
    }
    let total: f64 = f[n].iter().sum();
    let mut acc = 0.0;
    f[n].iter()
        .map(|c| {
            acc += c;
            acc / total
        })
        .collect()
}

/// Standard normal quantile of `LEVEL`'s upper tail (1.959964).
const Z975: f64 = 1.959_963_984_540_054;

/// The 95% interval of `a / b` (the factor between the two samples' distributions): Moses'
/// interval of the shift in logarithms. Samples must be finite and positive.
pub fn ratio(a: &[f64], b: &[f64]) -> Result<Interval, NoInterval> {
    if let Some(&bad) = a.iter().chain(b).find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(BadSample(bad));
    }
    let (m, n) = (a.len(), b.len());
    let mut d: Vec<f64> = a
        .iter()
        .flat_map(|x| b.iter().map(move |y| x.ln() - y.ln()))
        .collect();
    d.sort_by(f64::total_cmp);
    let big = m * n;
    let k = if big == 0 {
        None
    } else if big <= 2500 {
        let cdf = mann_whitney_cdf(m, n);
        // The largest k with P(U ≤ k−1) ≤ (1 − LEVEL)/2.
        (1..=big / 2)
            .take_while(|&k| cdf[k - 1] <= (1.0 - LEVEL) / 2.0 + 1e-12)
            .last()
            .map(|k| (k, 1.0 - 2.0 * cdf[k - 1]))
    } else {
        let (mf, nf) = (m as f64, n as f64);
        let sd = (mf * nf * (mf + nf + 1.0) / 12.0).sqrt();
        let k = (mf * nf / 2.0 - Z975 * sd - 0.5).floor().max(1.0) as usize;
        Some((k, LEVEL))
    };
    match k {
        Some((k, coverage)) => Ok(Interval {
            lo: d[k - 1].exp(),
            hi: d[big - k].exp(),
            coverage,
        }),
        None => Err(TooFew { needs: 4 }),
    }
}

/// Where an interval stands against a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Wholly on the side the test asks for.
    Holds,
    /// Wholly on the other side.
    Fails,
    /// Contains the threshold.
    Straddles,
}

/// `[lo, hi]` against `threshold` for a test that passes at `value ≥ threshold` (or `≤` when
/// `at_most`).
pub fn side(lo: f64, hi: f64, threshold: f64, at_most: bool) -> Side {
    let (pass_all, fail_all) = if at_most {
        (hi <= threshold, lo > threshold)
    } else {
        (lo >= threshold, hi < threshold)
    };
    if pass_all {
        Side::Holds
    } else if fail_all {
        Side::Fails
    } else {
        Side::Straddles
    }
}

/// Samples per side that would put an interval of today's relative width clear of
/// `threshold`, assuming the width shrinks as 1/√n (an estimate): `None` when the estimate
/// sits on the threshold, where no n decides it.
pub fn n_to_decide(n: usize, estimate: f64, iv: &Interval, threshold: f64) -> Option<usize> {
    if !(estimate > 0.0 && threshold > 0.0 && iv.lo > 0.0) {
        return None;
    }
    let half = (iv.hi.ln() - iv.lo.ln()) / 2.0;
    let gap = (estimate.ln() - threshold.ln()).abs();
    if gap < 1e-12 {
        return None;
    }
    let need = (n as f64 * (half / gap).powi(2)).ceil();
    (need.is_finite() && need < 1e9).then(|| (need as usize).max(n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail_of_six() {
        assert_eq!(binom_cdf_half(6, 0), 1.0 / 64.0);
        assert_eq!(binom_cdf_half(6, 1), 7.0 / 64.0);
        assert_eq!(binom_cdf_half(6, 6), 1.0);
    }

    #[test]
    fn median_interval_ranks_follow_the_sign_test() {
        // n = 5: the widest interval [min, max] covers only 1 − 2/32 = 93.75%.
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0, 5.0]), Err(TooFew { needs: 6 }));
        // n = 6: [min, max], 1 − 2/64.
        let iv = median(&[6.0, 1.0, 5.0, 2.0, 4.0, 3.0]).unwrap();
        assert_eq!((iv.lo, iv.hi), (1.0, 6.0));
        assert!((iv.coverage - (1.0 - 2.0 / 64.0)).abs() < 1e-15);
        // n = 20: k = 6 (P(B ≤ 5) = 0.0207), so [x(6), x(15)].
        let x: Vec<f64> = (1..=20).map(f64::from).collect();
        let iv = median(&x).unwrap();
        assert_eq!((iv.lo, iv.hi), (6.0, 15.0));
    }

    #[test]
    fn mann_whitney_null_of_two_and_two() {
        // U over the C(4,2) = 6 arrangements: 0, 1, 2, 2, 3, 4.
        let cdf = mann_whitney_cdf(2, 2);
        let expect = [1.0, 2.0, 4.0, 5.0, 6.0].map(|c| c / 6.0);
        assert_eq!(cdf.len(), 5);
        for (c, e) in cdf.iter().zip(expect) {
            assert!((c - e).abs() < 1e-15, "{cdf:?}");
        }
    }

    #[test]
    fn ratio_interval_of_a_pure_factor_is_exact() {
        // b = a / 2 exactly: every rank-matched difference is ln 2, but the m·n differences
        // spread; the interval must contain 2 and be ordered.
        let a: Vec<f64> = (1..=8).map(|i| 10.0 + i as f64).collect();
        let b: Vec<f64> = a.iter().map(|x| x / 2.0).collect();
        let iv = ratio(&a, &b).unwrap();
        assert!(iv.lo < 2.0 && 2.0 < iv.hi && iv.coverage >= LEVEL, "{iv:?}");
        assert_eq!(ratio(&a[..3], &b[..3]), Err(TooFew { needs: 4 }));
        assert!(matches!(ratio(&[1.0, f64::NAN, 2.0, 3.0], &b), Err(BadSample(x)) if x.is_nan()));
        assert_eq!(ratio(&[1.0, 0.0, 2.0, 3.0], &b), Err(BadSample(0.0)));
        assert_eq!(
            median(&[1.0, 2.0, f64::INFINITY, 4.0, 5.0, 6.0]),
            Err(BadSample(f64::INFINITY))
        );
    }

    #[test]
    fn sides_of_a_threshold() {
        assert_eq!(side(2.1, 2.5, 2.0, false), Side::Holds);
        assert_eq!(side(1.1, 1.5, 2.0, false), Side::Fails);
        assert_eq!(side(1.9, 2.5, 2.0, false), Side::Straddles);
        assert_eq!(side(0.01, 0.04, 0.05, true), Side::Holds);
        assert_eq!(side(0.06, 0.09, 0.05, true), Side::Fails);
    }

    #[test]
    fn n_to_decide_scales_with_the_squared_width() {
        let iv = Interval {
            lo: 1.8,
            hi: 2.2,
            coverage: 0.95,
        };
        // Estimate 2, threshold 2·e^{h/2}: needs 4n.
        let half = (2.2f64.ln() - 1.8f64.ln()) / 2.0;
        let t = 2.0 * (half / 2.0).exp();
        assert_eq!(n_to_decide(10, 2.0, &iv, t), Some(40));
        assert_eq!(n_to_decide(10, 2.0, &iv, 2.0), None);
    }
}
