//! The analytic speedup bound (Leviathan et al. 2023) and the verify cost read off the measured
//! curve.

use std::collections::BTreeMap;

/// The verification cost at a (possibly fractional) draft length, linear between the measured
/// points of `v` and (0, 1) (a forward of the last text token alone); the last slope beyond them.
pub fn verify_cost_at(v: &BTreeMap<usize, f64>, gamma: f64) -> f64 {
    let pts: Vec<(f64, f64)> = std::iter::once((0.0, 1.0))
        .chain(v.iter().map(|(&g, &x)| (g as f64, x)))
        .collect();
    let i = pts
        .windows(2)
        .position(|w| gamma <= w[1].0)
        .unwrap_or(pts.len().saturating_sub(2));
    match (pts.get(i), pts.get(i + 1)) {
        (Some(&(g0, v0)), Some(&(g1, v1))) => v0 + (v1 - v0) * (gamma - g0) / (g1 - g0),
        _ => 1.0,
    }
}

/// Leviathan et al.'s expected speedup (Thm 3.8) with a measured verification cost: tokens per
/// step (1 − α^(γ+1)) / (1 − α) over the step's cost in target steps, γc + v (c per call: c + v).
pub fn analytic_speedup(alpha: f64, gamma: f64, drafting: f64, v: f64) -> f64 {
    let tokens = if alpha >= 1.0 - 1e-12 {
        gamma + 1.0
    } else {
        (1.0 - alpha.powf(gamma + 1.0)) / (1.0 - alpha)
    };
    tokens / (drafting + v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analytic_speedup_matches_leviathan_closed_forms() {
        // α = 0.8, γ = 4, c = 0.1, v = 1: (1 − 0.8⁵) / (0.2 · 1.4) = 2.3809...
        let s = analytic_speedup(0.8, 4.0, 4.0 * 0.1, 1.0);
        assert!(
            (s - (1.0 - 0.8f64.powi(5)) / (0.2 * 1.4)).abs() < 1e-12,
            "{s}"
        );
        // α = 1: every drafted token kept, γ + 1 tokens per step.
        assert_eq!(analytic_speedup(1.0, 3.0, 0.0, 1.0), 4.0);
        // α = 0: one token per step, at the cost of drafting and verifying.
        assert_eq!(analytic_speedup(0.0, 2.0, 0.5, 1.5), 0.5);
    }

    #[test]
    fn verify_cost_is_read_linearly_off_the_measured_curve() {
        let v = BTreeMap::from([(2, 1.6), (4, 2.2)]);
        assert!((verify_cost_at(&v, 1.0) - 1.3).abs() < 1e-12);
        assert!((verify_cost_at(&v, 3.0) - 1.9).abs() < 1e-12);
        assert_eq!(verify_cost_at(&v, 4.0), 2.2);
        assert_eq!(verify_cost_at(&v, 0.0), 1.0);
        // Beyond the last point: its slope continues.
        assert!((verify_cost_at(&v, 5.0) - 2.5).abs() < 1e-12);
    }
}
