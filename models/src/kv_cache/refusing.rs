//! Fault injection: a cache that takes a fixed number of appends and refuses every one after,
//! as an exhausted pool would. The harnesses that time the engine are tested with it: a forward
//! that fails mid-run must come back as an error, never as a skipped sample.

use burn::tensor::Tensor;

use super::{CacheLayout, KvCache, PoolError, SeqId};
use crate::kernels::{AttentionBackend, Visibility};

/// `inner`, refusing every append (one call, one or many tokens) after the first `appends`.
pub struct Refusing<C> {
    inner: C,
    left: usize,
}

impl<C> Refusing<C> {
    /// Wraps `inner`; it takes `appends` appends, then refuses.
    pub fn new(inner: C, appends: usize) -> Self {
        Self {
            inner,
            left: appends,
        }
    }

    fn take(&mut self) -> Result<(), PoolError> {
        if self.left == 0 {
            return Err(PoolError::Exhausted {
                need: 1,
                free: 0,
                total: 0,
            });
        }
        self.left -= 1;
        Ok(())
    }
}

impl<B: AttentionBackend, C: KvCache<B>> KvCache<B> for Refusing<C> {
    fn layout(&self) -> CacheLayout {
        self.inner.layout()
    }
    fn add_sequence(&mut self) -> Result<SeqId, PoolError> {
        self.inner.add_sequence()
    }
    fn append(
        &mut self,
        seq: SeqId,
        k: Tensor<B, 3>,
        v: Option<Tensor<B, 3>>,
    ) -> Result<(), PoolError> {
        self.take()?;
        self.inner.append(seq, k, v)
    }
    fn append_step(
        &mut self,
        seqs: &[SeqId],
        k: Tensor<B, 4>,
        v: Option<Tensor<B, 4>>,
    ) -> Result<(), PoolError> {
        self.take()?;
        self.inner.append_step(seqs, k, v)
    }
    fn len(&self, seq: SeqId) -> Result<usize, PoolError> {
        self.inner.len(seq)
    }
    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<(), PoolError> {
        self.inner.truncate(seq, len)
    }
    fn fork(&mut self, seq: SeqId) -> Result<SeqId, PoolError> {
        self.inner.fork(seq)
    }
    fn free(&mut self, seq: SeqId) -> Result<(), PoolError> {
        self.inner.free(seq)
    }
    fn attend(
        &self,
        q: Tensor<B, 4>,
        seq: SeqId,
        vis: Visibility,
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        self.inner.attend(q, seq, vis, scale)
    }
    fn attend_batch(
        &self,
        q: Tensor<B, 4>,
        seqs: &[SeqId],
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        self.inner.attend_batch(q, seqs, scale)
    }
    fn keys(&self, seq: SeqId) -> Result<Tensor<B, 4>, PoolError> {
        self.inner.keys(seq)
    }
    fn stored(&self, seq: SeqId) -> Result<(Tensor<B, 4>, Option<Tensor<B, 4>>), PoolError> {
        self.inner.stored(seq)
    }
    fn bytes_reserved(&self) -> usize {
        self.inner.bytes_reserved()
    }
    fn bytes_used(&self) -> usize {
        self.inner.bytes_used()
    }
}
