//! A Llama-architecture GGUF file as infermark's [`Decoder`]: sizes, RoPE base and RMSNorm
//! epsilon from the `llama.*` metadata, weights dequantized to f32.
//!
//! Conventions: ggml writes a `[out, in]` matrix with dimensions `[in, out]` (innermost first),
//! so its data is row-major `[out][in]`; burn's projections are `[in, out]` and are transposed on
//! load. llama.cpp's converter already permuted Q and K from Hugging Face's rotate-half layout to
//! RoPE on consecutive pairs, which is burn's convention, so no permutation is needed here
//! (unlike the Hugging Face loader). Query head `h` reads KV head `h / (n_heads / n_kv_heads)`
//! in both. A file without `output.weight` ties the head to the embedding.

use std::path::Path;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use infermark_models::decoder::{Attention, AttentionKind, Decoder, DecoderConfig};
use infermark_models::kernels::AttentionBackend;
use infermark_models::proj::Proj;

use infermark_models::quant::{QuantLinear, QuantizedTensor};

use super::tokenizer::GgufTokenizer;
use super::GgufFile;
use crate::{Result, SuiteError};

/// RoPE tables are built for at most this many positions (the file may allow more).
pub const MAX_POSITIONS: usize = 2048;

/// What a loaded GGUF model is.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// `general.name`, or the file stem.
    pub name: String,
    /// The decoder's configuration.
    pub config: DecoderConfig,
    /// Element types of the file's tensors and how many of each, e.g. `Q4_1 ×210`.
    pub types: Vec<(String, usize)>,
    /// Bytes of tensor data in the file.
    pub file_bytes: u64,
    /// Elements of all the file's tensors (the parameter count).
    pub params: u64,
}

/// The decoder configuration a Llama GGUF file describes.
pub fn config(file: &GgufFile) -> Result<DecoderConfig> {
    let arch = file.get_str("general.architecture")?;
    if arch != "llama" {
        return Err(file.err(format!(
            "architecture `{arch}` is not supported (only `llama`)"
        )));
    }
    let u = |k: &str| file.get_u64(&format!("llama.{k}")).map(|x| x as usize);
    let (d_model, n_heads) = (u("embedding_length")?, u("attention.head_count")?);
    if n_heads == 0 || d_model % n_heads != 0 {
        return Err(file.err(format!(
            "embedding_length {d_model} is not a multiple of head_count {n_heads}"
        )));
    }
    let n_kv = u("attention.head_count_kv").unwrap_or(n_heads);
    let d_head = d_model / n_heads;
    if let Ok(rot) = u("rope.dimension_count") {
        if rot != d_head {
            return Err(file.err(format!(
                "partial RoPE ({rot} of {d_head} dimensions) is not supported"
            )));
        }
    }
    if file.metadata.contains_key("llama.rope.scaling.type") {
        return Err(file.err("RoPE scaling is not supported"));
    }
    let vocab = match file
        .metadata
        .get("llama.vocab_size")
        .and_then(|v| v.as_u64())
    {
        Some(v) => v as usize,
        None => file.tensor("token_embd.weight")?.dims[1] as usize,
    };
    let cfg = DecoderConfig::new(
        vocab,
        d_model,
        u("block_count")?,
        n_heads,
        d_head,
        u("feed_forward_length")?,
        AttentionKind::Gqa { n_kv_heads: n_kv },
    )
    .with_max_seq_len(
        u("context_length")
            .unwrap_or(MAX_POSITIONS)
            .min(MAX_POSITIONS),
    )
    .with_rope_theta(file.get_f64("llama.rope.freq_base").unwrap_or(10000.0) as f32)
    .with_norm_eps(file.get_f64("llama.attention.layer_norm_rms_epsilon")?)
    .with_tie_embeddings(file.tensor("output.weight").is_err());
    cfg.validate()
        .map_err(|e| file.err(format!("describes no valid model: {e}")))?;
    Ok(cfg)
}

/// How the projection weights are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Every weight dequantized to f32 (the reference).
    F32,
    /// Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K tensors kept as their llama.cpp blocks in a
    /// `QuantLinear` (the decode kernels read them directly), a tied quantized embedding as a
    /// quantized head too; other types dequantized to f32.
    Native,
}

/// Loads `path`: the decoder (weights held as `weights` says), its tokenizer and a description.
pub fn load<B: AttentionBackend>(
    path: &Path,
    weights: Weights,
    device: &B::Device,
) -> Result<(Decoder<B>, GgufTokenizer, ModelInfo)> {
    let file = GgufFile::open(path)?;
    let cfg = config(&file)?;
    let tokenizer = GgufTokenizer::from_gguf(&file)?;
    let mut model = cfg.init::<B>(device).map_err(|e| SuiteError::Model {
        context: format!("config of {}", path.display()),
        error: e,
    })?;
    let (d, v, ff) = (cfg.d_model as u64, cfg.vocab_size as u64, cfg.d_ff as u64);
    let kv = match cfg.attention {
        AttentionKind::Gqa { n_kv_heads } => (n_kv_heads * cfg.d_head) as u64,
        AttentionKind::Mla { .. } => unreachable!("GGUF llama is GQA"),
    };
    let vector = |name: &str, n: u64| -> Result<Tensor<B, 1>> {
        let x = file.f32_tensor(name, &[n])?;
        Ok(Tensor::from_data(TensorData::new(x, [n as usize]), device))
    };
    // A ggml matrix `[in, out]` (innermost first) is row-major [out][in]; burn wants [in, out].
    let matrix = |name: &str, d_in: u64, d_out: u64| -> Result<Tensor<B, 2>> {
        let x = file.f32_tensor(name, &[d_in, d_out])?;
        let t: Tensor<B, 2> =
            Tensor::from_data(TensorData::new(x, [d_out as usize, d_in as usize]), device);
        Ok(t.transpose())
    };
    // Native blocks: rows = out, columns = in, exactly ggml's layout.
    let native = |name: &str, d_in: u64, d_out: u64| -> Result<Option<Proj<B>>> {
        let t = file.tensor(name)?;
        let Some(format) = t.ty.native_format() else {
            return Ok(None);
        };
        if weights != Weights::Native || t.dims != [d_in, d_out] {
            return Ok(None);
        }
        let q = QuantizedTensor::from_ggml_blocks(
            format,
            file.raw(t).to_vec(),
            d_out as usize,
            d_in as usize,
        )
        .map_err(|e| file.err(format!("tensor `{name}`: {e}")))?;
        Ok(Some(Proj::quantized(QuantLinear::new(q))))
    };
    let proj = |name: &str, d_in: u64, d_out: u64| -> Result<Proj<B>> {
        match native(name, d_in, d_out)? {
            Some(p) => Ok(p),
            None => Ok(Proj::dense(Param::from_tensor(matrix(name, d_in, d_out)?))),
        }
    };
    let embed = file.f32_tensor("token_embd.weight", &[d, v])?;
    model.embed.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(embed, [v as usize, d as usize]),
        device,
    ));
    model.norm.gamma = Param::from_tensor(vector("output_norm.weight", d)?);
    if !cfg.tie_embeddings {
        model.lm_head = Some(proj("output.weight", d, v)?);
    } else if let Some(head) = native("token_embd.weight", d, v)? {
        // The tied head reads the embedding's own blocks; lookups use the f32 copy.
        model.lm_head = Some(head);
    }
    for (i, block) in model.blocks.iter_mut().enumerate() {
        let n = |s: &str| format!("blk.{i}.{s}.weight");
        block.attn_norm.gamma = Param::from_tensor(vector(&n("attn_norm"), d)?);
        block.mlp_norm.gamma = Param::from_tensor(vector(&n("ffn_norm"), d)?);
        let Attention::Gqa(a) = &mut block.attn else {
            unreachable!("GGUF llama is GQA")
        };
        a.wq = proj(&n("attn_q"), d, d)?;
        a.wk = proj(&n("attn_k"), d, kv)?;
        a.wv = proj(&n("attn_v"), d, kv)?;
        a.wo = proj(&n("attn_output"), d, d)?;
        block.mlp.gate = proj(&n("ffn_gate"), d, ff)?;
        block.mlp.up = proj(&n("ffn_up"), d, ff)?;
        block.mlp.down = proj(&n("ffn_down"), ff, d)?;
    }
    let mut types: Vec<(String, usize)> = Vec::new();
    for t in &file.tensors {
        match types.iter_mut().find(|(n, _)| n == t.ty.name()) {
            Some((_, c)) => *c += 1,
            None => types.push((t.ty.name().to_string(), 1)),
        }
    }
    let info = ModelInfo {
        name: file
            .metadata
            .get("general.name")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
        config: cfg,
        types,
        params: file.tensors.iter().map(|t| t.elements()).sum(),
        file_bytes: file
            .tensors
            .iter()
            .map(|t| t.ty.bytes_for(t.elements()).unwrap_or(0))
            .sum(),
    };
    Ok((model, tokenizer, info))
}
