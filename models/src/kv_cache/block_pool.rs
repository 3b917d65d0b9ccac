//! A pool of fixed-size KV blocks and the block table of each sequence, with no tensors.
//!
//! A sequence's logical token `i` lives in block `table[i / block_size]` at slot
//! `i % block_size`. Blocks are allocated when a sequence grows into a new block, reference
//! counted so that forked sequences share their common prefix, and copied on write: appending to
//! a shared, partly filled last block first gives the writer its own copy
//! ([`Append::copy_from`] tells the caller which block's slots to copy).

use std::collections::BTreeMap;

/// Identifies a sequence in a pool.
pub type SeqId = u64;

/// Errors of the block pool; each names the offending value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// Not enough free blocks.
    #[error("block pool exhausted: need {need} free blocks, {free} of {total} free")]
    Exhausted {
        need: usize,
        free: usize,
        total: usize,
    },
    /// A sequence id the pool does not hold.
    #[error("unknown sequence {0}")]
    UnknownSequence(SeqId),
    /// Rows whose shape does not match the cache's layout.
    #[error("rows of shape {got} do not match the cache layout {expected}")]
    Layout { expected: String, got: String },
    /// A block size that is not one of the supported powers of two.
    #[error("block size {0} is not supported (8, 16, 32 or 64 tokens)")]
    BlockSize(usize),
}

/// What an append did to the block table, for the tensor side to mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// When the last block was shared: the block whose filled slots must be copied into the new
    /// private block (the first entry of `new_blocks`) before writing.
    pub copy_from: Option<usize>,
    /// Blocks newly added to the table, in order.
    pub new_blocks: Vec<usize>,
    /// Where the appended tokens go: `(block, slot)` for each.
    pub slots: Vec<(usize, usize)>,
}

#[derive(Debug, Clone, Default)]
struct Sequence {
    table: Vec<usize>,
    len: usize,
}

/// The pool and the block tables of its sequences.
#[derive(Debug, Clone)]
pub struct BlockPool {
    block_size: usize,
    refcount: Vec<u32>,
    free: Vec<usize>,
    seqs: BTreeMap<SeqId, Sequence>,
    next_id: SeqId,
}

impl BlockPool {
    /// A pool of `n_blocks` blocks of `block_size` tokens (8, 16, 32 or 64).
    pub fn new(n_blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        if ![8, 16, 32, 64].contains(&block_size) {
            return Err(PoolError::BlockSize(block_size));
        }
        Ok(Self {
            block_size,
            refcount: vec![0; n_blocks],
            // Pop from the end: hand out low block numbers first.
            free: (0..n_blocks).rev().collect(),
            seqs: BTreeMap::new(),
            next_id: 0,
        })
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool.
    pub fn total_blocks(&self) -> usize {
        self.refcount.len()
    }

    /// Blocks not held by any sequence.
    pub fn free_blocks(&self) -> usize {
        self.free.len()
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.block_size)
    }

    /// Reference count of a block (0 when free).
    pub fn refcount(&self, block: usize) -> u32 {
        self.refcount[block]
    }

    /// A new, empty sequence.
    pub fn add_sequence(&mut self) -> SeqId {
        let id = self.next_id;
        self.next_id += 1;
        self.seqs.insert(id, Sequence::default());
        id
    }

    fn seq(&self, id: SeqId) -> Result<&Sequence, PoolError> {
        self.seqs.get(&id).ok_or(PoolError::UnknownSequence(id))
    }

    /// Tokens held by a sequence.
    pub fn len(&self, id: SeqId) -> Result<usize, PoolError> {
        Ok(self.seq(id)?.len)
    }

    /// A sequence's block table.
    pub fn table(&self, id: SeqId) -> Result<&[usize], PoolError> {
        Ok(&self.seq(id)?.table)
    }

    /// Sequences held.
    pub fn sequences(&self) -> impl Iterator<Item = SeqId> + '_ {
        self.seqs.keys().copied()
    }

    /// Free blocks `append(id, n)` would take, including a copy-on-write copy.
    pub fn blocks_needed(&self, id: SeqId, n: usize) -> Result<usize, PoolError> {
        let s = self.seq(id)?;
        let grow = self.blocks_for(s.len + n) - s.table.len();
        let partial = s.len % self.block_size != 0;
        let cow = n > 0 && partial && s.table.last().is_some_and(|&b| self.refcount[b] > 1);
        Ok(grow + usize::from(cow))
    }

    fn take(&mut self) -> usize {
        let b = self
            .free
            .pop()
            .expect("checked that enough blocks are free");
        self.refcount[b] = 1;
        b
    }

    fn release(&mut self, block: usize) {
        self.refcount[block] -= 1;
        if self.refcount[block] == 0 {
            self.free.push(block);
        }
    }

    /// Makes room for `n` more tokens of sequence `id`. All or nothing: on error nothing changed.
    pub fn append(&mut self, id: SeqId, n: usize) -> Result<Append, PoolError> {
        let need = self.blocks_needed(id, n)?;
        if need > self.free.len() {
            return Err(PoolError::Exhausted {
                need,
                free: self.free.len(),
                total: self.total_blocks(),
            });
        }
        let bs = self.block_size;
        let mut seq = self.seqs.remove(&id).expect("checked by blocks_needed");
        let mut out = Append {
            copy_from: None,
            new_blocks: Vec::new(),
            slots: Vec::with_capacity(n),
        };
        if n > 0 && !seq.len.is_multiple_of(bs) {
            let last = *seq.table.last().expect("a partial block exists");
            if self.refcount[last] > 1 {
                let copy = self.take();
                self.release(last);
                *seq.table.last_mut().expect("non-empty") = copy;
                out.copy_from = Some(last);
                out.new_blocks.push(copy);
            }
        }
        for i in seq.len..seq.len + n {
            if i % bs == 0 {
                let b = self.take();
                seq.table.push(b);
                out.new_blocks.push(b);
            }
            out.slots.push((seq.table[i / bs], i % bs));
        }
        seq.len += n;
        self.seqs.insert(id, seq);
        Ok(out)
    }

    /// A new sequence sharing all of `id`'s blocks (parallel sampling, a shared prompt).
    pub fn fork(&mut self, id: SeqId) -> Result<SeqId, PoolError> {
        let parent = self.seq(id)?.clone();
        for &b in &parent.table {
            self.refcount[b] += 1;
        }
        let child = self.add_sequence();
        self.seqs.insert(child, parent);
        Ok(child)
    }

    /// Keeps the first `len` tokens of `id` (speculative rollback), releasing whole blocks past it.
    pub fn truncate(&mut self, id: SeqId, len: usize) -> Result<(), PoolError> {
        let mut seq = self
            .seqs
            .remove(&id)
            .ok_or(PoolError::UnknownSequence(id))?;
        seq.len = seq.len.min(len);
        let keep = self.blocks_for(seq.len);
        for b in seq.table.split_off(keep) {
            self.release(b);
        }
        self.seqs.insert(id, seq);
        Ok(())
    }

    /// Drops a sequence, releasing its blocks.
    pub fn free(&mut self, id: SeqId) -> Result<(), PoolError> {
        let seq = self
            .seqs
            .remove(&id)
            .ok_or(PoolError::UnknownSequence(id))?;
        for b in seq.table {
            self.release(b);
        }
        Ok(())
    }

    /// Token slots held by blocks in use (each shared block once).
    pub fn slots_reserved(&self) -> usize {
        (self.total_blocks() - self.free.len()) * self.block_size
    }

    /// Token slots holding a live token (each shared block once): the filled prefix of every
    /// block in use, taking for each block the longest fill any sequence gives it.
    pub fn slots_used(&self) -> usize {
        let mut fill: BTreeMap<usize, usize> = BTreeMap::new();
        for s in self.seqs.values() {
            for (i, &b) in s.table.iter().enumerate() {
                let f = (s.len - i * self.block_size).min(self.block_size);
                let e = fill.entry(b).or_insert(0);
                *e = (*e).max(f);
            }
        }
        fill.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_allocated_on_demand() {
        let mut p = BlockPool::new(4, 8).unwrap();
        let s = p.add_sequence();
        let a = p.append(s, 5).unwrap();
        assert_eq!(a.new_blocks, vec![0]);
        assert_eq!(a.slots, (0..5).map(|i| (0, i)).collect::<Vec<_>>());
        let a = p.append(s, 4).unwrap();
        assert_eq!(a.new_blocks, vec![1]);
        assert_eq!(a.slots, vec![(0, 5), (0, 6), (0, 7), (1, 0)]);
        assert_eq!(
            (
                p.len(s).unwrap(),
                p.free_blocks(),
                p.slots_reserved(),
                p.slots_used()
            ),
            (9, 2, 16, 9)
        );
    }

    #[test]
    fn allocating_beyond_the_pool_is_an_error_and_changes_nothing() {
        let mut p = BlockPool::new(2, 8).unwrap();
        let s = p.add_sequence();
        p.append(s, 10).unwrap();
        let err = p.append(s, 7).unwrap_err();
        assert_eq!(
            err,
            PoolError::Exhausted {
                need: 1,
                free: 0,
                total: 2
            }
        );
        assert_eq!(p.len(s).unwrap(), 10);
        assert_eq!(p.append(s, 6).unwrap().new_blocks, Vec::<usize>::new());
    }

    #[test]
    fn a_write_after_fork_copies_the_shared_block_and_refcounts_return_to_zero() {
        let mut p = BlockPool::new(8, 8).unwrap();
        let parent = p.add_sequence();
        p.append(parent, 12).unwrap(); // blocks 0 (full) and 1 (4 of 8)
        let child = p.fork(parent).unwrap();
        assert_eq!((p.refcount(0), p.refcount(1)), (2, 2));
        let a = p.append(child, 1).unwrap();
        // The child gets a private copy of block 1; the parent's table is unchanged.
        assert_eq!(a.copy_from, Some(1));
        assert_eq!(a.new_blocks, vec![2]);
        assert_eq!(a.slots, vec![(2, 4)]);
        assert_eq!(p.table(parent).unwrap(), &[0, 1]);
        assert_eq!(p.table(child).unwrap(), &[0, 2]);
        assert_eq!((p.refcount(0), p.refcount(1), p.refcount(2)), (2, 1, 1));
        // The parent writes into its own block 1 without a copy.
        assert_eq!(p.append(parent, 1).unwrap().copy_from, None);
        p.free(parent).unwrap();
        p.free(child).unwrap();
        assert!((0..8).all(|b| p.refcount(b) == 0));
        assert_eq!(p.free_blocks(), 8);
    }

    #[test]
    fn a_full_shared_block_is_not_copied() {
        let mut p = BlockPool::new(8, 8).unwrap();
        let parent = p.add_sequence();
        p.append(parent, 16).unwrap();
        let child = p.fork(parent).unwrap();
        let a = p.append(child, 1).unwrap();
        assert_eq!((a.copy_from, a.new_blocks.len()), (None, 1));
        assert_eq!(p.slots_used(), 17);
    }

    #[test]
    fn truncate_releases_whole_blocks_past_the_new_length() {
        let mut p = BlockPool::new(4, 8).unwrap();
        let s = p.add_sequence();
        p.append(s, 20).unwrap();
        p.truncate(s, 9).unwrap();
        assert_eq!(
            (
                p.len(s).unwrap(),
                p.table(s).unwrap().len(),
                p.free_blocks()
            ),
            (9, 2, 2)
        );
        p.truncate(s, 0).unwrap();
        assert_eq!(p.free_blocks(), 4);
    }

    #[test]
    fn unknown_sequences_and_block_sizes_are_errors() {
        let mut p = BlockPool::new(4, 16).unwrap();
        assert_eq!(p.append(7, 1).unwrap_err(), PoolError::UnknownSequence(7));
        assert_eq!(BlockPool::new(4, 12).unwrap_err(), PoolError::BlockSize(12));
    }
}
