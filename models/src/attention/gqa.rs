//! Grouped-query attention (Ainslie et al., "GQA", 2023), the family whose end points are MHA
//! (`n_kv_heads == n_heads`, Vaswani et al. 2017) and MQA (`n_kv_heads == 1`, Shazeer 2019).
//!
//! Reads top-down: config → cache → module → forward. RoPE (Su et al. 2021) is burn-nn's
//! interleaved-pair rotary encoding. The query heads that share a K/V head are grouped into the
//! row dimension of the attention core, so grouped K/V is never repeated in memory.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, RotaryEncoding, RotaryEncodingConfig};
use burn::tensor::{backend::Backend, Tensor};

use super::cache::ContiguousCache;
use crate::kernels::{AttentionBackend, Visibility};
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

    /// An empty cache for this layer with room for `capacity` tokens.
    pub fn new_cache<B: Backend>(
        &self,
        batch: usize,
        capacity: usize,
        device: &B::Device,
    ) -> GqaCache<B> {
        GqaCache::new(batch, self.n_kv_heads, capacity, self.d_head, device)
    }

    /// Initializes the layer with burn's default (uniform Kaiming-style) weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Gqa<B>> {
        self.validate()?;
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
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

/// K and V caches of one GQA layer, each `[batch, n_kv_heads, capacity, d_head]`.
#[derive(Debug, Clone)]
pub struct GqaCache<B: Backend> {
    /// Rotated keys.
    pub k: ContiguousCache<B>,
    /// Values.
    pub v: ContiguousCache<B>,
}

impl<B: Backend> GqaCache<B> {
    /// Reserves `capacity` positions of K and of V for `kv_heads` heads of width `d_head`.
    pub fn new(
        batch: usize,
        kv_heads: usize,
        capacity: usize,
        d_head: usize,
        device: &B::Device,
    ) -> Self {
        let mk = || ContiguousCache::new(batch, kv_heads, capacity, d_head, device);
        GqaCache { k: mk(), v: mk() }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.k.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.k.is_empty()
    }

    /// Forgets every position from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.k.truncate(len);
        self.v.truncate(len);
    }

    /// Bytes reserved by the cache tensors.
    pub fn bytes_reserved(&self) -> usize {
        self.k.bytes_reserved() + self.v.bytes_reserved()
    }

    /// Bytes of the cached tokens.
    pub fn bytes_used(&self) -> usize {
        self.k.bytes_used() + self.v.bytes_used()
    }
}

/// One GQA attention layer.
#[derive(Module, Debug)]
pub struct Gqa<B: Backend> {
    /// Query projection `[d_model, n_heads·d_head]`.
    pub wq: Linear<B>,
    /// Key projection `[d_model, n_kv_heads·d_head]`.
    pub wk: Linear<B>,
    /// Value projection `[d_model, n_kv_heads·d_head]`.
    pub wv: Linear<B>,
    /// Output projection `[n_heads·d_head, d_model]`.
    pub wo: Linear<B>,
    /// Rotary position encoding of width `d_head`.
    pub rope: RotaryEncoding<B>,
    n_heads: usize,
    n_kv_heads: usize,
    d_head: usize,
}

/// Queries prepared for the attention core, with the rows they cover.
pub struct Prepared<B: Backend> {
    /// `[batch, n_kv_heads, group·s, d_head]`
    pub q: Tensor<B, 4>,
    /// New positions in this step.
    pub s: usize,
    /// Which cached keys each row sees.
    pub vis: Visibility,
}

impl<B: AttentionBackend> Gqa<B> {
    /// Query heads, KV heads, head width.
    pub fn heads(&self) -> (usize, usize, usize) {
        (self.n_heads, self.n_kv_heads, self.d_head)
    }

    /// An empty cache with room for `capacity` tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize, device: &B::Device) -> GqaCache<B> {
        GqaCache::new(batch, self.n_kv_heads, capacity, self.d_head, device)
    }

    /// Projects `x`, rotates queries and keys, appends K and V to the cache, and groups the
    /// query heads by the KV head they share.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]`
    /// - output `q`: `[batch, n_kv_heads, (n_heads / n_kv_heads)·s, d_head]`
    pub fn prepare(&self, x: Tensor<B, 3>, cache: &mut GqaCache<B>) -> crate::Result<Prepared<B>> {
        let (q, k, v) = (
            self.wq.forward(x.clone()),
            self.wk.forward(x.clone()),
            self.wv.forward(x),
        );
        self.prepare_projected(q, k, v, cache)
    }

    /// As [`Gqa::prepare`] for projections computed elsewhere (e.g. by quantized layers).
    ///
    /// # Shapes
    /// - `q`: `[batch, s, n_heads·d_head]`; `k`, `v`: `[batch, s, n_kv_heads·d_head]`
    /// - output `q`: `[batch, n_kv_heads, (n_heads / n_kv_heads)·s, d_head]`
    pub fn prepare_projected(
        &self,
        q: Tensor<B, 3>,
        k: Tensor<B, 3>,
        v: Tensor<B, 3>,
        cache: &mut GqaCache<B>,
    ) -> crate::Result<Prepared<B>> {
        let [b, s, _] = q.dims();
        let (h, kv, d) = self.heads();
        let past = cache.len();
        let max = self.rope.freq_complex.dims()[0];
        if past + s > max {
            return Err(ModelError::CacheFull {
                len: past,
                adding: s,
                capacity: max,
            });
        }
        let split = |t: Tensor<B, 3>, heads| t.reshape([b, s, heads, d]).swap_dims(1, 2);
        let q = self.rope.apply(split(q, h), past); // [b, h, s, d]
        let k = self.rope.apply(split(k, kv), past); // [b, kv, s, d]
        let v = split(v, kv); // [b, kv, s, d]
        cache.k.append(k)?;
        cache.v.append(v)?;
        let vis = if s == 1 {
            Visibility::All
        } else {
            Visibility::Causal { s, past }
        };
        Ok(Prepared {
            q: q.reshape([b, kv, (h / kv) * s, d]),
            s,
            vis,
        })
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

    /// Output projection of the attention core's result.
    ///
    /// # Shapes
    /// - `o`: `[batch, n_kv_heads, group·s, d_head]`
    /// - output: `[batch, s, d_model]`
    pub fn finish(&self, o: Tensor<B, 4>, s: usize) -> Tensor<B, 3> {
        self.wo.forward(self.merge_heads(o, s))
    }
}

impl<B: AttentionBackend> Gqa<B> {
    /// The attention core over everything cached.
    ///
    /// # Shapes
    /// - `p.q`: `[batch, n_kv_heads, group·s, d_head]`
    /// - output: `[batch, n_kv_heads, group·s, d_head]`
    pub fn attend(&self, p: &Prepared<B>, cache: &GqaCache<B>) -> Tensor<B, 4> {
        let scale = 1.0 / (self.d_head as f32).sqrt();
        B::grouped_attention(p.q.clone(), cache.k.view(), cache.v.view(), p.vis, scale)
    }

    /// Causal attention of `s` new positions against the cache and themselves; prefill when the
    /// cache is empty, single-token decode when `s == 1`.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]`
    /// - output: `[batch, s, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>, cache: &mut GqaCache<B>) -> crate::Result<Tensor<B, 3>> {
        let p = self.prepare(x, cache)?;
        let o = self.attend(&p, cache);
        Ok(self.finish(o, p.s))
    }
}
