//! `infermark train`: trains a decoder preset and writes its checkpoint and card.

use std::path::PathBuf;

use anyhow::{bail, Result};
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use infermark_models::decoder::{preset, presets, CorpusKind};
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::fp8_train::parse_fp8_kind;
use infermark_models::quant::Fp8Training;
use infermark_suites::adacot::rl::{Algo, RlConfig};
use infermark_suites::adacot::{self, finetune};
use infermark_suites::backend::{run_on, BackendJob};
use infermark_suites::env;
use infermark_suites::speculative::workloads::Workload;
use infermark_suites::zoo::checkpoint::{self, Card};
use infermark_suites::zoo::corpus;
use infermark_suites::zoo::train::{self, TrainOptions};
use infermark_suites::zoo::{calibration, eagle, gguf, real};
use infermark_suites::BackendKind;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Preset to train: tiny, draft, target, target-mha, target-mla or arith (`infermark list`),
    /// or eagle-smollm2 (an EAGLE draft head for the real model).
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
    /// Backend: flex (CPU), cuda or wgpu (build with `--features cuda` or `--features wgpu`).
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
    /// Simulated FP8 mixed-precision training (DeepSeek-V3 §3.3): the inputs of every attention
    /// and MLP projection's matrix products (forward, input-gradient and weight-gradient) rounded
    /// to FP8 E4M3 with one scale per 1×128 activation tile and per 128×128 weight block, on any
    /// backend (a host round trip through the FP8 codec). Master weights, AdamW state,
    /// accumulation, embeddings, norms, attention, the head and validation stay FP32. The card's
    /// `precision` records it. Presets only.
    #[arg(long)]
    pub fp8: bool,
    /// With --fp8: also round the output gradients dY (1×128 tiles) to this FP8 format before
    /// the two backward products: e4m3 (as DeepSeek-V3) or e5m2 (more range, less precision).
    /// Default: FP32 gradients.
    #[arg(long, value_name = "FORMAT", requires = "fp8")]
    pub fp8_grad: Option<String>,
    /// eagle-smollm2: passages of the calibration text (the Debian Policy Manual) the real
    /// model continues for the training data.
    #[arg(long, default_value_t = 192)]
    pub prompts: usize,
    /// eagle-smollm2: tokens the real model adds to each passage, per temperature.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// eagle-smollm2: temperatures of the continuations (0 = greedy), comma-separated; each
    /// continues every passage.
    #[arg(long, default_value = "0,0.7", value_delimiter = ',')]
    pub temperatures: Vec<f32>,
    /// eagle-smollm2: windows of 256 tokens of the calibration text that the real model reads
    /// as they are (the text's own next tokens, the model's features), beside the
    /// continuations; 0 = none.
    #[arg(long, default_value_t = 384)]
    pub text_windows: usize,
    /// eagle-smollm2: draft vocabulary, the most frequent next tokens of the calibration text
    /// and the training data, then the smallest ids (EAGLE-3, FR-Spec); 0 = the whole
    /// vocabulary.
    #[arg(long, default_value_t = 16384)]
    pub draft_vocab: usize,
    /// eagle-smollm2: weight of the cross-entropy through the frozen head beside the
    /// smooth-L1 feature loss (EAGLE: 0.1).
    #[arg(long, default_value_t = eagle::CLS_WEIGHT)]
    pub cls_weight: f64,
    /// eagle-smollm2: uniform noise in [−a, a] on the input features during training
    /// (EAGLE: 0.1; 0 = none).
    #[arg(long, default_value_t = eagle::FEATURE_NOISE)]
    pub feature_noise: f32,
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

struct EagleJob {
    args: EagleArgs,
}

struct EagleArgs {
    steps: usize,
    seed: u64,
    out: PathBuf,
    data: PathBuf,
    eval_every: usize,
    resume: bool,
    stop_after: Option<usize>,
    force: bool,
    prompts: usize,
    new_tokens: usize,
    temperatures: Vec<f32>,
    text_windows: usize,
    draft_vocab: usize,
    cls_weight: f64,
    noise: f32,
    machine: String,
}

/// Prompt tokens per training passage (the speculative suite's real prompts have 64).
const EAGLE_PROMPT_TOKENS: usize = 64;
/// Tokens per window of the calibration text read as it is.
const EAGLE_TEXT_WINDOW: usize = 256;
/// Prompts of the evaluation text, greedy tokens each, and γ of the acceptance check after
/// training (the speculative suite's `real-text` prompts).
const EAGLE_CHECK: (usize, usize, usize) = (4, 48, 4);

impl BackendJob for EagleJob {
    type Output = Result<()>;
    fn run<B: AttentionBackend>(self, device: B::Device) -> Self::Output {
        let a = self.args;
        let path = gguf::smollm2().map_err(anyhow::Error::msg)?;
        let file = gguf::GgufFile::open(&path)?;
        let config = gguf::llama::config(&file)?;
        let (target, tokenizer, _) =
            gguf::llama::load::<B>(&path, gguf::llama::Weights::F32, &device)?;
        let wanted = |c: &eagle::DataCard| {
            c.source == eagle::TEXT_SOURCE
                && c.seed == a.seed
                && c.new_tokens == a.new_tokens
                && c.temperatures == a.temperatures
                && c.text_windows == a.text_windows
                && c.sequences == a.prompts * a.temperatures.len() + a.text_windows
        };
        let (data_bin, _) = eagle::paths(&a.data);
        let old = if data_bin.exists() && !a.force {
            Some(eagle::load_data(&a.data)?).filter(|(_, c)| {
                let ok = wanted(c);
                if !ok {
                    eprintln!(
                        "data at {} was made with other settings: making it again",
                        a.data.display()
                    );
                }
                ok
            })
        } else {
            None
        };
        let data = if let Some((d, card)) = old {
            eprintln!(
                "data: {} sequences, {} tokens from {}",
                card.sequences,
                card.tokens,
                a.data.display()
            );
            d
        } else {
            let t0 = std::time::Instant::now();
            let ids = calibration::calibration_tokens(&tokenizer, a.prompts * EAGLE_PROMPT_TOKENS)?;
            let prompts = eagle::text_prompts(&ids, a.prompts, EAGLE_PROMPT_TOKENS, a.seed)?;
            let mut d = eagle::EagleData {
                d_model: config.d_model,
                tokens: Vec::new(),
                hidden: Vec::new(),
            };
            // The text itself, in windows read by the target (no continuation).
            if a.text_windows > 0 {
                let body = calibration::all_calibration_tokens(&tokenizer)?;
                let windows = eagle::text_windows(&body, a.text_windows, EAGLE_TEXT_WINDOW)?;
                d.append(eagle::make_data(
                    &target, &windows, 0, 8, 0.0, a.seed, &device,
                )?);
                eprintln!(
                    "data: {} windows of {EAGLE_TEXT_WINDOW} text tokens read ({:.0} s so far)",
                    windows.len(),
                    t0.elapsed().as_secs_f64()
                );
            }
            for (k, &temp) in a.temperatures.iter().enumerate() {
                let seed = a.seed.wrapping_add(1000 * k as u64);
                d.append(eagle::make_data(
                    &target,
                    &prompts,
                    a.new_tokens,
                    16,
                    temp,
                    seed,
                    &device,
                )?);
                eprintln!(
                    "data: {} passages continued at T = {temp} ({:.0} s so far)",
                    prompts.len(),
                    t0.elapsed().as_secs_f64()
                );
            }
            let card = eagle::DataCard {
                target: real::REAL.into(),
                source: eagle::TEXT_SOURCE.into(),
                seed: a.seed,
                sequences: d.tokens.len(),
                tokens: d.tokens.iter().map(Vec::len).sum(),
                new_tokens: a.new_tokens,
                temperatures: a.temperatures.clone(),
                text_windows: a.text_windows,
                d_model: d.d_model,
                seconds: t0.elapsed().as_secs_f64(),
            };
            eagle::save_data(&d, &card, &a.data)?;
            eprintln!(
                "data: {} sequences, {} tokens in {:.0} s → {}",
                card.sequences,
                card.tokens,
                card.seconds,
                eagle::paths(&a.data).0.display()
            );
            d
        };
        // Ranked over the whole calibration text and the model's continuations of it.
        let vocab = if a.draft_vocab == 0 {
            Vec::new()
        } else {
            let mut texts = vec![calibration::all_calibration_tokens(&tokenizer)?];
            texts.extend(data.tokens.iter().cloned());
            eagle::draft_vocab(&texts, a.draft_vocab, config.vocab_size)
        };
        // The evaluation text's real-text prompts, as the speculative suite builds them.
        let (n, max_new, gamma) = EAGLE_CHECK;
        let eval_ids = tokenizer.encode(&gguf::real_text()?, false)?;
        let held = Workload::RealText.real_prompts(n, &eval_ids, &tokenizer.encode("\n", false)?);
        if !vocab.is_empty() {
            eprintln!(
                "draft vocabulary: {} tokens, covering {:.2}% of the training data's next tokens and {:.2}% of the evaluation text's",
                vocab.len(),
                100.0 * eagle::vocab_coverage(&data.tokens, &vocab).unwrap_or(0.0),
                100.0 * eagle::vocab_coverage(std::slice::from_ref(&eval_ids), &vocab).unwrap_or(0.0)
            );
        }
        let opts = eagle::EagleTrainOptions {
            name: eagle::EAGLE_SMOLLM2.into(),
            config: config.clone(),
            steps: a.steps,
            batch: 8,
            seq_len: 64,
            lr: 1e-3,
            seed: a.seed,
            out: a.out.clone(),
            eval_every: a.eval_every,
            resume: a.resume,
            stop_after: a.stop_after,
            data: format!("{} ({})", eagle::TEXT_SOURCE, a.data.display()),
            draft_vocab: vocab,
            cls_weight: a.cls_weight,
            noise: a.noise,
            machine: a.machine,
            git_rev: env::git_rev(),
        };
        let card = eagle::train_eagle(&target, &data, &opts, &device, &mut |p, rate| {
            let valid = p
                .valid
                .map(|(r, c, agree)| {
                    format!("; held out: smooth-L1 {r:.4}, cross-entropy {c:.4}, top-1 agreement {agree:.3}")
                })
                .unwrap_or_default();
            eprintln!(
                "step {}/{}: loss {:.4} (smooth-L1 {:.4}, cross-entropy {:.4}){valid}, {rate:.0} positions/s",
                p.step, a.steps, p.loss, p.reg, p.cls
            );
        })?;
        if card.steps < a.steps {
            println!(
                "{}: stopped after {} of {} steps; continue with --resume",
                card.name, card.steps, a.steps
            );
            return Ok(());
        }
        let (w, _) = eagle::head_paths(&a.out);
        println!(
            "{}: {} parameters, {} steps in {:.0} s ({:.0} positions/s) → {} ({} bytes)",
            card.name,
            card.param_count,
            card.steps,
            card.train_seconds,
            card.positions_per_s,
            w.display(),
            std::fs::metadata(&w).map(|m| m.len()).unwrap_or(0)
        );
        // Acceptance on the evaluation text's prompts, trained head against a random one.
        let (trained, card) = eagle::load_head::<B>(&a.out, &device)?;
        B::seed(&device, a.seed);
        let random = config
            .init_eagle::<B>(&device)
            .map_err(anyhow::Error::msg)?;
        for (which, head) in [("trained", trained), ("random", random)] {
            let frozen = eagle::frozen_for(&target, &card.draft_vocab)?;
            let s = eagle::acceptance(&target, head, frozen, &held, gamma, max_new, &device)?;
            println!(
                "  {which} head, greedy, γ = {gamma}, {n} real-text prompts × {max_new} tokens: \
                 α = {:.3}, acceptance rate {:.3}, τ = {:.3}",
                s.alpha().unwrap_or(0.0),
                s.acceptance_rate().unwrap_or(0.0),
                s.mean_accepted_length().unwrap_or(0.0)
            );
        }
        Ok(())
    }
}

fn run_eagle(args: &TrainArgs) -> Result<()> {
    args.backend.check_available()?;
    if args.eval_every == 0 {
        bail!("--eval-every must be at least 1");
    }
    if args.corpus.is_some() || args.sft.is_some() {
        bail!(
            "--corpus and --sft do not apply to {}",
            eagle::EAGLE_SMOLLM2
        );
    }
    if args.temperatures.is_empty()
        || args
            .temperatures
            .iter()
            .any(|t| !(t.is_finite() && *t >= 0.0))
    {
        bail!(
            "--temperatures: expected finite temperatures ≥ 0 (0 = greedy), got {:?}",
            args.temperatures
        );
    }
    let fine = |x: f64| x.is_finite() && x >= 0.0;
    if !fine(args.cls_weight) || !fine(f64::from(args.feature_noise)) {
        bail!(
            "--cls-weight and --feature-noise must be finite and ≥ 0 (got {} and {})",
            args.cls_weight,
            args.feature_noise
        );
    }
    if args.prompts == 0 || args.new_tokens == 0 {
        bail!("--prompts and --new-tokens must be at least 1");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/checkpoints").join(eagle::EAGLE_SMOLLM2));
    if !args.force && !args.resume && eagle::head_paths(&out).0.exists() {
        bail!(
            "{} already exists; pass --force to replace it or choose another --out",
            out.display()
        );
    }
    let (cpu, _) = env::cpu_info();
    let machine = match args.backend {
        BackendKind::Flex => format!("flex on {cpu} ({} cores)", env::cores()),
        other => infermark_suites::backend::device_info(other, &cpu)?.label(),
    };
    let job = EagleJob {
        args: EagleArgs {
            steps: args.steps.unwrap_or(4000),
            seed: args.seed,
            data: PathBuf::from("results/eagle").join(format!("{}-data", eagle::EAGLE_SMOLLM2)),
            out,
            eval_every: args.eval_every,
            resume: args.resume,
            stop_after: args.stop_after,
            force: args.force,
            prompts: args.prompts,
            new_tokens: args.new_tokens,
            temperatures: args.temperatures.clone(),
            text_windows: args.text_windows,
            draft_vocab: args.draft_vocab,
            cls_weight: args.cls_weight,
            noise: args.feature_noise,
            machine,
        },
    };
    run_on(args.backend, job)?
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

/// The FP8 training setting of `--fp8` and `--fp8-grad`.
fn fp8_training(args: &TrainArgs) -> Result<Option<Fp8Training>> {
    if !args.fp8 {
        if args.fp8_grad.is_some() {
            bail!("--fp8-grad needs --fp8");
        }
        return Ok(None);
    }
    let grad = match &args.fp8_grad {
        Some(g) => Some(parse_fp8_kind(g).map_err(|e| anyhow::anyhow!("--fp8-grad: {e}"))?),
        None => None,
    };
    Ok(Some(Fp8Training { grad }))
}

pub fn run(args: TrainArgs) -> Result<()> {
    let fp8 = fp8_training(&args)?;
    if fp8.is_some() && (args.model == "arith-adaptive" || args.model == eagle::EAGLE_SMOLLM2) {
        bail!("--fp8 applies to the presets, not to {}", args.model);
    }
    if args.model == "arith-adaptive" {
        return run_adaptive(&args);
    }
    if args.model == eagle::EAGLE_SMOLLM2 {
        return run_eagle(&args);
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
        other => infermark_suites::backend::device_info(other, &cpu)?.label(),
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
        fp8,
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
        "{}: {} parameters, {} steps, {} tokens in {:.0} s ({:.0} tokens/s), {}\n  \
         valid loss {:.4} (perplexity {:.3}; unigram baseline {:.3}) → {}",
        card.name,
        card.param_count,
        card.steps,
        card.tokens_seen,
        card.train_seconds,
        card.tokens_per_s,
        card.precision,
        card.valid_loss,
        card.valid_perplexity,
        card.unigram_perplexity,
        weights.display()
    );
    Ok(())
}
