//! Attention variants over the per-sequence [`KvCache`] family: prefill or verification of one
//! sequence (`s` new tokens), and decode of many sequences (one token each) in one call.
//!
//! - [`gqa`]: grouped-query attention (Ainslie et al. 2023); MHA when `n_kv_heads == n_heads`,
//!   MQA when `n_kv_heads == 1`.
//! - [`mla`]: multi-head latent attention (DeepSeek-V2, section 2.1) with a naive and an absorbed
//!   inference path over the same weights.
//! - [`reference`]: plain-loop references that the tests check the modules against.
//!
//! [`AttentionLayer`] holds the steps every variant shares; [`Attention`] is the choice a decoder
//! block makes, and is itself an [`AttentionLayer`], so callers never match on the variant.

pub mod gqa;
pub mod mla;
pub mod reference;

pub use gqa::{Gqa, GqaConfig};
pub use mla::{Mla, MlaConfig, MlaPath};

use burn::module::Module;
use burn::nn::RotaryEncoding;
use burn::tensor::{backend::Backend, Tensor};

use crate::kernels::{AttentionBackend, Visibility};
use crate::kv_cache::{CacheLayout, KvCache, SeqId, Values};
use crate::ModelError;

/// The attention of one block. (One per block, never in a hot collection: the size difference
/// between the variants costs nothing worth a box.)
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Attention<B: Backend> {
    /// GQA family.
    Gqa(Gqa<B>),
    /// Multi-head latent attention.
    Mla(Mla<B>),
}

/// Queries of one step, projected, rotated and laid out for the variant's attention core; the
/// step's keys and values are already in the cache.
pub struct Prepared<B: Backend> {
    /// GQA: `[batch, n_kv_heads, group·s, d_head]` (query heads grouped by the KV head they
    /// share); MLA: `[batch, n_heads, s, d_head + d_rope]`.
    pub q: Tensor<B, 4>,
    /// New positions per sequence in this step.
    pub s: usize,
    /// Which cached keys each query row sees.
    pub vis: Visibility,
    /// Cached tokens each batch row sees, when the rows are the flattened tokens of a ragged
    /// step (each a decode row over a prefix of its sequence); `None`: `vis` decides.
    pub prefixes: Option<Vec<usize>>,
}

/// One attention layer. A variant supplies its projections, its attention core over a cache
/// and over given rows, and its output projection; the steps every variant shares (positions,
/// cache appends, prefill and decode, the uncached forward) are written once, here.
pub trait AttentionLayer<B: AttentionBackend> {
    /// The shape of the rows this layer caches.
    fn cache_layout(&self) -> CacheLayout;

    /// Longest sequence the RoPE table covers.
    fn max_len(&self) -> usize;

    /// The step's queries in the core's layout, and the rows it caches, sequence `i` starting at
    /// position `pasts[i]`.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]`
    /// - output: `q` as in [`Prepared::q`]; `k` `[batch, heads, s, k_width]`; `v`
    ///   `[batch, heads, s, v_width]` (a view of `k` when the values are part of the keys)
    fn project(&self, x: Tensor<B, 3>, pasts: &[usize]) -> [Tensor<B, 4>; 3];

    /// The attention core over everything cached for `seqs` (what reads the cache).
    ///
    /// # Shapes
    /// - output: GQA `[batch, n_kv_heads, group·s, d_head]`, MLA `[batch, n_heads, s, d_head]`
    fn attend_core(
        &self,
        p: &Prepared<B>,
        seqs: &[SeqId],
        cache: &dyn KvCache<B>,
    ) -> crate::Result<Tensor<B, 4>>;

    /// The attention core over rows given directly (no cache): `[q, k, v]` as
    /// [`AttentionLayer::project`] returns them.
    ///
    /// # Shapes
    /// - as [`AttentionLayer::project`]'s output → as [`AttentionLayer::attend_core`]'s
    fn attend_rows(&self, qkv: [Tensor<B, 4>; 3], vis: Visibility) -> Tensor<B, 4>;

    /// The output projection of the core's result.
    ///
    /// # Shapes
    /// - `o`: as [`AttentionLayer::attend_core`]'s output → `[batch, s, d_model]`
    fn finish(&self, o: Tensor<B, 4>, s: usize) -> Tensor<B, 3>;

    /// Projects `x`, appends its keys and values to `seqs` in `cache`, and returns the queries.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]` with `batch == seqs.len()`, and `batch == 1` or `s == 1`
    fn prepare(
        &self,
        x: Tensor<B, 3>,
        seqs: &[SeqId],
        cache: &mut dyn KvCache<B>,
    ) -> crate::Result<Prepared<B>> {
        let [b, s, _] = x.dims();
        let pasts = positions(b, s, seqs, cache, self.max_len())?;
        let [q, k, v] = self.project(x, &pasts);
        let v = match self.cache_layout().values {
            Values::Separate(_) => Some(v),
            Values::PrefixOfKeys(_) => None,
        };
        crate::profile::scope(crate::profile::Part::Attention, || {
            append_rows(cache, seqs, k, v)
        })?;
        Ok(Prepared {
            q,
            s,
            vis: visibility(s, pasts[0]),
            prefixes: None,
        })
    }

    /// The attention core, then the output projection.
    ///
    /// # Shapes
    /// - output: `[batch, s, d_model]`
    fn attend(
        &self,
        p: &Prepared<B>,
        seqs: &[SeqId],
        cache: &dyn KvCache<B>,
    ) -> crate::Result<Tensor<B, 3>> {
        Ok(self.finish(self.attend_core(p, seqs, cache)?, p.s))
    }

    /// Causal attention of `s` new tokens per sequence against the cache and themselves:
    /// prefill or verification of one sequence, or one decode token for each of several.
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]` (`batch == seqs.len()`; `batch == 1` or `s == 1`)
    /// - output: `[batch, s, d_model]`
    fn forward(
        &self,
        x: Tensor<B, 3>,
        seqs: &[SeqId],
        cache: &mut dyn KvCache<B>,
    ) -> crate::Result<Tensor<B, 3>> {
        let p = self.prepare(x, seqs, cache)?;
        self.attend(&p, seqs, cache)
    }

    /// Causal attention of a ragged batch: `lens[i]` new tokens of `seqs[i]` (0 for a sequence
    /// that sits this step out), flattened into one row of tokens. The projections run once over
    /// all tokens; each sequence attends over its own cache, causally inside its new tokens (the
    /// varlen attention of serving engines: with several sequences, every new token is a decode
    /// row over its own sequence's prefix, all rows in one core call; one sequence alone takes the
    /// causal core). No token's result depends on another sequence's.
    ///
    /// # Shapes
    /// - `x`: `[1, Σ lens, d_model]` (sequence `i`'s tokens after sequence `i - 1`'s)
    /// - output: `[1, Σ lens, d_model]`
    fn forward_ragged(
        &self,
        x: Tensor<B, 3>,
        seqs: &[SeqId],
        lens: &[usize],
        cache: &mut dyn KvCache<B>,
    ) -> crate::Result<Tensor<B, 3>> {
        let [_, t, d_model] = x.dims();
        if seqs.len() != lens.len() || lens.iter().sum::<usize>() != t {
            return Err(ModelError::Shape {
                what: "ragged attention step",
                expected: format!("{} sequences whose lengths sum to {t}", seqs.len()),
                got: format!("lengths {lens:?}"),
            });
        }
        let fed: Vec<(SeqId, usize)> = seqs
            .iter()
            .zip(lens)
            .filter(|&(_, &l)| l > 0)
            .map(|(&s, &l)| (s, l))
            .collect();
        if let [(seq, _)] = fed[..] {
            // One sequence: a prefill or verification with the causal core.
            return self.forward(x, &[seq], cache);
        }
        let mut positions = Vec::with_capacity(t);
        let mut pasts = Vec::with_capacity(fed.len());
        for &(seq, l) in &fed {
            let past = cache.len(seq)?;
            if past + l > self.max_len() {
                return Err(ModelError::CacheFull {
                    len: past,
                    adding: l,
                    capacity: self.max_len(),
                });
            }
            pasts.push(past);
            positions.extend(past..past + l);
        }
        // Every token is a batch row of one position: the projections see all Σ lens rows.
        let [q, k, v] = self.project(x.reshape([t, 1, d_model]), &positions);
        let v = match self.cache_layout().values {
            Values::Separate(_) => Some(v),
            Values::PrefixOfKeys(_) => None,
        };
        let ids: Vec<SeqId> = fed.iter().map(|&(s, _)| s).collect();
        crate::profile::scope(crate::profile::Part::Attention, || {
            if fed.iter().all(|&(_, l)| l == 1) {
                return append_rows(cache, &ids, k, v);
            }
            // [t, heads, 1, w]: sequence i's rows are its tokens.
            let mut t0 = 0;
            for &(seq, l) in &fed {
                let rows = |x: &Tensor<B, 4>| {
                    x.clone()
                        .narrow(0, t0, l)
                        .swap_dims(0, 2)
                        .squeeze_dim::<3>(0)
                };
                cache.append(seq, rows(&k), v.as_ref().map(rows))?;
                t0 += l;
            }
            Ok(())
        })?;
        // Every token a decode row over its sequence's prefix: token j of a sequence that held
        // p tokens sees p + j + 1 (causal inside the step), all in one core call.
        let mut row_seqs = Vec::with_capacity(t);
        let mut prefixes = Vec::with_capacity(t);
        for (&(seq, l), &past) in fed.iter().zip(&pasts) {
            row_seqs.extend(std::iter::repeat_n(seq, l));
            prefixes.extend(past + 1..=past + l);
        }
        let p = Prepared {
            q,
            s: 1,
            vis: Visibility::All,
            prefixes: Some(prefixes),
        };
        Ok(self.attend(&p, &row_seqs, cache)?.reshape([1, t, d_model]))
    }

    /// Causal self-attention of whole sequences, with no cache (training and scoring).
    ///
    /// # Shapes
    /// - `x`: `[batch, s, d_model]` → `[batch, s, d_model]`
    fn forward_full(&self, x: Tensor<B, 3>) -> crate::Result<Tensor<B, 3>> {
        let [b, s, _] = x.dims();
        if s > self.max_len() {
            return Err(ModelError::CacheFull {
                len: 0,
                adding: s,
                capacity: self.max_len(),
            });
        }
        let qkv = self.project(x, &vec![0; b]);
        Ok(self.finish(self.attend_rows(qkv, visibility(s, 0)), s))
    }
}

/// An [`Attention`] is its layer: every [`AttentionLayer`] method works on it directly, whichever
/// variant it holds.
impl<B: AttentionBackend> std::ops::Deref for Attention<B> {
    type Target = dyn AttentionLayer<B>;

    fn deref(&self) -> &Self::Target {
        match self {
            Attention::Gqa(a) => a,
            Attention::Mla(a) => a,
        }
    }
}

/// Cache lengths of `seqs` before this step (the positions of their first new token), checked
/// against the step's shape and the RoPE table's length `max`.
pub(crate) fn positions<B: AttentionBackend>(
    batch: usize,
    s: usize,
    seqs: &[SeqId],
    cache: &dyn KvCache<B>,
    max: usize,
) -> crate::Result<Vec<usize>> {
    if seqs.len() != batch || (batch > 1 && s > 1) {
        return Err(ModelError::Shape {
            what: "attention step",
            expected: format!(
                "one row per sequence ({} sequences), and one token each when there are several",
                seqs.len()
            ),
            got: format!("[{batch}, {s}, _]"),
        });
    }
    let pasts = seqs
        .iter()
        .map(|&q| cache.len(q))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(&past) = pasts.iter().find(|&&p| p + s > max) {
        return Err(ModelError::CacheFull {
            len: past,
            adding: s,
            capacity: max,
        });
    }
    Ok(pasts)
}

/// What the new query rows of a step see: everything for single-token decode, causal otherwise.
pub(crate) fn visibility(s: usize, past: usize) -> Visibility {
    if s == 1 {
        Visibility::All
    } else {
        Visibility::Causal { s, past }
    }
}

/// RoPE with each sequence at its own position: `x[i]` starts at `pasts[i]`. On host backends
/// a plain loop over burn's own frequency table ([`rope_host`]); otherwise burn's
/// `RotaryEncoding::apply`, one call when all sequences are at the same position (prefill,
/// equal-length batches).
///
/// # Shapes
/// - `x`: `[batch, heads, s, width]` → same
pub(crate) fn rope_at<B: AttentionBackend>(
    rope: &RotaryEncoding<B>,
    x: Tensor<B, 4>,
    pasts: &[usize],
) -> Tensor<B, 4> {
    if B::host_tensors() {
        return rope_host(rope, x, pasts);
    }
    if pasts.iter().all(|&p| p == pasts[0]) {
        return rope.apply(x, pasts[0]);
    }
    let rows = pasts
        .iter()
        .enumerate()
        .map(|(i, &p)| rope.apply(x.clone().narrow(0, i, 1), p))
        .collect();
    Tensor::cat(rows, 0)
}

/// [`rope_at`] in host memory: the rotation `(a, b) → (a·cos − b·sin, b·cos + a·sin)` of each
/// consecutive pair with burn's `freq_complex` table (`[max_len, width, 2]`: cos and sin per
/// element), the same products and sums `RotaryEncoding::apply` takes through a matrix product
/// with a sign matrix, a multiply and a sum, without its per-call tensors (measured: RoPE was
/// 8% of a SmolLM2 decode step through burn's ops).
///
/// # Shapes
/// - `x`: `[batch, heads, s, width]` → same
fn rope_host<B: Backend>(
    rope: &RotaryEncoding<B>,
    x: Tensor<B, 4>,
    pasts: &[usize],
) -> Tensor<B, 4> {
    use burn::tensor::TensorData;
    let [b, h, s, d] = x.dims();
    assert_eq!(pasts.len(), b, "one position per sequence");
    let device = x.device();
    let lo = *pasts.iter().min().expect("at least one sequence");
    let hi = *pasts.iter().max().expect("at least one sequence") + s;
    let f = rope
        .freq_complex
        .clone()
        .narrow(0, lo, hi - lo)
        .into_data()
        .convert::<f32>();
    let f = f.as_slice::<f32>().expect("f32 frequencies");
    let mut v = x
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 input");
    for (bh, rows) in v.chunks_mut(s * d).enumerate() {
        let past = pasts[bh / h];
        for (t, row) in rows.chunks_mut(d).enumerate() {
            let fr = &f[(past + t - lo) * d * 2..][..d * 2];
            for (pair, fp) in row.chunks_exact_mut(2).zip(fr.chunks_exact(4)) {
                let (a, bb) = (pair[0], pair[1]);
                pair[0] = a * fp[0] - bb * fp[1];
                pair[1] = bb * fp[2] + a * fp[3];
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [b, h, s, d]), &device)
}

/// Appends a step's rows: `s` tokens of one sequence, or one token for each of several.
///
/// # Shapes
/// - `k`: `[batch, heads, s, k_width]`, `v`: `[batch, heads, s, v_width]` or `None`
pub(crate) fn append_rows<B: AttentionBackend>(
    cache: &mut dyn KvCache<B>,
    seqs: &[SeqId],
    k: Tensor<B, 4>,
    v: Option<Tensor<B, 4>>,
) -> crate::Result<()> {
    if seqs.len() == 1 {
        let first = |t: Tensor<B, 4>| t.squeeze_dim::<3>(0);
        cache.append(seqs[0], first(k), v.map(first))?;
    } else {
        cache.append_step(seqs, k, v)?;
    }
    Ok(())
}

/// The attention core over the cache: one decode row per batch row over its prefix
/// (`prefixes`), one sequence with `vis`, or one decode row per sequence.
///
/// # Shapes
/// - `q`: `[batch, heads, rows, k_width]` → `[batch, heads, rows, v_width]`
pub(crate) fn attend_cache<B: AttentionBackend>(
    cache: &dyn KvCache<B>,
    q: Tensor<B, 4>,
    seqs: &[SeqId],
    p: &Prepared<B>,
    scale: f32,
) -> crate::Result<Tensor<B, 4>> {
    Ok(match &p.prefixes {
        Some(lens) => cache.attend_prefixes(q, seqs, lens, scale)?,
        None if seqs.len() == 1 => cache.attend(q, seqs[0], p.vis, scale)?,
        None => cache.attend_batch(q, seqs, scale)?,
    })
}

#[cfg(test)]
mod rope_tests {
    use burn::backend::Flex;
    use burn::nn::RotaryEncodingConfig;
    use burn::tensor::{Distribution, Tensor};

    /// The host loop against burn's own `RotaryEncoding::apply` (the independent reference),
    /// per sequence at its own position.
    #[test]
    fn host_rope_equals_burns_rotary_encoding_at_every_position() {
        let device = Default::default();
        let rope = RotaryEncodingConfig::new(64, 16).init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::random([3, 2, 5, 16], Distribution::Normal(0.0, 1.0), &device);
        let pasts = [0, 7, 40];
        let got = super::rope_host(&rope, x.clone(), &pasts);
        for (i, &p) in pasts.iter().enumerate() {
            let want = rope.apply(x.clone().narrow(0, i, 1), p);
            let g = got
                .clone()
                .narrow(0, i, 1)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let w = want.into_data().to_vec::<f32>().unwrap();
            let d = crate::diff::max_abs_diff(&g, &w).unwrap();
            assert!(d <= 1e-6, "sequence {i} at {p}: {d}");
        }
    }
}
