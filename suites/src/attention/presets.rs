//! Layer shapes that mirror real models, and a tiny one for smoke runs.
//!
//! Sources: Llama 3 8B (Meta, "The Llama 3 Herd of Models", 2024, table 3: d_model 4096, 32 query
//! heads, 8 KV heads, head width 128); DeepSeek-V2 (DeepSeek-AI 2024, section 3.1.2: 128 heads of
//! width 128, d_c 512, d_c' 1536, d_rope 64, d_model 5120); SmolLM2-135M (Hugging Face 2024, its
//! GGUF metadata: d_model 576, 9 query heads, 3 KV heads, head width 64).

use infermark_models::attention::{Attention, GqaConfig, MlaConfig, MlaPath};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::CacheLayout;

/// The layer a preset describes.
#[derive(Clone, Debug)]
pub enum Shape {
    /// A GQA-family layer.
    Gqa(GqaConfig),
    /// An MLA layer, run on one of its two paths.
    Mla(MlaConfig, MlaPath),
}

/// A named layer shape for one variant.
#[derive(Clone, Debug)]
pub struct Preset {
    /// Preset family, e.g. `llama3-8b`.
    pub name: &'static str,
    /// Variant: `mha`, `gqa`, `mqa`, `mla-naive`, `mla-absorbed`.
    pub variant: &'static str,
    /// The layer.
    pub shape: Shape,
}

/// The variants, in report order.
pub const VARIANTS: [&str; 5] = ["mha", "gqa", "mqa", "mla-naive", "mla-absorbed"];

/// RoPE tables cover the longest context of any scale, plus the decode token.
const MAX_SEQ_LEN: usize = 32768 + 64;

fn gqa(
    name: &'static str,
    variant: &'static str,
    d_model: usize,
    heads: usize,
    kv: usize,
    d_head: usize,
) -> Preset {
    Preset {
        name,
        variant,
        shape: Shape::Gqa(GqaConfig::new(d_model, heads, kv, d_head).with_max_seq_len(MAX_SEQ_LEN)),
    }
}

fn mla(name: &'static str, cfg: MlaConfig) -> [Preset; 2] {
    let cfg = cfg.with_max_seq_len(MAX_SEQ_LEN);
    [
        Preset {
            name,
            variant: "mla-naive",
            shape: Shape::Mla(cfg.clone(), MlaPath::Naive),
        },
        Preset {
            name,
            variant: "mla-absorbed",
            shape: Shape::Mla(cfg, MlaPath::Absorbed),
        },
    ]
}

/// Every preset:
/// - `tiny` (smoke runs): every variant at one small head configuration (8 heads of 32);
/// - `llama3-8b`: the GQA family at Llama 3 8B's shape (MHA, GQA with 8 KV heads, MQA);
/// - `deepseek-v2`: MLA at DeepSeek-V2's shape, and its MHA twin (same 128 heads of 128, as the
///   paper compares), so that MLA's memory and speed are set against MHA of the same model;
/// - `smollm2-135m`: the real model's layer (GQA, 9 query heads sharing 3 KV heads of 64) with
///   its MHA and MQA twins: a small model where attention is a larger share of the step.
pub fn all() -> Vec<Preset> {
    let mut out = vec![
        gqa("tiny", "mha", 256, 8, 8, 32),
        gqa("tiny", "gqa", 256, 8, 2, 32),
        gqa("tiny", "mqa", 256, 8, 1, 32),
    ];
    out.extend(mla("tiny", MlaConfig::new(256, 8, 32, 16, 64, 96)));
    out.extend([
        gqa("llama3-8b", "mha", 4096, 32, 32, 128),
        gqa("llama3-8b", "gqa", 4096, 32, 8, 128),
        gqa("llama3-8b", "mqa", 4096, 32, 1, 128),
        gqa("deepseek-v2", "mha", 5120, 128, 128, 128),
        gqa("smollm2-135m", "mha", 576, 9, 9, 64),
        gqa("smollm2-135m", "gqa", 576, 9, 3, 64),
        gqa("smollm2-135m", "mqa", 576, 9, 1, 64),
    ]);
    out.extend(mla(
        "deepseek-v2",
        MlaConfig::new(5120, 128, 128, 64, 512, 1536),
    ));
    out
}

/// Looks a preset up by family and variant.
pub fn find(name: &str, variant: &str) -> Option<Preset> {
    all()
        .into_iter()
        .find(|p| p.name == name && p.variant == variant)
}

impl Shape {
    /// Analytic KV cache bytes per token and layer for f32 elements.
    pub fn kv_bytes_per_token(&self) -> usize {
        match self {
            Shape::Gqa(c) => c.kv_bytes_per_token(4),
            Shape::Mla(c, _) => c.kv_bytes_per_token(4),
        }
    }

    /// Analytic FLOPs of one decode step at context `ctx`.
    pub fn decode_flops(&self, ctx: usize) -> f64 {
        match self {
            Shape::Gqa(c) => c.decode_flops(ctx),
            Shape::Mla(c, path) => c.decode_flops(ctx, *path),
        }
    }

    /// The shape of the rows one layer caches.
    pub fn cache_layout(&self) -> CacheLayout {
        match self {
            Shape::Gqa(c) => c.cache_layout(),
            Shape::Mla(c, _) => c.cache_layout(),
        }
    }

    /// Initializes the layer (an MLA layer on its preset's path).
    pub fn init<B: AttentionBackend>(
        &self,
        device: &B::Device,
    ) -> infermark_models::Result<Attention<B>> {
        Ok(match self {
            Shape::Gqa(c) => Attention::Gqa(c.init(device)?),
            Shape::Mla(c, path) => Attention::Mla(c.init(device)?.with_path(*path)),
        })
    }

    /// Width of the residual stream.
    pub fn d_model(&self) -> usize {
        match self {
            Shape::Gqa(c) => c.d_model,
            Shape::Mla(c, _) => c.d_model,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_bytes_per_token_match_closed_forms() {
        let bytes = |n, v| find(n, v).unwrap().shape.kv_bytes_per_token();
        // GQA: 2 · n_kv_heads · d_head · 4 bytes.
        assert_eq!(bytes("llama3-8b", "gqa"), 2 * 8 * 128 * 4);
        assert_eq!(bytes("llama3-8b", "mha"), 2 * 32 * 128 * 4);
        assert_eq!(bytes("llama3-8b", "mqa"), 2 * 128 * 4);
        assert_eq!(bytes("tiny", "gqa"), 2 * 2 * 32 * 4);
        // MLA: (d_c + d_rope) · 4 bytes = 576 elements for DeepSeek-V2.
        assert_eq!(bytes("deepseek-v2", "mla-naive"), 576 * 4);
        assert_eq!(bytes("deepseek-v2", "mla-absorbed"), 576 * 4);
        assert_eq!(bytes("deepseek-v2", "mha"), 2 * 128 * 128 * 4);
        assert_eq!(bytes("tiny", "mla-absorbed"), (64 + 16) * 4);
    }

    #[test]
    fn every_family_has_every_variant() {
        for v in VARIANTS {
            assert!(find("tiny", v).is_some(), "tiny/{v}");
        }
        for v in ["mha", "gqa", "mqa"] {
            assert!(find("llama3-8b", v).is_some());
        }
        for v in ["mha", "mla-naive", "mla-absorbed"] {
            assert!(find("deepseek-v2", v).is_some());
        }
    }
}
