//! Checkpoints: weights in safetensors (burn-store, burn's module paths) beside a JSON card that
//! says what the model is and how it was trained. Written atomically (temporary file, then
//! rename); loading checks every tensor's presence and shape and names the file on failure.

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::backend::Backend;
use infermark_models::decoder::{Decoder, DecoderConfig};
use serde::{Deserialize, Serialize};

use crate::{Result, SuiteError};

/// One validation point on the training curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimizer step.
    pub step: usize,
    /// Mean training loss over the steps since the previous point (nats/token).
    pub train_loss: f64,
    /// Validation loss (nats/token).
    pub valid_loss: f64,
}

/// What a checkpoint is and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// Preset name (or a user label).
    pub name: String,
    /// Architecture.
    pub config: DecoderConfig,
    /// Trainable parameters.
    pub param_count: usize,
    /// Corpus and its generator seeds.
    pub data: String,
    /// Training seed (weights and batch order).
    pub seed: u64,
    /// Steps completed.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Tokens trained on.
    pub tokens_seen: u64,
    /// Mean training loss over the last steps (nats/token).
    pub final_train_loss: f64,
    /// Validation loss (nats/token) on the fixed validation split.
    pub valid_loss: f64,
    /// `exp(valid_loss)`.
    pub valid_perplexity: f64,
    /// Perplexity of the add-one unigram model on the same validation text.
    pub unigram_perplexity: f64,
    /// Wall-clock training time, seconds.
    pub train_seconds: f64,
    /// Training throughput, tokens per second.
    pub tokens_per_s: f64,
    /// Backend and CPU or GPU it trained on.
    pub machine: String,
    /// Git revision of the code that trained it.
    pub git_rev: String,
    /// Validation curve.
    pub curve: Vec<CurvePoint>,
    /// Precision of the training products: `fp32`, or the simulated FP8 recipe
    /// (`fp8-e4m3 (1x128 act, 128x128 weight tiles), grads e5m2`); cards written before it was
    /// recorded read as `fp32`.
    #[serde(default = "fp32_precision")]
    pub precision: String,
}

/// [`Card::precision`] of FP32 training.
pub const FP32_PRECISION: &str = "fp32";

fn fp32_precision() -> String {
    FP32_PRECISION.into()
}

/// The two files of a checkpoint `stem`: `stem.safetensors` and `stem.json`.
pub fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    (
        stem.with_extension("safetensors"),
        stem.with_extension("json"),
    )
}

/// Environment variable that points infermark at another folder of committed checkpoints.
pub const CHECKPOINTS_ENV: &str = "INFERMARK_CHECKPOINTS";

/// Where the committed checkpoints live: the folder named by `INFERMARK_CHECKPOINTS` when it is
/// set, else this crate's own `checkpoints/` (the zoo ships them beside its code). The one place
/// a checkpoint path is decided.
pub fn checkpoint_dir() -> PathBuf {
    match std::env::var_os(CHECKPOINTS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints"),
    }
}

/// Stem of the committed checkpoint of preset `name`.
pub fn committed(name: &str) -> PathBuf {
    checkpoint_dir().join(name)
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes weights and card; both appear only when both are complete.
pub fn save<B: Backend>(model: &Decoder<B>, card: &Card, stem: &Path) -> Result<()> {
    let (weights, card_path) = paths(stem);
    if let Some(dir) = weights.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    }
    let (tw, tc) = (tmp_of(&weights), tmp_of(&card_path));
    let mut store = SafetensorsStore::from_file(&tw).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| SuiteError::Input(format!("cannot write {}: {e}", tw.display())))?;
    let json = serde_json::to_string_pretty(card).expect("card serializes");
    std::fs::write(&tc, json + "\n").map_err(|e| io_err("write", &tc, e))?;
    std::fs::rename(&tw, &weights).map_err(|e| io_err("rename", &weights, e))?;
    std::fs::rename(&tc, &card_path).map_err(|e| io_err("rename", &card_path, e))?;
    Ok(())
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> SuiteError {
    SuiteError::Input(format!("cannot {what} {}: {e}", p.display()))
}

/// Reads a card.
pub fn read_card(stem: &Path) -> Result<Card> {
    let (_, card_path) = paths(stem);
    let text = std::fs::read_to_string(&card_path).map_err(|e| io_err("read", &card_path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        SuiteError::Input(format!(
            "checkpoint card {} is malformed: {e}",
            card_path.display()
        ))
    })
}

/// Loads a checkpoint: builds the card's architecture, then fills every tensor from the weights
/// file, failing on a missing, extra or mis-shaped tensor.
pub fn load<B: infermark_models::kernels::AttentionBackend>(
    stem: &Path,
    device: &B::Device,
) -> Result<(Decoder<B>, Card)> {
    let card = read_card(stem)?;
    let (weights, card_path) = paths(stem);
    let mut model = card
        .config
        .init::<B>(device)
        .map_err(|e| SuiteError::Model {
            context: format!("config in {}", card_path.display()),
            error: e,
        })?;
    load_weights(&mut model, &weights)?;
    Ok((model, card))
}

/// Fills `model` from a safetensors file written by [`save`].
pub fn load_weights<B: Backend>(model: &mut Decoder<B>, weights: &Path) -> Result<()> {
    if !weights.exists() {
        return Err(SuiteError::Input(format!(
            "checkpoint weights {} do not exist",
            weights.display()
        )));
    }
    let mut store = SafetensorsStore::from_file(weights);
    let result = model.load_from(&mut store).map_err(|e| {
        SuiteError::Input(format!(
            "checkpoint weights {} cannot be read: {e}",
            weights.display()
        ))
    })?;
    let problems = mismatches(&result, |_| false);
    if !problems.is_empty() {
        return Err(SuiteError::Input(format!(
            "checkpoint weights {} do not match the model: {}",
            weights.display(),
            problems.join("; ")
        )));
    }
    Ok(())
}

/// What went wrong when loading a weights file into a module: errors, missing tensors, and
/// tensors the module has no place for (except those `ignore_unused` accepts). Empty when the
/// file matched.
pub(crate) fn mismatches(
    result: &burn::store::ApplyResult,
    ignore_unused: impl Fn(&str) -> bool,
) -> Vec<String> {
    let list = |names: Vec<&str>| {
        let mut s: Vec<String> = names.iter().take(5).map(|n| n.to_string()).collect();
        if names.len() > 5 {
            s.push(format!("… ({} in all)", names.len()));
        }
        s.join(", ")
    };
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
    if !missing.is_empty() {
        problems.push(format!("missing tensors: {}", list(missing)));
    }
    let unused: Vec<&str> = result
        .unused
        .iter()
        .map(String::as_str)
        .filter(|n| !ignore_unused(n))
        .collect();
    if !unused.is_empty() {
        problems.push(format!("unexpected tensors: {}", list(unused)));
    }
    problems
}
