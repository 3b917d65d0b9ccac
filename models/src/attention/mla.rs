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
use burn::nn::{
    Linear, LinearConfig, RmsNorm, RmsNormConfig, RotaryEncoding, RotaryEncodingConfig,
};
use burn::tensor::{backend::Backend, Distribution, Tensor};

use super::cache::ContiguousCache;
use crate::kernels::{AttentionBackend, Visibility};
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

    /// An empty cache for this layer with room for `capacity` tokens.
    pub fn new_cache<B: Backend>(
        &self,
        batch: usize,
        capacity: usize,
        device: &B::Device,
    ) -> MlaCache<B> {
        MlaCache::new(batch, capacity, self.d_latent_kv + self.d_rope, device)
    }

    /// Initializes the layer with burn's default (uniform Kaiming-style) weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Mla<B>> {
        self.validate()?;
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
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
        })
    }
}

/// The MLA cache: rows `[c_KV | k_R]`, shape `[batch, 1, capacity, d_latent_kv + d_rope]`.
#[derive(Debug, Clone)]
pub struct MlaCache<B: Backend> {
    /// Latent and RoPE key of each cached token, side by side.
    pub latent: ContiguousCache<B>,
}

impl<B: Backend> MlaCache<B> {
    /// Reserves `capacity` rows of `width = d_latent_kv + d_rope`.
    pub fn new(batch: usize, capacity: usize, width: usize, device: &B::Device) -> Self {
        MlaCache {
            latent: ContiguousCache::new(batch, 1, capacity, width, device),
        }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.latent.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.latent.is_empty()
    }

    /// Forgets every position from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.latent.truncate(len);
    }

    /// Bytes reserved by the cache tensor.
    pub fn bytes_reserved(&self) -> usize {
        self.latent.bytes_reserved()
    }

    /// Bytes of the cached tokens.
    pub fn bytes_used(&self) -> usize {
        self.latent.bytes_used()
    }
}

/// One MLA attention layer.
#[derive(Module, Debug)]
pub struct Mla<B: Backend> {
    /// Query down-projection `[d_model, d_latent_q]`.
    pub w_dq: Linear<B>,
    /// RMSNorm of the query latent.
    pub q_norm: RmsNorm<B>,
    /// Query up-projection `[d_latent_q, n_heads·d_head]`.
    pub w_uq: Linear<B>,
    /// Decoupled RoPE query projection `[d_latent_q, n_heads·d_rope]`.
    pub w_qr: Linear<B>,
    /// Joint KV down-projection `[d_model, d_latent_kv]`.
    pub w_dkv: Linear<B>,
    /// RMSNorm of the KV latent.
    pub kv_norm: RmsNorm<B>,
    /// Shared RoPE key projection `[d_model, d_rope]`.
    pub w_kr: Linear<B>,
    /// Key up-projection per head `[n_heads, d_latent_kv, d_head]`.
    pub w_uk: Param<Tensor<B, 3>>,
    /// Value up-projection per head `[n_heads, d_latent_kv, d_head]`.
    pub w_uv: Param<Tensor<B, 3>>,
    /// Output projection `[n_heads·d_head, d_model]`.
    pub w_o: Linear<B>,
    /// Rotary position encoding of width `d_rope`.
    pub rope: RotaryEncoding<B>,
    n_heads: usize,
    d_head: usize,
    d_rope: usize,
    d_latent_kv: usize,
}

/// Queries prepared for the attention core.
pub struct Prepared<B: Backend> {
    /// Compressed query part `[batch, n_heads, s, d_head]`.
    pub q_c: Tensor<B, 4>,
    /// Rotated RoPE query part `[batch, n_heads, s, d_rope]`.
    pub q_r: Tensor<B, 4>,
    /// New positions in this step.
    pub s: usize,
    /// Tokens cached before this step.
    pub past: usize,
}

impl<B: AttentionBackend> Mla<B> {
    /// An empty cache with room for `capacity` tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize, device: &B::Device) -> MlaCache<B> {
        MlaCache::new(batch, capacity, self.d_latent_kv + self.d_rope, device)
    }

    /// Projects `x` to queries, and appends its latents and RoPE keys to the cache.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]`
    pub fn prepare(&self, x: Tensor<B, 3>, cache: &mut MlaCache<B>) -> crate::Result<Prepared<B>> {
        let [b, s, _] = x.dims();
        let (h, d, r) = (self.n_heads, self.d_head, self.d_rope);
        let past = cache.len();
        let max = self.rope.freq_complex.dims()[0];
        if past + s > max {
            return Err(ModelError::CacheFull {
                len: past,
                adding: s,
                capacity: max,
            });
        }
        let c_q = self.q_norm.forward(self.w_dq.forward(x.clone())); // [b, s, d_cq]
        let q_c = self
            .w_uq
            .forward(c_q.clone())
            .reshape([b, s, h, d])
            .swap_dims(1, 2);
        let q_r = self.w_qr.forward(c_q).reshape([b, s, h, r]).swap_dims(1, 2);
        let q_r = self.rope.apply(q_r, past); // [b, h, s, r]

        let c_kv = self.kv_norm.forward(self.w_dkv.forward(x.clone())); // [b, s, d_c]
        let k_r = self.rope.apply(self.w_kr.forward(x), past); // [b, s, r]
        cache
            .latent
            .append(Tensor::cat(vec![c_kv, k_r], 2).unsqueeze_dim(1))?;
        Ok(Prepared { q_c, q_r, s, past })
    }

    /// Output projection of the per-head attention result.
    ///
    /// # Shapes
    /// - `o`: `[batch, n_heads, s, d_head]`
    /// - output: `[batch, s, d_model]`
    pub fn finish(&self, o: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, h, s, d] = o.dims();
        self.w_o.forward(o.swap_dims(1, 2).reshape([b, s, h * d]))
    }

    fn scale(&self) -> f32 {
        1.0 / ((self.d_head + self.d_rope) as f32).sqrt()
    }

    fn visibility(p: &Prepared<B>) -> Visibility {
        if p.s == 1 {
            Visibility::All
        } else {
            Visibility::Causal {
                s: p.s,
                past: p.past,
            }
        }
    }
}

impl<B: AttentionBackend> Mla<B> {
    /// The attention core over everything cached, by either path; per-head output.
    ///
    /// # Shapes
    /// - output: `[batch, n_heads, s, d_head]`
    pub fn attend(&self, p: &Prepared<B>, cache: &MlaCache<B>, path: MlaPath) -> Tensor<B, 4> {
        let rows = cache.latent.view(); // [b, 1, t, d_c + d_rope]
        let [b, _, t, _] = rows.dims();
        let (h, r, c) = (self.n_heads, self.d_rope, self.d_latent_kv);
        let latent = rows.clone().narrow(3, 0, c); // [b, 1, t, d_c]
        match path {
            MlaPath::Naive => {
                // [b, 1, t, d_c] against [1, h, d_c, d]: batch dims broadcast, nothing repeated.
                let w_uk = self.w_uk.val().unsqueeze::<4>();
                let w_uv = self.w_uv.val().unsqueeze::<4>();
                let k_c = latent.clone().matmul(w_uk); // [b, h, t, d]
                let v = latent.matmul(w_uv); // [b, h, t, d]
                let k_r = rows.narrow(3, c, r).expand([b, h, t, r]);
                let k = Tensor::cat(vec![k_c, k_r], 3);
                let q = Tensor::cat(vec![p.q_c.clone(), p.q_r.clone()], 3);
                B::grouped_attention(q, k, v, Self::visibility(p), self.scale())
            }
            MlaPath::Absorbed => {
                // q_lat = q_C·W_UKᵀ, computed as (W_UK·q_Cᵀ)ᵀ so the weight is read in its stored
                // layout (a transposed weight view would be copied every step).
                let w_uk = self.w_uk.val().unsqueeze::<4>(); // [1, h, d_c, d]
                let q_lat = w_uk.matmul(p.q_c.clone().swap_dims(2, 3)).swap_dims(2, 3); // [b, h, s, d_c]
                let q = Tensor::cat(vec![q_lat, p.q_r.clone()], 3).reshape([b, 1, h * p.s, c + r]);
                let o_lat =
                    B::grouped_attention(q, rows, latent, Self::visibility(p), self.scale());
                let o_lat = o_lat.reshape([b, h, p.s, c]);
                o_lat.matmul(self.w_uv.val().unsqueeze::<4>()) // [b, h, s, d]
            }
        }
    }

    /// Causal attention of `s` new positions against the cache and themselves.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]`
    /// - output: `[batch, s, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cache: &mut MlaCache<B>,
        path: MlaPath,
    ) -> crate::Result<Tensor<B, 3>> {
        let p = self.prepare(x, cache)?;
        let o = self.attend(&p, cache, path);
        Ok(self.finish(o))
    }
}
