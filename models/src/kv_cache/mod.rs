//! KV cache memory management (PagedAttention, Kwon et al., SOSP 2023): one cache family behind
//! the [`KvCache`] trait, used by every model and suite.
//!
//! - [`block_pool`]: the tensor-free block pool and per-sequence block tables: allocation on
//!   demand, freeing, reference counts, copy-on-write fork for shared prefixes, and truncation for
//!   speculative rollback. Its logic is tested on its own, with no tensors.
//! - [`paged`]: the tensor-backed paged cache of one layer; attention reads it through the block
//!   table (flex streams rows through the table; other backends gather blocks first).
//! - [`contiguous`]: the pre-paging baseline, `max_len` token slots reserved per sequence.
//! - [`ModelCache`]: one cache per block of a model, holding the same sequences.

pub mod block_pool;
pub mod contiguous;
pub mod paged;

use std::marker::PhantomData;

pub use block_pool::{BlockPool, PoolError, SeqId};
pub use contiguous::ContiguousKv;
pub use paged::PagedCache;

use burn::tensor::Tensor;

use crate::kernels::{AttentionBackend, Visibility};

/// Where the values of a cached row are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// Separate value rows of this width (GQA).
    Separate(usize),
    /// The first `width` columns of the key rows (MLA: the values are the latent `c_KV`).
    PrefixOfKeys(usize),
}

/// The shape of one layer's cached rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLayout {
    /// Heads with rows of their own (GQA: the KV heads; MLA: 1, the shared latent).
    pub heads: usize,
    /// Width of a key row (MLA: `d_c + d_rope`).
    pub k_width: usize,
    /// Where the values are.
    pub values: Values,
}

impl CacheLayout {
    /// Width of a value row.
    pub fn v_width(&self) -> usize {
        match self.values {
            Values::Separate(w) | Values::PrefixOfKeys(w) => w,
        }
    }

    /// Checks rows to append: `k` `[.., heads, s, k_width]`, and values exactly when they are
    /// stored separately.
    pub fn check<const D: usize>(
        &self,
        k: &Tensor<impl burn::tensor::backend::Backend, D>,
        v: Option<&Tensor<impl burn::tensor::backend::Backend, D>>,
    ) -> Result<(), PoolError> {
        let kd = k.dims();
        let vd = v.map(|v| v.dims());
        let ok_k = kd[D - 3] == self.heads && kd[D - 1] == self.k_width;
        let ok_v = match (self.values, vd) {
            (Values::Separate(w), Some(vd)) => vd[D - 1] == w && vd[..D - 1] == kd[..D - 1],
            (Values::PrefixOfKeys(_), None) => true,
            _ => false,
        };
        if ok_k && ok_v {
            Ok(())
        } else {
            Err(PoolError::Layout {
                expected: format!("{self:?}"),
                got: format!("k {kd:?}, v {vd:?}"),
            })
        }
    }

    /// Elements stored per token (values inside the keys are not stored twice).
    pub fn elems_per_token(&self) -> usize {
        let v = match self.values {
            Values::Separate(w) => w,
            Values::PrefixOfKeys(_) => 0,
        };
        self.heads * (self.k_width + v)
    }
}

/// The KV cache of one layer for many sequences.
pub trait KvCache<B: AttentionBackend> {
    /// The shape of the rows it holds.
    fn layout(&self) -> CacheLayout;
    /// Admits a new, empty sequence (the contiguous cache reserves its `max_len` here).
    fn add_sequence(&mut self) -> Result<SeqId, PoolError>;
    /// Appends `s` tokens to `seq`. All or nothing: on error, nothing changes.
    ///
    /// # Shapes
    /// - `k`: `[heads, s, k_width]`; `v`: `[heads, s, v_width]`, or `None` when the values are
    ///   part of the key rows (MLA)
    fn append(
        &mut self,
        seq: SeqId,
        k: Tensor<B, 3>,
        v: Option<Tensor<B, 3>>,
    ) -> Result<(), PoolError>;
    /// Appends one token to each of `seqs` (a decode step). The default appends one sequence at
    /// a time: on error, the sequences before the failing one keep their token.
    ///
    /// # Shapes
    /// - `k`: `[n, heads, 1, k_width]`; `v`: `[n, heads, 1, v_width]` or `None`
    fn append_step(
        &mut self,
        seqs: &[SeqId],
        k: Tensor<B, 4>,
        v: Option<Tensor<B, 4>>,
    ) -> Result<(), PoolError> {
        for (i, &s) in seqs.iter().enumerate() {
            let row = |t: &Tensor<B, 4>| t.clone().narrow(0, i, 1).squeeze_dim::<3>(0);
            self.append(s, row(&k), v.as_ref().map(row))?;
        }
        Ok(())
    }
    /// Tokens held by `seq`.
    fn len(&self, seq: SeqId) -> Result<usize, PoolError>;
    /// Keeps the first `len` tokens of `seq` (speculative rollback).
    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<(), PoolError>;
    /// A new sequence starting with `seq`'s tokens (shared where the cache can share).
    fn fork(&mut self, seq: SeqId) -> Result<SeqId, PoolError>;
    /// Drops `seq` and its memory.
    fn free(&mut self, seq: SeqId) -> Result<(), PoolError>;
    /// Attention of `q` over `seq`'s tokens.
    ///
    /// # Shapes
    /// - `q`: `[1, heads, rows, k_width]` → `[1, heads, rows, v_width]`
    fn attend(
        &self,
        q: Tensor<B, 4>,
        seq: SeqId,
        vis: Visibility,
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError>;
    /// Decode attention of several sequences, row `i` of `q` against all of `seqs[i]`'s tokens.
    ///
    /// # Shapes
    /// - `q`: `[n, heads, rows, k_width]` → `[n, heads, rows, v_width]`
    fn attend_batch(
        &self,
        q: Tensor<B, 4>,
        seqs: &[SeqId],
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        let lens = seqs
            .iter()
            .map(|&s| self.len(s))
            .collect::<Result<Vec<_>, _>>()?;
        self.attend_prefixes(q, seqs, &lens, scale)
    }
    /// Attention of decode rows over prefixes, in one call: row `i` of `q` against the first
    /// `lens[i]` tokens of `seqs[i]` (a sequence may appear in many rows). A ragged step runs as
    /// such rows: token `j` of a sequence that held `p` tokens sees `p + j + 1`. The default
    /// attends row by row; the caches override it with one batched kernel call.
    ///
    /// # Shapes
    /// - `q`: `[n, heads, rows, k_width]` → `[n, heads, rows, v_width]`
    fn attend_prefixes(
        &self,
        q: Tensor<B, 4>,
        seqs: &[SeqId],
        lens: &[usize],
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        let outs = seqs
            .iter()
            .zip(lens)
            .enumerate()
            .map(|(i, (&s, &len))| {
                check_prefix(len, self.len(s)?)?;
                let vis = Visibility::Causal {
                    s: 1,
                    past: len - 1,
                };
                self.attend(q.clone().narrow(0, i, 1), s, vis, scale)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::cat(outs, 0))
    }
    /// `seq`'s key rows as one contiguous tensor (a view where the cache allows it).
    ///
    /// # Shapes
    /// - output: `[1, heads, len, k_width]`
    fn keys(&self, seq: SeqId) -> Result<Tensor<B, 4>, PoolError>;
    /// Everything the cache stores for `seq`'s tokens, read back: the key rows, and the value
    /// rows where they are stored apart from the keys (`None` when values are a prefix of the
    /// keys). Measured memory comes from these bytes, not from the layout's arithmetic.
    ///
    /// # Shapes
    /// - output: `[1, heads, len, k_width]` and `[1, heads, len, v_width]`
    fn stored(&self, seq: SeqId) -> Result<(Tensor<B, 4>, Option<Tensor<B, 4>>), PoolError>;
    /// Bytes reserved for the sequences held.
    fn bytes_reserved(&self) -> usize;
    /// Bytes holding live tokens.
    fn bytes_used(&self) -> usize;
}

/// Refuses an empty prefix or one longer than the `held` tokens.
pub(crate) fn check_prefix(len: usize, held: usize) -> Result<(), PoolError> {
    if len == 0 || len > held {
        return Err(PoolError::Layout {
            expected: format!("a prefix of 1..={held} tokens"),
            got: format!("{len} tokens"),
        });
    }
    Ok(())
}

/// Bytes the cache holds for `seq`'s tokens, counted from the data read back through
/// [`KvCache::stored`] (its element type as stored, every row written), not from the layout.
pub fn stored_bytes<B: AttentionBackend, C: KvCache<B> + ?Sized>(
    cache: &C,
    seq: SeqId,
) -> Result<usize, PoolError> {
    let (k, v) = cache.stored(seq)?;
    let bytes = |t: Tensor<B, 4>| t.into_data().bytes.len();
    Ok(bytes(k) + v.map_or(0, bytes))
}

/// One [`KvCache`] per block of a model, all holding the same sequences under the same ids.
pub struct ModelCache<B: AttentionBackend, C: KvCache<B>> {
    /// The caches, bottom block first.
    pub layers: Vec<C>,
    _backend: PhantomData<B>,
}

impl<B: AttentionBackend, C: KvCache<B>> ModelCache<B, C> {
    /// Wraps one cache per block.
    pub fn new(layers: Vec<C>) -> Self {
        Self {
            layers,
            _backend: PhantomData,
        }
    }

    /// Admits a new, empty sequence in every layer.
    pub fn add_sequence(&mut self) -> Result<SeqId, PoolError> {
        self.each(|c| c.add_sequence())
    }

    /// A new sequence starting with `seq`'s tokens, in every layer.
    pub fn fork(&mut self, seq: SeqId) -> Result<SeqId, PoolError> {
        self.each(|c| c.fork(seq))
    }

    /// Runs `f` on every layer; the layers must agree on the id it returns.
    fn each(&mut self, f: impl Fn(&mut C) -> Result<SeqId, PoolError>) -> Result<SeqId, PoolError> {
        let mut id = None;
        for c in &mut self.layers {
            let got = f(c)?;
            assert!(
                id.is_none_or(|i| i == got),
                "layers assigned different sequence ids ({id:?} and {got})"
            );
            id = Some(got);
        }
        id.ok_or(PoolError::UnknownSequence(SeqId::MAX))
    }

    /// Tokens held by `seq`.
    pub fn len(&self, seq: SeqId) -> Result<usize, PoolError> {
        match self.layers.first() {
            Some(c) => c.len(seq),
            None => Err(PoolError::UnknownSequence(seq)),
        }
    }

    /// Keeps the first `len` tokens of `seq` in every layer (speculative rollback).
    pub fn truncate(&mut self, seq: SeqId, len: usize) -> Result<(), PoolError> {
        self.layers
            .iter_mut()
            .try_for_each(|c| c.truncate(seq, len))
    }

    /// Drops `seq` from every layer.
    pub fn free(&mut self, seq: SeqId) -> Result<(), PoolError> {
        self.layers.iter_mut().try_for_each(|c| c.free(seq))
    }

    /// Bytes reserved over all layers.
    pub fn bytes_reserved(&self) -> usize {
        self.layers.iter().map(|c| c.bytes_reserved()).sum()
    }

    /// Bytes holding live tokens over all layers.
    pub fn bytes_used(&self) -> usize {
        self.layers.iter().map(|c| c.bytes_used()).sum()
    }
}
