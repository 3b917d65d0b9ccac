//! Sharded runs: one run's cases split over `n` machines (`infermark run --shard i/n`), joined
//! again by `infermark merge`.
//!
//! Assignment is greedy longest-processing-time scheduling (Graham, "Bounds on multiprocessing
//! timing anomalies", 1969): cases sorted by expected cost, most expensive first, each given to
//! the shard with the least cost so far. It depends only on the case list and [`Suite::cost`],
//! never on the machine, so every shard of a run computes the same plan on its own and no
//! coordinator is needed. LPT's makespan is at most 4/3 of the optimum; the loads of any two
//! shards differ by at most the largest single cost.
//!
//! Shards are numbered 1..=n (`--shard 1/3` is the first of three). Run-level records that do
//! not belong to a case (the machine's triad and read bandwidth, suite `machine`) are written by
//! shard 1 only, so that the merged run holds them once.
//!
//! [`Suite::cost`]: crate::Suite::cost

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::env::RunEnv;
use crate::{Case, Result, SuiteError};

/// Which shard of how many: `index` in 1..=`count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based shard number.
    pub index: usize,
    /// Number of shards of the run.
    pub count: usize,
}

impl Shard {
    /// The shard that writes the run-level records (the machine's bandwidth).
    pub fn writes_run_records(self) -> bool {
        self.index == 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = SuiteError;

    /// Parses `i/n` with 1 ≤ i ≤ n, e.g. `2/3`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            SuiteError::Input(format!(
                "shard `{s}`: {why} (expected `i/n` with 1 ≤ i ≤ n, e.g. `1/3`; shards count from 1)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let num = |x: &str, what: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| bad(&format!("{what} `{x}` is not a whole number")))
        };
        let (index, count) = (num(i, "index")?, num(n, "count")?);
        if count == 0 {
            return Err(bad("the count must be at least 1"));
        }
        if index == 0 {
            return Err(bad("the index must be at least 1"));
        }
        if index > count {
            return Err(bad(&format!("the index {index} exceeds the count {count}")));
        }
        Ok(Shard { index, count })
    }
}

/// A case of the whole run, as the planner sees it.
#[derive(Clone, Debug)]
pub struct Job {
    /// Suite name.
    pub suite: String,
    /// The case.
    pub case: Case,
    /// Expected cost ([`crate::Suite::cost`]); must be finite and positive.
    pub cost: f64,
}

/// A case's identity within a run: `suite/variant[k=v;k=v]`, params in key order. Unique within
/// a run; what `run.json` lists and `merge` checks coverage with.
pub fn case_id(suite: &str, case: &Case) -> String {
    let params: Vec<String> = case
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{suite}/{}[{}]", case.variant, params.join(";"))
}

/// The 1-based shard of each job, in the order of `jobs`: greedy longest-processing-time over
/// `count` shards. Refuses a cost that is not finite and positive, a case listed twice, and
/// more shards than cases (a shard would be empty), naming the case or the counts.
pub fn assign(jobs: &[Job], count: usize) -> Result<Vec<usize>> {
    if count == 0 {
        return Err(SuiteError::Input("shard count must be at least 1".into()));
    }
    let mut seen = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if !(j.cost.is_finite() && j.cost > 0.0) {
            return Err(SuiteError::Input(format!(
                "suite {} case {}: expected cost {} is not a finite positive number",
                j.suite,
                j.case.label(),
                j.cost
            )));
        }
        if let Some(first) = seen.insert(case_id(&j.suite, &j.case), i) {
            return Err(SuiteError::Input(format!(
                "case {} is listed twice (positions {first} and {i}); shards could not tell them apart",
                case_id(&j.suite, &j.case)
            )));
        }
    }
    if count > jobs.len() {
        return Err(SuiteError::Input(format!(
            "{count} shards for a run of {} cases: a shard would be empty; use at most {} shards",
            jobs.len(),
            jobs.len()
        )));
    }
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    // Most expensive first; ties in a fixed order of suite, label and params, so that every
    // machine sorts alike.
    order.sort_by(|&a, &b| {
        let (x, y) = (&jobs[a], &jobs[b]);
        y.cost
            .total_cmp(&x.cost)
            .then_with(|| x.suite.cmp(&y.suite))
            .then_with(|| x.case.label().cmp(&y.case.label()))
            .then_with(|| x.case.params.cmp(&y.case.params))
            .then_with(|| x.case.variant.cmp(&y.case.variant))
    });
    let mut loads = vec![0.0f64; count];
    let mut shard_of = vec![0usize; jobs.len()];
    for i in order {
        // The least-loaded shard; the lowest index among equals.
        let (best, _) = loads
            .iter()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |(bi, bl), (k, &l)| {
                    if l < bl {
                        (k, l)
                    } else {
                        (bi, bl)
                    }
                },
            );
        loads[best] += jobs[i].cost;
        shard_of[i] = best + 1;
    }
    Ok(shard_of)
}

/// Total expected cost per shard (index 0 = shard 1) of an assignment from [`assign`].
pub fn loads(jobs: &[Job], shard_of: &[usize], count: usize) -> Vec<f64> {
    let mut loads = vec![0.0; count];
    for (j, &s) in jobs.iter().zip(shard_of) {
        loads[s - 1] += j.cost;
    }
    loads
}

/// What a shard's `run.json` says about the shard, beside the run's environment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    /// 1-based shard number.
    pub index: usize,
    /// Number of shards of the run.
    pub count: usize,
    /// Expected cost of this shard's cases (sum of [`crate::Suite::cost`]).
    pub cost: f64,
    /// This shard's cases ([`case_id`]), in run order.
    pub cases: Vec<String>,
    /// Every case of the whole run, in run order: what the shards together must cover.
    pub run_cases: Vec<String>,
}

/// One shard of a merged run: where its cases ran.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardMachine {
    /// 1-based shard number.
    pub index: usize,
    /// The shard run's own id (its records carry the merged run's id).
    pub run_id: String,
    /// Device the backend ran on.
    pub device: String,
    /// CPU model name.
    pub cpu_model: String,
    /// SIMD-relevant CPU flags.
    pub cpu_flags: Vec<String>,
    /// Logical cores.
    pub cores: usize,
    /// SIMD path of the CPU kernels.
    pub isa: crate::env::IsaEnv,
    /// The shard machine's bandwidth, when measured (flex runs).
    pub machine: Option<crate::machine::Bandwidth>,
    /// Start and end of the shard (RFC 3339).
    pub started: String,
    pub ended: String,
    /// The shard's cases ([`case_id`]).
    pub cases: Vec<String>,
}

/// `run.json` of a shard or of a merged run: the run's environment plus what sharding adds.
/// Readers that know only [`RunEnv`] read these files unchanged (the extra keys are ignored).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardedEnv {
    /// The run's environment, flattened into the same JSON object.
    #[serde(flatten)]
    pub env: RunEnv,
    /// Set in a shard's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// Set in a merged run: each shard's machine, by shard number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardMachine>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(suite: &str, variant: &str, preset: &str, cost: f64) -> Job {
        Job {
            suite: suite.into(),
            case: Case {
                variant: variant.into(),
                params: BTreeMap::from([("preset".to_string(), preset.to_string())]),
            },
            cost,
        }
    }

    fn example() -> Vec<Job> {
        vec![
            job("a", "x", "p", 1.0),
            job("a", "y", "p", 5.0),
            job("b", "x", "p", 3.0),
            job("b", "y", "p", 3.0),
            job("a", "z", "p", 2.0),
            job("c", "x", "p", 4.0),
            job("c", "y", "q", 1.0),
        ]
    }

    #[test]
    fn shard_numbers_parse_from_one_to_the_count() {
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        assert_eq!(
            "1/1".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 1 }
        );
        assert_eq!(Shard { index: 2, count: 3 }.to_string(), "2/3");
        for (bad, why) in [
            ("0/3", "the index must be at least 1"),
            ("4/3", "the index 4 exceeds the count 3"),
            ("a/b", "index `a` is not a whole number"),
            ("1/0", "the count must be at least 1"),
            ("1/x", "count `x` is not a whole number"),
            ("3", "no `/`"),
            ("-1/3", "index `-1` is not a whole number"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(&format!("shard `{bad}`")), "{bad}: {e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn longest_jobs_go_first_to_the_least_loaded_shard() {
        // Sorted: a/y 5, c/x 4, b/x 3, b/y 3, a/z 2, a/x 1, c/y 1.
        // 5 → 1; 4 → 2; 3 (b/x) → 3; 3 (b/y) → 3 (loads 5, 4, 3); 2 → 2 (5, 4, 6);
        // 1 (a/x) → 1 (6, 6, 6); 1 (c/y) → 1 (7, 6, 6): a tie goes to the lowest index.
        let jobs = example();
        let shard_of = assign(&jobs, 3).unwrap();
        assert_eq!(shard_of, vec![1, 1, 3, 3, 2, 2, 1]);
        assert_eq!(loads(&jobs, &shard_of, 3), vec![7.0, 6.0, 6.0]);
    }

    #[test]
    fn equal_costs_are_dealt_round_robin_in_name_order() {
        let jobs = vec![
            job("b", "x", "p", 1.0),
            job("a", "y", "p", 1.0),
            job("a", "x", "q", 1.0),
            job("a", "x", "p", 1.0),
        ];
        // Name order: a p/x, a p/y, a q/x, b p/x → shards 1, 2, 1, 2.
        assert_eq!(assign(&jobs, 2).unwrap(), vec![2, 2, 1, 1]);
    }

    #[test]
    fn every_case_lands_in_exactly_one_shard_and_loads_stay_within_the_largest_cost() {
        let jobs: Vec<Job> = (0..40)
            .map(|i| {
                let cost = 1.0 + ((i * 37) % 11) as f64 * 0.75;
                job(["a", "b", "c"][i % 3], &format!("v{i}"), "p", cost)
            })
            .collect();
        let largest = jobs.iter().map(|j| j.cost).fold(0.0, f64::max);
        for count in 1..=7 {
            let shard_of = assign(&jobs, count).unwrap();
            assert_eq!(shard_of.len(), jobs.len());
            assert!(shard_of.iter().all(|&s| (1..=count).contains(&s)));
            for s in 1..=count {
                assert!(shard_of.contains(&s), "shard {s} of {count} is empty");
            }
            let l = loads(&jobs, &shard_of, count);
            let total: f64 = jobs.iter().map(|j| j.cost).sum();
            assert!((l.iter().sum::<f64>() - total).abs() < 1e-9);
            let (lo, hi) = l
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
            assert!(hi - lo <= largest, "{count} shards: loads {l:?}");
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_the_order_cases_are_listed_in() {
        let jobs = example();
        let mut reversed = jobs.clone();
        reversed.reverse();
        let a = assign(&jobs, 3).unwrap();
        let mut b = assign(&reversed, 3).unwrap();
        b.reverse();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_costs_duplicate_cases_and_too_many_shards_are_refused_by_name() {
        let mut jobs = example();
        jobs[2].cost = f64::NAN;
        let e = assign(&jobs, 2).unwrap_err().to_string();
        assert!(e.contains("suite b case p/x") && e.contains("NaN"), "{e}");
        let mut jobs = example();
        jobs[0].cost = 0.0;
        assert!(assign(&jobs, 2).is_err());
        let mut jobs = example();
        jobs.push(job("b", "x", "p", 2.0));
        let e = assign(&jobs, 2).unwrap_err().to_string();
        assert!(e.contains("case b/x[preset=p] is listed twice"), "{e}");
        let e = assign(&example(), 8).unwrap_err().to_string();
        assert!(
            e.contains("8 shards for a run of 7 cases") && e.contains("at most 7"),
            "{e}"
        );
    }

    #[test]
    fn case_ids_name_suite_variant_and_every_param() {
        let c = Case {
            variant: "gqa".into(),
            params: BTreeMap::from([
                ("preset".to_string(), "tiny".to_string()),
                ("parts".to_string(), "kv_memory,flops".to_string()),
            ]),
        };
        assert_eq!(
            case_id("attention", &c),
            "attention/gqa[parts=kv_memory,flops;preset=tiny]"
        );
    }
}
