//! Joins the run folders of a sharded run (`infermark run --shard i/n` on n machines) into one
//! run folder, as Kubernetes Indexed Jobs or Slurm job arrays produce them; no scheduler of our
//! own.
//!
//! The shards must be one run: the same scale, seed, backend, git revision, activations and case
//! list, shard numbers 1..=n each exactly once, every case of the run in exactly one shard and
//! no record in two. Anything else is refused with a message naming the field, shard and folder.
//! The merged records carry the merged run's id (each shard's own id stays in `run.json`'s
//! `shards` list), so that report and gate treat them as one run; each record keeps the device
//! it ran on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use infermark_suites::shard::{ShardInfo, ShardMachine, ShardedEnv};
use infermark_suites::Record;

use crate::io::{self, PARQUET, RUN_JSON};
use crate::metrics::{self, Kind};
use crate::{io_err, ReportError, Result};

/// One shard's run folder, read back.
#[derive(Clone, Debug)]
pub struct ShardRun {
    /// Where it was read from.
    pub dir: PathBuf,
    /// Its `run.json`.
    pub env: ShardedEnv,
    /// What `run.json` says about the shard.
    pub shard: ShardInfo,
    /// Its records.
    pub records: Vec<Record>,
}

/// Reads a shard's run folder; refuses a folder whose `run.json` names no shard.
pub fn read_shard(dir: &Path) -> Result<ShardRun> {
    if !dir.is_dir() {
        return Err(ReportError::Malformed {
            path: dir.to_path_buf(),
            reason: "not a run directory (expected a folder written by `infermark run --shard`)"
                .into(),
        });
    }
    let path = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let env: ShardedEnv = serde_json::from_str(&text).map_err(|e| ReportError::Malformed {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let shard = env.shard.clone().ok_or_else(|| ReportError::Malformed {
        path: path.clone(),
        reason: "names no `shard`: not a shard of a sharded run (written by `infermark run --shard i/n`)"
            .into(),
    })?;
    let records = io::read_parquet(&dir.join(PARQUET))?;
    Ok(ShardRun {
        dir: dir.to_path_buf(),
        env,
        shard,
        records,
    })
}

/// A merged run: its `run.json` and its records.
#[derive(Clone, Debug)]
pub struct Merged {
    /// `run.json`: the shards' common environment and a `shards` list of their machines.
    pub env: ShardedEnv,
    /// Every shard's records, by shard number, with the merged run's id.
    pub records: Vec<Record>,
}

/// `shard 2/3 (dir)`.
fn name(s: &ShardRun) -> String {
    format!(
        "shard {}/{} ({})",
        s.shard.index,
        s.shard.count,
        s.dir.display()
    )
}

/// Joins `shards` (any order) into one run with id `run_id`. Refuses, naming what and where,
/// shards of different runs (count, scale, seed, backend, git revision, activations or case
/// list differ), a shard number given twice or missing, a case in two shards or in none, and a
/// record in two shards; every problem found is listed, one per line.
pub fn merge(shards: &[ShardRun], run_id: &str) -> std::result::Result<Merged, String> {
    if shards.is_empty() {
        return Err("no shard folders given".into());
    }
    let mut problems: Vec<String> = Vec::new();
    // One run: fields that change what the records mean must agree.
    let mut same = |field: &str, value: &dyn Fn(&ShardRun) -> String| {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in shards {
            groups
                .entry(value(s))
                .or_default()
                .push(s.dir.display().to_string());
        }
        if groups.len() > 1 {
            let list: Vec<String> = groups
                .iter()
                .map(|(v, dirs)| format!("{v} in {}", dirs.join(", ")))
                .collect();
            problems.push(format!(
                "shards differ in {field}: {}; merge only the shards of one run",
                list.join("; ")
            ));
        }
    };
    same("the shard count", &|s| s.shard.count.to_string());
    same("scale", &|s| s.env.env.scale.clone());
    same("seed", &|s| s.env.env.seed.to_string());
    same("backend", &|s| s.env.env.backend.clone());
    same("git_rev", &|s| s.env.env.git_rev.clone());
    same("activations", &|s| s.env.env.activations.clone());
    same("the run's case list (run_cases)", &|s| {
        format!("{} cases", s.shard.run_cases.len())
    });
    let first = &shards[0];
    if problems.is_empty() {
        for s in &shards[1..] {
            if s.shard.run_cases != first.shard.run_cases {
                let a: BTreeSet<&String> = first.shard.run_cases.iter().collect();
                let b: BTreeSet<&String> = s.shard.run_cases.iter().collect();
                let diff = a.symmetric_difference(&b).next().map_or_else(
                    || "the same cases in another order".to_string(),
                    |c| format!("case {c} is in one list only"),
                );
                problems.push(format!(
                    "shards differ in the run's case list (run_cases): {} and {}: {diff}",
                    first.dir.display(),
                    s.dir.display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let count = first.shard.count;

    // Shard numbers 1..=count, each once.
    let mut by_index: BTreeMap<usize, Vec<&ShardRun>> = BTreeMap::new();
    for s in shards {
        by_index.entry(s.shard.index).or_default().push(s);
    }
    for (i, list) in &by_index {
        if *i == 0 || *i > count {
            problems.push(format!(
                "{} has shard number {i}, outside 1..={count}",
                list[0].dir.display()
            ));
        }
        if list.len() > 1 {
            let dirs: Vec<String> = list.iter().map(|s| s.dir.display().to_string()).collect();
            problems.push(format!(
                "shard {i}/{count} is given {} times: {}",
                list.len(),
                dirs.join(", ")
            ));
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = shards.iter().map(name).collect();
        problems.push(format!(
            "missing shard{} {} (given: {})",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            given.join(", ")
        ));
    }

    // Every case of the run in exactly one shard.
    let mut owner: BTreeMap<&str, Vec<&ShardRun>> = BTreeMap::new();
    for s in shards {
        for c in &s.shard.cases {
            owner.entry(c.as_str()).or_default().push(s);
        }
    }
    let known: BTreeSet<&str> = first.shard.run_cases.iter().map(String::as_str).collect();
    for (case, list) in &owner {
        if list.len() > 1 {
            let names: Vec<String> = list.iter().map(|s| name(s)).collect();
            problems.push(format!("case {case} is in {}", names.join(" and ")));
        }
        if !known.contains(case) {
            problems.push(format!(
                "case {case} of {} is not in the run's case list",
                name(list[0])
            ));
        }
    }
    let uncovered: Vec<&str> = first
        .shard
        .run_cases
        .iter()
        .map(String::as_str)
        .filter(|c| !owner.contains_key(c))
        .collect();
    if !uncovered.is_empty() {
        problems.push(format!(
            "{} of the run's {} cases are in no shard: {}",
            uncovered.len(),
            first.shard.run_cases.len(),
            abbreviate(&uncovered, 5)
        ));
    }

    // No record in two shards (a run-level record written by more than shard 1, say).
    let mut seen: BTreeMap<String, &ShardRun> = BTreeMap::new();
    let mut doubled = Vec::new();
    for s in shards {
        for r in &s.records {
            let k = record_key(r);
            if let Some(other) = seen.get(&k) {
                if other.shard.index != s.shard.index {
                    doubled.push(format!("{k} ({} and {})", name(other), name(s)));
                }
            } else {
                seen.insert(k, s);
            }
        }
    }
    if !doubled.is_empty() {
        problems.push(format!(
            "records in two shards ({}): {}",
            doubled.len(),
            abbreviate(&doubled, 3)
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }

    let mut ordered: Vec<&ShardRun> = shards.iter().collect();
    ordered.sort_by_key(|s| s.shard.index);
    Ok(Merged {
        env: merged_env(&ordered, run_id),
        records: ordered
            .iter()
            .flat_map(|s| s.records.iter())
            .map(|r| Record {
                run_id: run_id.to_string(),
                ..r.clone()
            })
            .collect(),
    })
}

/// The first `n` items and how many more.
fn abbreviate<T: Display>(items: &[T], n: usize) -> String {
    let shown: Vec<String> = items.iter().take(n).map(|x| x.to_string()).collect();
    if items.len() > n {
        format!("{}, … ({} more)", shown.join(", "), items.len() - n)
    } else {
        shown.join(", ")
    }
}

/// The merged `run.json` of shards sorted by number. Fields every shard shares are taken from
/// shard 1; machine fields (`device`, `cpu_model`) list each distinct machine, `cpu_flags` are
/// those every machine has, and `cores`, `isa` and `machine` are shard 1's, the machine whose
/// bandwidth records the run holds.
fn merged_env(shards: &[&ShardRun], run_id: &str) -> ShardedEnv {
    let one = &shards[0].env.env;
    let distinct = |f: fn(&ShardRun) -> &String| {
        let mut v: Vec<&str> = Vec::new();
        for s in shards {
            if !v.contains(&f(s).as_str()) {
                v.push(f(s));
            }
        }
        v.join(" + ")
    };
    let device = distinct(|s| &s.env.env.device);
    let cpu_model = distinct(|s| &s.env.env.cpu_model);
    let cpu_flags = one
        .cpu_flags
        .iter()
        .filter(|f| shards.iter().all(|s| s.env.env.cpu_flags.contains(f)))
        .cloned()
        .collect();
    let run_cases = &shards[0].shard.run_cases;
    let mut suites: Vec<String> = Vec::new();
    for c in run_cases {
        let suite = c.split('/').next().unwrap_or_default().to_string();
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    let mut notices: Vec<String> = Vec::new();
    for n in shards.iter().flat_map(|s| &s.env.env.notices) {
        if !notices.contains(n) {
            notices.push(n.clone());
        }
    }
    let machines = shards
        .iter()
        .map(|s| (&s.env.env.cpu_model, &s.env.env.isa.active))
        .collect::<BTreeSet<_>>()
        .len();
    if machines > 1 {
        notices.push(format!(
            "merged from {} shards on {machines} kinds of machine (see `shards`); the machine's \
             bandwidth records and fractions of triad are shard 1's",
            shards.len()
        ));
    }
    let env = infermark_suites::env::RunEnv {
        run_id: run_id.to_string(),
        device,
        cpu_model,
        cpu_flags,
        suites,
        notices,
        started: shards
            .iter()
            .map(|s| s.env.env.started.clone())
            .min()
            .unwrap_or_default(),
        ended: shards
            .iter()
            .map(|s| s.env.env.ended.clone())
            .max()
            .unwrap_or_default(),
        ..one.clone()
    };
    ShardedEnv {
        env,
        shard: None,
        shards: shards
            .iter()
            .map(|s| {
                let e = &s.env.env;
                ShardMachine {
                    index: s.shard.index,
                    run_id: e.run_id.clone(),
                    device: e.device.clone(),
                    cpu_model: e.cpu_model.clone(),
                    cpu_flags: e.cpu_flags.clone(),
                    cores: e.cores,
                    isa: e.isa.clone(),
                    machine: e.machine.clone(),
                    started: e.started.clone(),
                    ended: e.ended.clone(),
                    cases: s.shard.cases.clone(),
                }
            })
            .collect(),
    }
}

/// `suite/experiment/variant metric stat {k=v, ...}`: what identifies a record within a run.
pub fn record_key(r: &Record) -> String {
    key_with(r, r.stat.name())
}

fn key_with(r: &Record, stat: &str) -> String {
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}/{}/{} {} {stat} {{{}}}",
        r.suite,
        r.experiment,
        r.variant,
        r.metric,
        params.join(", ")
    )
}

/// Outcome of [`compare_exact`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exact {
    /// Deterministic records found equal.
    pub equal: usize,
    /// Timed series (noisy metrics) present in both, values not compared.
    pub noisy: usize,
    /// What differs, one line each.
    pub problems: Vec<String>,
}

impl Exact {
    /// Passes when something deterministic was compared and nothing differs.
    pub fn pass(&self) -> bool {
        self.problems.is_empty() && self.equal > 0
    }
}

/// Two runs of one build on one machine (a merged sharded run and the unsharded run): the same
/// deterministic records (every key in both, once), each value equal to the bit, and the same
/// timed series (suite, experiment, variant, params and metric), whose values are not compared.
/// Which percentiles a series has depends on how many samples fitted its time budget, so
/// statistics of noisy metrics are not paired. A metric outside the registry counts as
/// deterministic.
pub fn compare_exact(a: &[Record], b: &[Record]) -> Exact {
    type Index<'r> = (BTreeMap<String, &'r Record>, BTreeSet<String>);
    fn index<'r>(rs: &'r [Record], side: &str, problems: &mut Vec<String>) -> Index<'r> {
        let (mut exact, mut noisy) = (BTreeMap::new(), BTreeSet::new());
        for r in rs {
            if metrics::lookup(&r.metric).is_some_and(|m| m.kind == Kind::Noisy) {
                noisy.insert(key_with(r, "(any statistic)"));
            } else {
                let k = record_key(r);
                if exact.insert(k.clone(), r).is_some() {
                    problems.push(format!("{k}: twice in run {side}"));
                }
            }
        }
        (exact, noisy)
    }
    let mut out = Exact::default();
    let (ia, na) = index(a, "A", &mut out.problems);
    let (ib, nb) = index(b, "B", &mut out.problems);
    for (k, ra) in &ia {
        match ib.get(k) {
            None => out.problems.push(format!("{k}: only in run A")),
            Some(rb) if ra.value.to_bits() == rb.value.to_bits() => out.equal += 1,
            Some(rb) => out
                .problems
                .push(format!("{k}: {} in run A, {} in run B", ra.value, rb.value)),
        }
    }
    for k in ib.keys().filter(|k| !ia.contains_key(*k)) {
        out.problems.push(format!("{k}: only in run B"));
    }
    out.noisy = na.intersection(&nb).count();
    for k in na.difference(&nb) {
        out.problems.push(format!("{k}: only in run A"));
    }
    for k in nb.difference(&na) {
        out.problems.push(format!("{k}: only in run B"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use infermark_suites::Stat;

    fn rec(metric: &str, variant: &str, v: f64) -> Record {
        Record {
            run_id: "r".into(),
            suite: "attention".into(),
            experiment: "e".into(),
            variant: variant.into(),
            backend: "flex".into(),
            device: "cpu".into(),
            scale: "smoke".into(),
            params: BTreeMap::from([("ctx".to_string(), "8".to_string())]),
            metric: metric.into(),
            value: v,
            unit: "bytes".into(),
            stat: Stat::Exact,
            n: 1,
            git_rev: "g".into(),
            timestamp: "t".into(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn equal_runs_compare_equal_and_timings_are_only_paired() {
        let a = vec![
            rec("kv_cache_bytes_per_token", "gqa", 64.0),
            rec("decode_latency_ms", "gqa", 1.0),
        ];
        let mut b = a.clone();
        b[1].value = 2.0;
        // A percentile that only one run had samples enough for is no difference.
        b.push(Record {
            stat: Stat::P99,
            ..b[1].clone()
        });
        let o = compare_exact(&a, &b);
        assert_eq!(
            o,
            Exact {
                equal: 1,
                noisy: 1,
                problems: vec![]
            }
        );
        assert!(o.pass());
        assert!(!compare_exact(&[], &[]).pass());
    }

    #[test]
    fn a_changed_value_missing_records_and_a_doubled_one_are_named() {
        let a = vec![
            rec("kv_cache_bytes_per_token", "gqa", 64.0),
            rec("kv_cache_bytes_per_token", "mha", 128.0),
        ];
        let b = vec![
            rec("kv_cache_bytes_per_token", "gqa", 64.5),
            rec("kv_cache_bytes_per_token", "mqa", 16.0),
            rec("kv_cache_bytes_per_token", "mqa", 16.0),
            rec("decode_latency_ms", "mqa", 3.0),
        ];
        let o = compare_exact(&a, &b);
        assert_eq!(o.equal, 0);
        assert_eq!(
            o.problems,
            vec![
                "attention/e/mqa kv_cache_bytes_per_token exact {ctx=8}: twice in run B",
                "attention/e/gqa kv_cache_bytes_per_token exact {ctx=8}: 64 in run A, 64.5 in run B",
                "attention/e/mha kv_cache_bytes_per_token exact {ctx=8}: only in run A",
                "attention/e/mqa kv_cache_bytes_per_token exact {ctx=8}: only in run B",
                "attention/e/mqa decode_latency_ms (any statistic) {ctx=8}: only in run B",
            ]
        );
    }
}
