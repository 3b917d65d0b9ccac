//! The named decoder models infermark trains and ships (`--model NAME`), with their training
//! recipes. All are byte-level (vocabulary 256).
//!
//! `target`, `target-mha` and `target-mla` share the parameter budget (within ±5%) and recipe, so
//! the attention variants can be compared at equal size, as DeepSeek-V2 compares MLA with MHA.
//! `draft` is about 7× smaller than `target`, for speculative decoding. `arith` learns the
//! arithmetic corpus in both formats (direct answer and scratchpad).

use super::config::{AttentionKind, DecoderConfig};

/// Which generated corpus a preset trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorpusKind {
    /// Stories from a probabilistic grammar.
    Stories,
    /// Arithmetic problems, direct and step by step.
    Arith,
}

/// A named model: its architecture and its training recipe.
#[derive(Clone, Debug)]
pub struct Preset {
    /// Name used on the command line and for the checkpoint files.
    pub name: &'static str,
    /// One line for `--help` and `list`.
    pub about: &'static str,
    /// Architecture.
    pub config: DecoderConfig,
    /// Training corpus.
    pub corpus: CorpusKind,
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per training sequence.
    pub seq_len: usize,
    /// Peak learning rate (after warm-up, before cosine decay).
    pub lr: f64,
}

fn gqa(d_model: usize, n_layers: usize, n_heads: usize, n_kv: usize, d_ff: usize) -> DecoderConfig {
    DecoderConfig::new(
        256,
        d_model,
        n_layers,
        n_heads,
        d_model / n_heads,
        d_ff,
        AttentionKind::Gqa { n_kv_heads: n_kv },
    )
}

/// Every preset, smallest first.
pub fn presets() -> Vec<Preset> {
    let stories = |name, about, config, steps| Preset {
        name,
        about,
        config,
        corpus: CorpusKind::Stories,
        steps,
        batch: 16,
        seq_len: 128,
        lr: 3e-3,
    };
    let mla = DecoderConfig::new(
        256,
        128,
        4,
        4,
        32,
        320,
        AttentionKind::Mla {
            d_latent_kv: 64,
            d_latent_q: 96,
            d_rope: 16,
        },
    );
    vec![
        Preset {
            steps: 20,
            batch: 4,
            seq_len: 32,
            ..stories(
                "tiny",
                "a 1-layer toy for tests and CI",
                gqa(32, 1, 2, 1, 64),
                20,
            )
        },
        stories(
            "draft",
            "stories, GQA, d_model 64, 2 layers: the speculative-decoding draft",
            gqa(64, 2, 2, 1, 192),
            600,
        ),
        stories(
            "target",
            "stories, GQA (4 query / 2 KV heads), d_model 128, 4 layers: the main LM",
            gqa(128, 4, 4, 2, 384),
            600,
        ),
        stories(
            "target-mha",
            "target's budget and recipe with MHA (4 KV heads)",
            gqa(128, 4, 4, 4, 352),
            600,
        ),
        stories(
            "target-mla",
            "target's budget and recipe with MLA (latent 64, RoPE 16)",
            mla,
            600,
        ),
        Preset {
            corpus: CorpusKind::Arith,
            batch: 16,
            ..stories(
                "arith",
                "arithmetic, direct or step by step, GQA, d_model 128, 4 layers",
                gqa(128, 4, 4, 2, 384),
                3000,
            )
        },
    ]
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<Preset> {
    presets().into_iter().find(|p| p.name == name)
}
