//! `infermark train`: trains a decoder preset and writes its checkpoint and card.

use std::path::PathBuf;

use anyhow::{bail, Result};
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use infermark_models::decoder::{preset, presets, CorpusKind};
use infermark_models::kernels::AttentionBackend;
use infermark_suites::adacot::rl::{Algo, RlConfig};
use infermark_suites::adacot::{self, finetune};
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
    /// arith-adaptive: cost weight λ of the RL reward correct − λ·tokens/50.
    #[arg(long, default_value_t = 0.5)]
    pub lambda: f64,
    /// arith-adaptive: prompts per RL step whose gold D and T answers are teacher-forced
    /// beside the decision's policy gradient (decision token masked; 0 = decision only).
    #[arg(long, default_value_t = 16)]
    pub anchor: usize,
    /// arith-adaptive: selective loss masking (AdaCoT §2.2.3): drop the decision token's own
    /// loss and train only the answer anchor (needs --anchor > 0); the suite's `slm` case
    /// measures its effect on a skewed set.
    #[arg(long)]
    pub mask_decision: bool,
    /// arith-adaptive: RL learning rate (AdamW, constant).
    #[arg(long, default_value_t = 3e-4)]
    pub rl_lr: f64,
    /// arith-adaptive: algorithm on the decision token: grpo or ppo (RL at --lambda), or
    /// imitate (cross-entropy on the oracle decision; writes arith-adaptive-imitate, the
    /// start of the RL stages).
    #[arg(long, default_value = "grpo")]
    pub rl: String,
    /// arith-adaptive: the checkpoint to start from (default: for --rl imitate the committed
    /// arith-adaptive-sft, for grpo and ppo arith-adaptive-imitate; else the same name under
    /// results/checkpoints/).
    #[arg(long, value_name = "STEM")]
    pub sft: Option<PathBuf>,
}

struct SftJob {
    opts: TrainOptions,
}

impl BackendJob for SftJob {
    type Output = infermark_suites::Result<Card>;
    fn run<B: AttentionBackend>(self, device: B::Device) -> Self::Output {
        let total = self.opts.steps;
        finetune::train_sft::<B>(self.opts, &device, &mut |p| {
            if let Some(v) = p.valid_loss.filter(|_| p.step % 50 == 0) {
                eprintln!(
                    "sft step {}/{total}: loss {:.4}, valid {v:.4}",
                    p.step, p.loss
                );
            }
        })
    }
}

struct RlJob {
    opts: finetune::RlOptions,
}

impl BackendJob for RlJob {
    type Output = infermark_suites::Result<Option<finetune::AdaptiveCard>>;
    fn run<B: AttentionBackend>(self, device: B::Device) -> Self::Output {
        let total = self.opts.steps;
        finetune::train_rl::<B>(&self.opts, &device, &mut |step, r| {
            if step % 25 == 0 {
                eprintln!("rl step {step}/{total}: mean sampled reward {r:.4}");
            }
        })
    }
}

fn run_adaptive(args: &TrainArgs) -> Result<()> {
    args.backend.check_available()?;
    if !args.lambda.is_finite() || args.lambda < 0.0 {
        bail!("--lambda must be a finite number >= 0, got {}", args.lambda);
    }
    if args.mask_decision && args.anchor == 0 {
        bail!("--mask-decision leaves nothing to train with --anchor 0; give --anchor N > 0");
    }
    let algo = match args.rl.as_str() {
        "grpo" => Algo::Grpo,
        "ppo" => Algo::Ppo,
        "imitate" => Algo::Imitate,
        other => bail!("unknown --rl `{other}`; known: grpo, ppo, imitate"),
    };
    // Imitation starts from the SFT stage, RL from the imitation stage.
    let (start, how) = match algo {
        Algo::Imitate => (
            finetune::SFT_NAME,
            format!("--model {}", finetune::SFT_NAME),
        ),
        _ => (
            finetune::IMITATE_NAME,
            "--model arith-adaptive --rl imitate".to_string(),
        ),
    };
    let sft = match &args.sft {
        Some(s) => s.clone(),
        None => {
            let c = checkpoint::committed(start);
            if checkpoint::paths(&c).1.exists() {
                c
            } else {
                PathBuf::from("results/checkpoints").join(start)
            }
        }
    };
    if !checkpoint::paths(&sft).1.exists() {
        bail!(
            "checkpoint {} to start from does not exist; train it first with `infermark train {how}`",
            sft.display(),
        );
    }
    let name = match algo {
        Algo::Grpo => adacot::adaptive_name(args.lambda),
        Algo::Ppo => format!("{}-ppo", adacot::adaptive_name(args.lambda)),
        Algo::Imitate => finetune::IMITATE_NAME.to_string(),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/checkpoints").join(&name));
    if !args.force && !args.resume && checkpoint::paths(&out).0.exists() {
        bail!(
            "{} already exists; pass --force to replace it or choose another --out",
            out.display()
        );
    }
    let (cpu, _) = env::cpu_info();
    let opts = finetune::RlOptions {
        config: RlConfig {
            algo,
            lambda: args.lambda,
            batch: if algo == Algo::Imitate { 128 } else { 64 },
            group: if algo == Algo::Imitate { 1 } else { 8 },
            lr: args.rl_lr,
            seed: args.seed,
            anchor: args.anchor,
            mask_decision: args.mask_decision,
        },
        steps: args
            .steps
            .unwrap_or(if algo == Algo::Imitate { 1000 } else { 200 }),
        sft,
        problems: finetune::TABLE_PROBLEMS,
        out: out.clone(),
        eval_every: args.eval_every.clamp(1, 25),
        resume: args.resume,
        stop_after: args.stop_after,
        machine: format!("flex on {cpu} ({} cores)", env::cores()),
        git_rev: env::git_rev(),
    };
    match run_on(args.backend, RlJob { opts })?? {
        None => println!("{name}: stopped early; continue with --resume"),
        Some(c) => println!(
            "{name}: λ = {}, {} {} steps in {:.0} s; seed set: trigger rate {:.3}, accuracy {:.3}, format errors {:.3} → {}",
            c.lambda,
            c.rl_steps,
            c.algo,
            c.rl_seconds,
            c.trigger_rate,
            c.accuracy,
            c.format_error_rate,
            out.display()
        ),
    }
    Ok(())
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
    if args.model == "arith-adaptive" {
        return run_adaptive(&args);
    }
    let sft = args.model == finetune::SFT_NAME;
    let found = if sft {
        Some(finetune::sft_preset())
    } else {
        preset(&args.model)
    };
    let Some(p) = found else {
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
        (Some(_), _) if sft => bail!("--corpus does not apply to {}", finetune::SFT_NAME),
        // Filled in by the SFT job from the base model's answers.
        (None, _) if sft => corpus::Split {
            train: String::new(),
            valid: String::new(),
            source: String::new(),
        },
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
        init_from: None,
    };
    let card = if sft {
        run_on(args.backend, SftJob { opts })??
    } else {
        run_on(
            args.backend,
            Job {
                opts,
                bar: bar.clone(),
            },
        )??
    };
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
