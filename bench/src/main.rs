//! `infermark`: run inference-technique suites, write comparable result files, render reports.

mod eval_cmd;
mod train_cmd;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use infermark_models::kernels::isa::{self, Isa};
use infermark_models::kernels::on_pool_worker;
use infermark_models::quant::Activations;
use infermark_reports::maturity::Weights;
use infermark_reports::{gate, html, io, screen, table};
use infermark_suites::env::{self, IsaEnv, RunEnv};
use infermark_suites::shard::{self, Shard, ShardInfo, ShardedEnv};
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
    /// SIMD path of the CPU kernels: portable, avx2 or avx512 (default: the widest this CPU has;
    /// also the environment variable INFERMARK_ISA). Forcing a path the CPU lacks is an error.
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_isa)]
    isa: Option<Isa>,
    /// What quantized decode products multiply their weights with: int8 (activations quantized
    /// to int8 blocks of 32 once per product, integer dot products: llama.cpp's arithmetic; the
    /// default) or f32 (weights unpacked to f32). Suites that compare the two run both.
    #[arg(long, global = true, value_name = "KIND", value_parser = parse_activations)]
    activations: Option<Activations>,
    #[command(subcommand)]
    command: Command,
}

fn parse_activations(s: &str) -> std::result::Result<Activations, String> {
    s.parse()
        .map_err(|e: infermark_models::ModelError| e.to_string())
}

fn parse_isa(s: &str) -> std::result::Result<Isa, String> {
    let isa: Isa = s.parse().map_err(|e: isa::IsaError| e.to_string())?;
    isa::check(isa, &format!("--isa {s}")).map_err(|e| e.to_string())
}

/// Fixes the kernels' SIMD path from `--isa` or INFERMARK_ISA (the flag wins) before any kernel
/// runs; returns what forced it, for run.json.
fn set_isa(flag: Option<Isa>) -> Result<Option<String>> {
    if let Some(i) = flag {
        let origin = format!("--isa {i}");
        isa::force(i, &origin)?;
        return Ok(Some(origin));
    }
    match isa::from_env().with_context(|| format!("environment variable {}", isa::ENV_VAR))? {
        Some(i) => {
            let origin = format!("{}={i}", isa::ENV_VAR);
            isa::force(i, &origin)?;
            Ok(Some(origin))
        }
        None => Ok(None),
    }
}

/// What forced the SIMD path (set once in `main`).
static ISA_ORIGIN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// List suites, their experiments and variants, scales and backends.
    List,
    /// Run suites and write <out>/results.parquet, <out>/results.ndjson and <out>/run.json.
    Run(RunArgs),
    /// Render a self-contained HTML report (tables and inline SVG charts) of a run directory.
    Report(ReportArgs),
    /// Print a finished run's one-screen summary again: claims with their verdicts, one
    /// headline per suite, M(P) per technique.
    Summary(SummaryArgs),
    /// Write a run's outcome records (the deterministic records M(P)'s iterability compares)
    /// as a run folder: how the committed quick-scale baseline `ci/baseline-quick` is made.
    Outcomes(OutcomesArgs),
    /// Compare a run with a baseline under gate rules; exit 0 pass, 1 regression, 2 bad input.
    Gate(GateArgs),
    /// Join the run folders of a sharded run (`run --shard i/n` on n machines) into one run
    /// folder; refuses shards of different runs, overlapping or missing shards, naming them.
    Merge(MergeArgs),
    /// Cross-check two runs of the same seed and scale on different backends (CUDA against
    /// flex): deterministic records equal, equivalence metrics within bounds; exit 0 pass, 1
    /// mismatch, 2 bad input.
    Crosscheck(CrosscheckArgs),
    /// Train a decoder preset (byte-level LM) and write its checkpoint and card.
    Train(train_cmd::TrainArgs),
    /// Evaluate a trained model: validation perplexity; for `arith`, accuracy per difficulty
    /// bucket, answering directly and step by step.
    Eval(eval_cmd::EvalArgs),
    /// Re-quantize a GGUF model to llama.cpp's Q4_K_M mix or one block type, with infermark's
    /// own quantizers, and write it as a GGUF v3 file (atomically). The weights are dequantized
    /// from the source's types first: from the Q4_1 SmolLM2 file this re-quantizes a 4-bit model.
    Quantize(QuantizeArgs),
}

#[derive(clap::Args)]
struct GateArgs {
    /// Run directory to check.
    #[arg(long = "run", value_name = "DIR")]
    run: PathBuf,
    /// Baseline run directory (CI: ci/baseline, refreshed with
    /// `cargo run --release -- run --scale smoke --out ci/baseline --force`).
    #[arg(long, value_name = "DIR", default_value = "ci/baseline")]
    baseline: PathBuf,
    /// Gate rules (TOML).
    #[arg(long, value_name = "FILE", default_value = "ci/gates.toml")]
    rules: PathBuf,
}

#[derive(clap::Args)]
struct CrosscheckArgs {
    /// Reference run directory (e.g. the flex run).
    #[arg(long, value_name = "DIR")]
    a: PathBuf,
    /// Run directory checked against it (e.g. the CUDA run).
    #[arg(long, value_name = "DIR")]
    b: PathBuf,
    /// Largest relative difference of a deterministic floating-point value (perplexity, KL).
    #[arg(long, default_value_t = 1e-3)]
    rtol: f64,
    /// Largest equivalence metric (`*_max_abs_diff`) allowed in either run.
    #[arg(long, default_value_t = 1e-3)]
    max_equivalence: f64,
    /// Also write the verdict as Markdown to this file.
    #[arg(long, value_name = "FILE.md")]
    out: Option<PathBuf>,
    /// Same build on the same machine (a merged sharded run against the unsharded run): every
    /// record in both runs, every deterministic value equal to the bit; timings not compared.
    /// --rtol and --max-equivalence do not apply.
    #[arg(long, conflicts_with_all = ["rtol", "max_equivalence", "out"])]
    exact: bool,
}

#[derive(clap::Args)]
struct QuantizeArgs {
    /// Source model: `smollm2-135m` (the file `ci/fetch-models.sh` fetches).
    #[arg(long, value_name = "NAME", default_value = "smollm2-135m")]
    model: String,
    /// A GGUF file to quantize instead of a named model.
    #[arg(long, value_name = "FILE.gguf")]
    model_path: Option<PathBuf>,
    /// Target: q4_k_m (llama.cpp's mix), or one type for every quantizable tensor: q4_0, q4_1,
    /// q5_0, q8_0, q4_k, q5_k, q6_k (rows that are not whole blocks fall back as llama.cpp does).
    #[arg(long, value_name = "TYPE")]
    to: String,
    /// Output file; must not exist (see --force).
    #[arg(long, value_name = "FILE.gguf")]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// Merged run directory; must not exist (see --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// The shards' run directories, all n of them, in any order.
    #[arg(value_name = "SHARD_DIR", required = true)]
    shards: Vec<PathBuf>,
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
    /// Backend: flex (pure-Rust CPU), cuda or wgpu (build with `--features cuda` or
    /// `--features wgpu`).
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
    /// Request trace for the kv_cache suite: CSV with header `prompt_tokens,output_tokens` (and
    /// optionally `arrival_s`). Without it the built-in ShareGPT- and Alpaca-like traces are used.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Evaluation text (UTF-8) for the real-model rows of the lm and quantization suites.
    /// Default: the Apache-2.0 licence text fetched with the model by `ci/fetch-models.sh`.
    #[arg(long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Run only shard I of N (`1/3`, `2/3`, `3/3`: shards count from 1) of the selected cases,
    /// balanced by each case's expected cost; the same plan on every machine. Shard 1 also
    /// measures and records the machine's bandwidth. Join the folders with `infermark merge`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Print every record's headline value at the end (as tables per metric), before the
    /// one-screen summary; without it only the summary is printed (every record is in the run
    /// folder and the report either way).
    #[arg(long)]
    verbose: bool,
}

#[derive(clap::Args)]
struct SummaryArgs {
    /// Run directory written by `infermark run`.
    #[arg(long = "run", value_name = "DIR")]
    run: PathBuf,
}

#[derive(clap::Args)]
struct OutcomesArgs {
    /// Run directory written by `infermark run`.
    #[arg(long = "run", value_name = "DIR")]
    run: PathBuf,
    /// Folder to write; must not exist (see --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing folder.
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
    /// Baseline run(s) to compare with (repeatable); the first also feeds M(P)'s iterability.
    #[arg(long = "baseline", value_name = "DIR")]
    baselines: Vec<PathBuf>,
    /// Weights of S, C and I in M(P), as `a,b,c`.
    #[arg(long, default_value = "0.3333333333,0.3333333333,0.3333333333", value_parser = parse_weights)]
    weights: Weights,
    /// Gate rules whose verdict against the first baseline the summary shows (skipped when the
    /// default file is absent).
    #[arg(long, value_name = "FILE", default_value = "ci/gates.toml")]
    rules: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

fn parse_weights(s: &str) -> std::result::Result<Weights, String> {
    s.parse()
}

fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    s.parse()
        .map_err(|e: infermark_suites::SuiteError| e.to_string())
}

pub(crate) fn parse_scale(s: &str) -> std::result::Result<Scale, String> {
    s.parse()
        .map_err(|e: infermark_suites::SuiteError| e.to_string())
}

pub(crate) fn parse_backend(s: &str) -> std::result::Result<BackendKind, String> {
    s.parse()
        .map_err(|e: infermark_suites::SuiteError| e.to_string())
}

fn main() {
    let cli = Cli::parse();
    if let Some(a) = cli.activations {
        // Nothing has built a model yet, so the default cannot have been fixed otherwise.
        let _ = infermark_models::quant::act::set_default(a);
    }
    match set_isa(cli.isa) {
        Ok(origin) => {
            let _ = ISA_ORIGIN.set(origin);
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
    // Every suite, training and evaluation run drives its kernels from a pool worker, so that
    // each parallel call forks in place instead of sleeping the caller (see `on_pool_worker`).
    match on_pool_worker(move || dispatch(cli.command)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: cannot start the thread pool: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs one command; exits the process with its status when it fails or gives a verdict.
fn dispatch(command: Command) {
    let result = match command {
        Command::List => list(),
        Command::Run(args) => run(args),
        Command::Report(args) => report(args),
        Command::Summary(args) => summary(args),
        Command::Outcomes(args) => outcomes(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Quantize(args) => quantize(args),
        Command::Merge(args) => merge(args),
        Command::Crosscheck(args) => match crosscheck(args) {
            Ok(true) => std::process::exit(0),
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        },
        Command::Gate(args) => match run_gate(args) {
            Ok(true) => std::process::exit(0),
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(if no_backend(&e) { 2 } else { 1 });
    }
}

/// Whether `e` is a backend this build lacks or one with no device here: bad input, exit 2.
fn no_backend(e: &anyhow::Error) -> bool {
    use infermark_suites::SuiteError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<SuiteError>(),
            Some(SuiteError::NoDevice { .. } | SuiteError::BackendUnavailable { .. })
        )
    })
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
            "available".to_string()
        } else {
            format!("not in this build (rebuild with --features {})", b.name())
        };
        println!("  {:<6} {state}", b.name());
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
    // Check every input before doing any work, so that bad input writes nothing.
    let suites = if args.suites.is_empty() {
        registry()
    } else {
        args.suites
            .iter()
            .map(|n| infermark_suites::find_suite(n))
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
    if let Some(path) = &args.trace {
        // Parse now: a malformed trace stops the run before anything is written.
        infermark_suites::kv_cache::traces::read_csv(path).map_err(anyhow::Error::msg)?;
    }
    if let Some(path) = &args.text {
        infermark_suites::zoo::corpus::read_text(path)?;
    }
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let shard_tag = args
        .shard
        .map(|s| format!("-shard{}of{}", s.index, s.count))
        .unwrap_or_default();
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new("results").join(format!(
            "{stamp}-{}-{}{shard_tag}",
            args.scale.name(),
            args.backend.name()
        ))
    });
    let cases: Vec<_> = suites
        .into_iter()
        .flat_map(|s| {
            let cases = s.cases(args.scale);
            let s: std::sync::Arc<dyn suite::Suite> = s.into();
            cases.into_iter().map(move |c| (s.clone(), c))
        })
        .filter(|(_, c)| args.variants.is_empty() || args.variants.contains(&c.variant))
        .collect();
    let (cases, shard) = match args.shard {
        None => (cases, None),
        Some(s) => select_shard(cases, s, args.scale)?,
    };
    execute_sharded(
        cases,
        args.scale,
        args.backend,
        args.seed,
        &out,
        args.force,
        infermark_suites::UserInputs {
            trace: args.trace,
            text: args.text,
        },
        shard,
        Printout {
            records: args.verbose,
            screen: true,
        },
    )?;
    Ok(())
}

type SuiteCase = (std::sync::Arc<dyn suite::Suite>, suite::Case);

/// The cases of shard `s` (in run order) and what run.json says about it: the plan of
/// `infermark_suites::shard::assign` over every selected case, by `Suite::cost`.
fn select_shard(
    cases: Vec<SuiteCase>,
    s: Shard,
    scale: Scale,
) -> Result<(Vec<SuiteCase>, Option<ShardInfo>)> {
    let jobs: Vec<shard::Job> = cases
        .iter()
        .map(|(suite, case)| shard::Job {
            suite: suite.name().to_string(),
            case: case.clone(),
            cost: suite.cost(case, scale),
        })
        .collect();
    let shard_of = shard::assign(&jobs, s.count).with_context(|| format!("--shard {s}"))?;
    let loads = shard::loads(&jobs, &shard_of, s.count);
    let run_cases: Vec<String> = jobs
        .iter()
        .map(|j| shard::case_id(&j.suite, &j.case))
        .collect();
    let mine: Vec<usize> = (0..jobs.len())
        .filter(|&i| shard_of[i] == s.index)
        .collect();
    eprintln!(
        "shard {s}: {} of {} cases, expected cost {:.1} of {:.1} (shards: {})",
        mine.len(),
        jobs.len(),
        loads[s.index - 1],
        loads.iter().sum::<f64>(),
        loads
            .iter()
            .map(|l| format!("{l:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let info = ShardInfo {
        index: s.index,
        count: s.count,
        cost: loads[s.index - 1],
        cases: mine.iter().map(|&i| run_cases[i].clone()).collect(),
        run_cases,
    };
    let picked = cases
        .into_iter()
        .zip(shard_of)
        .filter(|(_, k)| *k == s.index)
        .map(|(c, _)| c)
        .collect();
    Ok((picked, Some(info)))
}

/// Joins shard folders into one run folder (refusing an existing one unless `--force`).
fn quantize(args: QuantizeArgs) -> Result<()> {
    use infermark_suites::zoo::gguf::{self, requant};
    let target: requant::Target = args.to.parse()?;
    let src = match (&args.model_path, args.model.as_str()) {
        (Some(p), _) => p.clone(),
        (None, "smollm2-135m") => gguf::smollm2().map_err(|e| anyhow::anyhow!(e))?,
        (None, other) => {
            bail!("unknown model `{other}`; known: smollm2-135m (or pass --model-path FILE.gguf)")
        }
    };
    let t = std::time::Instant::now();
    let w = requant::quantize_file(&src, target, &args.out, args.force)
        .with_context(|| format!("quantizing {} to {target}", src.display()))?;
    let types: Vec<String> = w.types.iter().map(|(t, c)| format!("{t}×{c}")).collect();
    println!(
        "{} → {} ({target}): {} tensors re-quantized; {}; {:.1} MB of tensor data; {:.1} s",
        src.display(),
        args.out.display(),
        w.requantized,
        types.join(" "),
        w.data_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn merge(args: MergeArgs) -> Result<()> {
    use infermark_reports::merge;
    io::check_out_dir(&args.out, args.force)?;
    let out_abs =
        std::path::absolute(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    for dir in &args.shards {
        if std::path::absolute(dir).ok().as_ref() == Some(&out_abs) {
            bail!(
                "--out {} is one of the shard folders; write the merged run elsewhere",
                args.out.display()
            );
        }
    }
    let shards = args
        .shards
        .iter()
        .map(|d| merge::read_shard(d))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let first = &shards[0].env.env;
    let run_id = format!(
        "{}-{}-{}-merged",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        first.scale,
        first.backend
    );
    let merged = merge::merge(&shards, &run_id)
        .map_err(|e| anyhow::anyhow!("cannot merge the shards:\n{e}"))?;
    io::write_run_as(&args.out, &merged.records, &merged.env, args.force)?;
    println!(
        "merged {} shards ({} cases, {} records) → {}",
        shards.len(),
        merged
            .env
            .shards
            .iter()
            .map(|s| s.cases.len())
            .sum::<usize>(),
        merged.records.len(),
        args.out.display()
    );
    Ok(())
}

/// Runs `cases` and writes the run directory `out` (refusing an existing one unless `force`);
/// prints the summary and returns the records.
pub(crate) fn execute(
    cases: Vec<SuiteCase>,
    scale: Scale,
    backend: BackendKind,
    seed: u64,
    out: &Path,
    force: bool,
    inputs: infermark_suites::UserInputs,
) -> Result<Vec<Record>> {
    let print = Printout {
        records: true,
        screen: false,
    };
    execute_sharded(cases, scale, backend, seed, out, force, inputs, None, print)
}

/// What a run prints when it ends.
#[derive(Clone, Copy)]
struct Printout {
    /// Every record's headline value, as tables per metric.
    records: bool,
    /// The one-screen summary: claims, headlines, M(P), folder and report command.
    screen: bool,
}

/// [`execute`] of one shard of a run when `shard` is given: run.json records the shard, and
/// only shard 1 records the machine's bandwidth (every shard measures it for its run.json).
#[allow(clippy::too_many_arguments)]
fn execute_sharded(
    cases: Vec<SuiteCase>,
    scale: Scale,
    backend: BackendKind,
    seed: u64,
    out: &Path,
    force: bool,
    inputs: infermark_suites::UserInputs,
    shard: Option<ShardInfo>,
    print: Printout,
) -> Result<Vec<Record>> {
    let started = env::now_rfc3339();
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let run_id = match &shard {
        None => format!("{stamp}-{}-{}", scale.name(), backend.name()),
        Some(s) => format!(
            "{stamp}-{}-{}-shard{}of{}",
            scale.name(),
            backend.name(),
            s.index,
            s.count
        ),
    };
    io::check_out_dir(out, force)?;
    let (cpu_model, cpu_flags) = env::cpu_info();
    // wgpu asks for its adapter here, before any case runs: no device is an error, not a panic.
    let device_info = infermark_suites::backend::device_info(backend, &cpu_model)?;
    let device = device_info.label();
    let git_rev = env::git_rev();
    let mut suite_names: Vec<String> = Vec::new();
    let mut notices: Vec<String> = Vec::new();
    for (s, _) in &cases {
        if !suite_names.iter().any(|n| n == s.name()) {
            suite_names.push(s.name().to_string());
            notices.extend(
                s.notices(scale)
                    .into_iter()
                    .map(|n| format!("{}: {n}", s.name())),
            );
        }
    }
    if device_info.software {
        notices.push(software_notice(&device_info));
    }
    for n in &notices {
        eprintln!("notice: {n}");
    }

    let bar = ProgressBar::new(cases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let bar_msg = bar.clone();
    let progress = move |m: &str| bar_msg.set_message(m.to_string());
    let ctx = RunContext {
        backend,
        scale,
        seed,
        run_id: run_id.clone(),
        git_rev: git_rev.clone(),
        device: device.clone(),
        inputs,
        progress: &progress,
    };
    let t0 = Instant::now();
    let mut records: Vec<Record> = Vec::new();
    let isa_env = IsaEnv::current(ISA_ORIGIN.get().cloned().flatten());
    // The machine's own limit, so that bandwidths can be read as a fraction of it (CPU runs:
    // a GPU's bandwidth is not this one).
    let machine = (backend == BackendKind::Flex).then(|| {
        bar.set_message("machine: triad and read bandwidth");
        let bw = infermark_suites::machine::measure(match scale {
            Scale::Smoke => 3,
            _ => 9,
        });
        eprintln!(
            "machine: triad {:.1} GB/s (min {:.1}, max {:.1}, n {}), read {:.1} GB/s; kernels on {}",
            bw.triad_gbps, bw.triad_min_gbps, bw.triad_max_gbps, bw.n, bw.read_gbps, isa_env.active
        );
        bw
    });
    let run_records = shard.as_ref().is_none_or(|s| s.index == 1);
    if let (Some(bw), true) = (&machine, run_records) {
        records.extend(infermark_suites::machine::records(
            bw,
            &ctx,
            &isa_env.active,
        )?);
    }
    // The bar hides itself when stderr is not a terminal (CI logs, `> log 2>&1`): print one line
    // per finished case there instead, as cargo and criterion do.
    let lines = !std::io::stderr().is_terminal();
    for (i, (s, case)) in cases.iter().enumerate() {
        bar.set_message(format!("{}: {}", s.name(), case.label()));
        let t_case = Instant::now();
        let recs = s
            .run_case(case, &ctx)
            .with_context(|| format!("suite {} case {}", s.name(), case.label()))?;
        if lines {
            eprintln!(
                "[{:>7.1} s] {} {}: {} records in {:.1} s ({} of {} cases done)",
                t0.elapsed().as_secs_f64(),
                s.name(),
                case.label(),
                recs.len(),
                t_case.elapsed().as_secs_f64(),
                i + 1,
                cases.len()
            );
        }
        records.extend(recs);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let run_env = RunEnv {
        run_id,
        git_rev,
        backend: backend.name().into(),
        burn_features: BackendKind::build_features()
            .into_iter()
            .map(String::from)
            .collect(),
        burn_version: "0.21.0".into(),
        device,
        cpu_model,
        cpu_flags,
        cores: env::cores(),
        scale: scale.name().into(),
        seed,
        suites: suite_names,
        notices,
        percentile_method: "nearest-rank".into(),
        started,
        ended: env::now_rfc3339(),
        infermark_version: env!("CARGO_PKG_VERSION").into(),
        isa: isa_env,
        activations: infermark_models::quant::act::default_activations()
            .name()
            .into(),
        machine,
        device_info: Some(device_info),
    };
    let file = ShardedEnv {
        env: run_env,
        shard,
        shards: Vec::new(),
    };
    io::write_run_as(out, &records, &file, force)?;
    if print.records {
        print_summary(&records);
    }
    println!(
        "\n{} records from {} cases in {:.1} s → {}",
        records.len(),
        cases.len(),
        t0.elapsed().as_secs_f64(),
        out.display(),
    );
    if print.screen {
        println!(
            "\n{}",
            screen::one_screen(&file.env, &records, out, quick_outcomes(&file.env).as_ref())?
                .trim_end()
        );
    } else {
        println!(
            "report: infermark report --run {} --out report.html",
            out.display()
        );
    }
    Ok(records)
}

/// The run's notice on a software device: its timings are kept but compared with nothing.
fn software_notice(d: &infermark_suites::backend::DeviceInfo) -> String {
    format!(
        "{} runs on a software device ({}, device type {}): its deterministic records count, \
         its timings are not comparable (claims and M(P) refuse them)",
        d.backend, d.adapter, d.device_type
    )
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

fn summary(args: SummaryArgs) -> Result<()> {
    let run = io::read_run(&args.run)?;
    if run.records.is_empty() {
        bail!("{}: the run has no records", args.run.display());
    }
    let outcomes = quick_outcomes(&run.env);
    println!(
        "{}",
        screen::one_screen(&run.env, &run.records, &args.run, outcomes.as_ref())?.trim_end()
    );
    Ok(())
}

/// Committed runs M(P)'s I compares with when no baseline is given: the quick-scale outcome
/// records (refreshed by `ci/refresh-quick-outcomes.sh`) and the smoke baseline of the gate.
const COMMITTED_OUTCOMES: [&str; 2] = ["ci/baseline-quick", "ci/baseline"];

/// The first committed run made at the run's scale and seed (I compares like with like), read
/// from the working directory; `None` where there is none.
fn quick_outcomes(env: &infermark_suites::env::RunEnv) -> Option<html::Baseline> {
    COMMITTED_OUTCOMES.iter().find_map(|dir| {
        let run = io::read_run(Path::new(dir)).ok()?;
        (run.env.scale == env.scale && run.env.seed == env.seed).then(|| html::Baseline {
            label: format!(
                "{dir} (committed {} run, seed {})",
                run.env.scale, run.env.seed
            ),
            records: run.records,
            outcomes_only: true,
        })
    })
}

/// Writes the outcome records of a run (what M(P)'s I compares) as a run folder.
fn outcomes(args: OutcomesArgs) -> Result<()> {
    let run = io::read_run(&args.run)?;
    let records = infermark_reports::maturity::outcome_records(&run.records);
    if records.is_empty() {
        bail!(
            "{}: no outcome records (run the suites first, e.g. `infermark run --scale quick`)",
            args.run.display()
        );
    }
    io::write_run(&args.out, &records, &run.env, args.force)?;
    println!(
        "wrote {} outcome records of {} to {}",
        records.len(),
        args.run.display(),
        args.out.display()
    );
    Ok(())
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
        infermark_suites::find_suite(name)
            .map(|s| s.description().to_string())
            .unwrap_or_default()
    };
    let runs = args
        .baselines
        .iter()
        .map(|dir| io::read_run(dir).map(|b| (dir.display().to_string(), b)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let gate_summary = match runs.first() {
        Some((label, first)) if args.rules.exists() => {
            let text = std::fs::read_to_string(&args.rules)
                .with_context(|| format!("reading rules {}", args.rules.display()))?;
            let rules = gate::parse_rules(&text, &args.rules)?;
            let refused = gate::comparable(&run.env, &first.env).err();
            Some(html::GateSummary {
                baseline: label.clone(),
                rules: args.rules.display().to_string(),
                verdicts: if refused.is_some() {
                    Vec::new()
                } else {
                    gate::evaluate(&rules, &run.records, &first.records)
                },
                refused,
            })
        }
        Some(_) if args.rules != Path::new("ci/gates.toml") => {
            bail!("rules file {} does not exist", args.rules.display())
        }
        _ => None,
    };
    let mut baselines: Vec<html::Baseline> = runs
        .into_iter()
        .map(|(label, b)| html::Baseline {
            label,
            records: b.records,
            outcomes_only: false,
        })
        .collect();
    if baselines.is_empty() {
        baselines.extend(quick_outcomes(&run.env));
    }
    let page = html::render_with_gate(
        &run.env,
        &run.records,
        &baselines,
        args.weights,
        &describe,
        gate_summary.as_ref(),
    )?;
    io::write_file_atomic(&args.out, page.as_bytes(), args.force)?;
    println!(
        "wrote {} ({} records, {} KiB)",
        args.out.display(),
        run.records.len(),
        page.len() / 1024
    );
    Ok(())
}

/// Runs the gate; `Ok(false)` on a regression, `Err` on bad input.
fn crosscheck(args: CrosscheckArgs) -> Result<bool> {
    use infermark_reports::crosscheck::{self, Bounds};
    for (what, x) in [
        ("--rtol", args.rtol),
        ("--max-equivalence", args.max_equivalence),
    ] {
        if !(x.is_finite() && x >= 0.0) {
            bail!("{what} must be a finite number ≥ 0, got {x}");
        }
    }
    let a = io::read_run(&args.a)?;
    let b = io::read_run(&args.b)?;
    let (ea, eb) = (&a.env, &b.env);
    if ea.scale != eb.scale || ea.seed != eb.seed {
        bail!(
            "runs differ in scale or seed ({} seed {} vs {} seed {}): their values differ by design",
            ea.scale,
            ea.seed,
            eb.scale,
            eb.seed
        );
    }
    if args.exact {
        let o = infermark_reports::merge::compare_exact(&a.records, &b.records);
        println!(
            "exact cross-check of {} (A) and {} (B): {}: {} deterministic records equal, {} timings paired, {} differences",
            args.a.display(),
            args.b.display(),
            if o.pass() { "PASS" } else { "FAIL" },
            o.equal,
            o.noisy,
            o.problems.len()
        );
        let lines: Vec<String> = o.problems.iter().map(|p| format!("FAIL {p}")).collect();
        if let Some(f) = infermark_reports::format::failure_screen(
            &lines,
            infermark_reports::gate::FAILURES_SHOWN,
            "only the first ones are listed",
        ) {
            println!("{f}");
        }
        return Ok(o.pass());
    }
    let bounds = Bounds {
        rtol: args.rtol,
        max_equivalence: args.max_equivalence,
    };
    let outcome = crosscheck::compare(&a.records, &b.records, bounds);
    let name = |p: &Path, e: &RunEnv| {
        format!(
            "{} ({} on {}, {})",
            p.display(),
            e.backend,
            e.device,
            e.isa.active
        )
    };
    let text = crosscheck::markdown(&outcome, &name(&args.a, ea), &name(&args.b, eb), bounds);
    print!("{text}");
    if let Some(path) = &args.out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    let all_in = match &args.out {
        Some(p) => format!("all listed above and in {}", p.display()),
        None => "all listed above".into(),
    };
    if let Some(f) = crosscheck::failures(&outcome, &all_in) {
        println!("\n{f}");
    }
    Ok(outcome.pass())
}

fn run_gate(args: GateArgs) -> Result<bool> {
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("reading rules {}", args.rules.display()))?;
    let rules = gate::parse_rules(&text, &args.rules)?;
    let run = io::read_run(&args.run)?;
    let baseline = io::read_run(&args.baseline)?;
    gate::comparable(&run.env, &baseline.env).map_err(anyhow::Error::msg)?;
    let verdicts = gate::evaluate(&rules, &run.records, &baseline.records);
    let width = verdicts
        .iter()
        .map(|v| v.rule.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:>12}  {:>12}  verdict",
        "rule", "baseline", "current"
    );
    let show = |x: Option<f64>| x.map(table::fmt_value).unwrap_or_else(|| "—".into());
    for v in &verdicts {
        let verdict = if v.pass { "pass" } else { "FAIL" };
        println!(
            "{:<width$}  {:>12}  {:>12}  {verdict}: {}",
            v.rule,
            show(v.baseline),
            show(v.current),
            v.note
        );
    }
    let failed = verdicts.iter().filter(|v| !v.pass).count();
    if let Some(f) = gate::failures(&verdicts) {
        println!("\n{f}");
    }
    println!(
        "\ngate: {} of {} rules pass",
        verdicts.len() - failed,
        verdicts.len()
    );
    Ok(failed == 0)
}
