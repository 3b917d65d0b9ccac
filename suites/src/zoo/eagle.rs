//! Training data and training of an EAGLE head (Li et al. 2024) for a target decoder
//! ([`infermark_models::generation::speculative::eagle`]).
//!
//! - Data: prompts continued by the target (greedily and sampled); each sequence's tokens and the target's
//!   final hidden states (after its last RMSNorm) of every token, in a file `STEM.bin` with a
//!   card `STEM.json` (seeded).
//! - Loss (EAGLE, section 4): `1.0 · L_reg + 0.1 · L_cls`, with `L_reg` the smooth-L1 distance of
//!   the predicted next features to the target's, and `L_cls` the cross-entropy of the frozen LM
//!   head on the prediction against the target's next-token distribution (soft labels).
//! - Training: AdamW with [`super::train`]'s schedule and clipping, batches drawn by a generator
//!   seeded by `(seed, step)`, resumable (`STEM.resume/`).
//!
//! - Feature noise (EAGLE): uniform in [−0.1, 0.1] on the input features by default.
//!
//! Deviations: one epoch-free random-window sampler.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, HalfPrecisionSettings, Recorder};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use infermark_models::decoder::{Decoder, DecoderConfig};
use infermark_models::generation::speculative::{
    speculative_generate, EagleDrafter, EagleHead, FrozenTarget, Gamma, SpecStats,
};
use infermark_models::generation::{GenerateConfig, Logits, Sampler, SamplingConfig, Session};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::SeqId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::train::learning_rate;
use crate::{Result, SuiteError};

/// EAGLE's weight of the classification loss (the regression loss weighs 1.0).
pub const CLS_WEIGHT: f64 = 0.1;

/// EAGLE's noise on the input features during training: uniform in [−0.1, 0.1].
pub const FEATURE_NOISE: f32 = 0.1;

/// Sequences of tokens with the target's final hidden states of every token.
#[derive(Clone, Debug, PartialEq)]
pub struct EagleData {
    /// Width of the hidden states.
    pub d_model: usize,
    /// Token ids per sequence (prompt then greedy continuation).
    pub tokens: Vec<Vec<u32>>,
    /// Hidden states per sequence, row-major `[len, d_model]`.
    pub hidden: Vec<Vec<f32>>,
}

impl EagleData {
    /// Adds `other`'s sequences after these (same width).
    pub fn append(&mut self, other: EagleData) {
        debug_assert_eq!(self.d_model, other.d_model);
        self.tokens.extend(other.tokens);
        self.hidden.extend(other.hidden);
    }
}

/// The card of a data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataCard {
    /// Target model.
    pub target: String,
    /// Where the prompts come from.
    pub source: String,
    /// Seed of the prompt choice.
    pub seed: u64,
    /// Sequences.
    pub sequences: usize,
    /// Tokens in all.
    pub tokens: usize,
    /// Tokens added to each prompt.
    pub new_tokens: usize,
    /// Temperatures of the continuations (0: greedy), each over every prompt.
    #[serde(default)]
    pub temperatures: Vec<f32>,
    /// Windows of the text read as they are (before the continuations).
    #[serde(default)]
    pub text_windows: usize,
    /// Width of the hidden states (stored as little-endian f32).
    pub d_model: usize,
    /// Wall time of the generation.
    pub seconds: f64,
}

/// `STEM.bin` and `STEM.json`.
pub fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    (stem.with_extension("bin"), stem.with_extension("json"))
}

fn io(what: &str, p: &Path, e: impl std::fmt::Display) -> SuiteError {
    SuiteError::Input(format!("cannot {what} {}: {e}", p.display()))
}

/// Continues every prompt by `new_tokens` tokens (`batch` prompts per session), greedily at
/// `temperature` 0, else sampled at that temperature from a generator seeded by `seed` and the
/// group's index. The target's hidden states of every token come from the same forwards (the
/// prompt's prefill, then one decode step per token; the last token is fed once more for its
/// own row), so nothing is computed twice.
pub fn make_data<B: AttentionBackend>(
    target: &Decoder<B>,
    prompts: &[Vec<u32>],
    new_tokens: usize,
    batch: usize,
    temperature: f32,
    seed: u64,
    device: &B::Device,
) -> Result<EagleData> {
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(SuiteError::Input(format!(
            "EAGLE training data: temperature {temperature} is not a finite number ≥ 0"
        )));
    }
    let sampling = if temperature == 0.0 {
        SamplingConfig::greedy()
    } else {
        SamplingConfig::with_temperature(temperature)
    };
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(SuiteError::Input(format!(
            "EAGLE training data: needs at least one prompt and no empty prompt (got {} prompts)",
            prompts.len()
        )));
    }
    let d = target.embed.weight.dims()[1];
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest + new_tokens > target.max_seq_len() {
        return Err(SuiteError::Input(format!(
            "EAGLE training data: a prompt of {longest} tokens and {new_tokens} new ones exceed the target's {} positions",
            target.max_seq_len()
        )));
    }
    let mut data = EagleData {
        d_model: d,
        tokens: Vec::new(),
        hidden: Vec::new(),
    };
    let model = |e| SuiteError::model("EAGLE training data")(e);
    for (gi, group) in prompts.chunks(batch.max(1)).enumerate() {
        let mut cache = target.contiguous_cache(group.len(), longest + new_tokens, device);
        let mut sampler = Sampler::new(sampling, seed.wrapping_add(gi as u64)).map_err(&model)?;
        let mut session = Session::new(target, &mut cache, device);
        let seqs = group
            .iter()
            .map(|_| session.add())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(&model)?;
        let mut texts: Vec<Vec<u32>> = group.to_vec();
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); group.len()];
        let mut fed = vec![0usize; group.len()];
        loop {
            let feeds: Vec<(SeqId, &[u32])> = seqs
                .iter()
                .zip(&texts)
                .zip(&fed)
                .map(|((&s, t), &f)| (s, &t[f..]))
                .collect();
            let (logits, hidden) = session
                .step_with_hidden(&feeds, Logits::Last)
                .map_err(&model)?;
            for (i, h) in hidden.into_iter().enumerate() {
                h.into_iter().for_each(|r| rows[i].extend(r));
                fed[i] = texts[i].len();
            }
            if texts[0].len() - group[0].len() == new_tokens {
                break;
            }
            for (text, l) in texts.iter_mut().zip(logits) {
                text.push(sampler.sample(&l[0]).map_err(&model)?);
            }
        }
        session.close().map_err(&model)?;
        data.append(EagleData {
            d_model: d,
            tokens: texts,
            hidden: rows,
        });
    }
    Ok(data)
}

/// Writes `data` to `STEM.bin` (u32 sequences, u32 width; per sequence u32 length, the ids, the
/// f32 rows; little-endian) and `card` to `STEM.json`.
pub fn save_data(data: &EagleData, card: &DataCard, stem: &Path) -> Result<()> {
    let (bin, json) = paths(stem);
    if let Some(dir) = bin.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    let mut out = Vec::new();
    out.extend((data.tokens.len() as u32).to_le_bytes());
    out.extend((data.d_model as u32).to_le_bytes());
    for (t, h) in data.tokens.iter().zip(&data.hidden) {
        out.extend((t.len() as u32).to_le_bytes());
        t.iter().for_each(|x| out.extend(x.to_le_bytes()));
        h.iter().for_each(|x| out.extend(x.to_le_bytes()));
    }
    std::fs::File::create(&bin)
        .and_then(|mut f| f.write_all(&out))
        .map_err(|e| io("write", &bin, e))?;
    let text = serde_json::to_string_pretty(card).expect("card serializes");
    std::fs::write(&json, text).map_err(|e| io("write", &json, e))
}

/// Reads what [`save_data`] wrote.
pub fn load_data(stem: &Path) -> Result<(EagleData, DataCard)> {
    let (bin, json) = paths(stem);
    let card: DataCard =
        serde_json::from_str(&std::fs::read_to_string(&json).map_err(|e| io("read", &json, e))?)
            .map_err(|e| io("parse", &json, e))?;
    let mut bytes = Vec::new();
    std::fs::File::open(&bin)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io("read", &bin, e))?;
    let mut at = 0usize;
    let mut word = || -> Result<[u8; 4]> {
        let w = bytes
            .get(at..at + 4)
            .ok_or_else(|| io("read", &bin, format!("truncated at byte {at}")))?;
        at += 4;
        Ok(w.try_into().expect("four bytes"))
    };
    let n = u32::from_le_bytes(word()?) as usize;
    let d = u32::from_le_bytes(word()?) as usize;
    let mut data = EagleData {
        d_model: d,
        tokens: Vec::with_capacity(n),
        hidden: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let len = u32::from_le_bytes(word()?) as usize;
        let t = (0..len)
            .map(|_| word().map(u32::from_le_bytes))
            .collect::<Result<Vec<_>>>()?;
        let h = (0..len * d)
            .map(|_| word().map(f32::from_le_bytes))
            .collect::<Result<Vec<_>>>()?;
        data.tokens.push(t);
        data.hidden.push(h);
    }
    Ok((data, card))
}

/// The draft vocabulary: `k` of the target's `vocab_size` tokens, those that occur most often
/// as a next token in `texts` (every position after the first of each sequence) first, ties
/// and tokens that never occur by the smaller id (FR-Spec's frequency ranking, which EAGLE-3's
/// draft vocabulary follows; a BPE tokenizer numbers its merges in the order it learnt them, so
/// the smaller ids are the more common pieces where the text has no count). Tokens outside the
/// vocabulary are not counted.
pub fn draft_vocab(texts: &[Vec<u32>], k: usize, vocab_size: usize) -> Vec<u32> {
    let mut counts = vec![0u64; vocab_size];
    for t in texts.iter().flat_map(|s| s.iter().skip(1)) {
        if let Some(c) = counts.get_mut(*t as usize) {
            *c += 1;
        }
    }
    let mut ranked: Vec<u32> = (0..vocab_size as u32).collect();
    ranked.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    ranked.truncate(k);
    ranked
}

/// Share of `tokens` (each sequence after its first token) that lie in `vocab`: how often a
/// draft over that vocabulary could be right at all.
pub fn vocab_coverage(tokens: &[Vec<u32>], vocab: &[u32]) -> Option<f64> {
    let set: std::collections::HashSet<u32> = vocab.iter().copied().collect();
    let (mut hit, mut n) = (0usize, 0usize);
    for t in tokens.iter().flat_map(|s| s.iter().skip(1)) {
        n += 1;
        hit += usize::from(set.contains(t));
    }
    (n > 0).then(|| hit as f64 / n as f64)
}

/// One training batch: `batch` random windows of `seq_len + 1` positions.
///
/// # Shapes
/// - `feats`, `target`: `[batch, seq_len, d_model]`; `next`: `[batch, seq_len]`
struct Batch<B: Backend> {
    /// `h_t`
    feats: Tensor<B, 3>,
    /// `x_{t+1}`
    next: Tensor<B, 2, Int>,
    /// `h_{t+1}`
    target: Tensor<B, 3>,
}

/// Every [`VALID_EVERY`]-th sequence (the last of each run of that many) is held out of
/// training: the validation points of the curve are measured on those.
pub const VALID_EVERY: usize = 20;

fn is_valid(i: usize) -> bool {
    i % VALID_EVERY == VALID_EVERY - 1
}

/// Teacher-forced validation on the held-out sequences: the mean loss parts and the share of
/// positions where the head's token (argmax of the frozen head on ĥ_{t+1}) is the target's
/// (argmax on h_{t+1}), over the draft vocabulary: (smooth-L1, cross-entropy, agreement).
fn validate<B: AttentionBackend>(
    head: &EagleHead<B>,
    frozen: &FrozenTarget<B>,
    data: &EagleData,
    device: &B::Device,
) -> Result<Option<(f64, f64, f64)>> {
    let d = data.d_model;
    let (mut reg, mut cls, mut hit, mut n) = (0.0, 0.0, 0usize, 0usize);
    for i in (0..data.tokens.len()).filter(|&i| is_valid(i)) {
        let s = data.tokens[i].len() - 1;
        if s == 0 {
            continue;
        }
        let h = &data.hidden[i];
        let b = Batch {
            feats: Tensor::from_data(TensorData::new(h[..s * d].to_vec(), [1, s, d]), device),
            next: Tensor::from_data(
                TensorData::new(
                    data.tokens[i][1..].iter().map(|&x| i64::from(x)).collect(),
                    [1, s],
                ),
                device,
            ),
            target: Tensor::from_data(TensorData::new(h[d..].to_vec(), [1, s, d]), device),
        };
        let parts = loss_parts(head, frozen, b)?;
        let agree = parts
            .pred_logits
            .argmax(2)
            .equal(parts.target_logits.argmax(2))
            .int()
            .sum()
            .into_scalar()
            .elem::<i64>();
        reg += parts.reg.into_scalar().elem::<f64>() * s as f64;
        cls += parts.cls.into_scalar().elem::<f64>() * s as f64;
        hit += agree as usize;
        n += s;
    }
    Ok((n > 0).then(|| (reg / n as f64, cls / n as f64, hit as f64 / n as f64)))
}

/// The batch of `step`: windows drawn by a generator seeded by `(seed, step)`, input features
/// with uniform noise in [−`noise`, `noise`] from the same generator (targets are exact).
fn batch_at<B: Backend>(
    data: &EagleData,
    seed: u64,
    step: usize,
    (batch, seq_len): (usize, usize),
    noise: f32,
    device: &B::Device,
) -> Batch<B> {
    let long: Vec<usize> = (0..data.tokens.len())
        .filter(|&i| !is_valid(i) && data.tokens[i].len() > seq_len)
        .collect();
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ step as u64);
    let d = data.d_model;
    let (mut f, mut n, mut t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..batch {
        let i = long[rng.random_range(0..long.len())];
        let start = rng.random_range(0..data.tokens[i].len() - seq_len);
        let h = &data.hidden[i];
        f.extend(h[start * d..(start + seq_len) * d].iter().map(|&x| {
            if noise > 0.0 {
                x + rng.random_range(-noise..=noise)
            } else {
                x
            }
        }));
        t.extend_from_slice(&h[(start + 1) * d..(start + 1 + seq_len) * d]);
        n.extend(
            data.tokens[i][start + 1..start + 1 + seq_len]
                .iter()
                .map(|&x| i64::from(x)),
        );
    }
    Batch {
        feats: Tensor::from_data(TensorData::new(f, [batch, seq_len, d]), device),
        next: Tensor::from_data(TensorData::new(n, [batch, seq_len]), device),
        target: Tensor::from_data(TensorData::new(t, [batch, seq_len, d]), device),
    }
}

/// The two parts of EAGLE's loss on one batch and the logits they were computed from.
struct LossParts<B: Backend> {
    /// Mean smooth-L1 distance of ĥ to h.
    reg: Tensor<B, 1>,
    /// Mean cross-entropy of the head on ĥ against softmax of the head on h (soft labels).
    cls: Tensor<B, 1>,
    /// `[batch, seq_len, k]`: the frozen head on ĥ.
    pred_logits: Tensor<B, 3>,
    /// `[batch, seq_len, k]`: the frozen head on h.
    target_logits: Tensor<B, 3>,
}

/// One forward of the head on a batch and both loss parts.
///
/// # Shapes
/// - the batch as [`Batch`]'s; the parts as [`LossParts`]'
fn loss_parts<B: AttentionBackend>(
    head: &EagleHead<B>,
    frozen: &FrozenTarget<B>,
    b: Batch<B>,
) -> Result<LossParts<B>> {
    let pred = head
        .forward(frozen, b.feats, b.next)
        .map_err(SuiteError::model("EAGLE head forward"))?;
    let diff = (pred.clone() - b.target.clone()).abs();
    let small = diff.clone().clamp_max(1.0);
    let reg = (small.clone().powf_scalar(2.0) * 0.5 + (diff - small)).mean();
    let (pred_logits, target_logits) = (frozen.logits(pred), frozen.logits(b.target));
    let p = softmax(target_logits.clone(), 2);
    let lq = log_softmax(pred_logits.clone(), 2);
    let [bs, s, _] = lq.dims();
    let cls = (p * lq).sum().neg() / (bs * s) as f64;
    Ok(LossParts {
        reg,
        cls,
        pred_logits,
        target_logits,
    })
}

/// EAGLE's loss on one batch: `1.0 · smooth-L1(ĥ, h) + w · CE(softmax(head(h)), head(ĥ))`
/// (EAGLE: w = [`CLS_WEIGHT`]). Returns the loss and its two parts' values.
///
/// # Shapes
/// - the batch as [`Batch`]'s; output: a one-element loss
fn eagle_loss<B: AttentionBackend>(
    head: &EagleHead<B>,
    frozen: &FrozenTarget<B>,
    b: Batch<B>,
    cls_weight: f64,
) -> Result<(Tensor<B, 1>, f64, f64)> {
    let LossParts { reg, cls, .. } = loss_parts(head, frozen, b)?;
    let (r, c) = (
        reg.clone().into_scalar().elem::<f64>(),
        cls.clone().into_scalar().elem::<f64>(),
    );
    Ok((reg + cls * cls_weight, r, c))
}

/// What to train and where to put it.
#[derive(Clone, Debug)]
pub struct EagleTrainOptions {
    /// Name on the card.
    pub name: String,
    /// The target's configuration (the head takes its width, heads and MLP).
    pub config: DecoderConfig,
    /// Steps in all.
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Positions per window.
    pub seq_len: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed of the head's weights and of the batches.
    pub seed: u64,
    /// The draft vocabulary the classification loss and drafting read ([`draft_vocab`]);
    /// empty: the whole vocabulary.
    pub draft_vocab: Vec<u32>,
    /// Weight of the classification loss ([`CLS_WEIGHT`] in EAGLE).
    pub cls_weight: f64,
    /// Uniform noise on the input features ([`FEATURE_NOISE`] in EAGLE; 0: none).
    pub noise: f32,
    /// Stem of the head's weights and card ([`head_paths`]).
    pub out: PathBuf,
    /// Record the loss (and save the resumable state) every this many steps.
    pub eval_every: usize,
    /// Continue from `STEM.resume/`.
    pub resume: bool,
    /// Stop after this many steps, saving the resumable state.
    pub stop_after: Option<usize>,
    /// Where the data came from (the data card's source).
    pub data: String,
    /// Machine description.
    pub machine: String,
    /// Git revision.
    pub git_rev: String,
}

/// One point of the loss curve: mean losses over the steps since the last point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EaglePoint {
    /// Steps done.
    pub step: usize,
    /// Mean total loss.
    pub loss: f64,
    /// Mean smooth-L1 part.
    pub reg: f64,
    /// Mean cross-entropy part.
    pub cls: f64,
    /// Held-out sequences, teacher-forced: smooth-L1, cross-entropy, and the share of positions
    /// whose drafted token is the target's.
    #[serde(default)]
    pub valid: Option<(f64, f64, f64)>,
}

/// The card of a trained head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EagleCard {
    /// Head name.
    pub name: String,
    /// The target's configuration.
    pub config: DecoderConfig,
    /// Trainable parameters of the head.
    pub param_count: usize,
    /// Training data.
    pub data: String,
    /// Seed.
    pub seed: u64,
    /// Steps done.
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Positions per window.
    pub seq_len: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Positions trained on.
    pub positions_seen: u64,
    /// Training wall time (all sessions).
    pub train_seconds: f64,
    /// Positions per second.
    pub positions_per_s: f64,
    /// Machine.
    pub machine: String,
    /// Git revision.
    pub git_rev: String,
    /// Loss curve.
    pub curve: Vec<EaglePoint>,
    /// Weight of the classification loss.
    #[serde(default)]
    pub cls_weight: f64,
    /// Uniform noise on the input features.
    #[serde(default)]
    pub noise: f32,
    /// The draft vocabulary (empty: the whole vocabulary).
    #[serde(default)]
    pub draft_vocab: Vec<u32>,
}

/// The head's weights (`STEM.bin`, burn's binary record in f16) and card (`STEM.json`).
pub fn head_paths(stem: &Path) -> (PathBuf, PathBuf) {
    (stem.with_extension("bin"), stem.with_extension("json"))
}

fn resume_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".resume");
    PathBuf::from(s)
}

/// Trains an EAGLE head for `target` on `data` (backend `B` with autodiff; the target's
/// embedding and LM head are frozen constants). Saves the head and its card at the end, a
/// resumable state every `eval_every` steps. Returns the card (after `stop_after` steps, the
/// resumable state's).
pub fn train_eagle<B: AttentionBackend>(
    target: &Decoder<B>,
    data: &EagleData,
    opts: &EagleTrainOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(&EaglePoint, f64),
) -> Result<EagleCard> {
    type AB<B> = Autodiff<B>;
    if !data.tokens.iter().any(|t| t.len() > opts.seq_len) {
        return Err(SuiteError::Input(format!(
            "no training sequence is longer than a window of {} positions",
            opts.seq_len
        )));
    }
    if opts.eval_every == 0 || opts.steps == 0 {
        return Err(SuiteError::Input(
            "steps and eval_every must be at least 1".into(),
        ));
    }
    B::seed(device, opts.seed);
    let mut head: EagleHead<AB<B>> = opts
        .config
        .init_eagle(device)
        .map_err(SuiteError::model("EAGLE head"))?;
    let frozen_inner = frozen_for(target, &opts.draft_vocab)?;
    let frozen = frozen_inner.clone().lift::<AB<B>>();
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.0)
        .with_beta_2(0.95)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)))
        .init::<AB<B>, EagleHead<AB<B>>>();
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let dir = resume_dir(&opts.out);
    let (rm, ro, rc) = (dir.join("model"), dir.join("optim"), dir.join("card.json"));
    let (mut start, mut curve, mut prior) = (0, Vec::new(), 0.0);
    if opts.resume {
        let card: EagleCard =
            serde_json::from_str(&std::fs::read_to_string(&rc).map_err(|e| io("read", &rc, e))?)
                .map_err(|e| io("parse", &rc, e))?;
        let rec = recorder
            .load(rm.clone(), device)
            .map_err(|e| io("resume from", &rm, e))?;
        head = head.load_record(rec);
        let orec = recorder
            .load(ro.clone(), device)
            .map_err(|e| io("resume from", &ro, e))?;
        optim = optim.load_record(orec);
        (start, curve, prior) = (card.steps, card.curve, card.train_seconds);
    }
    if start >= opts.steps {
        return Err(SuiteError::Input(format!(
            "nothing to train: the state already has {start} of {} steps",
            opts.steps
        )));
    }
    let t0 = Instant::now();
    let mut window = (0.0, 0.0, 0.0, 0usize);
    for step in start..opts.steps {
        let shape = (opts.batch, opts.seq_len);
        let b = batch_at::<AB<B>>(data, opts.seed, step, shape, opts.noise, device);
        let (loss, reg, cls) = eagle_loss(&head, &frozen, b, opts.cls_weight)?;
        let value = loss.clone().into_scalar().elem::<f64>();
        if !value.is_finite() {
            return Err(SuiteError::NotFinite {
                metric: "EAGLE training loss".into(),
                variant: format!("{} at step {step}", opts.name),
                value,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &head);
        head = optim.step(learning_rate(step, opts.steps, opts.lr), head, grads);
        window = (
            window.0 + value,
            window.1 + reg,
            window.2 + cls,
            window.3 + 1,
        );
        let done = step + 1;
        let stop = opts.stop_after == Some(done) && done < opts.steps;
        if done % opts.eval_every == 0 || done == opts.steps || stop {
            let k = window.3 as f64;
            let point = EaglePoint {
                step: done,
                loss: window.0 / k,
                reg: window.1 / k,
                cls: window.2 / k,
                valid: validate(&head.valid(), &frozen_inner, data, device)?,
            };
            window = (0.0, 0.0, 0.0, 0);
            let secs = prior + t0.elapsed().as_secs_f64();
            let rate = ((done - start) * opts.batch * opts.seq_len) as f64
                / t0.elapsed().as_secs_f64().max(1e-9);
            progress(&point, rate);
            curve.push(point);
            let card = make_card(opts, &head, done, secs, &curve);
            if done < opts.steps {
                std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
                recorder
                    .record(head.clone().into_record(), rm.clone())
                    .map_err(|e| io("save", &rm, e))?;
                recorder
                    .record(optim.to_record(), ro.clone())
                    .map_err(|e| io("save", &ro, e))?;
                let json = serde_json::to_string_pretty(&card).expect("card serializes");
                std::fs::write(&rc, json).map_err(|e| io("write", &rc, e))?;
                if stop {
                    return Ok(card);
                }
            }
        }
    }
    let card = make_card(
        opts,
        &head,
        opts.steps,
        prior + t0.elapsed().as_secs_f64(),
        &curve,
    );
    save_head(&head.valid(), &card, &opts.out)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(card)
}

fn make_card<B: Backend>(
    opts: &EagleTrainOptions,
    head: &EagleHead<B>,
    steps: usize,
    seconds: f64,
    curve: &[EaglePoint],
) -> EagleCard {
    let seen = (steps * opts.batch * opts.seq_len) as u64;
    EagleCard {
        name: opts.name.clone(),
        config: opts.config.clone(),
        param_count: head.num_params(),
        data: opts.data.clone(),
        seed: opts.seed,
        steps,
        batch: opts.batch,
        seq_len: opts.seq_len,
        lr: opts.lr,
        positions_seen: seen,
        train_seconds: seconds,
        positions_per_s: seen as f64 / seconds.max(1e-9),
        machine: opts.machine.clone(),
        git_rev: opts.git_rev.clone(),
        curve: curve.to_vec(),
        cls_weight: opts.cls_weight,
        noise: opts.noise,
        draft_vocab: opts.draft_vocab.clone(),
    }
}

/// `target`'s frozen embedding and head, restricted to `draft_vocab` unless it is empty.
pub fn frozen_for<B: AttentionBackend>(
    target: &Decoder<B>,
    draft_vocab: &[u32],
) -> Result<FrozenTarget<B>> {
    let f = FrozenTarget::of(target);
    if draft_vocab.is_empty() {
        return Ok(f);
    }
    f.restrict(draft_vocab)
        .map_err(SuiteError::model("EAGLE draft vocabulary"))
}

/// Writes the head's weights (in f16: the committed head is half the size) and card.
pub fn save_head<B: Backend>(head: &EagleHead<B>, card: &EagleCard, stem: &Path) -> Result<()> {
    let (w, c) = head_paths(stem);
    if let Some(dir) = w.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    }
    BinFileRecorder::<HalfPrecisionSettings>::new()
        .record(head.clone().into_record(), w.with_extension(""))
        .map_err(|e| io("save", &w, e))?;
    let json = serde_json::to_string_pretty(card).expect("card serializes");
    std::fs::write(&c, json).map_err(|e| io("write", &c, e))
}

/// Reads a head and its card.
pub fn load_head<B: AttentionBackend>(
    stem: &Path,
    device: &B::Device,
) -> Result<(EagleHead<B>, EagleCard)> {
    let (w, c) = head_paths(stem);
    let card: EagleCard =
        serde_json::from_str(&std::fs::read_to_string(&c).map_err(|e| io("read", &c, e))?)
            .map_err(|e| io("parse", &c, e))?;
    let head: EagleHead<B> = card
        .config
        .init_eagle(device)
        .map_err(SuiteError::model("EAGLE head"))?;
    let rec = BinFileRecorder::<HalfPrecisionSettings>::new()
        .load(w.with_extension(""), device)
        .map_err(|e| io("load", &w, e))?;
    Ok((head.load_record(rec), card))
}

/// Greedy speculative decoding of `prompts` with `head` drafting `gamma` tokens per step
/// (chain), `max_new` tokens each: the acceptance counters.
pub fn acceptance<B: AttentionBackend>(
    target: &Decoder<B>,
    head: EagleHead<B>,
    frozen: FrozenTarget<B>,
    prompts: &[Vec<u32>],
    gamma: usize,
    max_new: usize,
    device: &B::Device,
) -> Result<SpecStats> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(SuiteError::Input(format!(
            "EAGLE acceptance: needs at least one prompt and no empty prompt (got {} prompts)",
            prompts.len()
        )));
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let max_len = (longest + max_new + gamma + 2).min(target.max_seq_len());
    let n = prompts.len();
    let dcache = head.contiguous_cache(n, max_len, device);
    let mut drafter = EagleDrafter::with_frozen(head, frozen, target, dcache, device);
    let mut cache = target.contiguous_cache(n, max_len, device);
    let mut sampler =
        Sampler::new(SamplingConfig::greedy(), 0).map_err(SuiteError::model("sampler"))?;
    let config = GenerateConfig {
        max_new,
        stop: Vec::new(),
    };
    let g = speculative_generate(
        target,
        &mut cache,
        prompts,
        &mut drafter,
        Gamma::Fixed(gamma),
        &config,
        &mut sampler,
        device,
    )
    .map_err(SuiteError::model("EAGLE speculative decoding"))?;
    Ok(g.stats)
}

/// The head trained for the real model (`infermark train --model eagle-smollm2`).
pub const EAGLE_SMOLLM2: &str = "eagle-smollm2";

/// Where the training prompts come from: passages of the calibration text (the Debian Policy
/// Manual), disjoint from the evaluation text of the real workloads (the model's licence).
pub const TEXT_SOURCE: &str = "debian-policy-4.6.2.0 (zoo::calibration), passages";

/// The first `n` consecutive windows of `len` tokens of `ids`. Refuses a text with fewer.
pub fn text_windows(ids: &[u32], n: usize, len: usize) -> Result<Vec<Vec<u32>>> {
    if len == 0 || ids.len() / len < n {
        return Err(SuiteError::Input(format!(
            "EAGLE text windows: {n} windows of {len} tokens asked from a text of {} tokens",
            ids.len()
        )));
    }
    Ok(ids.chunks_exact(len).take(n).map(<[u32]>::to_vec).collect())
}

/// `n` passages of `len` tokens of `ids`: distinct non-overlapping windows (at multiples of
/// `len`) in an order shuffled by `seed`. Refuses a text with fewer than `n` windows.
pub fn text_prompts(ids: &[u32], n: usize, len: usize, seed: u64) -> Result<Vec<Vec<u32>>> {
    let windows = ids.len().checked_div(len).unwrap_or(0);
    if n == 0 || windows < n {
        return Err(SuiteError::Input(format!(
            "EAGLE prompts: {n} passages of {len} tokens asked from a text of {} tokens ({windows} passages)",
            ids.len()
        )));
    }
    let mut starts: Vec<usize> = (0..windows).map(|w| w * len).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in (1..starts.len()).rev() {
        starts.swap(i, rng.random_range(0..=i));
    }
    Ok(starts[..n]
        .iter()
        .map(|&s| ids[s..s + len].to_vec())
        .collect())
}
