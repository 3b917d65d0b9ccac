//! A contiguous KV buffer for one layer: `capacity` token slots reserved at creation (the
//! pre-paging baseline), filled front to back.

use burn::tensor::{backend::Backend, Tensor};

use crate::kernels::AttentionBackend;
use crate::{ModelError, Result};

/// `[batch, heads, capacity, width]` slots, of which the first `len` positions are filled.
#[derive(Debug, Clone)]
pub struct ContiguousCache<B: Backend> {
    /// Always `Some` between calls; taken during `append` so the write happens in place.
    buf: Option<Tensor<B, 4>>,
    len: usize,
}

impl<B: Backend> ContiguousCache<B> {
    /// Reserves `capacity` zeroed token slots.
    pub fn new(
        batch: usize,
        heads: usize,
        capacity: usize,
        width: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            buf: Some(Tensor::zeros([batch, heads, capacity, width], device)),
            len: 0,
        }
    }

    fn buf(&self) -> &Tensor<B, 4> {
        self.buf
            .as_ref()
            .expect("cache buffer present between calls")
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `[batch, heads, capacity, width]` of the buffer.
    pub fn dims(&self) -> [usize; 4] {
        self.buf().dims()
    }

    /// Token slots reserved.
    pub fn capacity(&self) -> usize {
        self.buf().dims()[2]
    }

    /// Forgets every position from `len` on (speculative rollback, benchmark resets).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The filled positions, as a view (no copy on backends with strided views).
    ///
    /// # Shapes
    /// - output: `[batch, heads, len, width]`
    pub fn view(&self) -> Tensor<B, 4> {
        self.buf().clone().narrow(2, 0, self.len)
    }

    /// Bytes reserved by the buffer tensor (measured from its shape and dtype).
    pub fn bytes_reserved(&self) -> usize {
        super::tensor_bytes(self.buf())
    }

    /// Bytes of the filled positions.
    pub fn bytes_used(&self) -> usize {
        self.bytes_reserved() / self.capacity().max(1) * self.len
    }
}

impl<B: AttentionBackend> ContiguousCache<B> {
    /// Appends `s` positions.
    ///
    /// # Shapes
    /// - `x`: `[batch, heads, s, width]`
    pub fn append(&mut self, x: Tensor<B, 4>) -> Result<()> {
        let [b, h, cap, w] = self.buf().dims();
        let [xb, xh, s, xw] = x.dims();
        if [xb, xh, xw] != [b, h, w] {
            return Err(ModelError::Shape {
                what: "cache append",
                expected: format!("[{b}, {h}, s, {w}]"),
                got: format!("{:?}", x.dims()),
            });
        }
        if self.len + s > cap {
            return Err(ModelError::CacheFull {
                len: self.len,
                adding: s,
                capacity: cap,
            });
        }
        let buf = self.buf.take().expect("cache buffer present between calls");
        self.buf = Some(B::cache_write(buf, [0, 0, self.len], x));
        self.len += s;
        Ok(())
    }
}
