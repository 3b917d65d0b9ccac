//! The `infermark` binary end to end: bad input is refused with a clear message, a non-zero exit
//! and no files; a smoke run writes the three result files and a report with an inline chart.

use std::path::Path;
use std::process::{Command, Output};

fn infermark(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infermark"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("infermark-cli-{}-{name}", std::process::id()));
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

/// Runs `infermark run <args> --out <fresh dir>/out` and checks it fails, says every one of
/// `needles` on stderr, and writes nothing.
fn refused(name: &str, args: &[&str], needles: &[&str]) {
    let dir = tmp(name);
    let out = dir.join("out");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["--out", out.to_str().unwrap()]);
    let o = infermark(&all);
    assert!(!o.status.success(), "{name}: succeeded");
    let e = stderr(&o);
    for n in needles {
        assert!(e.contains(n), "{name}: stderr lacks `{n}`: {e}");
    }
    assert!(
        entries(&dir).is_empty(),
        "{name}: wrote {:?}",
        entries(&dir)
    );
}

#[test]
fn unknown_suite_is_refused_and_nothing_is_written() {
    refused(
        "suite",
        &["--suite", "nosuch", "--scale", "smoke"],
        &["unknown suite `nosuch`", "attention"],
    );
}

#[test]
fn bad_scale_is_refused_and_nothing_is_written() {
    refused(
        "scale",
        &["--scale", "huge"],
        &["unknown scale `huge`", "smoke, quick, full"],
    );
}

#[test]
fn unknown_variant_is_refused() {
    refused(
        "variant",
        &["--variant", "gpa", "--scale", "smoke"],
        &["unknown variant `gpa`"],
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_names_the_feature() {
    refused(
        "cuda",
        &["--backend", "cuda", "--scale", "smoke"],
        &["--features cuda"],
    );
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn wgpu_without_the_feature_names_the_feature_and_exits_2() {
    let dir = tmp("wgpu-feature");
    let out = dir.join("out");
    let o = infermark(&[
        "run",
        "--backend",
        "wgpu",
        "--scale",
        "smoke",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--features wgpu"), "{}", stderr(&o));
    assert!(entries(&dir).is_empty(), "wrote {:?}", entries(&dir));
}

/// The Vulkan loader pointed at a driver list that does not exist: no adapter at all.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_without_a_vulkan_device_exits_2_and_says_how_to_install_one() {
    let dir = tmp("no-vulkan");
    let out = dir.join("out");
    let none = dir.join("no-such-icd.json");
    let o = Command::new(env!("CARGO_BIN_EXE_infermark"))
        .env("VK_ICD_FILENAMES", &none)
        .env("VK_DRIVER_FILES", &none)
        .args(["run", "--backend", "wgpu", "--scale", "smoke", "--out"])
        .arg(&out)
        .output()
        .expect("binary runs");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("backend `wgpu` has no device here")
            && e.contains("apt-get install mesa-vulkan-drivers")
            && e.contains("GPU's driver"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert!(entries(&dir).is_empty(), "wrote {:?}", entries(&dir));
}

#[test]
fn existing_out_dir_is_refused_and_left_untouched() {
    let dir = tmp("exists");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let o = infermark(&[
        "run",
        "--suite",
        "attention",
        "--scale",
        "smoke",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(entries(&out), vec!["keep.txt"]);
    assert_eq!(entries(&dir), vec!["out"]);
}

#[test]
fn unknown_isa_paths_are_refused_by_name_and_a_lower_one_is_accepted() {
    let o = infermark(&["--isa", "sse9", "list"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("sse9"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_infermark"))
        .env("INFERMARK_ISA", "bogus")
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("INFERMARK_ISA") && e.contains("bogus"), "{e}");
    let o = infermark(&["--isa", "portable", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A path above the CPU's: an error naming the input and the missing features, not a crash.
    use infermark_models::kernels::isa::{self, Isa};
    match Isa::ALL.into_iter().find(|i| !i.supported()) {
        Some(above) => {
            let o = infermark(&["--isa", above.name(), "list"]);
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            let e = stderr(&o);
            assert!(
                e.contains(&format!("--isa {above}")) && e.contains("lacks"),
                "{e}"
            );
        }
        None => eprintln!(
            "NOT RUN: forcing an unsupported ISA path: this CPU supports every path (up to {})",
            isa::detected()
        ),
    }
}

#[test]
fn smoke_run_writes_results_and_report() {
    let dir = tmp("smoke");
    let out = dir.join("run");
    let o = infermark(&["run", "--scale", "smoke", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        entries(&out),
        vec!["results.ndjson", "results.parquet", "run.json"]
    );
    assert_eq!(entries(&dir), vec!["run"], "no staging folder left behind");

    // Without --verbose the run ends with one screen that names every claim of the ledger.
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.lines().count() <= 60,
        "{} lines:\n{shown}",
        shown.lines().count()
    );
    let ledger = infermark_reports::claims::parse(infermark_reports::claims::LEDGER).unwrap();
    for c in &ledger.claims {
        assert!(
            shown.contains(&c.id),
            "claim {} not on the screen:\n{shown}",
            c.id
        );
    }
    assert!(shown.contains("report: infermark report --run"), "{shown}");

    // The run says which SIMD path the kernels took and measured the machine's bandwidth.
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let detected = infermark_models::kernels::isa::detected().name();
    assert_eq!(env["isa"]["active"], detected, "{}", env["isa"]);
    assert_eq!(env["isa"]["kernels"]["quant_matvec"], detected);
    assert!(env["machine"]["triad_gbps"].as_f64().unwrap() > 0.0);

    let ndjson = std::fs::read_to_string(out.join("results.ndjson")).unwrap();
    let records: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every metric this fresh run emitted is in the registry, with the registry's unit.
    for r in &records {
        let name = r["metric"].as_str().unwrap();
        let m = infermark_suites::metric::lookup(name)
            .unwrap_or_else(|| panic!("metric `{name}` missing from the registry"));
        assert_eq!(r["unit"], m.unit, "unit of {name}");
    }
    for key in [
        "suite",
        "experiment",
        "variant",
        "backend",
        "scale",
        "params",
        "metric",
        "value",
        "unit",
        "stat",
        "n",
    ] {
        assert!(
            records.iter().all(|r| r.get(key).is_some()),
            "key {key} missing"
        );
    }
    for metric in [
        "kv_fragmentation",
        "max_concurrent_sequences",
        "kv_bytes_reserved_peak",
        "kv_bytes_used_peak",
        "trace_tokens_per_s",
        "decode_step_ms",
        "kv_bytes_saved_by_sharing",
        "decode_latency_ms",
        "paged_vs_contiguous_max_abs_diff",
    ] {
        for variant in ["contiguous", "paged"] {
            let n = records
                .iter()
                .filter(|r| {
                    r["suite"] == "kv_cache" && r["variant"] == variant && r["metric"] == metric
                })
                .count();
            let shared_only = matches!(
                metric,
                "kv_bytes_saved_by_sharing" | "paged_vs_contiguous_max_abs_diff"
            );
            assert!(
                n > 0 || (variant == "contiguous" && shared_only),
                "kv_cache {variant}/{metric} missing"
            );
        }
    }
    // Sharing uses fixed lengths, not a trace: recorded once per block size and scenario.
    let sharing: Vec<_> = records
        .iter()
        .filter(|r| r["metric"] == "kv_bytes_saved_by_sharing")
        .collect();
    assert!(!sharing.is_empty());
    assert!(sharing.iter().all(|r| r["params"].get("trace").is_none()));
    let keys: std::collections::BTreeSet<String> =
        sharing.iter().map(|r| r["params"].to_string()).collect();
    assert_eq!(keys.len(), sharing.len(), "one record per sharing setting");
    let block_sizes: std::collections::BTreeSet<_> = records
        .iter()
        .filter(|r| r["suite"] == "kv_cache")
        .filter_map(|r| r["params"]["block_size"].as_str())
        .collect();
    assert!(
        block_sizes.len() >= 2,
        "at least two block sizes: {block_sizes:?}"
    );
    for variant in ["mha", "gqa", "mqa", "mla-naive", "mla-absorbed"] {
        for metric in [
            "kv_cache_bytes_per_token",
            "decode_latency_ms",
            "prefill_latency_ms",
            "kv_read_gbps",
            "flops_per_token",
        ] {
            assert!(
                records
                    .iter()
                    .any(|r| r["variant"] == variant && r["metric"] == metric),
                "{variant}/{metric} missing"
            );
        }
    }
    assert!(records
        .iter()
        .any(|r| r["metric"] == "mla_absorbed_vs_naive_max_abs_diff"
            && r["value"].as_f64().unwrap() < 1e-4));
    // Analytic and measured cache bytes agree for every variant and preset.
    let kv: Vec<_> = records
        .iter()
        .filter(|r| r["metric"] == "kv_cache_bytes_per_token")
        .collect();
    for a in kv.iter().filter(|r| r["params"]["source"] == "analytic") {
        let m = kv
            .iter()
            .find(|r| {
                r["params"]["source"] == "measured"
                    && r["variant"] == a["variant"]
                    && r["params"]["preset"] == a["params"]["preset"]
            })
            .expect("measured twin");
        assert_eq!(a["value"], m["value"]);
    }
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    for key in [
        "git_rev",
        "backend",
        "burn_features",
        "cpu_model",
        "cpu_flags",
        "cores",
        "scale",
        "seed",
        "started",
        "ended",
        "percentile_method",
    ] {
        assert!(env.get(key).is_some(), "run.json lacks {key}");
    }

    // A second run into the same folder is refused; with --force it replaces it.
    let again = infermark(&[
        "run",
        "--suite",
        "attention",
        "--scale",
        "smoke",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!again.status.success());

    let html = dir.join("report.html");
    let o = infermark(&[
        "report",
        "--run",
        out.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("decode_latency_ms"));
    assert!(
        !page.contains("http://")
            || page
                .matches("http://")
                .all(|_| page.contains("http://www.w3.org")),
        "no network fetches"
    );
    let o = infermark(&[
        "report",
        "--run",
        out.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success(),
        "existing report is not overwritten without --force"
    );
}

#[test]
fn report_of_a_missing_run_is_a_clear_error() {
    let dir = tmp("report");
    let o = infermark(&[
        "report",
        "--run",
        dir.join("nope").to_str().unwrap(),
        "--out",
        dir.join("r.html").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a run directory"), "{}", stderr(&o));
    assert!(entries(&dir).is_empty());
}

#[test]
fn a_trace_file_drives_the_kv_cache_suite_and_a_malformed_one_writes_nothing() {
    let dir = tmp("trace");
    let good = dir.join("mytrace.csv");
    // Requests arriving 2 ms apart.
    let rows: String = (0..40)
        .map(|i| format!("{},{},{}\n", 20 + i % 9, 10 + i % 7, i as f64 * 0.002))
        .collect();
    std::fs::write(
        &good,
        format!("prompt_tokens,output_tokens,arrival_s\n{rows}"),
    )
    .unwrap();
    let out = dir.join("run");
    let o = infermark(&[
        "run",
        "--suite",
        "kv_cache",
        "--scale",
        "smoke",
        "--trace",
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ndjson = std::fs::read_to_string(out.join("results.ndjson")).unwrap();
    let frag: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["metric"] == "kv_fragmentation")
        .collect();
    assert!(!frag.is_empty() && frag.iter().all(|r| r["params"]["trace"] == "mytrace"));
    for variant in ["contiguous", "orca-pow2", "orca-oracle", "paged"] {
        assert!(frag.iter().any(|r| r["variant"] == variant));
    }

    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "prompt_tokens,output_tokens\n10,5\n7,-3\n").unwrap();
    let out2 = dir.join("run2");
    let o = infermark(&[
        "run",
        "--suite",
        "kv_cache",
        "--scale",
        "smoke",
        "--trace",
        bad.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 3"), "{}", stderr(&o));
    assert!(!out2.exists(), "nothing written for a malformed trace");
}

#[test]
fn train_writes_a_checkpoint_and_card_that_eval_reproduces() {
    let dir = tmp("train");
    let stem = dir.join("tiny");
    let o = infermark(&[
        "train",
        "--model",
        "tiny",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--out",
        stem.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(entries(&dir), vec!["tiny.json", "tiny.safetensors"]);
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tiny.json")).unwrap()).unwrap();
    assert_eq!(card["steps"], 4);
    assert!(card["tokens_per_s"].as_f64().unwrap() > 0.0);
    // A second run may not overwrite it silently.
    let o = infermark(&[
        "train",
        "--model",
        "tiny",
        "--steps",
        "4",
        "--out",
        stem.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    let out = dir.join("eval");
    let o = infermark(&[
        "eval",
        "--model",
        "tiny",
        "--checkpoint",
        stem.to_str().unwrap(),
        "--scale",
        "quick",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // At quick scale eval scores the card's whole validation split: it must reproduce the
    // card's validation loss from the checkpoint's weights.
    let ndjson = std::fs::read_to_string(out.join("results.ndjson")).unwrap();
    let ppl = ndjson
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["metric"] == "valid_perplexity")
        .and_then(|r| r["value"].as_f64())
        .expect("a valid_perplexity record");
    let card_loss = card["valid_loss"].as_f64().unwrap();
    assert!(
        (ppl.ln() - card_loss).abs() <= 1e-4 * card_loss,
        "eval measured {} nats, the card says {card_loss}",
        ppl.ln()
    );
}

#[test]
fn bad_fp8_training_flags_are_refused() {
    let dir = tmp("badfp8");
    let x = dir.join("x");
    let x = x.to_str().unwrap();
    for (args, needle) in [
        (vec!["--fp8", "--fp8-grad", "e3m4"], "e3m4"),
        (vec!["--fp8-grad", "e5m2"], "--fp8"),
    ] {
        let mut all = vec!["train", "--model", "tiny", "--out", x];
        all.extend(args);
        let o = infermark(&all);
        assert!(!o.status.success(), "{all:?} succeeded");
        assert!(stderr(&o).contains(needle), "{all:?}: {}", stderr(&o));
    }
    let o = infermark(&["train", "--model", "arith-adaptive", "--fp8", "--out", x]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--fp8 applies to the presets"),
        "{}",
        stderr(&o)
    );
    assert!(entries(&dir).is_empty(), "wrote {:?}", entries(&dir));
}

#[test]
fn unknown_models_are_refused_by_train_and_eval() {
    let dir = tmp("badmodel");
    let o = infermark(&[
        "train",
        "--model",
        "gpt5",
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown model `gpt5`") && stderr(&o).contains("target"));
    let o = infermark(&[
        "eval",
        "--model",
        "gpt5",
        "--out",
        dir.join("y").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("gpt5") && stderr(&o).contains("arith"),
        "{}",
        stderr(&o)
    );
    assert!(entries(&dir).is_empty(), "wrote {:?}", entries(&dir));
}

#[test]
fn eval_of_arith_prints_direct_and_step_by_step_accuracy_per_bucket() {
    let dir = tmp("arith");
    let out = dir.join("eval");
    let o = infermark(&[
        "eval",
        "--model",
        "arith",
        "--scale",
        "smoke",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("direct accuracy") && text.contains("think accuracy"),
        "{text}"
    );
    for bucket in ["1 ", "2 ", "3 ", "4 "] {
        assert!(
            text.lines().any(|l| l.starts_with(bucket)),
            "bucket {bucket}missing: {text}"
        );
    }
}

#[test]
fn bad_eagle_training_settings_are_refused_by_name_before_anything_runs() {
    let dir = tmp("badeagle");
    let x = dir.join("x");
    let x = x.to_str().unwrap();
    for (args, needle) in [
        (vec!["--temperatures", "0,-1"], "--temperatures"),
        (vec!["--temperatures", "NaN"], "--temperatures"),
        (vec!["--cls-weight=-0.5"], "--cls-weight"),
        (vec!["--feature-noise", "inf"], "--feature-noise"),
        (vec!["--prompts", "0"], "--prompts"),
    ] {
        let mut all = vec!["train", "--model", "eagle-smollm2", "--out", x];
        all.extend(args);
        let o = infermark(&all);
        assert!(!o.status.success(), "{all:?} succeeded");
        assert!(stderr(&o).contains(needle), "{all:?}: {}", stderr(&o));
    }
    assert!(entries(&dir).is_empty(), "wrote {:?}", entries(&dir));
}
