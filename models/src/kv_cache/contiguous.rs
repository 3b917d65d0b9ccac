//! The pre-paging baseline: each sequence reserves `max_len` token slots at admission, whatever
//! it will use, filled front to back; a fork copies the parent's tokens (nothing can be shared).
//! Appends write in place where the backend allows it ([`AttentionBackend::cache_write`]).

use burn::tensor::{backend::Backend, Tensor};

use super::block_pool::{PoolError, SeqId};
use super::{CacheLayout, KvCache, Values};
use crate::kernels::{AttentionBackend, Visibility};

/// One sequence's reservation.
struct Slot<B: Backend> {
    /// `[1, heads, max_len, k_width]`; always `Some` between calls (taken during a write so that
    /// the write happens in place).
    k: Option<Tensor<B, 4>>,
    /// `[1, heads, max_len, v_width]` for [`Values::Separate`], `None` otherwise.
    v: Option<Tensor<B, 4>>,
    /// Tokens filled.
    len: usize,
}

impl<B: AttentionBackend> Slot<B> {
    /// Writes rows after the filled ones, in place where the backend allows it (the caller has
    /// checked the room and the layout).
    ///
    /// # Shapes
    /// - `k`: `[1, heads, n, k_width]`; `v`: `[1, heads, n, v_width]` or `None`
    fn write(&mut self, k: Tensor<B, 4>, v: Option<Tensor<B, 4>>) {
        let (at, n) = ([0, 0, self.len], k.dims()[2]);
        let kb = self.k.take().expect("key buffer present between calls");
        self.k = Some(B::cache_write(kb, at, k));
        if let (Some(vb), Some(v)) = (self.v.take(), v) {
            self.v = Some(B::cache_write(vb, at, v));
        }
        self.len += n;
    }
}

/// Contiguous reservations of one layer for up to `max_seqs` sequences.
pub struct ContiguousKv<B: Backend> {
    slots: Vec<Option<Slot<B>>>,
    max_len: usize,
    layout: CacheLayout,
    device: B::Device,
}

impl<B: AttentionBackend> ContiguousKv<B> {
    /// Room for `max_seqs` sequences of up to `max_len` tokens each (reserved at admission).
    pub fn new(max_seqs: usize, max_len: usize, layout: CacheLayout, device: &B::Device) -> Self {
        Self {
            slots: (0..max_seqs).map(|_| None).collect(),
            max_len,
            layout,
            device: device.clone(),
        }
    }

    /// Token slots reserved per sequence.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn slot(&self, seq: SeqId) -> Result<&Slot<B>, PoolError> {
        self.slots
            .get(seq as usize)
            .and_then(Option::as_ref)
            .ok_or(PoolError::UnknownSequence(seq))
    }

    fn slot_mut(&mut self, seq: SeqId) -> Result<&mut Slot<B>, PoolError> {
        self.slots
            .get_mut(seq as usize)
            .and_then(Option::as_mut)
            .ok_or(PoolError::UnknownSequence(seq))
    }

    /// `seq`'s filled value rows (a view of the keys for MLA).
    fn values_of(&self, s: &Slot<B>) -> Tensor<B, 4> {
        match (self.layout.values, &s.v) {
            (Values::Separate(_), Some(v)) => v.clone().narrow(2, 0, s.len),
            (_, _) => key_view(s).narrow(3, 0, self.layout.v_width()),
        }
    }

    /// Bytes of `tokens(slot)` token slots of every sequence held.
    fn bytes_of(&self, tokens: impl Fn(&Slot<B>) -> usize) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|s| Self::bytes_per_slot(s) * tokens(s))
            .sum()
    }

    /// Bytes of one reserved token slot, measured from a slot's tensors.
    fn bytes_per_slot(s: &Slot<B>) -> usize {
        let bytes = |t: &Tensor<B, 4>| t.shape().num_elements() * t.dtype().size();
        let total = s.k.as_ref().map_or(0, bytes) + s.v.as_ref().map_or(0, bytes);
        let cap = s.k.as_ref().map_or(1, |k| k.dims()[2]).max(1);
        total / cap
    }
}

/// The filled key rows of a slot, as a view.
fn key_view<B: Backend>(s: &Slot<B>) -> Tensor<B, 4> {
    s.k.as_ref()
        .expect("key buffer present between calls")
        .clone()
        .narrow(2, 0, s.len)
}

impl<B: AttentionBackend> KvCache<B> for ContiguousKv<B> {
    fn layout(&self) -> CacheLayout {
        self.layout
    }

    fn add_sequence(&mut self) -> Result<SeqId, PoolError> {
        let used = self.slots.iter().filter(|s| s.is_some()).count();
        let i = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(PoolError::Exhausted {
                need: 1,
                free: 0,
                total: used,
            })?;
        let l = self.layout;
        let mk = |w| Tensor::zeros([1, l.heads, self.max_len, w], &self.device);
        self.slots[i] = Some(Slot {
            k: Some(mk(l.k_width)),
            v: match l.values {
                Values::Separate(w) => Some(mk(w)),
                Values::PrefixOfKeys(_) => None,
            },
            len: 0,
        });
        Ok(i as SeqId)
    }

    /// # Shapes
    /// - `k`: `[heads, s, k_width]`; `v`: `[heads, s, v_width]` for separate values, else `None`
    fn append(
        &mut self,
        seq: SeqId,
        k: Tensor<B, 3>,
        v: Option<Tensor<B, 3>>,
    ) -> Result<(), PoolError> {
        self.layout.check(&k, v.as_ref())?;
        let max_len = self.max_len;
        let s = self.slot_mut(seq)?;
        let n = k.dims()[1];
        if s.len + n > max_len {
            return Err(PoolError::Exhausted {
                need: s.len + n,
                free: max_len - s.len,
                total: max_len,
            });
        }
        s.write(k.unsqueeze_dim(0), v.map(|v| v.unsqueeze_dim(0)));
        Ok(())
    }

    /// One token per sequence, written in place into each reservation. All or nothing: every
    /// sequence is checked for room before anything is written.
    fn append_step(
        &mut self,
        seqs: &[SeqId],
        k: Tensor<B, 4>,
        v: Option<Tensor<B, 4>>,
    ) -> Result<(), PoolError> {
        self.layout.check(&k, v.as_ref())?;
        for &seq in seqs {
            let len = self.slot(seq)?.len;
            if len + 1 > self.max_len {
                return Err(PoolError::Exhausted {
                    need: len + 1,
                    free: 0,
                    total: self.max_len,
                });
            }
        }
        for (i, &seq) in seqs.iter().enumerate() {
            let s = self.slot_mut(seq)?;
            let row = |t: &Tensor<B, 4>| t.clone().narrow(0, i, 1);
            s.write(row(&k), v.as_ref().map(row));
        }
        Ok(())
    }

    fn len(&self, seq: SeqId) -> Result<usize, PoolError> {
        Ok(self.slot(seq)?.len)
    }

    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<(), PoolError> {
        let s = self.slot_mut(seq)?;
        s.len = s.len.min(len);
        Ok(())
    }

    fn fork(&mut self, seq: SeqId) -> Result<SeqId, PoolError> {
        let (k, v) = {
            let s = self.slot(seq)?;
            // `* 1.0`: an owned copy of the parent's tokens (the baseline cannot share memory).
            let v = s.v.as_ref().map(|v| v.clone().narrow(2, 0, s.len) * 1.0);
            (key_view(s) * 1.0, v)
        };
        let child = self.add_sequence()?;
        let sq = |t: Tensor<B, 4>| t.squeeze_dim::<3>(0);
        self.append(child, sq(k), v.map(sq))?;
        Ok(child)
    }

    fn free(&mut self, seq: SeqId) -> Result<(), PoolError> {
        self.slot(seq)?;
        self.slots[seq as usize] = None;
        Ok(())
    }

    fn attend(
        &self,
        q: Tensor<B, 4>,
        seq: SeqId,
        vis: Visibility,
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        let s = self.slot(seq)?;
        Ok(B::grouped_attention(
            q,
            key_view(s),
            self.values_of(s),
            vis,
            scale,
        ))
    }

    fn attend_prefixes(
        &self,
        q: Tensor<B, 4>,
        seqs: &[SeqId],
        lens: &[usize],
        scale: f32,
    ) -> Result<Tensor<B, 4>, PoolError> {
        let (mut k, mut v) = (
            Vec::with_capacity(seqs.len()),
            Vec::with_capacity(seqs.len()),
        );
        for (&seq, &len) in seqs.iter().zip(lens) {
            let s = self.slot(seq)?;
            super::check_prefix(len, s.len)?;
            k.push(key_view(s).narrow(2, 0, len));
            v.push(self.values_of(s).narrow(2, 0, len));
        }
        Ok(B::grouped_attention_batch(q, &k, &v, scale))
    }

    fn keys(&self, seq: SeqId) -> Result<Tensor<B, 4>, PoolError> {
        Ok(key_view(self.slot(seq)?))
    }

    fn stored(&self, seq: SeqId) -> Result<(Tensor<B, 4>, Option<Tensor<B, 4>>), PoolError> {
        let s = self.slot(seq)?;
        Ok((key_view(s), s.v.clone().map(|v| v.narrow(2, 0, s.len))))
    }

    /// Bytes of the reserved slot tensors (measured from their shapes and dtype).
    fn bytes_reserved(&self) -> usize {
        self.bytes_of(|_| self.max_len)
    }

    fn bytes_used(&self) -> usize {
        self.bytes_of(|s| s.len)
    }
}
