//! Multi-head latent attention (DeepSeek-AI, "DeepSeek-V2", 2024, section 2.1).
//!
//! Keys and values are compressed jointly into a latent `c_KV = norm(W_DKV·h)` of width `d_c`;
//! a decoupled RoPE key `k_R = RoPE(W_KR·h)` of width `d_rope` is shared by all heads; queries go
//! through their own latent `c_Q = norm(W_DQ·h)`. The cache holds `[c_KV | k_R]` only:
//! `d_c + d_rope` elements per token and layer, for all heads together.
//!
//! Two inference paths over the same weights:
//! - [`MlaPath::Naive`]: up-project the cached latents to per-head K and V every step.
//! - [`MlaPath::Absorbed`]: `q_C,i·(W_UK,i·c_KV) = (W_UK,iᵀ·q_C,i)·c_KV`, so project each query into
//!   latent space once and attend over the cached rows directly, all heads against one shared
//!   "KV head" (like MQA with 576-wide keys); apply `W_UV,i` after the weighted sum.
//!
//! Deviation from the paper: none in the maths; `W_UK` and `W_UV` are stored head-major
//! (`[n_heads, d_c, d_head]`) so both paths use them without copies.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{RmsNorm, RmsNormConfig, RotaryEncoding, RotaryEncodingConfig};
use burn::tensor::{backend::Backend, Distribution, Tensor};

use super::{attend_cache, rope_at, AttentionLayer, Prepared};
use crate::kernels::{AttentionBackend, Visibility};
use crate::kv_cache::{CacheLayout, KvCache, SeqId, Values};
use crate::proj::Proj;
use crate::ModelError;

/// Configuration of one MLA layer.
#[derive(Config, Debug)]
pub struct MlaConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Per-head width of the compressed (non-RoPE) query/key part and of the values.
    pub d_head: usize,
    /// Width of the decoupled RoPE query/key part (even).
    pub d_rope: usize,
    /// Width of the joint KV latent `c_KV` (DeepSeek-V2: 512).
    pub d_latent_kv: usize,
    /// Width of the query latent `c_Q` (DeepSeek-V2: 1536).
    pub d_latent_q: usize,
    /// Longest sequence (cache capacity) that RoPE is tabulated for.
    #[config(default = 4096)]
    pub max_seq_len: usize,
    /// RoPE base frequency.
    #[config(default = 10000.0)]
    pub rope_theta: f32,
}

/// Which of the two equivalent inference paths to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlaPath {
    /// Up-project cached latents to per-head K and V every step.
    Naive,
    /// Fold `W_UK` into the query and `W_UV` after the weighted sum; attend in latent space.
    Absorbed,
}

impl MlaConfig {
    /// Checks that the shapes describe a valid layer.
    pub fn validate(&self) -> crate::Result<()> {
        let sizes = [
            self.d_model,
            self.n_heads,
            self.d_head,
            self.d_rope,
            self.d_latent_kv,
            self.d_latent_q,
        ];
        if sizes.contains(&0) {
            return Err(ModelError::InvalidConfig(format!(
                "all sizes must be positive: {self:?}"
            )));
        }
        if !self.d_rope.is_multiple_of(2) {
            return Err(ModelError::InvalidConfig(format!(
                "d_rope = {} must be even for RoPE",
                self.d_rope
            )));
        }
        Ok(())
    }

    /// Cached bytes per token and layer: the latent and the shared RoPE key.
    pub fn kv_bytes_per_token(&self, bytes_per_elem: usize) -> usize {
        (self.d_latent_kv + self.d_rope) * bytes_per_elem
    }

    /// Analytic FLOPs of one decode step at context `ctx` on `path`.
    ///
    /// Both paths pay the projections. Naive then up-projects all `ctx` cached latents to K and V
    /// for every head and attends with `d_head + d_rope` wide keys; absorbed projects the query
    /// into latent space, attends with `d_c + d_rope` wide keys over the latents and applies
    /// `W_UV` once after the weighted sum.
    pub fn decode_flops(&self, ctx: usize, path: MlaPath) -> f64 {
        let (m, h, d, r, c, cq) = (
            self.d_model as f64,
            self.n_heads as f64,
            self.d_head as f64,
            self.d_rope as f64,
            self.d_latent_kv as f64,
            self.d_latent_q as f64,
        );
        let t = ctx as f64;
        let proj = 2.0 * (m * cq + cq * h * (d + r) + m * (c + r) + h * d * m);
        match path {
            MlaPath::Naive => {
                proj + 2.0 * t * c * h * d * 2.0 + 2.0 * h * (d + r) * t + 2.0 * h * d * t
            }
            MlaPath::Absorbed => {
                proj + 2.0 * h * d * c + 2.0 * h * (c + r) * t + 2.0 * h * c * t + 2.0 * h * c * d
            }
        }
    }

    /// The shape of the rows one layer caches: `[c_KV | k_R]`, one row for all heads, whose
    /// first `d_c` columns are the values.
    pub fn cache_layout(&self) -> CacheLayout {
        CacheLayout {
            heads: 1,
            k_width: self.d_latent_kv + self.d_rope,
            values: Values::PrefixOfKeys(self.d_latent_kv),
        }
    }

    /// Initializes the layer with burn's default (uniform Kaiming-style) weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Mla<B>> {
        self.validate()?;
        let lin = |i, o| Proj::init(i, o, device);
        let (h, d, r, c, cq) = (
            self.n_heads,
            self.d_head,
            self.d_rope,
            self.d_latent_kv,
            self.d_latent_q,
        );
        let k = 1.0 / (c as f64).sqrt();
        let up = || {
            Param::from_tensor(Tensor::random(
                [h, c, d],
                Distribution::Uniform(-k, k),
                device,
            ))
        };
        Ok(Mla {
            w_dq: lin(self.d_model, cq),
            q_norm: RmsNormConfig::new(cq).init(device),
            w_uq: lin(cq, h * d),
            w_qr: lin(cq, h * r),
            w_dkv: lin(self.d_model, c),
            kv_norm: RmsNormConfig::new(c).init(device),
            w_kr: lin(self.d_model, r),
            w_uk: up(),
            w_uv: up(),
            w_o: lin(h * d, self.d_model),
            rope: RotaryEncodingConfig::new(self.max_seq_len, r)
                .with_theta(self.rope_theta)
                .init(device),
            n_heads: h,
            d_head: d,
            d_rope: r,
            d_latent_kv: c,
            path: MlaPath::Naive,
        })
    }
}

/// One MLA attention layer.
#[derive(Module, Debug)]
pub struct Mla<B: Backend> {
    /// Query down-projection `[d_model, d_latent_q]`.
    pub w_dq: Proj<B>,
    /// RMSNorm of the query latent.
    pub q_norm: RmsNorm<B>,
    /// Query up-projection `[d_latent_q, n_heads·d_head]`.
    pub w_uq: Proj<B>,
    /// Decoupled RoPE query projection `[d_latent_q, n_heads·d_rope]`.
    pub w_qr: Proj<B>,
    /// Joint KV down-projection `[d_model, d_latent_kv]`.
    pub w_dkv: Proj<B>,
    /// RMSNorm of the KV latent.
    pub kv_norm: RmsNorm<B>,
    /// Shared RoPE key projection `[d_model, d_rope]`.
    pub w_kr: Proj<B>,
    /// Key up-projection per head `[n_heads, d_latent_kv, d_head]`.
    pub w_uk: Param<Tensor<B, 3>>,
    /// Value up-projection per head `[n_heads, d_latent_kv, d_head]`.
    pub w_uv: Param<Tensor<B, 3>>,
    /// Output projection `[n_heads·d_head, d_model]`.
    pub w_o: Proj<B>,
    /// Rotary position encoding of width `d_rope`.
    pub rope: RotaryEncoding<B>,
    n_heads: usize,
    d_head: usize,
    d_rope: usize,
    d_latent_kv: usize,
    /// The inference path (a property of the model, not of its cache; plain data, not saved).
    path: MlaPath,
}

impl<B: AttentionBackend> Mla<B> {
    /// This layer running on `path`.
    pub fn with_path(mut self, path: MlaPath) -> Self {
        self.path = path;
        self
    }

    /// The inference path this layer runs.
    pub fn path(&self) -> MlaPath {
        self.path
    }

    fn scale(&self) -> f32 {
        1.0 / ((self.d_head + self.d_rope) as f32).sqrt()
    }

    /// Absorbed queries: `q_C·W_UKᵀ` beside the RoPE part, all heads as the rows of one "KV
    /// head" (the latent). Computed as `(W_UK·q_Cᵀ)ᵀ` so the weight is read in its stored layout
    /// (a transposed weight view would be copied every step).
    ///
    /// # Shapes
    /// - `q`: `[batch, n_heads, s, d_head + d_rope]` → `[batch, 1, n_heads·s, d_c + d_rope]`
    fn absorb(&self, q: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, s, _] = q.dims();
        let (d, r, c) = (self.d_head, self.d_rope, self.d_latent_kv);
        let q_c = q.clone().narrow(3, 0, d);
        let q_r = q.narrow(3, d, r);
        let w_uk = self.w_uk.val().unsqueeze::<4>(); // [1, h, d_c, d]
        let q_lat = w_uk.matmul(q_c.swap_dims(2, 3)).swap_dims(2, 3); // [b, h, s, d_c]
        Tensor::cat(vec![q_lat, q_r], 3).reshape([b, 1, h * s, c + r])
    }

    /// The latent attention result to per-head outputs.
    ///
    /// # Shapes
    /// - `o_lat`: `[batch, 1, n_heads·s, d_c]` → `[batch, n_heads, s, d_head]`
    fn unabsorb(&self, o_lat: Tensor<B, 4>, s: usize) -> Tensor<B, 4> {
        let b = o_lat.dims()[0];
        o_lat
            .reshape([b, self.n_heads, s, self.d_latent_kv])
            .matmul(self.w_uv.val().unsqueeze::<4>())
    }

    /// The naive path over given rows: up-project the latents to per-head K and V, attend.
    ///
    /// # Shapes
    /// - `q`: `[batch, n_heads, s, d_head + d_rope]`; `rows`: `[batch, 1, t, d_c + d_rope]`
    /// - output: `[batch, n_heads, s, d_head]`
    fn naive(&self, q: Tensor<B, 4>, rows: Tensor<B, 4>, vis: Visibility) -> Tensor<B, 4> {
        let [b, _, t, _] = rows.dims();
        let (h, r, c) = (self.n_heads, self.d_rope, self.d_latent_kv);
        let latent = rows.clone().narrow(3, 0, c); // [b, 1, t, d_c]
                                                   // [b, 1, t, d_c] against [1, h, d_c, d]: batch dims broadcast, nothing repeated.
        let k_c = latent.clone().matmul(self.w_uk.val().unsqueeze::<4>()); // [b, h, t, d]
        let v = latent.matmul(self.w_uv.val().unsqueeze::<4>()); // [b, h, t, d]
        let k_r = rows.narrow(3, c, r).expand([b, h, t, r]);
        let k = Tensor::cat(vec![k_c, k_r], 3);
        B::grouped_attention(q, k, v, vis, self.scale())
    }
}

impl<B: AttentionBackend> AttentionLayer<B> for Mla<B> {
    /// `[c_KV | k_R]`, one row for all heads, whose first `d_c` columns are the values.
    fn cache_layout(&self) -> CacheLayout {
        CacheLayout {
            heads: 1,
            k_width: self.d_latent_kv + self.d_rope,
            values: Values::PrefixOfKeys(self.d_latent_kv),
        }
    }

    fn max_len(&self) -> usize {
        self.rope.freq_complex.dims()[0]
    }

    /// Queries `[q_C | RoPE(q_R)]` per head, and the cached rows `[c_KV | RoPE(k_R)]`.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]`
    /// - output: `q` `[batch, n_heads, s, d_head + d_rope]`; `k` `[batch, 1, s, d_c + d_rope]`;
    ///   `v` `[batch, 1, s, d_c]` (a view of `k`)
    fn project(&self, x: Tensor<B, 3>, pasts: &[usize]) -> [Tensor<B, 4>; 3] {
        let [b, s, _] = x.dims();
        let (h, d, r) = (self.n_heads, self.d_head, self.d_rope);
        let c_q = self.q_norm.forward(self.w_dq.forward(x.clone())); // [b, s, d_cq]
        let q_c = self
            .w_uq
            .forward(c_q.clone())
            .reshape([b, s, h, d])
            .swap_dims(1, 2);
        let q_r = self.w_qr.forward(c_q).reshape([b, s, h, r]).swap_dims(1, 2);
        let q_r = rope_at(&self.rope, q_r, pasts); // [b, h, s, r]
        let c_kv = self.kv_norm.forward(self.w_dkv.forward(x.clone())); // [b, s, d_c]
        let k_r = rope_at(&self.rope, self.w_kr.forward(x).unsqueeze_dim(1), pasts); // [b, 1, s, r]
        let rows = Tensor::cat(vec![c_kv.unsqueeze_dim(1), k_r], 3);
        let latent = rows.clone().narrow(3, 0, self.d_latent_kv);
        [Tensor::cat(vec![q_c, q_r], 3), rows, latent]
    }

    /// By this layer's path: absorbed attends over the cached rows through the cache (paged
    /// caches stream them); naive up-projects each sequence's cached latents.
    ///
    /// # Shapes
    /// - output: `[batch, n_heads, s, d_head]`
    fn attend_core(
        &self,
        p: &Prepared<B>,
        seqs: &[SeqId],
        cache: &dyn KvCache<B>,
    ) -> crate::Result<Tensor<B, 4>> {
        match self.path {
            MlaPath::Absorbed => {
                let o = attend_cache(cache, self.absorb(p.q.clone()), seqs, p, self.scale())?;
                Ok(self.unabsorb(o, p.s))
            }
            MlaPath::Naive => {
                let outs = seqs
                    .iter()
                    .enumerate()
                    .map(|(i, &seq)| {
                        let mut keys = cache.keys(seq)?;
                        let mut vis = p.vis;
                        if let Some(lens) = &p.prefixes {
                            keys = keys.narrow(2, 0, lens[i]);
                            vis = Visibility::All;
                        }
                        Ok(self.naive(p.q.clone().narrow(0, i, 1), keys, vis))
                    })
                    .collect::<crate::Result<Vec<_>>>()?;
                Ok(Tensor::cat(outs, 0))
            }
        }
    }

    fn attend_rows(&self, [q, k, v]: [Tensor<B, 4>; 3], vis: Visibility) -> Tensor<B, 4> {
        let s = q.dims()[2];
        match self.path {
            MlaPath::Naive => self.naive(q, k, vis),
            MlaPath::Absorbed => {
                let o = B::grouped_attention(self.absorb(q), k, v, vis, self.scale());
                self.unabsorb(o, s)
            }
        }
    }

    /// # Shapes
    /// - `o`: `[batch, n_heads, s, d_head]` → `[batch, s, d_model]`
    fn finish(&self, o: Tensor<B, 4>, _s: usize) -> Tensor<B, 3> {
        let [b, h, s, d] = o.dims();
        self.w_o.forward(o.swap_dims(1, 2).reshape([b, s, h * d]))
    }
}
