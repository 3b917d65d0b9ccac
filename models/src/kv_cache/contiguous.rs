//! The pre-paging baseline: each sequence reserves `max_len` token slots of K and V at admission,
//! whatever it will use; a fork copies the parent's whole reservation (nothing can be shared).

use burn::tensor::{backend::Backend, Tensor};

use super::block_pool::{PoolError, SeqId};
use super::KvCache;
use crate::attention::ContiguousCache;
use crate::kernels::{AttentionBackend, Visibility};

struct Slot<B: Backend> {
    k: ContiguousCache<B>,
    v: ContiguousCache<B>,
}

/// Contiguous K/V reservations of one layer for up to `max_seqs` sequences.
pub struct ContiguousKv<B: Backend> {
    slots: Vec<Option<Slot<B>>>,
    max_len: usize,
    heads: usize,
    k_width: usize,
    v_width: usize,
    device: B::Device,
}

impl<B: AttentionBackend> ContiguousKv<B> {
    /// Room for `max_seqs` sequences of up to `max_len` tokens each (reserved at admission).
    pub fn new(
        max_seqs: usize,
        max_len: usize,
        heads: usize,
        k_width: usize,
        v_width: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            slots: (0..max_seqs).map(|_| None).collect(),
            max_len,
            heads,
            k_width,
            v_width,
            device: device.clone(),
        }
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

    fn free_slot(&self) -> Result<usize, PoolError> {
        let used = self.slots.iter().filter(|s| s.is_some()).count();
        self.slots
            .iter()
            .position(Option::is_none)
            .ok_or(PoolError::Exhausted {
                need: 1,
                free: 0,
                total: used,
            })
    }

    fn bytes_per_token(&self) -> usize {
        self.heads * (self.k_width + self.v_width) * 4
    }
}

impl<B: AttentionBackend> KvCache<B> for ContiguousKv<B> {
    fn add_sequence(&mut self) -> Result<SeqId, PoolError> {
        let i = self.free_slot()?;
        let mk = |w| ContiguousCache::new(1, self.heads, self.max_len, w, &self.device);
        self.slots[i] = Some(Slot {
            k: mk(self.k_width),
            v: mk(self.v_width),
        });
        Ok(i as SeqId)
    }

    fn append(
        &mut self,
        seq: SeqId,
        k: Tensor<B, 3>,
        v: Option<Tensor<B, 3>>,
    ) -> Result<(), PoolError> {
        let (max_len, v_width) = (self.max_len, self.v_width);
        let s = self.slot_mut(seq)?;
        let n = k.dims()[1];
        if s.k.len() + n > max_len {
            return Err(PoolError::Exhausted {
                need: s.k.len() + n,
                free: max_len - s.k.len(),
                total: max_len,
            });
        }
        // Without separate values (MLA), the values are the first `v_width` columns of the keys.
        let v = v.unwrap_or_else(|| k.clone().narrow(2, 0, v_width));
        s.k.append(k.unsqueeze_dim(0))
            .expect("length checked above");
        s.v.append(v.unsqueeze_dim(0))
            .expect("length checked above");
        Ok(())
    }

    fn len(&self, seq: SeqId) -> Result<usize, PoolError> {
        Ok(self.slot(seq)?.k.len())
    }

    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<(), PoolError> {
        let s = self.slot_mut(seq)?;
        s.k.truncate(len);
        s.v.truncate(len);
        Ok(())
    }

    fn fork(&mut self, seq: SeqId) -> Result<SeqId, PoolError> {
        let (k, v) = {
            let s = self.slot(seq)?;
            (s.k.view(), s.v.view())
        };
        let child = self.add_sequence()?;
        let c = self.slot_mut(child)?;
        // A full copy of the parent's tokens: the baseline cannot share memory.
        c.k.append(k * 1.0).expect("same max_len");
        c.v.append(v * 1.0).expect("same max_len");
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
        Ok(B::grouped_attention(q, s.k.view(), s.v.view(), vis, scale))
    }

    fn bytes_reserved(&self) -> usize {
        self.slots.iter().flatten().count() * self.max_len * self.bytes_per_token()
    }

    fn bytes_used(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|s| s.k.len())
            .sum::<usize>()
            * self.bytes_per_token()
    }
}
