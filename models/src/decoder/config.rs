//! Configuration of the decoder LM: sizes, the attention variant, and parameter counting.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::attention::{GqaConfig, MlaConfig};
use crate::ModelError;

/// Which attention each block uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AttentionKind {
    /// The GQA family: MHA when `n_kv_heads == n_heads`, MQA when it is 1.
    Gqa {
        /// Key/value heads; divides `n_heads`.
        n_kv_heads: usize,
    },
    /// DeepSeek-V2 multi-head latent attention.
    Mla {
        /// Width of the joint KV latent `c_KV`.
        d_latent_kv: usize,
        /// Width of the query latent `c_Q`.
        d_latent_q: usize,
        /// Width of the decoupled RoPE key/query part.
        d_rope: usize,
    },
}

/// A Llama-style decoder: token embedding, `n_layers` pre-norm blocks (RMSNorm → attention →
/// residual, RMSNorm → SwiGLU MLP → residual), a final RMSNorm and the LM head.
#[derive(Config, Debug, PartialEq)]
pub struct DecoderConfig {
    /// Vocabulary size (256 for the byte-level presets).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Query heads per block.
    pub n_heads: usize,
    /// Width of each head.
    pub d_head: usize,
    /// Hidden width of the SwiGLU MLP.
    pub d_ff: usize,
    /// The attention variant.
    pub attention: AttentionKind,
    /// Longest sequence the RoPE tables cover (prompt plus generated tokens).
    #[config(default = 512)]
    pub max_seq_len: usize,
    /// RoPE base frequency.
    #[config(default = 10000.0)]
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    #[config(default = 1e-5)]
    pub norm_eps: f64,
    /// Share the embedding matrix with the LM head.
    #[config(default = true)]
    pub tie_embeddings: bool,
}

impl DecoderConfig {
    /// Checks the sizes, including the attention's own constraints.
    pub fn validate(&self) -> crate::Result<()> {
        if self.vocab_size == 0 || self.d_model == 0 || self.n_layers == 0 || self.d_ff == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "all sizes must be positive: {self:?}"
            )));
        }
        match self.attention {
            AttentionKind::Gqa { n_kv_heads } => self.gqa_with(n_kv_heads).validate(),
            AttentionKind::Mla {
                d_latent_kv,
                d_latent_q,
                d_rope,
            } => self.mla_with(d_latent_kv, d_latent_q, d_rope).validate(),
        }
    }

    /// Initializes one block's attention layer.
    pub fn init_attention<B: burn::tensor::backend::Backend>(
        &self,
        device: &B::Device,
    ) -> crate::Result<crate::attention::Attention<B>> {
        use crate::attention::Attention;
        Ok(match self.attention {
            AttentionKind::Gqa { n_kv_heads } => {
                Attention::Gqa(self.gqa_with(n_kv_heads).init(device)?)
            }
            AttentionKind::Mla {
                d_latent_kv,
                d_latent_q,
                d_rope,
            } => Attention::Mla(
                self.mla_with(d_latent_kv, d_latent_q, d_rope)
                    .init(device)?,
            ),
        })
    }

    fn gqa_with(&self, n_kv_heads: usize) -> GqaConfig {
        GqaConfig::new(self.d_model, self.n_heads, n_kv_heads, self.d_head)
            .with_max_seq_len(self.max_seq_len)
            .with_rope_theta(self.rope_theta)
    }

    fn mla_with(&self, d_latent_kv: usize, d_latent_q: usize, d_rope: usize) -> MlaConfig {
        MlaConfig::new(
            self.d_model,
            self.n_heads,
            self.d_head,
            d_rope,
            d_latent_kv,
            d_latent_q,
        )
        .with_max_seq_len(self.max_seq_len)
        .with_rope_theta(self.rope_theta)
    }

    /// The per-block GQA layer config, when the attention is GQA.
    pub fn gqa(&self) -> Option<GqaConfig> {
        match self.attention {
            AttentionKind::Gqa { n_kv_heads } => Some(self.gqa_with(n_kv_heads)),
            AttentionKind::Mla { .. } => None,
        }
    }

    /// The per-block MLA layer config, when the attention is MLA.
    pub fn mla(&self) -> Option<MlaConfig> {
        match self.attention {
            AttentionKind::Mla {
                d_latent_kv,
                d_latent_q,
                d_rope,
            } => Some(self.mla_with(d_latent_kv, d_latent_q, d_rope)),
            AttentionKind::Gqa { .. } => None,
        }
    }

    /// Trainable parameters, from the shapes alone.
    pub fn param_count(&self) -> usize {
        let (m, h, d, f) = (self.d_model, self.n_heads, self.d_head, self.d_ff);
        let attn = match self.attention {
            AttentionKind::Gqa { n_kv_heads } => 2 * m * h * d + 2 * m * n_kv_heads * d,
            AttentionKind::Mla {
                d_latent_kv: c,
                d_latent_q: cq,
                d_rope: r,
            } => {
                m * cq
                    + cq
                    + cq * h * d
                    + cq * h * r
                    + m * c
                    + c
                    + m * r
                    + 2 * h * c * d
                    + h * d * m
            }
        };
        let block = attn + 3 * m * f + 2 * m;
        let head = if self.tie_embeddings {
            0
        } else {
            self.vocab_size * m
        };
        self.vocab_size * m + self.n_layers * block + m + head
    }

    /// Cached elements per token and layer (K and V rows, or MLA's latent and RoPE key).
    pub fn kv_elems_per_token(&self) -> usize {
        match self.attention {
            AttentionKind::Gqa { n_kv_heads } => 2 * n_kv_heads * self.d_head,
            AttentionKind::Mla {
                d_latent_kv,
                d_rope,
                ..
            } => d_latent_kv + d_rope,
        }
    }
}
