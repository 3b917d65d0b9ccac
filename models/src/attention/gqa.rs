//! Grouped-query attention (Ainslie et al., "GQA", 2023), the family whose end points are MHA
//! (`n_kv_heads == n_heads`, Vaswani et al. 2017) and MQA (`n_kv_heads == 1`, Shazeer 2019).
//!
//! Reads top-down: config → cache → module → forward. RoPE (Su et al. 2021) is burn-nn's
//! interleaved-pair rotary encoding. The query heads that share a K/V head are grouped into the
//! row dimension of the attention core, so grouped K/V is never repeated in memory.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{RotaryEncoding, RotaryEncodingConfig};
use burn::tensor::{backend::Backend, Tensor};

use super::{attend_cache, rope_at, AttentionLayer, Prepared};
use crate::kernels::{AttentionBackend, Visibility};
use crate::kv_cache::{CacheLayout, KvCache, SeqId, Values};
use crate::proj::Proj;
use crate::ModelError;

/// Configuration of one GQA attention layer.
#[derive(Config, Debug)]
pub struct GqaConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads; divides `n_heads`. `n_heads` gives MHA, 1 gives MQA.
    pub n_kv_heads: usize,
    /// Width of each head (even, for RoPE).
    pub d_head: usize,
    /// Longest sequence (cache capacity) that RoPE is tabulated for.
    #[config(default = 4096)]
    pub max_seq_len: usize,
    /// RoPE base frequency.
    #[config(default = 10000.0)]
    pub rope_theta: f32,
}

impl GqaConfig {
    /// Checks that the shapes describe a valid layer.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        if self.n_heads == 0 || self.n_kv_heads == 0 || self.d_head == 0 || self.d_model == 0 {
            return bad(format!("all sizes must be positive: {self:?}"));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "n_kv_heads = {} does not divide n_heads = {}",
                self.n_kv_heads, self.n_heads
            ));
        }
        if !self.d_head.is_multiple_of(2) {
            return bad(format!("d_head = {} must be even for RoPE", self.d_head));
        }
        Ok(())
    }

    /// Cached bytes per token and layer: K and V for each KV head.
    pub fn kv_bytes_per_token(&self, bytes_per_elem: usize) -> usize {
        2 * self.n_kv_heads * self.d_head * bytes_per_elem
    }

    /// Analytic FLOPs of one decode step at context `ctx`: the four projections, then scores and
    /// the weighted sum over `ctx` cached positions for every query head.
    pub fn decode_flops(&self, ctx: usize) -> f64 {
        let (m, h, kv, d) = (
            self.d_model as f64,
            self.n_heads as f64,
            self.n_kv_heads as f64,
            self.d_head as f64,
        );
        2.0 * m * (h * d + 2.0 * kv * d) + 2.0 * h * d * m + 4.0 * h * d * ctx as f64
    }

    /// The shape of the rows one layer caches: K and V rows per KV head.
    pub fn cache_layout(&self) -> CacheLayout {
        CacheLayout {
            heads: self.n_kv_heads,
            k_width: self.d_head,
            values: Values::Separate(self.d_head),
        }
    }

    /// Initializes the layer with burn's default (uniform Kaiming-style) weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Gqa<B>> {
        self.validate()?;
        let lin = |i, o| Proj::init(i, o, device);
        let (d, h, kv) = (self.d_head, self.n_heads, self.n_kv_heads);
        Ok(Gqa {
            wq: lin(self.d_model, h * d),
            wk: lin(self.d_model, kv * d),
            wv: lin(self.d_model, kv * d),
            wo: lin(h * d, self.d_model),
            rope: RotaryEncodingConfig::new(self.max_seq_len, d)
                .with_theta(self.rope_theta)
                .init(device),
            n_heads: h,
            n_kv_heads: kv,
            d_head: d,
        })
    }
}

/// One GQA attention layer.
#[derive(Module, Debug)]
pub struct Gqa<B: Backend> {
    /// Query projection `[d_model, n_heads·d_head]`.
    pub wq: Proj<B>,
    /// Key projection `[d_model, n_kv_heads·d_head]`.
    pub wk: Proj<B>,
    /// Value projection `[d_model, n_kv_heads·d_head]`.
    pub wv: Proj<B>,
    /// Output projection `[n_heads·d_head, d_model]`.
    pub wo: Proj<B>,
    /// Rotary position encoding of width `d_head`.
    pub rope: RotaryEncoding<B>,
    n_heads: usize,
    n_kv_heads: usize,
    d_head: usize,
}

impl<B: AttentionBackend> Gqa<B> {
    /// Query heads, KV heads, head width.
    pub fn heads(&self) -> (usize, usize, usize) {
        (self.n_heads, self.n_kv_heads, self.d_head)
    }

    fn scale(&self) -> f32 {
        1.0 / (self.d_head as f32).sqrt()
    }

    /// The attention core's grouped result back to one row per position, heads side by side
    /// (the output projection's input).
    ///
    /// # Shapes
    /// - `o`: `[batch, n_kv_heads, group·s, d_head]`
    /// - output: `[batch, s, n_heads·d_head]`
    pub fn merge_heads(&self, o: Tensor<B, 4>, s: usize) -> Tensor<B, 3> {
        let [b, _, _, d] = o.dims();
        o.reshape([b, self.n_heads, s, d])
            .swap_dims(1, 2)
            .reshape([b, s, self.n_heads * d])
    }
}

impl<B: AttentionBackend> AttentionLayer<B> for Gqa<B> {
    /// K and V rows per KV head.
    fn cache_layout(&self) -> CacheLayout {
        CacheLayout {
            heads: self.n_kv_heads,
            k_width: self.d_head,
            values: Values::Separate(self.d_head),
        }
    }

    fn max_len(&self) -> usize {
        self.rope.freq_complex.dims()[0]
    }

    /// Projects `x`, rotates queries and keys, and groups the query heads by the KV head they
    /// share (so grouped K/V is never repeated).
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]`
    /// - output: `q` `[batch, n_kv_heads, group·s, d_head]`; `k`, `v` `[batch, n_kv_heads, s, d_head]`
    fn project(&self, x: Tensor<B, 3>, pasts: &[usize]) -> [Tensor<B, 4>; 3] {
        let [b, s, _] = x.dims();
        let (h, kv, d) = self.heads();
        let split = |t: Tensor<B, 3>, heads| t.reshape([b, s, heads, d]).swap_dims(1, 2);
        use crate::profile::{scope, Part};
        let [q, k, v] = scope(Part::AttnProj, || {
            Proj::forward_group([&self.wq, &self.wk, &self.wv], x)
        });
        let q = scope(Part::Rope, || rope_at(&self.rope, split(q, h), pasts));
        let k = scope(Part::Rope, || rope_at(&self.rope, split(k, kv), pasts));
        let v = split(v, kv);
        [q.reshape([b, kv, (h / kv) * s, d]), k, v]
    }

    fn attend_core(
        &self,
        p: &Prepared<B>,
        seqs: &[SeqId],
        cache: &dyn KvCache<B>,
    ) -> crate::Result<Tensor<B, 4>> {
        crate::profile::scope(crate::profile::Part::Attention, || {
            attend_cache(cache, p.q.clone(), seqs, p, self.scale())
        })
    }

    fn attend_rows(&self, [q, k, v]: [Tensor<B, 4>; 3], vis: Visibility) -> Tensor<B, 4> {
        B::grouped_attention(q, k, v, vis, self.scale())
    }

    /// # Shapes
    /// - `o`: `[batch, n_kv_heads, group·s, d_head]` → `[batch, s, d_model]`
    fn finish(&self, o: Tensor<B, 4>, s: usize) -> Tensor<B, 3> {
        let o = self.merge_heads(o, s);
        crate::profile::scope(crate::profile::Part::AttnProj, || self.wo.forward(o))
    }
}
