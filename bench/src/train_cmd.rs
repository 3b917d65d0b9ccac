//! `infermark train`: trains a decoder preset and writes its checkpoint and card.

use std::path::PathBuf;

use anyhow::{bail, Result};
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use infermark_models::decoder::{preset, presets, CorpusKind};
use infermark_models::kernels::AttentionBackend;
use infermark_suites::backend::{run_on, BackendJob};
use infermark_suites::env;
use infermark_suites::zoo::checkpoint::{self, Card};
use infermark_suites::zoo::corpus;
use infermark_suites::zoo::train::{self, TrainOptions};
use infermark_suites::BackendKind;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Preset to train: tiny, draft, target, target-mha, target-mla or arith (`infermark list`).
    #[arg(long, value_name = "NAME")]
    pub model: String,
    /// Optimizer steps (default: the preset's recipe).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the initial weights and the batch order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Train on this UTF-8 text file (95/5 train/validation split) instead of the preset's
    /// generated corpus.
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Checkpoint stem: writes STEM.safetensors and STEM.json. Default: results/checkpoints/NAME.
    /// The shipped checkpoints live in suites/checkpoints/ (or $INFERMARK_CHECKPOINTS).
    #[arg(long, value_name = "STEM")]
    pub out: Option<PathBuf>,
    /// Validate and save a resumable state (STEM.resume/) every this many steps.
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Continue from STEM.resume/ (same preset, seed and corpus).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many steps, saving STEM.resume/ (continue later with --resume).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<usize>,
    /// Replace an existing checkpoint.
    #[arg(long)]
    pub force: bool,
    /// Backend: flex (CPU) or cuda (build with `--features cuda`).
    #[arg(long, default_value = "flex", value_parser = crate::parse_backend)]
    pub backend: BackendKind,
}

struct Job {
    opts: TrainOptions,
    bar: ProgressBar,
}

impl BackendJob for Job {
    type Output = infermark_suites::Result<Card>;
    fn run<B: AttentionBackend>(self, device: B::Device) -> Self::Output {
        let bar = self.bar;
        // Off a terminal the bar is hidden: print one line per validation instead.
        let lines = !std::io::stderr().is_terminal();
        let total = self.opts.steps;
        train::train::<B>(&self.opts, &device, &mut |p| {
            if let (true, Some(v)) = (lines, p.valid_loss) {
                eprintln!(
                    "step {}/{total}: loss {:.4}, valid {v:.4}, {:.0} tokens/s",
                    p.step, p.loss, p.tokens_per_s
                );
            }
            bar.set_position(p.step as u64);
            let v = p
                .valid_loss
                .map(|v| format!(" valid {v:.3}"))
                .unwrap_or_default();
            bar.set_message(format!(
                "loss {:.3}{v} · {:.0} tok/s",
                p.loss, p.tokens_per_s
            ));
        })
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let Some(p) = preset(&args.model) else {
        let known: Vec<_> = presets().iter().map(|p| p.name).collect();
        bail!(
            "unknown model `{}`; known: {}",
            args.model,
            known.join(", ")
        );
    };
    args.backend.check_available()?;
    if args.eval_every == 0 {
        bail!("--eval-every must be at least 1");
    }
    let steps = args.steps.unwrap_or(p.steps);
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/checkpoints").join(p.name));
    let (weights, card) = checkpoint::paths(&out);
    if !args.force && !args.resume && (weights.exists() || card.exists()) {
        bail!(
            "{} already exists; pass --force to replace it or choose another --out",
            weights.display()
        );
    }
    let split = match (&args.corpus, p.corpus) {
        (Some(f), _) => corpus::file_split(f)?,
        (None, CorpusKind::Stories) => corpus::stories_split(),
        (None, CorpusKind::Arith) => corpus::arithmetic_split(),
    };
    let (cpu, _) = env::cpu_info();
    let machine = match args.backend {
        BackendKind::Flex => format!("flex on {cpu} ({} cores)", env::cores()),
        BackendKind::Cuda => "cuda:0".to_string(),
    };
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let opts = TrainOptions {
        preset: p.clone(),
        steps,
        seed: args.seed,
        split,
        out: out.clone(),
        eval_every: args.eval_every,
        resume: args.resume,
        stop_after: args.stop_after,
        machine,
        git_rev: env::git_rev(),
    };
    let card = run_on(
        args.backend,
        Job {
            opts,
            bar: bar.clone(),
        },
    )??;
    bar.finish_and_clear();
    if card.steps < steps {
        println!(
            "{}: stopped after {} of {steps} steps (valid loss {:.4}); continue with --resume",
            card.name, card.steps, card.valid_loss
        );
        return Ok(());
    }
    println!(
        "{}: {} parameters, {} steps, {} tokens in {:.0} s ({:.0} tokens/s)\n  \
         valid loss {:.4} (perplexity {:.3}; unigram baseline {:.3}) → {}",
        card.name,
        card.param_count,
        card.steps,
        card.tokens_seen,
        card.train_seconds,
        card.tokens_per_s,
        card.valid_loss,
        card.valid_perplexity,
        card.unigram_perplexity,
        weights.display()
    );
    Ok(())
}
