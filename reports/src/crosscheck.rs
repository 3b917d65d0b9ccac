//! Cross-check of two runs of the same seed and scale on different backends (a CUDA run against
//! a flex run; `ci/gpu-check.sh`): the records both runs have are paired by suite, experiment,
//! variant, parameters, metric and statistic, and
//! - equivalence metrics (`*_max_abs_diff`: one path against another inside one run) must stay
//!   within an absolute bound in both runs;
//! - other deterministic metrics must be equal: exactly for counts and byte sizes (units
//!   `bytes`, `FLOP`, `count`, ...), within a relative tolerance for values computed in floating
//!   point (perplexity, KL divergence, SQNR), since two backends sum in different orders;
//! - noisy metrics (timings) are not compared, only counted.
//!
//! A comparison with no deterministic pair at all fails: it would prove nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use infermark_suites::Record;

use crate::metrics::{self, Kind};

/// Bounds of a cross-check.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Largest relative difference of a floating-point deterministic value.
    pub rtol: f64,
    /// Largest value of an equivalence metric (`*_max_abs_diff`) in either run.
    pub max_equivalence: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            rtol: 1e-3,
            max_equivalence: 1e-3,
        }
    }
}

/// One failed or notable pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// `suite/experiment/variant metric stat {params}`.
    pub key: String,
    /// Value in run A, when present.
    pub a: Option<f64>,
    /// Value in run B, when present.
    pub b: Option<f64>,
    /// Why it failed.
    pub why: String,
}

/// Outcome of [`compare`].
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Deterministic pairs compared for equality.
    pub equal_checked: usize,
    /// Equivalence values checked against the bound (both runs).
    pub equivalence_checked: usize,
    /// Noisy pairs, not compared.
    pub noisy_skipped: usize,
    /// Deterministic records present in one run only.
    pub only_in_one: Vec<Finding>,
    /// Failures.
    pub failures: Vec<Finding>,
}

impl Outcome {
    /// Passes when something deterministic was compared and nothing failed.
    pub fn pass(&self) -> bool {
        self.failures.is_empty() && self.equal_checked + self.equivalence_checked > 0
    }
}

fn key(r: &Record) -> String {
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}/{}/{} {} {} {{{}}}",
        r.suite,
        r.experiment,
        r.variant,
        r.metric,
        r.stat.name(),
        params.join(", ")
    )
}

/// Units whose values are counts: they must match exactly.
fn exact_unit(unit: &str) -> bool {
    matches!(
        unit,
        "bytes" | "FLOP" | "count" | "tokens" | "sequences" | "params" | "bits" | "bool"
    )
}

fn is_equivalence(metric: &str) -> bool {
    metric.ends_with("_max_abs_diff")
}

/// Compares run `a` with run `b` under `bounds`.
pub fn compare(a: &[Record], b: &[Record], bounds: Bounds) -> Outcome {
    let index = |rs: &[Record]| -> BTreeMap<String, (f64, String)> {
        rs.iter()
            .map(|r| (key(r), (r.value, r.metric.clone())))
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    let unit = |m: &str, fallback: &str| {
        metrics::lookup(m).map_or(fallback.to_string(), |x| x.unit.to_string())
    };
    let mut out = Outcome::default();
    let units: BTreeMap<String, String> = a
        .iter()
        .chain(b)
        .map(|r| (r.metric.clone(), r.unit.clone()))
        .collect();
    let keys: std::collections::BTreeSet<&String> = ia.keys().chain(ib.keys()).collect();
    for k in keys {
        let (va, vb) = (ia.get(k), ib.get(k));
        let metric = va.or(vb).map(|x| x.1.clone()).unwrap_or_default();
        let kind = metrics::lookup(&metric).map(|m| m.kind);
        let (xa, xb) = (va.map(|x| x.0), vb.map(|x| x.0));
        let finding = |why: String| Finding {
            key: k.clone(),
            a: xa,
            b: xb,
            why,
        };
        if kind == Some(Kind::Noisy) {
            out.noisy_skipped += usize::from(xa.is_some() && xb.is_some());
            continue;
        }
        if is_equivalence(&metric) {
            for (side, x) in [("A", xa), ("B", xb)] {
                if let Some(x) = x {
                    out.equivalence_checked += 1;
                    if !(x.is_finite() && x.abs() <= bounds.max_equivalence) {
                        out.failures.push(finding(format!(
                            "run {side}: {x} exceeds the equivalence bound {}",
                            bounds.max_equivalence
                        )));
                    }
                }
            }
            continue;
        }
        let (Some(x), Some(y)) = (xa, xb) else {
            out.only_in_one.push(finding(
                if xa.is_some() {
                    "only in run A"
                } else {
                    "only in run B"
                }
                .into(),
            ));
            continue;
        };
        out.equal_checked += 1;
        let u = unit(&metric, units.get(&metric).map_or("", String::as_str));
        if exact_unit(&u) {
            if x != y {
                out.failures
                    .push(finding(format!("{u} differ: {x} vs {y} (must be equal)")));
            }
        } else {
            let scale = x.abs().max(y.abs());
            let rel = if scale == 0.0 {
                0.0
            } else {
                (x - y).abs() / scale
            };
            // A NaN difference fails too.
            if rel.is_nan() || rel > bounds.rtol {
                out.failures.push(finding(format!(
                    "relative difference {rel:.3e} > {} ({x} vs {y})",
                    bounds.rtol
                )));
            }
        }
    }
    out
}

/// The failures in the gate's one-screen form (`FAIL record: A a, B b; why`), records present in
/// one run only after them; `None` when there are none. Printed last.
pub fn failures(o: &Outcome, all_in: &str) -> Option<String> {
    let lines: Vec<String> = o
        .failures
        .iter()
        .chain(&o.only_in_one)
        .map(|f| crate::format::failure_line(&f.key, ("A", f.a), ("B", f.b), &f.why))
        .collect();
    crate::format::failure_screen(&lines, crate::gate::FAILURES_SHOWN, all_in)
}

/// The outcome as Markdown: counts, bounds, failures and records present in one run only.
pub fn markdown(o: &Outcome, a_name: &str, b_name: &str, bounds: Bounds) -> String {
    let mut s = String::new();
    let verdict = if o.pass() { "PASS" } else { "FAIL" };
    let _ = writeln!(s, "# Cross-check: {verdict}\n");
    let _ = writeln!(s, "- run A: `{a_name}`\n- run B: `{b_name}`");
    let _ = writeln!(
        s,
        "- deterministic pairs compared: {} (counts exactly, floats within relative {})",
        o.equal_checked, bounds.rtol
    );
    let _ = writeln!(
        s,
        "- equivalence values checked (`*_max_abs_diff` ≤ {}): {}",
        bounds.max_equivalence, o.equivalence_checked
    );
    let _ = writeln!(
        s,
        "- noisy pairs (timings) not compared: {}",
        o.noisy_skipped
    );
    let _ = writeln!(s, "- failures: {}", o.failures.len());
    let _ = writeln!(
        s,
        "- deterministic records in one run only: {}\n",
        o.only_in_one.len()
    );
    let show = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v}"));
    for (title, list) in [
        ("Failures", &o.failures),
        ("In one run only", &o.only_in_one),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "## {title}\n\n| record | A | B | why |\n|---|---|---|---|"
        );
        for f in list {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} |",
                f.key,
                show(f.a),
                show(f.b),
                f.why
            );
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use infermark_suites::Stat;

    fn rec(metric: &str, unit: &str, v: f64) -> Record {
        Record {
            run_id: "r".into(),
            suite: "s".into(),
            experiment: "e".into(),
            variant: "v".into(),
            backend: "flex".into(),
            device: "cpu".into(),
            scale: "smoke".into(),
            params: [("ctx".to_string(), "8".to_string())].into_iter().collect(),
            metric: metric.into(),
            value: v,
            unit: unit.into(),
            stat: Stat::Exact,
            n: 1,
            git_rev: "g".into(),
            timestamp: "t".into(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn equal_runs_pass_and_an_empty_comparison_fails() {
        let a = vec![
            rec("kv_cache_bytes_per_token", "bytes", 64.0),
            rec("perplexity", "ratio", 3.5),
        ];
        let o = compare(&a, &a, Bounds::default());
        assert!(o.pass(), "{o:?}");
        assert_eq!(o.equal_checked, 2);
        assert!(!compare(&[], &[], Bounds::default()).pass());
    }

    #[test]
    fn byte_counts_must_match_exactly_and_floats_within_the_tolerance() {
        let a = vec![
            rec("kv_cache_bytes_per_token", "bytes", 64.0),
            rec("perplexity", "ratio", 3.5),
        ];
        let b = vec![
            rec("kv_cache_bytes_per_token", "bytes", 65.0),
            rec("perplexity", "ratio", 3.5 * (1.0 + 1e-5)),
        ];
        let o = compare(&a, &b, Bounds::default());
        assert_eq!(o.failures.len(), 1, "{o:?}");
        assert!(o.failures[0].key.contains("kv_cache_bytes_per_token"));
        let c = vec![
            rec("kv_cache_bytes_per_token", "bytes", 64.0),
            rec("perplexity", "ratio", 3.6),
        ];
        let o = compare(&a, &c, Bounds::default());
        assert_eq!(o.failures.len(), 1, "{o:?}");
        assert!(o.failures[0].why.contains("relative difference"));
        // The last screen: the gate's form, with both values and the tolerance.
        assert_eq!(
            failures(&o, "x.md").unwrap(),
            "FAIL s/e/v perplexity exact {ctx=8}: A 3.5000, B 3.6000; relative difference 2.778e-2 > 0.001 (3.5 vs 3.6)"
        );
        assert_eq!(failures(&compare(&a, &a, Bounds::default()), "x.md"), None);
        // Many failures: the first ones, then how many more and where they all are.
        let lines: Vec<String> = (0..25).map(|i| format!("FAIL {i}")).collect();
        let screen = crate::format::failure_screen(&lines, 20, "in x.md").unwrap();
        assert_eq!(screen.lines().count(), 21);
        assert!(
            screen.ends_with("… and 5 more failures (in x.md)"),
            "{screen}"
        );
    }

    #[test]
    fn equivalence_metrics_are_bounded_not_compared_and_nan_fails() {
        let a = vec![rec("paged_vs_contiguous_max_abs_diff", "abs", 1e-7)];
        let b = vec![rec("paged_vs_contiguous_max_abs_diff", "abs", 5e-4)];
        let o = compare(&a, &b, Bounds::default());
        assert!(o.pass(), "{o:?}");
        assert_eq!(o.equivalence_checked, 2);
        let bad = vec![rec("paged_vs_contiguous_max_abs_diff", "abs", f64::NAN)];
        assert!(!compare(&a, &bad, Bounds::default()).pass());
        let big = vec![rec("paged_vs_contiguous_max_abs_diff", "abs", 0.5)];
        assert!(!compare(&a, &big, Bounds::default()).pass());
    }

    #[test]
    fn timings_are_not_compared() {
        let a = vec![
            rec("decode_latency_ms", "ms", 1.0),
            rec("kv_cache_bytes_per_token", "bytes", 64.0),
        ];
        let b = vec![
            rec("decode_latency_ms", "ms", 9.0),
            rec("kv_cache_bytes_per_token", "bytes", 64.0),
        ];
        let o = compare(&a, &b, Bounds::default());
        assert!(o.pass(), "{o:?}");
        assert_eq!(o.noisy_skipped, 1);
    }
}
