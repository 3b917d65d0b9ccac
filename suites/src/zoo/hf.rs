//! Hugging Face Llama-architecture checkpoints (`config.json`, `model.safetensors`,
//! `tokenizer.json`) loaded into the same [`Decoder`], so the suites run on a user's own model.
//!
//! Deviations handled here: PyTorch stores linear weights `[out, in]` (burn: `[in, out]`; the
//! burn-store PyTorch adapter transposes them), and Hugging Face's Llama rotates the two halves of
//! each head (`rotate_half`) where burn's RoPE rotates adjacent pairs, so the query and key
//! projections' output columns are permuted on load (half `i` ↔ pair `i`), which leaves every
//! attention score unchanged. Sharded checkpoints, biases, and RoPE scaling are refused with a
//! message rather than loaded wrongly.

use std::path::Path;

use burn::module::Param;
use burn::store::{
    ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot,
};
use burn::tensor::{Tensor, TensorData};
use infermark_models::decoder::{Attention, AttentionKind, Decoder, DecoderConfig};
use infermark_models::kernels::AttentionBackend;
use infermark_models::proj::Proj;
use serde::Deserialize;

use crate::{Result, SuiteError};

/// The fields of a Llama `config.json` that the decoder uses.
#[derive(Debug, Deserialize)]
struct LlamaJson {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    rope_theta: f32,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f32 {
    10000.0
}
fn default_positions() -> usize {
    2048
}

fn input_err(path: &Path, msg: impl std::fmt::Display) -> SuiteError {
    SuiteError::Input(format!("{}: {msg}", path.display()))
}

/// Reads `dir/config.json` as a decoder config (RoPE tables capped at 4096 positions).
pub fn read_config(dir: &Path) -> Result<DecoderConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| input_err(&path, e))?;
    let c: LlamaJson = serde_json::from_str(&text).map_err(|e| input_err(&path, e))?;
    if let Some(t) = &c.model_type {
        if t != "llama" {
            return Err(input_err(
                &path,
                format!("model_type `{t}` is not supported; only `llama`"),
            ));
        }
    }
    if c.attention_bias || c.mlp_bias {
        return Err(input_err(&path, "biased projections are not supported"));
    }
    if c.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(input_err(&path, "rope_scaling is not supported"));
    }
    if c.num_attention_heads == 0 {
        return Err(input_err(&path, "num_attention_heads is 0"));
    }
    let d_head = c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads);
    let cfg = DecoderConfig::new(
        c.vocab_size,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        d_head,
        c.intermediate_size,
        AttentionKind::Gqa {
            n_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        },
    )
    .with_max_seq_len(c.max_position_embeddings.min(4096))
    .with_rope_theta(c.rope_theta)
    .with_norm_eps(c.rms_norm_eps)
    .with_tie_embeddings(c.tie_word_embeddings);
    cfg.validate()
        .map_err(|e| input_err(&path, format!("describes no valid model: {e}")))?;
    Ok(cfg)
}

/// A Hugging Face tokenizer (`tokenizer.json`).
#[derive(Debug)]
pub struct HfTokenizer(tokenizers::Tokenizer);

impl HfTokenizer {
    /// Reads `dir/tokenizer.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        tokenizers::Tokenizer::from_file(&path)
            .map(Self)
            .map_err(|e| input_err(&path, e))
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.0
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| SuiteError::Input(format!("tokenizer failed: {e}")))
    }
}

/// Tensor names of a Llama checkpoint → burn module paths (enum variants skipped).
const RENAMES: [(&str, &str); 11] = [
    (r"^model\.embed_tokens\.", "embed."),
    (r"^model\.norm\.weight$", "norm.gamma"),
    (
        r"^model\.layers\.(\d+)\.input_layernorm\.weight$",
        "blocks.$1.attn_norm.gamma",
    ),
    (
        r"^model\.layers\.(\d+)\.post_attention_layernorm\.weight$",
        "blocks.$1.mlp_norm.gamma",
    ),
    (
        r"^model\.layers\.(\d+)\.self_attn\.q_proj\.",
        "blocks.$1.attn.wq.",
    ),
    (
        r"^model\.layers\.(\d+)\.self_attn\.k_proj\.",
        "blocks.$1.attn.wk.",
    ),
    (
        r"^model\.layers\.(\d+)\.self_attn\.v_proj\.",
        "blocks.$1.attn.wv.",
    ),
    (
        r"^model\.layers\.(\d+)\.self_attn\.o_proj\.",
        "blocks.$1.attn.wo.",
    ),
    (
        r"^model\.layers\.(\d+)\.mlp\.gate_proj\.",
        "blocks.$1.mlp.gate.",
    ),
    (
        r"^model\.layers\.(\d+)\.mlp\.up_proj\.",
        "blocks.$1.mlp.up.",
    ),
    (
        r"^model\.layers\.(\d+)\.mlp\.down_proj\.",
        "blocks.$1.mlp.down.",
    ),
];

/// Loads a Llama directory: config, weights (f32) and tokenizer.
pub fn load_dir<B: AttentionBackend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(Decoder<B>, HfTokenizer)> {
    let cfg = read_config(dir)?;
    let weights = dir.join("model.safetensors");
    if !weights.exists() {
        return Err(input_err(
            &weights,
            "not found (sharded checkpoints are not supported; merge the shards into model.safetensors)",
        ));
    }
    let mut model = cfg.init::<B>(device).map_err(|e| SuiteError::Model {
        context: format!("config in {}", dir.display()),
        error: e,
    })?;
    let mut store = SafetensorsStore::from_file(&weights)
        .with_from_adapter(ProjAdapter)
        .skip_enum_variants(true);
    for (from, to) in RENAMES {
        store = store.with_key_remapping(from, to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| input_err(&weights, format!("cannot be read: {e}")))?;
    // HF files may carry RoPE's inverse frequencies; burn computes its own.
    let problems = super::checkpoint::mismatches(&result, |n| n.ends_with("rotary_emb.inv_freq"));
    if !problems.is_empty() {
        return Err(input_err(
            &weights,
            format!("does not match config.json: {}", problems.join("; ")),
        ));
    }
    for block in &mut model.blocks {
        if let Attention::Gqa(a) = &mut block.attn {
            let d = cfg.d_head;
            let permute =
                |p: &Proj<B>| Proj::dense(Param::from_tensor(halves_to_pairs(p.weight(device), d)));
            a.wq = permute(&a.wq);
            a.wk = permute(&a.wk);
        }
    }
    Ok((model, HfTokenizer::from_dir(dir)?))
}

/// burn-store's PyTorch adapter, with the decoder's projections ([`Proj`]) read as the
/// `Linear` layers they replace: PyTorch stores `[out, in]`, burn `[in, out]`.
#[derive(Clone, Debug, Default)]
struct ProjAdapter;

impl ModuleAdapter for ProjAdapter {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        let mut s = snapshot.clone();
        if let Some(stack) = s.container_stack.as_mut() {
            for c in stack.iter_mut().filter(|c| c.as_str() == "Struct:Proj") {
                *c = "Struct:Linear".into();
            }
        }
        PyTorchToBurnAdapter.adapt(&s)
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Reorders each head's output columns from Hugging Face's half-split RoPE layout to burn's
/// adjacent pairs: new column `2i` is old column `i`, new `2i + 1` is old `i + d/2`.
///
/// # Shapes
/// - `w`: `[d_in, heads·d_head]` → same
pub fn halves_to_pairs<B: burn::tensor::backend::Backend>(
    w: Tensor<B, 2>,
    d_head: usize,
) -> Tensor<B, 2> {
    permute_columns(
        w,
        d_head,
        |i, half| if i % 2 == 0 { i / 2 } else { half + i / 2 },
    )
}

/// Inverse of [`halves_to_pairs`] (for writing Hugging Face checkpoints).
pub fn pairs_to_halves<B: burn::tensor::backend::Backend>(
    w: Tensor<B, 2>,
    d_head: usize,
) -> Tensor<B, 2> {
    permute_columns(
        w,
        d_head,
        |i, half| if i < half { 2 * i } else { 2 * (i - half) + 1 },
    )
}

/// New column `j` of each head is old column `src(j, d_head / 2)` of that head.
fn permute_columns<B: burn::tensor::backend::Backend>(
    w: Tensor<B, 2>,
    d_head: usize,
    src: impl Fn(usize, usize) -> usize,
) -> Tensor<B, 2> {
    let [rows, cols] = w.dims();
    let device = w.device();
    let data = w.into_data().convert::<f32>();
    let x = data.as_slice::<f32>().expect("f32 weights");
    let mut y = vec![0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            let (head, j) = (c / d_head, c % d_head);
            y[r * cols + c] = x[r * cols + head * d_head + src(j, d_head / 2)];
        }
    }
    Tensor::from_data(TensorData::new(y, [rows, cols]), &device)
}
