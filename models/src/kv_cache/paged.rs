//! The paged KV cache of one layer (PagedAttention): K and V pools of fixed-size blocks
//! `[heads, blocks, block_size, width]` shared by all sequences (head-major: on a CPU each head
//! then reads its blocks as long sequential runs; vLLM's GPU layout puts blocks first), addressed through the block
//! tables of a [`BlockPool`]. Serves GQA (separate K and V pools) and MLA (one pool of
//! `[c_KV | k_R]` rows whose first `d_c` columns are the values).

use burn::tensor::{backend::Backend, Tensor};

use super::block_pool::{BlockPool, PoolError, SeqId};
use super::{CacheLayout, KvCache, Values};
use crate::kernels::{gather_blocks, AttentionBackend, Visibility};

/// Paged K/V storage of one layer.
#[derive(Debug)]
pub struct PagedCache<B: Backend> {
    /// Block tables and reference counts.
    pub pool: BlockPool,
    k: Option<Tensor<B, 4>>,
    v: Option<Tensor<B, 4>>,
    layout: CacheLayout,
}

impl<B: AttentionBackend> PagedCache<B> {
    /// Reserves `n_blocks` blocks of `block_size` tokens of rows shaped by `layout`.
    pub fn new(
        n_blocks: usize,
        block_size: usize,
        layout: CacheLayout,
        device: &B::Device,
    ) -> Result<Self, PoolError> {
        let pool = BlockPool::new(n_blocks, block_size)?;
        let heads = layout.heads;
        let k = Tensor::zeros([heads, n_blocks, block_size, layout.k_width], device);
        let v = match layout.values {
            Values::Separate(w) => Some(Tensor::zeros([heads, n_blocks, block_size, w], device)),
            Values::PrefixOfKeys(_) => None,
        };
        Ok(Self {
            pool,
            k: Some(k),
            v,
            layout,
        })
    }

    fn k_pool(&self) -> &Tensor<B, 4> {
        self.k.as_ref().expect("pool present between calls")
    }

    /// The value rows as a pool-shaped tensor (a view of the key pool for MLA).
    fn v_pool(&self) -> Tensor<B, 4> {
        match &self.v {
            Some(v) => v.clone(),
            None => self.k_pool().clone().narrow(3, 0, self.layout.v_width()),
        }
    }

    /// Copies block `src` into block `dst` in every pool (copy on write).
    fn copy_block(&mut self, src: usize, dst: usize) {
        for slot in [&mut self.k, &mut self.v] {
            if let Some(pool) = slot.take() {
                // `* 1.0` makes an owned copy, so the in-place write below does not see a second
                // reference to the pool.
                let block = pool.clone().narrow(1, src, 1) * 1.0;
                *slot = Some(B::cache_write(pool, [0, dst, 0], block));
            }
        }
    }

    /// `seq`'s keys and values gathered into contiguous tensors (the reference read).
    ///
    /// # Shapes
    /// - output: `[1, heads, len, k_width]` and `[1, heads, len, v_width]`
    pub fn gather(&self, seq: SeqId) -> Result<(Tensor<B, 4>, Tensor<B, 4>), PoolError> {
        let len = self.pool.len(seq)?;
        let table = self.pool.table(seq)?;
        Ok((
            gather_blocks(self.k_pool().clone(), table, len),
            gather_blocks(self.v_pool(), table, len),
        ))
    }

    /// Bytes of one token slot across all pools.
    pub fn bytes_per_slot(&self) -> usize {
        self.layout.elems_per_token() * self.k_pool().dtype().size()
    }
}

/// The paged cache behind the common [`KvCache`] interface.
impl<B: AttentionBackend> KvCache<B> for PagedCache<B> {
    fn layout(&self) -> CacheLayout {
        self.layout
    }

    fn add_sequence(&mut self) -> Result<SeqId, PoolError> {
        Ok(self.pool.add_sequence())
    }

    /// Appends one token to each of `seqs` (a decode step), writing all rows in one pass.
    /// All or nothing: when the pool runs out, the sequences already extended are rolled back.
    ///
    /// # Shapes
    /// - `k`: `[seqs, heads, 1, k_width]`, `v`: `[seqs, heads, 1, v_width]` or `None` (MLA)
    fn append_step(
        &mut self,
        seqs: &[SeqId],
        k: Tensor<B, 4>,
        v: Option<Tensor<B, 4>>,
    ) -> Result<(), PoolError> {
        self.layout.check(&k, v.as_ref())?;
        let mut slots = Vec::with_capacity(seqs.len());
        for (i, &s) in seqs.iter().enumerate() {
            let a = match self.pool.append(s, 1) {
                Ok(a) => a,
                Err(e) => {
                    for &done in &seqs[..i] {
                        let len = self.pool.len(done)?;
                        self.pool.truncate(done, len - 1)?;
                    }
                    return Err(e);
                }
            };
            if let Some(src) = a.copy_from {
                self.copy_block(src, a.new_blocks[0]);
            }
            slots.push(a.slots[0]);
        }
        let kp = self.k.take().expect("pool present");
        self.k = Some(B::cache_scatter(kp, &slots, k));
        if let (Some(vp), Some(v)) = (self.v.take(), v) {
            self.v = Some(B::cache_scatter(vp, &slots, v));
        }
        Ok(())
    }

    /// Decode rows over prefixes in one call, row `i` of `q` against the first `lens[i]` tokens
    /// of `seqs[i]`, streamed through its block table.
    ///
    /// # Shapes
    /// - `q`: `[n, heads, rows, k_width]`
    /// - output: `[n, heads, rows, v_width]`
    fn attend_prefixes(
        &self,
        q: Tensor<B, 4>,
        seqs: &[SeqId],
        lens: &[usize],
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        let mut tables = Vec::with_capacity(seqs.len());
        for (&s, &len) in seqs.iter().zip(lens) {
            super::check_prefix(len, self.pool.len(s)?)?;
            tables.push(self.pool.table(s)?);
        }
        Ok(B::paged_attention_batch(
            q,
            self.k_pool().clone(),
            self.v_pool(),
            &tables,
            lens,
            scale,
        ))
    }

    fn keys(&self, seq: SeqId) -> Result<Tensor<B, 4>, PoolError> {
        let len = self.pool.len(seq)?;
        Ok(gather_blocks(
            self.k_pool().clone(),
            self.pool.table(seq)?,
            len,
        ))
    }

    fn stored(&self, seq: SeqId) -> Result<(Tensor<B, 4>, Option<Tensor<B, 4>>), PoolError> {
        let (len, table) = (self.pool.len(seq)?, self.pool.table(seq)?);
        Ok((
            gather_blocks(self.k_pool().clone(), table, len),
            self.v.clone().map(|v| gather_blocks(v, table, len)),
        ))
    }

    /// A sequence sharing all of `seq`'s blocks.
    fn fork(&mut self, seq: SeqId) -> Result<SeqId, PoolError> {
        self.pool.fork(seq)
    }

    /// Keeps the first `len` tokens of `seq`.
    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<(), PoolError> {
        self.pool.truncate(seq, len)
    }

    /// Drops `seq`, releasing its blocks.
    fn free(&mut self, seq: SeqId) -> Result<(), PoolError> {
        self.pool.free(seq)
    }

    /// Tokens held by `seq`.
    fn len(&self, seq: SeqId) -> Result<usize, PoolError> {
        self.pool.len(seq)
    }

    /// Appends `s` tokens to `seq`. All or nothing: when the pool is exhausted, nothing changes.
    ///
    /// # Shapes
    /// - `k`: `[heads, s, k_width]`
    /// - `v`: `[heads, s, v_width]` for [`Values::Separate`], `None` for [`Values::PrefixOfKeys`]
    fn append(
        &mut self,
        seq: SeqId,
        k: Tensor<B, 3>,
        v: Option<Tensor<B, 3>>,
    ) -> Result<(), PoolError> {
        self.layout.check(&k, v.as_ref())?;
        let s = k.dims()[1];
        let a = self.pool.append(seq, s)?;
        if let Some(src) = a.copy_from {
            self.copy_block(src, a.new_blocks[0]);
        }
        // Write runs of consecutive slots within one block at once.
        let mut i = 0;
        while i < s {
            let (block, slot) = a.slots[i];
            let run = a.slots[i..].iter().take_while(|(b, _)| *b == block).count();
            let write = |pool: Tensor<B, 4>, x: &Tensor<B, 3>| {
                // [heads, run, w] → [heads, 1, run, w] at (all heads, block, slot)
                B::cache_write(
                    pool,
                    [0, block, slot],
                    x.clone().narrow(1, i, run).unsqueeze_dim(1),
                )
            };
            let kp = self.k.take().expect("pool present");
            self.k = Some(write(kp, &k));
            if let (Some(vp), Some(v)) = (self.v.take(), v.as_ref()) {
                self.v = Some(write(vp, v));
            }
            i += run;
        }
        Ok(())
    }

    /// Attention of `q` over `seq`'s cached tokens, read through its block table.
    ///
    /// # Shapes
    /// - `q`: `[1, heads, rows, k_width]`
    /// - output: `[1, heads, rows, v_width]`
    fn attend(
        &self,
        q: Tensor<B, 4>,
        seq: SeqId,
        vis: Visibility,
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        let len = self.pool.len(seq)?;
        let table = self.pool.table(seq)?;
        Ok(B::paged_attention(
            q,
            self.k_pool().clone(),
            self.v_pool(),
            table,
            len,
            vis,
            scale,
        ))
    }

    /// Bytes held by blocks in use.
    fn bytes_reserved(&self) -> usize {
        self.pool.slots_reserved() * self.bytes_per_slot()
    }

    /// Bytes holding live tokens.
    fn bytes_used(&self) -> usize {
        self.pool.slots_used() * self.bytes_per_slot()
    }
}
