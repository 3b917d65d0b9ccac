//! Sharded runs through the binary: `run --shard i/n` refuses a malformed shard by name and
//! writes nothing; shards of a small real run merge into the unsharded run's records; `merge`
//! refuses overlapping, missing and mismatched shards (synthetic folders), naming the shard,
//! the field and the folders, and writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use infermark_reports::io;
use infermark_suites::shard::{ShardInfo, ShardedEnv};
use infermark_suites::{Record, Stat};

fn infermark(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infermark"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infermark-shard-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn malformed_shards_are_refused_by_name_and_nothing_is_written() {
    for (shard, why) in [
        ("0/3", "the index must be at least 1"),
        ("4/3", "the index 4 exceeds the count 3"),
        ("a/b", "index `a` is not a whole number"),
        ("1/0", "the count must be at least 1"),
        ("2", "no `/`"),
    ] {
        let dir = tmp(&format!("bad-{}", shard.replace('/', "-")));
        let out = dir.join("out");
        let o = infermark(&[
            "run",
            "--scale",
            "smoke",
            "--shard",
            shard,
            "--out",
            s(&out),
        ]);
        assert_eq!(o.status.code(), Some(2), "{shard}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(&format!("shard `{shard}`")), "{shard}: {e}");
        assert!(e.contains(why), "{shard}: {e}");
        assert!(
            entries(&dir).is_empty(),
            "{shard}: wrote {:?}",
            entries(&dir)
        );
    }
}

#[test]
fn more_shards_than_cases_is_refused_before_running() {
    let dir = tmp("too-many");
    let out = dir.join("out");
    // The lm suite has 4 cases at smoke scale.
    let o = infermark(&[
        "run",
        "--suite",
        "lm",
        "--scale",
        "smoke",
        "--shard",
        "5/5",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("--shard 5/5") && e.contains("5 shards for a run of 4 cases"),
        "{e}"
    );
    assert!(entries(&dir).is_empty(), "wrote {:?}", entries(&dir));
}

/// Two shards of a small real run merge into the unsharded run's records; only shard 1 holds
/// the machine's bandwidth records, and the merged records carry the merged run's id.
#[test]
fn two_shards_merge_into_the_unsharded_run() {
    let dir = tmp("real");
    let sel = [
        "run",
        "--suite",
        "attention",
        "--variant",
        "mqa",
        "--variant",
        "mha",
        "--scale",
        "smoke",
    ];
    let run = |extra: &[&str]| {
        let mut a = sel.to_vec();
        a.extend_from_slice(extra);
        let o = infermark(&a);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    };
    let (whole, s1, s2, merged) = (
        dir.join("whole"),
        dir.join("s1"),
        dir.join("s2"),
        dir.join("merged"),
    );
    run(&["--out", s(&whole)]);
    run(&["--shard", "1/2", "--out", s(&s1)]);
    run(&["--shard", "2/2", "--out", s(&s2)]);

    let shard = |d: &Path| io::read_run(d).unwrap();
    let machine = |r: &io::Run| r.records.iter().filter(|r| r.suite == "machine").count();
    assert!(machine(&shard(&s1)) > 0);
    assert_eq!(machine(&shard(&s2)), 0, "only shard 1 records the machine");
    let info = |d: &Path| {
        let text = std::fs::read_to_string(d.join("run.json")).unwrap();
        serde_json::from_str::<ShardedEnv>(&text)
            .unwrap()
            .shard
            .unwrap()
    };
    let (i1, i2) = (info(&s1), info(&s2));
    assert_eq!((i1.index, i1.count, i2.index, i2.count), (1, 2, 2, 2));
    assert_eq!(i1.run_cases, i2.run_cases);
    assert_eq!(i1.cases.len() + i2.cases.len(), i1.run_cases.len());

    let o = infermark(&["merge", "--out", s(&merged), s(&s2), s(&s1)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = io::read_run(&merged).unwrap();
    assert!(
        m.env.run_id.ends_with("-smoke-flex-merged"),
        "{}",
        m.env.run_id
    );
    assert!(m.records.iter().all(|r| r.run_id == m.env.run_id));
    let ndjson = io::read_ndjson(&merged.join("results.ndjson")).unwrap();
    assert_eq!(ndjson.len(), m.records.len());
    assert!(ndjson.iter().all(|r| r.run_id == m.env.run_id));
    assert_eq!(
        m.records.len(),
        shard(&s1).records.len() + shard(&s2).records.len()
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("run.json")).unwrap()).unwrap();
    let shards = json["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    assert_eq!(shards[0]["index"], 1);
    assert_eq!(shards[1]["run_id"], shard(&s2).env.run_id);
    assert!(json.get("shard").is_none());

    let o = infermark(&["crosscheck", "--exact", "--a", s(&whole), "--b", s(&merged)]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
}

// --- synthetic shard folders for merge's refusals ---------------------------------------------

const CASES: [&str; 3] = ["toy/a[preset=p]", "toy/b[preset=p]", "toy/c[preset=p]"];

fn record(variant: &str, value: f64) -> Record {
    Record {
        run_id: format!("run-{variant}"),
        suite: "toy".into(),
        experiment: "e".into(),
        variant: variant.into(),
        backend: "flex".into(),
        device: "cpu: test".into(),
        scale: "smoke".into(),
        params: BTreeMap::from([("preset".to_string(), "p".to_string())]),
        metric: "kv_cache_bytes_per_token".into(),
        value,
        unit: "bytes".into(),
        stat: Stat::Exact,
        n: 1,
        git_rev: "abc".into(),
        timestamp: "2026-01-01T00:00:00Z".into(),
        samples: Vec::new(),
    }
}

/// Writes shard `index` of `count` holding `cases` (indices into CASES) to `dir`.
fn write_shard(dir: &Path, index: usize, count: usize, cases: &[usize], seed: u64) {
    let env = serde_json::json!({
        "run_id": format!("shard{index}"),
        "git_rev": "abc",
        "backend": "flex",
        "burn_features": ["flex"],
        "burn_version": "0.21.0",
        "device": format!("cpu: machine {index}"),
        "cpu_model": format!("machine {index}"),
        "cpu_flags": ["avx2"],
        "cores": 2,
        "scale": "smoke",
        "seed": seed,
        "suites": ["toy"],
        "percentile_method": "nearest-rank",
        "started": format!("2026-01-01T00:0{index}:00Z"),
        "ended": format!("2026-01-01T00:1{index}:00Z"),
        "infermark_version": "0.1.0",
    });
    let env = ShardedEnv {
        env: serde_json::from_value(env).unwrap(),
        shard: Some(ShardInfo {
            index,
            count,
            cost: cases.len() as f64,
            cases: cases.iter().map(|&c| CASES[c].to_string()).collect(),
            run_cases: CASES.iter().map(|c| c.to_string()).collect(),
        }),
        shards: Vec::new(),
    };
    let records: Vec<Record> = cases
        .iter()
        .map(|&c| record(["a", "b", "c"][c], 10.0 * (c + 1) as f64))
        .collect();
    io::write_run_as(dir, &records, &env, false).unwrap();
}

/// Runs `merge --out <dir>/merged <shards>` and checks it fails naming every one of `needles`
/// and writes nothing.
fn merge_refused(dir: &Path, shards: &[&str], needles: &[&str]) {
    let out = dir.join("merged");
    let mut args = vec!["merge", "--out", s(&out)];
    let paths: Vec<PathBuf> = shards.iter().map(|n| dir.join(n)).collect();
    args.extend(paths.iter().map(|p| s(p)));
    let o = infermark(&args);
    assert!(!o.status.success(), "merge of {shards:?} succeeded");
    let e = stderr(&o);
    for n in needles {
        let n = n.replace("{dir}", s(dir));
        assert!(e.contains(&n), "stderr lacks `{n}`: {e}");
    }
    assert!(!out.exists(), "wrote {}", out.display());
}

#[test]
fn three_synthetic_shards_merge_with_every_machine_named() {
    let dir = tmp("merge-ok");
    write_shard(&dir.join("s1"), 1, 3, &[0], 42);
    write_shard(&dir.join("s2"), 2, 3, &[2], 42);
    write_shard(&dir.join("s3"), 3, 3, &[1], 42);
    let out = dir.join("merged");
    let o = infermark(&[
        "merge",
        "--out",
        s(&out),
        s(&dir.join("s3")),
        s(&dir.join("s1")),
        s(&dir.join("s2")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = io::read_run(&out).unwrap();
    let values: Vec<(String, f64)> = m
        .records
        .iter()
        .map(|r| (r.variant.clone(), r.value))
        .collect();
    assert_eq!(
        values,
        vec![("a".into(), 10.0), ("c".into(), 30.0), ("b".into(), 20.0)],
        "records in shard order"
    );
    assert_eq!(
        m.env.device,
        "cpu: machine 1 + cpu: machine 2 + cpu: machine 3"
    );
    assert_eq!(m.env.started, "2026-01-01T00:01:00Z");
    assert_eq!(m.env.ended, "2026-01-01T00:13:00Z");
    assert_eq!(m.env.seed, 42);
    let text = std::fs::read_to_string(out.join("run.json")).unwrap();
    let env: ShardedEnv = serde_json::from_str(&text).unwrap();
    let shards: Vec<(usize, &str, &str)> = env
        .shards
        .iter()
        .map(|s| (s.index, s.run_id.as_str(), s.cpu_model.as_str()))
        .collect();
    assert_eq!(
        shards,
        vec![
            (1, "shard1", "machine 1"),
            (2, "shard2", "machine 2"),
            (3, "shard3", "machine 3")
        ]
    );
    assert_eq!(env.shards[1].cases, vec![CASES[2].to_string()]);
    assert!(
        env.env
            .notices
            .iter()
            .any(|n| n.contains("3 kinds of machine")),
        "{:?}",
        env.env.notices
    );

    // An existing folder is refused without --force and replaced with it.
    let again = |force: bool| {
        let mut a = vec!["merge", "--out", s(&out)];
        if force {
            a.push("--force");
        }
        let ps: Vec<PathBuf> = ["s1", "s2", "s3"].iter().map(|n| dir.join(n)).collect();
        a.extend(ps.iter().map(|p| s(p)));
        infermark(&a)
    };
    let o = again(false);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert!(again(true).status.success());
    assert_eq!(
        entries(&dir),
        vec!["merged", "s1", "s2", "s3"],
        "no staging folder left behind"
    );
    // The merged folder cannot be one of the shards.
    let o = infermark(&[
        "merge",
        "--force",
        "--out",
        s(&dir.join("s1")),
        s(&dir.join("s1")),
        s(&dir.join("s2")),
        s(&dir.join("s3")),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is one of the shard folders"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_shard_given_twice_is_refused_naming_both_folders() {
    let dir = tmp("merge-twice");
    write_shard(&dir.join("s1"), 1, 2, &[0, 1], 42);
    write_shard(&dir.join("s2"), 2, 2, &[2], 42);
    write_shard(&dir.join("s2-again"), 2, 2, &[2], 42);
    merge_refused(
        &dir,
        &["s1", "s2", "s2-again"],
        &[
            "shard 2/2 is given 2 times: {dir}/s2, {dir}/s2-again",
            "case toy/c[preset=p] is in shard 2/2 ({dir}/s2) and shard 2/2 ({dir}/s2-again)",
        ],
    );
}

#[test]
fn a_case_in_two_shards_is_refused_naming_case_and_shards() {
    let dir = tmp("merge-overlap");
    write_shard(&dir.join("s1"), 1, 2, &[0, 1], 42);
    write_shard(&dir.join("s2"), 2, 2, &[1, 2], 42);
    merge_refused(
        &dir,
        &["s1", "s2"],
        &[
            "case toy/b[preset=p] is in shard 1/2 ({dir}/s1) and shard 2/2 ({dir}/s2)",
            "records in two shards (1): toy/e/b kv_cache_bytes_per_token exact {preset=p}",
        ],
    );
}

#[test]
fn a_missing_shard_is_refused_naming_it_and_the_cases_left_out() {
    let dir = tmp("merge-missing");
    write_shard(&dir.join("s1"), 1, 3, &[0], 42);
    write_shard(&dir.join("s3"), 3, 3, &[1], 42);
    merge_refused(
        &dir,
        &["s1", "s3"],
        &[
            "missing shard 2/3 (given: shard 1/3 ({dir}/s1), shard 3/3 ({dir}/s3))",
            "1 of the run's 3 cases are in no shard: toy/c[preset=p]",
        ],
    );
}

#[test]
fn shards_with_different_seeds_are_refused_naming_the_field_and_folders() {
    let dir = tmp("merge-seed");
    write_shard(&dir.join("s1"), 1, 2, &[0, 1], 42);
    write_shard(&dir.join("s2"), 2, 2, &[2], 7);
    merge_refused(
        &dir,
        &["s1", "s2"],
        &["shards differ in seed: 42 in {dir}/s1; 7 in {dir}/s2; merge only the shards of one run"],
    );
}

#[test]
fn a_folder_that_is_no_shard_is_refused_by_name() {
    let dir = tmp("merge-plain");
    write_shard(&dir.join("s1"), 1, 2, &[0, 1], 42);
    let env: infermark_suites::env::RunEnv =
        serde_json::from_str(&std::fs::read_to_string(dir.join("s1").join("run.json")).unwrap())
            .unwrap();
    io::write_run(&dir.join("plain"), &[record("c", 30.0)], &env, false).unwrap();
    merge_refused(
        &dir,
        &["s1", "plain"],
        &["{dir}/plain/run.json: malformed: names no `shard`"],
    );
    merge_refused(
        &dir,
        &["s1", "nosuch"],
        &["{dir}/nosuch", "not a run directory"],
    );
}
