//! Gate verdicts and claims ledger verdicts on hand-made records (M(P) is tested in
//! `maturity.rs`; the metric registry's coverage of what the suites emit is checked on a fresh
//! run in bench/tests/cli.rs).

use std::path::Path;

use infermark_reports::{claims, gate, metrics};
use infermark_suites::{Record, Stat};

mod common;

fn rec(variant: &str, metric: &str, value: f64, stat: Stat, params: &[(&str, &str)]) -> Record {
    common::record("attention", variant, metric, value, stat, 1, params)
}

const RULES: &str = r#"
[[rule]]
name = "bytes"
metric = "kv_cache_bytes_per_token"
select = { variant = "gqa" }

[[rule]]
name = "ratio"
metric = "decode_latency_ms"
select = { variant = "gqa", ctx = "64" }
over = { variant = "mha", ctx = "64" }
tolerance = 0.5
"#;

fn run(bytes: f64, gqa_ms: f64) -> Vec<Record> {
    vec![
        rec("gqa", "kv_cache_bytes_per_token", bytes, Stat::Exact, &[]),
        rec(
            "gqa",
            "decode_latency_ms",
            gqa_ms,
            Stat::Median,
            &[("ctx", "64")],
        ),
        rec(
            "mha",
            "decode_latency_ms",
            2.0,
            Stat::Median,
            &[("ctx", "64")],
        ),
    ]
}

fn verdicts(current: &[Record]) -> Vec<gate::Verdict> {
    let rules = gate::parse_rules(RULES, Path::new("rules.toml")).unwrap();
    gate::evaluate(&rules, current, &run(1000.0, 1.0))
}

#[test]
fn a_worse_deterministic_metric_fails_the_gate() {
    let v = verdicts(&run(1001.0, 1.0));
    assert!(!v[0].pass, "{v:?}");
    assert!(v[0].note.contains("worse"), "{}", v[0].note);
    assert!(v[1].pass);
}

#[test]
fn a_better_deterministic_metric_fails_unless_the_rule_allows_it_and_a_better_ratio_passes() {
    // KV bytes per token halved (V dropped?) is a change, not a win.
    let v = verdicts(&run(512.0, 0.5));
    assert!(!v[0].pass && v[0].note.contains("both ways"), "{v:?}");
    assert!((v[0].improvement.unwrap() - 0.488).abs() < 1e-9);
    assert!(v[1].pass, "a noisy ratio may improve: {v:?}");
    let one_sided = RULES.replacen(
        "select = { variant = \"gqa\" }",
        "select = { variant = \"gqa\" }\none_sided = \"fewer bytes is the goal\"",
        1,
    );
    let rules = gate::parse_rules(&one_sided, Path::new("rules.toml")).unwrap();
    let v = gate::evaluate(&rules, &run(512.0, 0.5), &run(1000.0, 1.0));
    assert!(v[0].pass, "{v:?}");
}

#[test]
fn runs_of_another_scale_backend_or_seed_are_not_compared() {
    let env = |scale: &str, seed: u64| infermark_suites::env::RunEnv {
        run_id: "r".into(),
        git_rev: "g".into(),
        backend: "flex".into(),
        burn_features: vec![],
        burn_version: "0.21.0".into(),
        device: "cpu".into(),
        cpu_model: "cpu".into(),
        cpu_flags: vec![],
        cores: 2,
        scale: scale.into(),
        seed,
        suites: vec![],
        notices: vec![],
        percentile_method: "nearest-rank".into(),
        started: "t".into(),
        ended: "t".into(),
        infermark_version: "0".into(),
        isa: Default::default(),
        activations: "int8".into(),
        machine: None,
        device_info: None,
    };
    assert!(gate::comparable(&env("smoke", 42), &env("smoke", 42)).is_ok());
    let e = gate::comparable(&env("quick", 42), &env("smoke", 7)).unwrap_err();
    assert!(
        e.contains("scale quick vs smoke") && e.contains("seed 42 vs 7"),
        "{e}"
    );
}

#[test]
fn a_noisy_ratio_within_tolerance_passes_and_beyond_it_fails() {
    // Baseline ratio 0.5; 0.7 is 40% worse (tolerance 50%), 0.8 is 60% worse.
    assert!(verdicts(&run(1000.0, 1.4))[1].pass);
    assert!(!verdicts(&run(1000.0, 1.6))[1].pass);
}

#[test]
fn a_failed_gate_ends_with_its_failed_rules_their_values_and_tolerance() {
    assert_eq!(gate::failures(&verdicts(&run(1000.0, 1.0))), None);
    let v = verdicts(&run(1001.0, 1.6));
    let screen = gate::failures(&v).unwrap();
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(lines.len(), 2, "{screen}");
    for (line, v) in lines.iter().zip(&v) {
        assert!(
            line.starts_with(&format!("FAIL {}: baseline ", v.rule)),
            "{line}"
        );
        assert!(line.contains("tolerance"), "{line}");
    }
    assert!(
        lines[0].contains("baseline 1000, current 1001"),
        "{}",
        lines[0]
    );
}

#[test]
fn a_metric_the_run_lacks_fails() {
    let v = verdicts(&run(1000.0, 1.0)[1..]);
    assert!(!v[0].pass && v[0].note.contains("run lacks it"), "{v:?}");
}

#[test]
fn malformed_rules_name_the_line() {
    let err = gate::parse_rules("[[rule]]\nname = \"x\"\nmetric = \n", Path::new("g.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("g.toml") && err.contains("line 3"), "{err}");
    let err = gate::parse_rules(
        "[[rule]]\nname = \"x\"\nmetric = \"nope\"\n",
        Path::new("g.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown metric `nope`"), "{err}");
    let err = gate::parse_rules(
        "[[rule]]\nname = \"t\"\nmetric = \"decode_latency_ms\"\n",
        Path::new("g.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("noisy"), "{err}");
}

#[test]
fn every_shipped_rule_matches_the_baseline_and_fails_when_its_record_moves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("ci/gates.toml")).unwrap();
    let rules = gate::parse_rules(&text, Path::new("ci/gates.toml")).unwrap();
    let base = infermark_reports::io::read_run(&root.join("ci/baseline")).unwrap();
    // Live: every rule selects exactly one record (and its denominator) in the baseline.
    let v = gate::evaluate(&rules, &base.records, &base.records);
    assert!(v.iter().all(|x| x.pass), "{v:?}");
    // Able to fail: moving the rule's record far in its worse direction fails that rule.
    for (i, rule) in rules.rules.iter().enumerate() {
        let metric = metrics::lookup(&rule.metric).unwrap();
        let target = infermark_reports::select::one(&base.records, &rule.metric, &rule.select)
            .unwrap()
            .clone();
        let mut moved = base.records.clone();
        for r in moved.iter_mut().filter(|r| **r == target) {
            let far = 10.0 * r.value.abs() + 1.0 + rule.max.unwrap_or(0.0).abs() * 10.0;
            r.value = match metric.direction {
                infermark_suites::metric::Direction::Lower => far,
                infermark_suites::metric::Direction::Higher => -far,
            };
        }
        let v = gate::evaluate(&rules, &moved, &base.records);
        assert!(
            !v[i].pass,
            "rule `{}` passes with its record moved: it cannot fail",
            rule.name
        );
    }
}

#[test]
fn claims_are_reproduced_not_reproduced_or_not_measured() {
    let ledger = claims::parse(claims::LEDGER).unwrap();
    let mem = |mla: f64| {
        vec![
            rec(
                "mla-absorbed",
                "kv_cache_bytes_per_token",
                mla,
                Stat::Exact,
                &[("preset", "deepseek-v2"), ("source", "measured")],
            ),
            rec(
                "mha",
                "kv_cache_bytes_per_token",
                1000.0,
                Stat::Exact,
                &[("preset", "deepseek-v2"), ("source", "measured")],
            ),
        ]
    };
    let verdict = |records: &[Record], id: &str| {
        claims::evaluate(&ledger, records)
            .into_iter()
            .find(|c| c.id == id)
            .unwrap()
            .verdict
    };
    assert_eq!(verdict(&mem(400.0), "mla-memory"), "reproduced");
    assert_eq!(verdict(&mem(600.0), "mla-memory"), "not reproduced");
    assert_eq!(verdict(&mem(400.0), "paged-throughput"), "not measured");
    // Each check's short figure is its detail without the derivation or the reason.
    let all = claims::evaluate(&ledger, &mem(400.0));
    let mla = all.iter().find(|c| c.id == "mla-memory").unwrap();
    assert_eq!(
        mla.figures,
        vec!["KV bytes per token, MLA against MHA of the same model (DeepSeek-V2 shape): 60.0% less (reduction threshold 0.5)"]
    );
    assert!(mla.details[0].starts_with(&format!("{} — ", mla.figures[0])));
    let paged = all.iter().find(|c| c.id == "paged-throughput").unwrap();
    assert_eq!(paged.figures.len(), paged.details.len());
    for (f, d) in paged.figures.iter().zip(&paged.details) {
        assert!(
            f.ends_with(": not measured") && d.starts_with(&format!("{f} (")),
            "{f} / {d}"
        );
    }
    // "max" picks the longest context.
    let speed = |mla: f64| {
        vec![
            rec(
                "mla-absorbed",
                "decode_latency_ms",
                100.0,
                Stat::Median,
                &[("preset", "deepseek-v2"), ("part", "layer"), ("ctx", "64")],
            ),
            rec(
                "mla-absorbed",
                "decode_latency_ms",
                mla,
                Stat::Median,
                &[
                    ("preset", "deepseek-v2"),
                    ("part", "layer"),
                    ("ctx", "4096"),
                ],
            ),
            rec(
                "mha",
                "decode_latency_ms",
                30.0,
                Stat::Median,
                &[
                    ("preset", "deepseek-v2"),
                    ("part", "layer"),
                    ("ctx", "4096"),
                ],
            ),
        ]
    };
    let quick = |v: Vec<Record>| {
        v.into_iter()
            .map(|r| at(r, "quick", 10))
            .collect::<Vec<_>>()
    };
    assert_eq!(verdict(&quick(speed(10.0)), "mla-speed"), "reproduced");
    assert_eq!(verdict(&quick(speed(20.0)), "mla-speed"), "not reproduced");
}

/// `r` as measured at `scale` over `n` samples, timed ones spread ±1% around its value.
fn at(mut r: Record, scale: &str, n: u64) -> Record {
    r.scale = scale.into();
    r.n = n;
    if r.stat == Stat::Median {
        r.samples = (0..n)
            .map(|i| r.value * (0.99 + 0.02 * i as f64 / n.max(2) as f64))
            .collect();
    }
    r
}

fn claim(records: &[Record], id: &str) -> claims::ClaimVerdict {
    let ledger = claims::parse(claims::LEDGER).unwrap();
    claims::evaluate(&ledger, records)
        .into_iter()
        .find(|c| c.id == id)
        .unwrap()
}

#[test]
fn a_two_record_claim_compares_only_conditions_both_records_share() {
    // MLA was timed at 64 and 4096 tokens of context, MHA only at 64: "the longest context"
    // must be 64 for both (before, MLA at 4096 was set against MHA at 64).
    let lat = |v: &str, ctx: &str, ms: f64| {
        at(
            rec(
                v,
                "decode_latency_ms",
                ms,
                Stat::Median,
                &[("preset", "deepseek-v2"), ("part", "layer"), ("ctx", ctx)],
            ),
            "quick",
            10,
        )
    };
    let run = [
        lat("mla-absorbed", "64", 20.0),
        lat("mla-absorbed", "4096", 1.0),
        lat("mha", "64", 30.0),
    ];
    let v = claim(&run, "mla-speed");
    assert_eq!(v.verdict, "not reproduced", "{:?}", v.details);
    assert!(v.details[0].contains("1.500x"), "{:?}", v.details);
    // Records that share no conditions are not compared at all.
    let v = claim(
        &[lat("mla-absorbed", "4096", 1.0), lat("mha", "64", 30.0)],
        "mla-speed",
    );
    assert_eq!(v.verdict, "not measured");
    assert!(
        v.details[0].contains("shares its conditions"),
        "{:?}",
        v.details
    );
}

#[test]
fn smoke_records_small_samples_and_zero_denominators_give_no_verdict() {
    let frag = |scale: &str| {
        vec![at(
            rec(
                "contiguous",
                "kv_fragmentation",
                0.9,
                Stat::Mean,
                &[("trace", "sharegpt"), ("over", "time")],
            ),
            scale,
            1,
        )]
    };
    let v = claim(&frag("smoke"), "paged-fragmentation");
    assert_eq!(v.verdict, "not measured");
    assert!(
        v.details[0].contains("not measured at this scale"),
        "{:?}",
        v.details
    );
    assert!(!claim(&frag("quick"), "paged-fragmentation").details[0].contains("at this scale"));
    // A timed record over 2 samples is not enough.
    let lat = |v: &str, ms: f64, n: u64| {
        at(
            rec(
                v,
                "decode_latency_ms",
                ms,
                Stat::Median,
                &[("preset", "deepseek-v2"), ("part", "layer"), ("ctx", "64")],
            ),
            "quick",
            n,
        )
    };
    let v = claim(
        &[lat("mla-absorbed", 1.0, 2), lat("mha", 3.0, 10)],
        "mla-speed",
    );
    assert!(v.details[0].contains("n ≥ 3"), "{:?}", v.details);
    // A zero denominator is not an infinite speedup.
    let bytes = |v: &str, b: f64| {
        rec(
            v,
            "kv_cache_bytes_per_token",
            b,
            Stat::Exact,
            &[("preset", "deepseek-v2"), ("source", "measured")],
        )
    };
    let v = claim(
        &[bytes("mla-absorbed", 10.0), bytes("mha", 0.0)],
        "mla-memory",
    );
    assert_eq!(v.verdict, "not measured");
    assert!(v.details[0].contains("cannot compare"), "{:?}", v.details);
}

#[test]
fn a_best_pick_claim_takes_the_best_matching_record_and_shows_its_conditions() {
    let ledger = claims::parse(claims::LEDGER).unwrap();
    let spec = |gamma: &str, batch: &str, v: f64| {
        let mut r = rec(
            "draft",
            "speculative_speedup",
            v,
            Stat::Median,
            &[("gamma", gamma), ("batch", batch), ("temperature", "0")],
        );
        r.suite = "speculative".into();
        at(r, "quick", 10)
    };
    let verdict = |records: &[Record]| {
        claims::evaluate(&ledger, records)
            .into_iter()
            .find(|c| c.id == "speculative-3x")
            .unwrap()
    };
    // The batch-4 record is better but is not a batch-1 measurement.
    let v = verdict(&[
        spec("2", "1", 1.5),
        spec("4", "1", 3.2),
        spec("4", "4", 5.0),
    ]);
    assert_eq!(v.verdict, "reproduced");
    assert!(
        v.details[0].contains("(draft batch=1 gamma=4"),
        "{:?}",
        v.details
    );
    let v = verdict(&[
        spec("2", "1", 1.5),
        spec("4", "1", 2.9),
        spec("4", "4", 5.0),
    ]);
    assert_eq!(v.verdict, "not reproduced");
    assert_eq!(verdict(&[spec("4", "4", 5.0)]).verdict, "not measured");
    let bad = claims::LEDGER.replace("pick = \"best\"", "pick = \"worst\"");
    let err = claims::parse(&bad).unwrap_err().to_string();
    assert!(err.contains("pick `worst`"), "{err}");
}

#[test]
fn the_fp8_int4_size_claim_is_judged_against_bf16_and_on_both_texts() {
    let r = |variant: &str, metric: &str, v: f64, params: &[(&str, &str)]| {
        let mut r = rec(variant, metric, v, Stat::Exact, params);
        r.suite = "quantization".into();
        at(r, "quick", 100)
    };
    let q = |metric: &str, model: &str, v: f64| {
        r(
            "mixed-fp8-int4",
            metric,
            v,
            &[("model", model), ("text", "t")],
        )
    };
    let real = |method: &str, v: f64| {
        let p = [("model", "smollm2-135m"), ("text", "t"), ("method", method)];
        r("mixed-fp8-int4", "perplexity_delta_pct", v, &p)
    };
    // The training half: the gap at each validation step, and over the curve (its max).
    let gap = |step: &str, v: f64| {
        let p = [("model", "target"), ("step", step)];
        r("fp8-training", "valid_loss_gap_pct", v, &p)
    };
    let mut curve_max = gap("0", 9.0);
    curve_max.params.remove("step");
    curve_max.params.insert("over".into(), "curve".into());
    curve_max.stat = Stat::Max;
    // 4.9x smaller than FP32 is only 2.45x smaller than BF16: not "75% smaller".
    let run = vec![
        q("compression_vs_fp32", "target", 4.9),
        q("compression_vs_bf16", "target", 2.45),
        q("perplexity_delta_pct", "target", 0.2),
        real("rtn", 29.0),
        real("imatrix", 0.5),
        real("awq", 10.5),
        gap("50", 9.0),
        gap("150", 0.4),
        curve_max,
    ];
    let v = claim(&run, "fp8-int4");
    assert_eq!(v.verdict, "not reproduced", "{:?}", v.details);
    assert!(
        v.details.iter().any(|d| d.contains("BF16")),
        "{:?}",
        v.details
    );
    // The real text takes the best method and names it; training takes the last validation.
    assert!(
        v.details
            .iter()
            .any(|d| d.contains("best rounding method") && d.contains("method=imatrix")),
        "{:?}",
        v.details
    );
    assert!(
        v.details
            .iter()
            .any(|d| d.starts_with("FP8-simulated training")
                && d.contains("step=150")
                && d.ends_with("→ holds")),
        "{:?}",
        v.details
    );
    // The easy text alone cannot carry the accuracy half: a loss on real text fails it.
    let mut hard = run.clone();
    hard[1] = q("compression_vs_bf16", "target", 4.1);
    assert_eq!(claim(&hard, "fp8-int4").verdict, "reproduced");
    hard[4] = real("imatrix", 53.0);
    assert_eq!(claim(&hard, "fp8-int4").verdict, "not reproduced");
    // Nor can the inference half carry the training half.
    let mut train = run.clone();
    train[1] = q("compression_vs_bf16", "target", 4.1);
    train[7] = gap("150", 1.3);
    assert_eq!(claim(&train, "fp8-int4").verdict, "not reproduced");
    train.truncate(6);
    assert_eq!(claim(&train, "fp8-int4").verdict, "not measured");
}

/// Every registered metric name, as load errors list them.
fn known_metrics() -> String {
    metrics::ALL
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn a_claims_file_with_an_unknown_metric_fails_at_load_naming_its_line() {
    let text = r#"[[claim]]
id = "mla-memory"
text = "MLA: half the KV-cache memory"

[[claim.check]]
label = "bytes"
metric = "kv_bytes_per_tokn"
test = "at_most"
a = { variant = "mla-absorbed" }
threshold = 0.5
"#;
    let err = claims::parse_at(text, Path::new("bad-claims.toml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "bad-claims.toml: malformed: line 7: unknown metric `kv_bytes_per_tokn` in check \
             `bytes` (known metrics: {})",
            known_metrics()
        )
    );
}

#[test]
fn a_gate_file_with_an_unknown_metric_fails_at_load_naming_its_line() {
    let text = RULES.replace(
        "metric = \"decode_latency_ms\"",
        "metric = \"decode_latncy_ms\"",
    );
    let err = gate::parse_rules(&text, Path::new("gates.toml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "gates.toml: malformed: line 9: unknown metric `decode_latncy_ms` in rule `ratio` \
             (known metrics: {})",
            known_metrics()
        )
    );
}

#[test]
fn a_gate_selector_with_an_unknown_suite_fails_at_load_naming_its_line() {
    let text = RULES.replace(
        "select = { variant = \"gqa\" }",
        "select = { suite = \"atention\", variant = \"gqa\" }",
    );
    let err = gate::parse_rules(&text, Path::new("gates.toml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "gates.toml: malformed: line 5: unknown suite `atention` in rule `bytes` (known \
             suites: {})",
            infermark_reports::names::known_suites().join(", ")
        )
    );
}

/// Decode latencies of MHA and MLA (absorbed) at one context, `n` samples each: MHA's scattered
/// around `mha_ms` and MLA's around `mla_ms`, by the same multiplicative noise pattern.
fn timed_pair(mha: &[f64], mla: &[f64]) -> Vec<Record> {
    let lat = |v: &str, xs: &[f64]| {
        let mut r = rec(
            v,
            "decode_latency_ms",
            infermark_suites::measure::Summary::of(xs).median,
            Stat::Median,
            &[("preset", "deepseek-v2"), ("part", "layer"), ("ctx", "64")],
        );
        r.scale = "quick".into();
        r.n = xs.len() as u64;
        r.samples = xs.to_vec();
        r
    };
    vec![lat("mha", mha), lat("mla-absorbed", mla)]
}

/// A deterministic stream of uniform numbers in (0, 1) (an LCG: no test depends on a crate's
/// generator).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Log-normal noise: exp(σ·z), z standard normal (Box–Muller).
    fn noise(&mut self, sigma: f64) -> f64 {
        let (u, v) = (self.next(), self.next());
        (sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()).exp()
    }
}

#[test]
fn a_timed_claim_whose_interval_straddles_its_threshold_is_inconclusive() {
    // Speedup threshold 2: MHA 100 ms against MLA ~50 ms with ±20% noise, 10 samples each.
    let mut g = Lcg(7);
    let noisy = |g: &mut Lcg, ms: f64| (0..10).map(|_| ms * g.noise(0.2)).collect::<Vec<_>>();
    let v = claim(
        &timed_pair(&noisy(&mut g, 100.0), &noisy(&mut g, 50.0)),
        "mla-speed",
    );
    assert_eq!(v.verdict, claims::INCONCLUSIVE, "{:?}", v.details);
    assert!(v.figures[0].contains("95% CI"), "{:?}", v.figures);
    assert!(
        v.figures[0].contains("per side would decide it"),
        "{:?}",
        v.figures
    );
    // Shifted clear of it, each way.
    let v = claim(
        &timed_pair(&noisy(&mut g, 100.0), &noisy(&mut g, 25.0)),
        "mla-speed",
    );
    assert_eq!(v.verdict, "reproduced", "{:?}", v.details);
    let v = claim(
        &timed_pair(&noisy(&mut g, 100.0), &noisy(&mut g, 90.0)),
        "mla-speed",
    );
    assert_eq!(v.verdict, "not reproduced", "{:?}", v.details);
    // Too few samples for a 95% interval, or none kept: inconclusive, and it says why.
    let v = claim(&timed_pair(&[100.0; 3], &[25.0; 3]), "mla-speed");
    assert_eq!(v.verdict, claims::INCONCLUSIVE);
    assert!(v.figures[0].contains("needs n ≥ 4"), "{:?}", v.figures);
    let mut old = timed_pair(&[100.0; 5], &[25.0; 5]);
    old.iter_mut().for_each(|r| r.samples.clear());
    let v = claim(&old, "mla-speed");
    assert_eq!(v.verdict, claims::INCONCLUSIVE);
    assert!(v.figures[0].contains("no samples kept"), "{:?}", v.figures);
}

#[test]
fn ratio_and_median_intervals_cover_a_known_value_at_least_93_percent_of_1000_trials() {
    use infermark_reports::interval;
    let mut g = Lcg(2026);
    let (trials, ratio) = (1000, 2.5);
    let (mut ratio_hits, mut median_hits) = (0, 0);
    for t in 0..trials {
        // Ragged sample counts, as timed pairs end up with: 6..=15 a side.
        let (m, n) = (6 + t % 10, 6 + (t / 10) % 10);
        let a: Vec<f64> = (0..m).map(|_| ratio * 10.0 * g.noise(0.3)).collect();
        let b: Vec<f64> = (0..n).map(|_| 10.0 * g.noise(0.3)).collect();
        let iv = interval::ratio(&a, &b).unwrap();
        ratio_hits += usize::from(iv.lo <= ratio && ratio <= iv.hi);
        // The median of log-normal noise around `ratio` is `ratio`.
        let x: Vec<f64> = (0..m).map(|_| ratio * g.noise(0.3)).collect();
        let iv = interval::median(&x).unwrap();
        median_hits += usize::from(iv.lo <= ratio && ratio <= iv.hi);
    }
    assert!(
        ratio_hits >= 930,
        "ratio interval covered {ratio_hits} of {trials}"
    );
    assert!(
        median_hits >= 930,
        "median interval covered {median_hits} of {trials}"
    );
}
