//! `infermark`: run inference-technique suites, write comparable result files, render reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use infermark_reports::{html, io, table};
use infermark_suites::env::{self, RunEnv};
use infermark_suites::{registry, suite, BackendKind, Record, RunContext, Scale};

#[derive(Parser)]
#[command(
    name = "infermark",
    version,
    about = "Benchmarks and evaluations of LLM inference techniques (MLA vs GQA, ...) on burn",
    long_about = "infermark measures inference techniques side by side on one machine and writes tidy, \
comparable result files (Parquet, NDJSON, run.json) and self-contained HTML reports.\n\n\
Typical use:\n  infermark list\n  infermark run --suite attention --scale quick\n  infermark report --run results/<run> --out report.html"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List suites, their experiments and variants, scales and backends.
    List,
    /// Run suites and write <out>/results.parquet, <out>/results.ndjson and <out>/run.json.
    Run(RunArgs),
    /// Render a self-contained HTML report (tables and inline SVG charts) of a run directory.
    Report(ReportArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Suite to run (repeatable); all suites when omitted. See `infermark list`.
    #[arg(long = "suite", value_name = "NAME")]
    suites: Vec<String>,
    /// Only these variants (repeatable), e.g. `--variant gqa --variant mla-absorbed`.
    #[arg(long = "variant", value_name = "NAME")]
    variants: Vec<String>,
    /// Run size: smoke (seconds, CI), quick (minutes on a 2-core CPU), full (hours; for a GPU).
    #[arg(long, default_value = "quick", value_parser = parse_scale)]
    scale: Scale,
    /// Backend: flex (pure-Rust CPU) or cuda (build with `--features cuda`).
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    backend: BackendKind,
    /// Output directory; must not exist (see --force). Default: results/<timestamp>-<scale>-<backend>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed of all random weights and inputs.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Run directory written by `infermark run`.
    #[arg(long = "run", value_name = "DIR")]
    run: PathBuf,
    /// HTML file to write; must not exist (see --force).
    #[arg(long, value_name = "FILE.html")]
    out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

fn parse_scale(s: &str) -> std::result::Result<Scale, String> {
    s.parse()
        .map_err(|e: infermark_suites::SuiteError| e.to_string())
}

fn parse_backend(s: &str) -> std::result::Result<BackendKind, String> {
    s.parse()
        .map_err(|e: infermark_suites::SuiteError| e.to_string())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List => list(),
        Command::Run(args) => run(args),
        Command::Report(args) => report(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn list() -> Result<()> {
    for s in registry() {
        println!("suite {}: {}", s.name(), s.description());
        println!("  experiments:");
        for (name, what) in s.experiments() {
            println!("    {name:<12} {what}");
        }
        println!("  variants: {}", s.variants().join(", "));
        for scale in Scale::ALL {
            println!("  cases at {:<5}: {}", scale.name(), s.cases(scale).len());
        }
    }
    println!("scales:");
    for scale in Scale::ALL {
        println!("  {:<6} {}", scale.name(), scale.describe());
    }
    println!("backends:");
    for b in BackendKind::ALL {
        let state = if b.available() {
            "available"
        } else {
            "not in this build (rebuild with --features cuda)"
        };
        println!("  {:<6} {state}", b.name());
    }
    Ok(())
}

fn device_name(backend: BackendKind, cpu: &str) -> String {
    match backend {
        BackendKind::Flex => format!("cpu: {cpu}"),
        BackendKind::Cuda => "cuda:0".into(),
    }
}

fn run(args: RunArgs) -> Result<()> {
    // Check every input before doing any work, so that bad input writes nothing.
    let suites = if args.suites.is_empty() {
        registry()
    } else {
        args.suites
            .iter()
            .map(|n| suite::find(n))
            .collect::<std::result::Result<Vec<_>, _>>()?
    };
    for v in &args.variants {
        if !suites.iter().any(|s| s.variants().contains(&v.as_str())) {
            let known: Vec<_> = suites.iter().flat_map(|s| s.variants()).collect();
            bail!(
                "unknown variant `{v}` for the selected suites; known: {}",
                known.join(", ")
            );
        }
    }
    args.backend.check_available()?;
    let started = env::now_rfc3339();
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let run_id = format!("{stamp}-{}-{}", args.scale.name(), args.backend.name());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join(&run_id));
    io::check_out_dir(&out, args.force)?;

    let (cpu_model, cpu_flags) = env::cpu_info();
    let device = device_name(args.backend, &cpu_model);
    let git_rev = env::git_rev();
    let cases: Vec<_> = suites
        .iter()
        .flat_map(|s| s.cases(args.scale).into_iter().map(move |c| (s, c)))
        .filter(|(_, c)| args.variants.is_empty() || args.variants.contains(&c.variant))
        .collect();

    let bar = ProgressBar::new(cases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let bar_msg = bar.clone();
    let progress = move |m: &str| bar_msg.set_message(m.to_string());
    let ctx = RunContext {
        backend: args.backend,
        scale: args.scale,
        seed: args.seed,
        run_id: run_id.clone(),
        git_rev: git_rev.clone(),
        device: device.clone(),
        progress: &progress,
    };
    let t0 = Instant::now();
    let mut records: Vec<Record> = Vec::new();
    for (s, case) in &cases {
        bar.set_message(format!("{}: {}", s.name(), case.label()));
        let recs = s
            .run_case(case, &ctx)
            .with_context(|| format!("suite {} case {}", s.name(), case.label()))?;
        records.extend(recs);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let run_env = RunEnv {
        run_id,
        git_rev,
        backend: args.backend.name().into(),
        burn_features: BackendKind::build_features()
            .into_iter()
            .map(String::from)
            .collect(),
        burn_version: "0.21.0".into(),
        device,
        cpu_model,
        cpu_flags,
        cores: env::cores(),
        scale: args.scale.name().into(),
        seed: args.seed,
        suites: suites.iter().map(|s| s.name().to_string()).collect(),
        percentile_method: "nearest-rank".into(),
        started,
        ended: env::now_rfc3339(),
        infermark_version: env!("CARGO_PKG_VERSION").into(),
    };
    io::write_run(&out, &records, &run_env, args.force)?;
    print_summary(&records);
    println!(
        "\n{} records from {} cases in {:.1} s → {}\nreport: infermark report --run {} --out report.html",
        records.len(),
        cases.len(),
        t0.elapsed().as_secs_f64(),
        out.display(),
        out.display()
    );
    Ok(())
}

/// Prints each metric's headline values; for context sweeps, only the longest context.
fn print_summary(records: &[Record]) {
    for t in table::summarise(records) {
        let max_ctx = t
            .rows
            .iter()
            .filter_map(|r| r.param_map.get("ctx")?.parse::<usize>().ok())
            .max();
        println!("\n{} / {} ({})", t.suite, t.metric, t.unit);
        for r in &t.rows {
            let ctx = r.param_map.get("ctx").and_then(|c| c.parse::<usize>().ok());
            if ctx.is_some() && ctx != max_ctx {
                continue;
            }
            let spread = match (r.min, r.p90) {
                (Some(a), Some(b)) => {
                    format!("  [{} – {}]", table::fmt_value(a), table::fmt_value(b))
                }
                _ => String::new(),
            };
            println!(
                "  {:<13} {:>12} {:<6} n={:<4} {}{}",
                r.variant,
                table::fmt_value(r.value),
                r.stat,
                r.n,
                r.params,
                spread
            );
        }
    }
}

fn report(args: ReportArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; choose another --out or pass --force to replace it",
            args.out.display()
        );
    }
    let run = io::read_run(&args.run)?;
    if run.records.is_empty() {
        bail!("{}: the run has no records", args.run.display());
    }
    let describe = |name: &str| {
        suite::find(name)
            .map(|s| s.description().to_string())
            .unwrap_or_default()
    };
    let page = html::render(&run.env, &run.records, &describe)?;
    io::write_file_atomic(&args.out, page.as_bytes(), args.force)?;
    println!(
        "wrote {} ({} records, {} KiB)",
        args.out.display(),
        run.records.len(),
        page.len() / 1024
    );
    Ok(())
}
