//! Fine-tuning `arith` into the learned gate (AdaCoT §2.2): stage 1, SFT on lines
//! `A:<problem>=<decision><answer>` whose decision is the oracle label of the base model (`T`
//! when its direct answer is wrong), mixed half and half with the original `D:`/`T:` lines so
//! nothing else is forgotten (training recipe of [`crate::zoo::train`], started from the
//! committed `arith` weights); stage 1b, imitation of the oracle decision token alone over a
//! larger table ([`rl::Algo::Imitate`], [`IMITATE_NAME`]); stage 2, RL on the decision token at
//! a cost weight λ
//! ([`super::rl`], GRPO by default), resumable. Each result gets a card beside the usual one
//! (`STEM.adacot.json`) with λ, steps, seeds, times, and the trigger rate and accuracy on its
//! seed set, which a test reproduces.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use infermark_models::decoder::{preset, Decoder, Preset};
use infermark_models::kernels::AttentionBackend;
use serde::{Deserialize, Serialize};

use super::gate::Decision;
use super::labels::{self, TableRow};
use super::learned;
use super::rl::{self, RlConfig, Trainer};
use crate::zoo::checkpoint::{self, Card};
use crate::zoo::corpus::{self, tokenize, Problem, Split};
use crate::zoo::train::{self, Progress, TrainOptions};
use crate::{Result, SuiteError};

/// Name of the SFT checkpoint (stage 1), shared by every λ.
pub const SFT_NAME: &str = "arith-adaptive-sft";
/// SFT optimizer steps.
pub const SFT_STEPS: usize = 400;
/// SFT peak learning rate (fine-tuning: a sixth of `arith`'s).
pub const SFT_LR: f64 = 5e-4;
/// Problems labelled for SFT (seed [`SFT_SEED`]) and for its validation (seed 12).
pub const SFT_PROBLEMS: usize = 4096;
/// Seed of the SFT problems (RL draws from [`rl::TRAIN_SEED`] = 11 too: the same table).
pub const SFT_SEED: u64 = rl::TRAIN_SEED;
/// Problems in the RL and imitation table (seed [`rl::TRAIN_SEED`]; its first
/// [`SFT_PROBLEMS`] are the SFT problems).
pub const TABLE_PROBLEMS: usize = 16384;
/// Name of the imitation checkpoint (stage 1b, [`rl::Algo::Imitate`]), the RL stages' start.
pub const IMITATE_NAME: &str = "arith-adaptive-imitate";
/// Seed of the card's problem set (balanced mix).
pub const CARD_SEED: u64 = 1301;
/// Problems in the card's set.
pub const CARD_PROBLEMS: usize = 200;

/// The SFT preset: `arith`'s architecture and batch, 400 steps at 5e-4.
pub fn sft_preset() -> Preset {
    let base = preset("arith").expect("arith preset");
    Preset {
        name: SFT_NAME,
        steps: SFT_STEPS,
        lr: SFT_LR,
        ..base
    }
}

/// Adaptive lines (oracle decisions) interleaved one to one with original arithmetic lines
/// from `mix_seed`.
pub fn sft_text(rows: &[TableRow], mix_seed: u64) -> String {
    let original = corpus::arithmetic(mix_seed, rows.len() * 48);
    let mut old = original.lines();
    let mut out = String::new();
    for row in rows {
        out.push_str(&learned::line(&row.problem, row.oracle_decision()));
        if let Some(l) = old.next() {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The SFT split, labelled by `base`.
pub fn sft_split<B: AttentionBackend>(base: &Decoder<B>, device: &B::Device) -> Result<Split> {
    let train_rows = labels::table(base, &rl::problems(SFT_SEED, SFT_PROBLEMS), device)?;
    let valid_rows = labels::table(base, &rl::problems(12, 256), device)?;
    Ok(Split {
        train: sft_text(&train_rows, 14),
        valid: sft_text(&valid_rows, 15),
        source: format!(
            "adaptive lines A:<problem>=<oracle decision><answer> for {SFT_PROBLEMS} uniform-bucket problems (seed {SFT_SEED}; validation 256, seed 12), decisions from arith's greedy answers, interleaved 1:1 with arithmetic lines (seeds 14, 15)"
        ),
    })
}

/// Stage 1: SFT from the committed `arith` (resumable as [`train::train`]); `opts.split` and
/// `opts.init_from` are filled in here.
pub fn train_sft<B: AttentionBackend>(
    mut opts: TrainOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<Card> {
    let base_stem = checkpoint::committed("arith");
    let (base, _) = checkpoint::load::<B>(&base_stem, device)?;
    opts.split = sft_split(&base, device)?;
    opts.init_from = Some(base_stem);
    train::train::<B>(&opts, device, progress)
}

/// One point of the RL curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardPoint {
    /// Steps done.
    pub step: usize,
    /// Training seconds so far.
    pub seconds: f64,
    /// Mean greedy-decision reward on the held-out problems (seed 13).
    pub held_out_reward: f64,
}

/// The learned gate's card (`STEM.adacot.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveCard {
    /// Checkpoint name.
    pub name: String,
    /// Cost weight λ of the reward correct − λ·tokens/normaliser.
    pub lambda: f64,
    /// The normaliser.
    pub normaliser: f64,
    /// What it was fine-tuned from and how (SFT card's name, steps, data).
    pub sft: String,
    /// RL algorithm.
    pub algo: String,
    /// RL steps done.
    pub rl_steps: usize,
    /// Prompts per RL step.
    pub batch: usize,
    /// Sampled decisions per prompt.
    pub group: usize,
    /// RL learning rate.
    pub lr: f64,
    /// RL seed (prompt choice and sampling).
    pub seed: u64,
    /// RL problems: uniform buckets, seed 11 (the SFT table), held-out seed 13.
    pub rl_problems: usize,
    /// RL wall time, seconds.
    pub rl_seconds: f64,
    /// Held-out reward over training.
    pub curve: Vec<RewardPoint>,
    /// The card's seed set: balanced mix, [`CARD_SEED`], [`CARD_PROBLEMS`] problems, decoded
    /// greedily in batches of 64.
    pub seed_set: String,
    /// Share of the seed set it thought on.
    pub trigger_rate: f64,
    /// Share of the seed set it answered right.
    pub accuracy: f64,
    /// Share of the seed set with a decision that was neither `D` nor `T`.
    pub format_error_rate: f64,
    /// Backend and machine.
    pub machine: String,
    /// Git revision.
    pub git_rev: String,
}

/// Trigger rate, accuracy and format-error rate of an adaptive model on the card's seed set.
pub fn card_eval<B: AttentionBackend>(
    model: &Decoder<B>,
    device: &B::Device,
) -> Result<(f64, f64, f64)> {
    let problems: Vec<Problem> = super::workloads::sample(&[0.25; 4], CARD_SEED, CARD_PROBLEMS);
    let prompts: Vec<Vec<u32>> = problems
        .iter()
        .map(|p| tokenize(&format!("\n{}", learned::prompt(p))))
        .collect();
    let answers = labels::answer_batched(model, &prompts, device)?;
    let (mut think, mut right, mut errors) = (0, 0, 0);
    for (p, a) in problems.iter().zip(&answers) {
        match learned::judge(p, a) {
            (Some(Decision::Think), ok) => {
                think += 1;
                right += usize::from(ok);
            }
            (Some(Decision::Direct), ok) => right += usize::from(ok),
            (None, _) => errors += 1,
        }
    }
    let n = problems.len() as f64;
    Ok((think as f64 / n, right as f64 / n, errors as f64 / n))
}

/// Stage 2's options.
#[derive(Clone, Debug)]
pub struct RlOptions {
    /// Per-step configuration (algorithm, λ, batch, group, learning rate, seed).
    pub config: RlConfig,
    /// Steps in all.
    pub steps: usize,
    /// The checkpoint to start from (SFT, or the imitation stage).
    pub sft: PathBuf,
    /// Problems in the table the steps draw from (uniform buckets, seed [`rl::TRAIN_SEED`]).
    pub problems: usize,
    /// Output stem.
    pub out: PathBuf,
    /// Record the held-out reward every this many steps (and save the resumable state).
    pub eval_every: usize,
    /// Continue from `out.resume/`.
    pub resume: bool,
    /// Stop after this many steps, saving `out.resume/`.
    pub stop_after: Option<usize>,
    /// Machine, for the card.
    pub machine: String,
    /// Git revision, for the card.
    pub git_rev: String,
}

fn resume_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".resume");
    PathBuf::from(s)
}

/// The sidecar card path of a stem.
pub fn adaptive_card_path(stem: &Path) -> PathBuf {
    stem.with_extension("adacot.json")
}

/// Reads an adaptive card.
pub fn read_adaptive_card(stem: &Path) -> Result<AdaptiveCard> {
    let p = adaptive_card_path(stem);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| SuiteError::Input(format!("cannot read {}: {e}", p.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| SuiteError::Input(format!("adaptive card {} is malformed: {e}", p.display())))
}

#[derive(Serialize, Deserialize)]
struct RlState {
    step: usize,
    seconds: f64,
    curve: Vec<RewardPoint>,
}

/// Stage 2: RL on the decision token from the SFT checkpoint. Returns the card once all steps
/// are done, `None` when stopped early (state saved in `out.resume/`).
pub fn train_rl<B: AttentionBackend>(
    opts: &RlOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Option<AdaptiveCard>> {
    let (base, _) = checkpoint::load::<B>(&checkpoint::committed("arith"), device)?;
    let table = labels::table(&base, &rl::problems(rl::TRAIN_SEED, opts.problems), device)?;
    let held = labels::table(&base, &rl::problems(rl::EVAL_SEED, 256), device)?;
    let (policy, sft_card) = checkpoint::load::<B>(&opts.sft, device)?;
    let cfg = opts.config;
    let dir = resume_dir(&opts.out);
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let mut trainer = Trainer::<B>::new(policy, sft_card.config.d_model, cfg, device);
    let mut state = RlState {
        step: 0,
        seconds: 0.0,
        curve: vec![RewardPoint {
            step: 0,
            seconds: 0.0,
            held_out_reward: rl::greedy_reward(&trainer.policy(), &held, cfg.lambda, device)?,
        }],
    };
    if opts.resume {
        let bad =
            |e: String| SuiteError::Input(format!("cannot resume from {}: {e}", dir.display()));
        let text =
            std::fs::read_to_string(dir.join("state.json")).map_err(|e| bad(e.to_string()))?;
        state = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        trainer.load(&recorder, &dir, device).map_err(bad)?;
        trainer.step = state.step;
    }
    let t0 = Instant::now();
    let prior = state.seconds;
    while trainer.step < opts.steps {
        let r = trainer.step(&table, device)?;
        let done = trainer.step;
        progress(done, r);
        let stop = opts.stop_after == Some(done) && done < opts.steps;
        if done.is_multiple_of(opts.eval_every) || done == opts.steps || stop {
            let seconds = prior + t0.elapsed().as_secs_f64();
            let held_out_reward = rl::greedy_reward(&trainer.policy(), &held, cfg.lambda, device)?;
            state.curve.push(RewardPoint {
                step: done,
                seconds,
                held_out_reward,
            });
            state.step = done;
            state.seconds = seconds;
            if stop {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    SuiteError::Input(format!("cannot create {}: {e}", dir.display()))
                })?;
                trainer.save(&recorder, &dir).map_err(|e| {
                    SuiteError::Input(format!("cannot save {}: {e}", dir.display()))
                })?;
                let json = serde_json::to_string_pretty(&state).expect("state serializes");
                std::fs::write(dir.join("state.json"), json).map_err(|e| {
                    SuiteError::Input(format!("cannot write {}: {e}", dir.display()))
                })?;
                return Ok(None);
            }
        }
    }
    let model = trainer.policy();
    let (trigger_rate, accuracy, format_error_rate) = card_eval(&model, device)?;
    let name = opts
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "arith-adaptive".into());
    let card = AdaptiveCard {
        name: name.clone(),
        lambda: cfg.lambda,
        normaliser: rl::NORMALISER,
        sft: format!(
            "{} ({} steps at peak lr {}, batch {}×{}, seed {}, from arith; data: {})",
            sft_card.name,
            sft_card.steps,
            sft_card.lr,
            sft_card.batch,
            sft_card.seq_len,
            sft_card.seed,
            sft_card.data
        ),
        algo: cfg.algo.name().into(),
        rl_steps: opts.steps,
        batch: cfg.batch,
        group: cfg.group,
        lr: cfg.lr,
        seed: cfg.seed,
        rl_problems: opts.problems,
        rl_seconds: state.seconds,
        curve: state.curve,
        seed_set: format!(
            "balanced mix, seed {CARD_SEED}, {CARD_PROBLEMS} problems, greedy, batches of 64"
        ),
        trigger_rate,
        accuracy,
        format_error_rate,
        machine: opts.machine.clone(),
        git_rev: opts.git_rev.clone(),
    };
    // The usual card too, so the checkpoint loads like any other.
    let mut base_card = sft_card;
    base_card.name = name;
    base_card.data = format!(
        "{} + RL ({}, λ = {})",
        base_card.data, card.algo, cfg.lambda
    );
    base_card.git_rev = opts.git_rev.clone();
    checkpoint::save(&model, &base_card, &opts.out)?;
    let json = serde_json::to_string_pretty(&card).expect("card serializes");
    let p = adaptive_card_path(&opts.out);
    std::fs::write(&p, json + "\n")
        .map_err(|e| SuiteError::Input(format!("cannot write {}: {e}", p.display())))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Some(card))
}

impl<B: AttentionBackend> Trainer<B> {
    fn save(
        &self,
        recorder: &BinFileRecorder<FullPrecisionSettings>,
        dir: &Path,
    ) -> std::result::Result<(), String> {
        recorder
            .record(self.policy.clone().into_record(), dir.join("policy"))
            .map_err(|e| e.to_string())?;
        self.save_optim(recorder, dir)
    }

    fn load(
        &mut self,
        recorder: &BinFileRecorder<FullPrecisionSettings>,
        dir: &Path,
        device: &B::Device,
    ) -> std::result::Result<(), String> {
        let rec = recorder
            .load(dir.join("policy"), device)
            .map_err(|e: burn::record::RecorderError| e.to_string())?;
        self.policy = self.policy.clone().load_record(rec);
        self.load_optim(recorder, dir, device)
    }
}
