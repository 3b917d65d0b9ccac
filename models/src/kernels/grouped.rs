use burn::tensor::{activation::softmax, backend::Backend, Int, Tensor, TensorData};

/// Which keys each query row may see.
///
/// Query rows are laid out as `groups × s`: row `r` is query position `r % s` of the current step,
/// whose absolute position is `past + r % s`. Grouping puts the query heads that share one K/V
/// head (GQA) or one latent (absorbed MLA) into the row dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Every row sees every key (single-token decode against the whole cache).
    All,
    /// Causal prefill: row `r` sees key `j` iff `j <= past + r % s`.
    Causal {
        /// New query positions in this step.
        s: usize,
        /// Tokens already cached before this step.
        past: usize,
    },
}

impl Visibility {
    /// Number of keys row `r` may see, out of `t`.
    pub fn visible(&self, r: usize, t: usize) -> usize {
        match *self {
            Visibility::All => t,
            Visibility::Causal { s, past } => (past + r % s + 1).min(t),
        }
    }
}

/// Backends that compute the grouped attention core. Every backend has the generic
/// implementation; flex overrides it with a fused kernel.
pub trait AttentionBackend: Backend {
    /// softmax(q·kᵀ·scale)·v, restricted by `vis`.
    ///
    /// # Shapes
    /// - `q`: `[batch, kv_heads, rows, d_k]` (rows = query heads per K/V head × new positions)
    /// - `k`: `[batch, kv_heads, t, d_k]`
    /// - `v`: `[batch, kv_heads, t, d_v]`
    /// - output: `[batch, kv_heads, rows, d_v]`
    fn grouped_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
        vis: Visibility,
        scale: f32,
    ) -> Tensor<Self, 4> {
        grouped_attention_generic(q, k, v, vis, scale)
    }

    /// Attention over a paged cache: logical position `j` of the sequence lives in block
    /// `table[j / block_size]` at slot `j % block_size`. The generic version gathers the blocks
    /// into a contiguous tensor first (the reference); flex streams through the table.
    ///
    /// # Shapes
    /// - `q`: `[1, kv_heads, rows, d_k]`
    /// - `k_pool`: `[blocks, kv_heads, block_size, d_k]`, `v_pool`: `[blocks, kv_heads, block_size, d_v]`
    /// - output: `[1, kv_heads, rows, d_v]`
    fn paged_attention(
        q: Tensor<Self, 4>,
        k_pool: Tensor<Self, 4>,
        v_pool: Tensor<Self, 4>,
        table: &[usize],
        len: usize,
        vis: Visibility,
        scale: f32,
    ) -> Tensor<Self, 4> {
        paged_attention_gather(q, k_pool, v_pool, table, len, vis, scale)
    }

    /// Decode attention of a batch of sequences over their own contiguous caches, in one call.
    ///
    /// # Shapes
    /// - `q`: `[n, kv_heads, rows, d_k]`; `k[i]`: `[1, kv_heads, t_i, d_k]`; `v[i]`: `[1, kv_heads, t_i, d_v]`
    /// - output: `[n, kv_heads, rows, d_v]`
    fn grouped_attention_batch(
        q: Tensor<Self, 4>,
        k: &[Tensor<Self, 4>],
        v: &[Tensor<Self, 4>],
        scale: f32,
    ) -> Tensor<Self, 4> {
        grouped_attention_each(q, k, v, scale)
    }

    /// Decode attention of a batch of sequences over one paged cache, in one call.
    ///
    /// # Shapes
    /// - `q`: `[n, kv_heads, rows, d_k]`; pools as in [`AttentionBackend::paged_attention`]
    /// - output: `[n, kv_heads, rows, d_v]`
    fn paged_attention_batch(
        q: Tensor<Self, 4>,
        k_pool: Tensor<Self, 4>,
        v_pool: Tensor<Self, 4>,
        tables: &[&[usize]],
        lens: &[usize],
        scale: f32,
    ) -> Tensor<Self, 4> {
        paged_attention_each(q, k_pool, v_pool, tables, lens, scale)
    }

    /// Writes row `i` of `x` into `buf[slots[i].0, :, slots[i].1, :]` for every `i` (one decode
    /// token per sequence into a paged pool), in place where the backend allows it.
    ///
    /// # Shapes
    /// - `buf`: `[blocks, heads, block_size, width]`
    /// - `x`: `[n, heads, 1, width]` with `n == slots.len()`
    fn cache_scatter(
        buf: Tensor<Self, 4>,
        slots: &[(usize, usize)],
        x: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        let mut buf = buf;
        for (i, &(block, slot)) in slots.iter().enumerate() {
            buf = Self::cache_write(buf, block, slot, x.clone().narrow(0, i, 1));
        }
        buf
    }

    /// Writes `x` into `buf[first..first + n, :, at..at + s, :]` and returns the buffer, in place
    /// where the backend allows it (cache appends; paged blocks, where dim 0 is the block). The
    /// generic version is `slice_assign`.
    ///
    /// # Shapes
    /// - `buf`: `[batch or blocks, heads, capacity, width]`
    /// - `x`: `[n, heads, s, width]`
    fn cache_write(
        buf: Tensor<Self, 4>,
        first: usize,
        at: usize,
        x: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        let [n, h, s, w] = x.dims();
        buf.slice_assign([first..first + n, 0..h, at..at + s, 0..w], x)
    }
}

/// Batched decode over contiguous caches, one sequence at a time (the default, and the fallback).
///
/// # Shapes
/// As [`AttentionBackend::grouped_attention_batch`].
pub fn grouped_attention_each<B: AttentionBackend>(
    q: Tensor<B, 4>,
    k: &[Tensor<B, 4>],
    v: &[Tensor<B, 4>],
    scale: f32,
) -> Tensor<B, 4> {
    let outs = (0..k.len())
        .map(|i| {
            B::grouped_attention(
                q.clone().narrow(0, i, 1),
                k[i].clone(),
                v[i].clone(),
                Visibility::All,
                scale,
            )
        })
        .collect();
    Tensor::cat(outs, 0)
}

/// Batched decode over a paged cache, one sequence at a time (the default, and the fallback).
///
/// # Shapes
/// As [`AttentionBackend::paged_attention_batch`].
pub fn paged_attention_each<B: AttentionBackend>(
    q: Tensor<B, 4>,
    k_pool: Tensor<B, 4>,
    v_pool: Tensor<B, 4>,
    tables: &[&[usize]],
    lens: &[usize],
    scale: f32,
) -> Tensor<B, 4> {
    let outs = (0..tables.len())
        .map(|i| {
            B::paged_attention(
                q.clone().narrow(0, i, 1),
                k_pool.clone(),
                v_pool.clone(),
                tables[i],
                lens[i],
                Visibility::All,
                scale,
            )
        })
        .collect();
    Tensor::cat(outs, 0)
}

/// Gathers a sequence's blocks into a contiguous `[1, heads, len, width]` tensor.
pub fn gather_blocks<B: Backend>(pool: Tensor<B, 4>, table: &[usize], len: usize) -> Tensor<B, 4> {
    let [_, h, bs, w] = pool.dims();
    let used = &table[..len.div_ceil(bs)];
    let ids: Vec<i32> = used.iter().map(|&b| b as i32).collect();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [used.len()]), &pool.device());
    let g = pool.select(0, idx); // [n, h, bs, w]
    g.swap_dims(0, 1)
        .reshape([1, h, used.len() * bs, w])
        .narrow(2, 0, len)
}

/// The paged reference: gather K and V, then the generic core.
///
/// # Shapes
/// As [`AttentionBackend::paged_attention`].
pub fn paged_attention_gather<B: Backend>(
    q: Tensor<B, 4>,
    k_pool: Tensor<B, 4>,
    v_pool: Tensor<B, 4>,
    table: &[usize],
    len: usize,
    vis: Visibility,
    scale: f32,
) -> Tensor<B, 4> {
    let k = gather_blocks(k_pool, table, len);
    let v = gather_blocks(v_pool, table, len);
    grouped_attention_generic(q, k, v, vis, scale)
}

/// The generic core: two matmuls and a softmax, with an additive causal bias where needed.
///
/// # Shapes
/// As [`AttentionBackend::grouped_attention`].
pub fn grouped_attention_generic<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    vis: Visibility,
    scale: f32,
) -> Tensor<B, 4> {
    let [_, _, rows, _] = q.dims();
    let t = k.dims()[2];
    let mut scores = q.matmul(k.transpose()) * scale; // [b, h, rows, t]
    if let Visibility::Causal { .. } = vis {
        let mut bias = vec![0f32; rows * t];
        for r in 0..rows {
            for x in &mut bias[r * t + vis.visible(r, t)..(r + 1) * t] {
                *x = f32::NEG_INFINITY;
            }
        }
        let bias = Tensor::<B, 2>::from_data(TensorData::new(bias, [rows, t]), &scores.device());
        scores = scores + bias.unsqueeze::<4>();
    }
    softmax(scores, 3).matmul(v)
}

impl AttentionBackend for burn::backend::Flex {
    fn grouped_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
        vis: Visibility,
        scale: f32,
    ) -> Tensor<Self, 4> {
        super::flex_cpu::grouped_attention(q, k, v, vis, scale)
    }

    fn cache_write(
        buf: Tensor<Self, 4>,
        first: usize,
        at: usize,
        x: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        super::flex_cpu::cache_write(buf, first, at, x)
    }

    fn cache_scatter(
        buf: Tensor<Self, 4>,
        slots: &[(usize, usize)],
        x: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        super::flex_cpu::cache_scatter(buf, slots, x)
    }

    fn paged_attention(
        q: Tensor<Self, 4>,
        k_pool: Tensor<Self, 4>,
        v_pool: Tensor<Self, 4>,
        table: &[usize],
        len: usize,
        vis: Visibility,
        scale: f32,
    ) -> Tensor<Self, 4> {
        super::flex_cpu::paged_attention(q, k_pool, v_pool, table, len, vis, scale)
    }

    fn grouped_attention_batch(
        q: Tensor<Self, 4>,
        k: &[Tensor<Self, 4>],
        v: &[Tensor<Self, 4>],
        scale: f32,
    ) -> Tensor<Self, 4> {
        let caches: Vec<_> = k
            .iter()
            .zip(v)
            .map(|(k, v)| {
                (
                    k.clone().into_primitive().tensor(),
                    v.clone().into_primitive().tensor(),
                )
            })
            .collect();
        super::flex_cpu::attention_many(q.clone(), &caches, None, scale)
            .unwrap_or_else(|| grouped_attention_each(q, k, v, scale))
    }

    fn paged_attention_batch(
        q: Tensor<Self, 4>,
        k_pool: Tensor<Self, 4>,
        v_pool: Tensor<Self, 4>,
        tables: &[&[usize]],
        lens: &[usize],
        scale: f32,
    ) -> Tensor<Self, 4> {
        let pools = vec![
            (
                k_pool.clone().into_primitive().tensor(),
                v_pool.clone().into_primitive().tensor()
            );
            tables.len()
        ];
        super::flex_cpu::attention_many(q.clone(), &pools, Some((tables, lens)), scale)
            .unwrap_or_else(|| paged_attention_each(q, k_pool, v_pool, tables, lens, scale))
    }
}

#[cfg(feature = "cuda")]
impl AttentionBackend for burn::backend::Cuda {}
