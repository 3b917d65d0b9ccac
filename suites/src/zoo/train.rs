//! Training of the decoder presets: AdamW (decoupled weight decay), linear warm-up then cosine
//! decay to a tenth of the peak rate, global-norm gradient clipping at 1.0, periodic validation,
//! and resumable checkpoints. Deterministic for a seed on one backend: weights come from the
//! backend's seeded RNG and batch `i` from a generator seeded by `(seed, i)`, so a resumed run sees
//! the same batches as an uninterrupted one. With [`TrainOptions::fp8`] the projections' products
//! take FP8-rounded inputs ([`infermark_models::quant::fp8_train`]); everything else is unchanged.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use infermark_models::decoder::{next_token_nll, Decoder, Preset};
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::{set_fp8_training, Fp8Training};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::checkpoint::{self, Card, CurvePoint};
use super::corpus::{tokenize, unigram_perplexity, Split};
use crate::{Result, SuiteError};

/// What to train and where to put it.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Architecture and recipe.
    pub preset: Preset,
    /// Steps to train in total (the preset's default unless overridden).
    pub steps: usize,
    /// Seed of weights and batch order.
    pub seed: u64,
    /// Training and validation text.
    pub split: Split,
    /// Checkpoint stem (`stem.safetensors`, `stem.json`).
    pub out: PathBuf,
    /// Validate (and save a resumable checkpoint) every this many steps.
    pub eval_every: usize,
    /// Continue from the resumable state saved beside `out`.
    pub resume: bool,
    /// Stop after this many steps (of `steps`), saving the resumable state, so that a long run
    /// can be trained in sessions; `None` trains to the end.
    pub stop_after: Option<usize>,
    /// Machine description for the card.
    pub machine: String,
    /// Git revision for the card.
    pub git_rev: String,
    /// Start from this checkpoint's weights (fine-tuning) instead of a fresh initialisation.
    pub init_from: Option<PathBuf>,
    /// Simulated FP8 training of the attention and MLP projections (DeepSeek-V3 §3.3); `None`
    /// trains in FP32. Master weights, AdamW state and validation stay FP32 either way.
    pub fp8: Option<Fp8Training>,
}

/// Progress of a training run, reported after every step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// Training loss of this step.
    pub loss: f64,
    /// Training tokens per second so far.
    pub tokens_per_s: f64,
    /// Latest validation loss.
    pub valid_loss: Option<f64>,
}

/// Learning rate at `step` (0-based) of `steps`: linear warm-up over the first 5% (at least one
/// step), then cosine decay from `peak` to `peak / 10`.
pub fn learning_rate(step: usize, steps: usize, peak: f64) -> f64 {
    let warm = (steps / 20).max(1);
    if step < warm {
        return peak * (step + 1) as f64 / warm as f64;
    }
    let t = (step - warm) as f64 / (steps - warm).max(1) as f64;
    let floor = peak / 10.0;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// Batch `step`: `batch` random windows of `seq_len` tokens from `tokens`.
///
/// # Shapes
/// - output: `[batch, seq_len]`
pub fn batch_at<B: Backend>(
    tokens: &[u32],
    seed: u64,
    step: usize,
    batch: usize,
    seq_len: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step as u64);
    let mut ids = Vec::with_capacity(batch * seq_len);
    for _ in 0..batch {
        let start = rng.random_range(0..tokens.len() - seq_len);
        ids.extend(tokens[start..start + seq_len].iter().map(|&t| t as i64));
    }
    Tensor::from_data(TensorData::new(ids, [batch, seq_len]), device)
}

/// Mean next-token loss (nats/token) of `model` over `tokens`, in non-overlapping windows of
/// `seq_len`, `batch` windows per forward pass.
pub fn mean_nll<B: AttentionBackend>(
    model: &Decoder<B>,
    tokens: &[u32],
    seq_len: usize,
    batch: usize,
    device: &B::Device,
) -> Result<f64> {
    let windows: Vec<&[u32]> = tokens.chunks_exact(seq_len).collect();
    if windows.is_empty() {
        return Err(SuiteError::Input(format!(
            "validation text has {} tokens, fewer than one window of {seq_len}",
            tokens.len()
        )));
    }
    let (mut sum, mut n) = (0f64, 0usize);
    for group in windows.chunks(batch) {
        let ids: Vec<i64> = group
            .iter()
            .flat_map(|w| w.iter().map(|&t| t as i64))
            .collect();
        let x =
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [group.len(), seq_len]), device);
        let logits = model
            .forward_full(x.clone())
            .map_err(|e| SuiteError::Model {
                context: "validation forward".into(),
                error: e,
            })?;
        let nll = next_token_nll(logits, x);
        sum += nll.sum().into_scalar().elem::<f64>();
        n += group.len() * (seq_len - 1);
    }
    Ok(sum / n as f64)
}

/// The resumable state of a run writing `out`: a folder `out.resume/` with `model.bin`,
/// `optim.bin` and `card.json`.
fn resume_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".resume");
    PathBuf::from(s)
}

/// Trains `opts.preset` on backend `B`, saving the checkpoint and card at the end (and a
/// resumable state every `eval_every` steps). Returns the card.
pub fn train<B: AttentionBackend>(
    opts: &TrainOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<Card> {
    type AB<B> = Autodiff<B>;
    let p = &opts.preset;
    let train_tokens = tokenize(&opts.split.train);
    let valid_tokens = tokenize(&opts.split.valid);
    if train_tokens.len() <= p.seq_len {
        return Err(SuiteError::Input(format!(
            "training text has {} tokens; preset {} needs more than {}",
            train_tokens.len(),
            p.name,
            p.seq_len
        )));
    }
    B::seed(device, opts.seed);
    let mut model: Decoder<AB<B>> = p.config.init(device).map_err(|e| SuiteError::Model {
        context: format!("preset {}", p.name),
        error: e,
    })?;
    if let Some(stem) = &opts.init_from {
        checkpoint::load_weights(&mut model, &checkpoint::paths(stem).0)?;
    }
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.1)
        .with_beta_2(0.95)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)))
        .init::<AB<B>, Decoder<AB<B>>>();
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let dir = resume_dir(&opts.out);
    let (rm, ro) = (dir.join("model"), dir.join("optim"));
    let mut start = 0;
    let mut curve = Vec::new();
    let mut prior_seconds = 0.0;
    if opts.resume {
        let card = checkpoint::read_card(&dir.join("card"))?;
        if card.precision != precision(opts.fp8) {
            return Err(SuiteError::Input(format!(
                "cannot resume a run trained in `{}` in `{}`; resume with the same precision",
                card.precision,
                precision(opts.fp8)
            )));
        }
        let bad = |e: burn::record::RecorderError, f: &Path| {
            SuiteError::Input(format!("cannot resume from {}: {e}", f.display()))
        };
        let rec = recorder.load(rm.clone(), device).map_err(|e| bad(e, &rm))?;
        model = model.load_record(rec);
        let orec = recorder.load(ro.clone(), device).map_err(|e| bad(e, &ro))?;
        optim = optim.load_record(orec);
        start = card.steps;
        curve = card.curve;
        prior_seconds = card.train_seconds;
    }
    set_fp8_training(&mut model, opts.fp8);
    let tokens_per_step = (p.batch * p.seq_len) as u64;
    let t0 = Instant::now();
    let mut window = (0f64, 0usize);
    let mut valid_loss = curve.last().map(|c: &CurvePoint| c.valid_loss);
    for step in start..opts.steps {
        let x = batch_at::<AB<B>>(&train_tokens, opts.seed, step, p.batch, p.seq_len, device);
        let logits = model
            .forward_full(x.clone())
            .map_err(|e| SuiteError::Model {
                context: format!("training step {step}"),
                error: e,
            })?;
        let loss = next_token_nll(logits, x).mean();
        let value = loss.clone().into_scalar().elem::<f64>();
        if !value.is_finite() {
            return Err(SuiteError::NotFinite {
                metric: "training loss".into(),
                variant: format!("{} at step {step}", p.name),
                value,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(learning_rate(step, opts.steps, p.lr), model, grads);
        window = (window.0 + value, window.1 + 1);
        let done = step + 1;
        let elapsed = t0.elapsed().as_secs_f64();
        let stop = opts.stop_after == Some(done) && done < opts.steps;
        if done % opts.eval_every == 0 || done == opts.steps || stop {
            // Validation scores the FP32 master weights with the FP32 forward.
            let mut eval = model.valid();
            set_fp8_training(&mut eval, None);
            let v = mean_nll(&eval, &valid_tokens, p.seq_len, 16, device)?;
            curve.push(CurvePoint {
                step: done,
                train_loss: window.0 / window.1 as f64,
                valid_loss: v,
            });
            window = (0.0, 0);
            valid_loss = Some(v);
            if done < opts.steps {
                let card = make_card(opts, &model, done, prior_seconds + elapsed, &curve);
                save_resumable(&recorder, &model, &optim, &card, &opts.out)?;
                if stop {
                    return Ok(card);
                }
            }
        }
        progress(Progress {
            step: done,
            steps: opts.steps,
            loss: value,
            tokens_per_s: ((done - start) as u64 * tokens_per_step) as f64 / elapsed,
            valid_loss,
        });
    }
    let seconds = prior_seconds + t0.elapsed().as_secs_f64();
    if start >= opts.steps {
        return Err(SuiteError::Input(format!(
            "nothing to train: checkpoint already has {start} of {} steps",
            opts.steps
        )));
    }
    let card = make_card(opts, &model, opts.steps, seconds, &curve);
    let mut fin = model.valid();
    set_fp8_training(&mut fin, None);
    checkpoint::save(&fin, &card, &opts.out)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(card)
}

/// The card's precision of a run with `fp8`.
fn precision(fp8: Option<Fp8Training>) -> String {
    fp8.map_or_else(|| checkpoint::FP32_PRECISION.to_string(), |f| f.name())
}

/// The card after `steps` steps; its losses are the last validation point's (every save follows
/// a validation).
fn make_card<B: AutodiffBackend>(
    opts: &TrainOptions,
    model: &Decoder<B>,
    steps: usize,
    seconds: f64,
    curve: &[CurvePoint],
) -> Card {
    let (p, split) = (&opts.preset, &opts.split);
    let last = curve
        .last()
        .expect("a validation point precedes every card");
    let (train_loss, valid_loss) = (last.train_loss, last.valid_loss);
    let tokens_seen = (steps * p.batch * p.seq_len) as u64;
    Card {
        name: p.name.into(),
        config: p.config.clone(),
        param_count: model.num_params(),
        data: split.source.clone(),
        seed: opts.seed,
        steps,
        batch: p.batch,
        seq_len: p.seq_len,
        lr: p.lr,
        tokens_seen,
        final_train_loss: train_loss,
        valid_loss,
        valid_perplexity: valid_loss.exp(),
        unigram_perplexity: unigram_perplexity(&split.train, &split.valid),
        train_seconds: seconds,
        tokens_per_s: tokens_seen as f64 / seconds.max(1e-9),
        machine: opts.machine.clone(),
        git_rev: opts.git_rev.clone(),
        curve: curve.to_vec(),
        precision: precision(opts.fp8),
    }
}

fn save_resumable<B: AutodiffBackend, O: Optimizer<Decoder<B>, B>>(
    recorder: &BinFileRecorder<FullPrecisionSettings>,
    model: &Decoder<B>,
    optim: &O,
    card: &Card,
    out: &Path,
) -> Result<()> {
    let dir = resume_dir(out);
    std::fs::create_dir_all(&dir)
        .map_err(|e| SuiteError::Input(format!("cannot create {}: {e}", dir.display())))?;
    let (rm, ro) = (dir.join("model"), dir.join("optim"));
    let fail = |e: burn::record::RecorderError, f: &Path| {
        SuiteError::Input(format!("cannot save resumable state {}: {e}", f.display()))
    };
    recorder
        .record(model.clone().into_record(), rm.clone())
        .map_err(|e| fail(e, &rm))?;
    recorder
        .record(optim.to_record(), ro.clone())
        .map_err(|e| fail(e, &ro))?;
    let json = serde_json::to_string_pretty(card).expect("card serializes");
    let card_path = dir.join("card.json");
    std::fs::write(&card_path, json)
        .map_err(|e| SuiteError::Input(format!("cannot write {}: {e}", card_path.display())))?;
    Ok(())
}
