use burn::tensor::{activation::softmax, backend::Backend, Tensor, TensorData};

use crate::quant::fp8_train::{fake_quant, Fp8Tiles};

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
    /// True when tensor data lives in host memory, so that fused CPU kernels (the quantized
    /// matrix-vector products of `quant::matvec`) can read it directly.
    fn host_tensors() -> bool {
        false
    }

    /// `x · w` for at most [`super::few_rows::STEP_ROWS`] rows with `w` read once in place, or
    /// `None` where the backend's own matmul should run (the default).
    ///
    /// # Shapes
    /// - `x`: `[m, k]`; `w`: `[k, n]` (row-major, or a transposed `[n, k]`) → `[m, n]`
    fn few_rows_matmul(_x: &Tensor<Self, 2>, _w: &Tensor<Self, 2>) -> Option<Tensor<Self, 2>> {
        None
    }

    /// `x` rounded to FP8 in `forward`'s tiles (unchanged where `None`), with a
    /// straight-through gradient: backward passes the incoming gradient on unchanged, or rounded
    /// to `backward`'s tiles where set (simulated FP8 training,
    /// [`crate::quant::fp8_train`]). The default serves backends without autodiff, which have
    /// no backward pass; autodiff backends override it.
    ///
    /// # Shapes
    /// - `x`: `[m, n]` → `[m, n]`
    fn fp8_straight_through(
        x: Tensor<Self, 2>,
        forward: Option<Fp8Tiles>,
        _backward: Option<Fp8Tiles>,
    ) -> Tensor<Self, 2> {
        match forward {
            Some(t) => fake_quant(x, t),
            None => x,
        }
    }

    /// SwiGLU's gate, `silu(g) ⊙ u`, in one pass, or `None` where burn's ops should run (the
    /// default).
    ///
    /// # Shapes
    /// - `g`, `u`: `[batch, s, d_ff]` → `[batch, s, d_ff]`
    fn swiglu(_g: &Tensor<Self, 3>, _u: &Tensor<Self, 3>) -> Option<Tensor<Self, 3>> {
        None
    }

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
    /// - `k_pool`: `[kv_heads, blocks, block_size, d_k]`, `v_pool`: `[kv_heads, blocks, block_size, d_v]`
    ///   (head-major, so each head's blocks are long sequential runs in memory)
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

    /// Writes the token row `(i, h)` of `x` into `buf[h, slots[i].0, slots[i].1, :]` for every
    /// sequence `i` and head `h` (one decode token per sequence into a head-major paged pool), in
    /// place where the backend allows it.
    ///
    /// # Shapes
    /// - `buf`: `[heads, blocks, block_size, width]`
    /// - `x`: `[n, heads, 1, width]` with `n == slots.len()`
    fn cache_scatter(
        buf: Tensor<Self, 4>,
        slots: &[(usize, usize)],
        x: Tensor<Self, 4>,
    ) -> Tensor<Self, 4> {
        let mut buf = buf;
        for (i, &(block, slot)) in slots.iter().enumerate() {
            buf = Self::cache_write(
                buf,
                [0, block, slot],
                x.clone().narrow(0, i, 1).swap_dims(0, 1),
            );
        }
        buf
    }

    /// Writes `x` into `buf[at[0].., at[1].., at[2].., :]` and returns the buffer, in place where
    /// the backend allows it (cache appends at `[0, 0, len]`; paged blocks at `[0, block, slot]`).
    /// The generic version is `slice_assign`.
    ///
    /// # Shapes
    /// - `buf`: `[d0, d1, d2, width]`, `x`: `[n0, n1, n2, width]`
    fn cache_write(buf: Tensor<Self, 4>, at: [usize; 3], x: Tensor<Self, 4>) -> Tensor<Self, 4> {
        let [n0, n1, n2, w] = x.dims();
        buf.slice_assign(
            [
                at[0]..at[0] + n0,
                at[1]..at[1] + n1,
                at[2]..at[2] + n2,
                0..w,
            ],
            x,
        )
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

/// Gathers a sequence's blocks of a head-major pool `[heads, blocks, block_size, width]` into a
/// contiguous `[1, heads, len, width]` tensor.
pub fn gather_blocks<B: Backend>(pool: Tensor<B, 4>, table: &[usize], len: usize) -> Tensor<B, 4> {
    let [h, _, bs, w] = pool.dims();
    let used = &table[..len.div_ceil(bs)];
    // A concatenation of block views along dim 1 (burn-flex 0.21's `select` mis-indexes strided
    // views, such as MLA's value columns of a pool).
    let g = Tensor::cat(
        used.iter().map(|&b| pool.clone().narrow(1, b, 1)).collect(),
        1,
    ); // [h, n, bs, w]
    g.reshape([1, h, used.len() * bs, w]).narrow(2, 0, len)
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
    fn host_tensors() -> bool {
        true
    }

    fn few_rows_matmul(x: &Tensor<Self, 2>, w: &Tensor<Self, 2>) -> Option<Tensor<Self, 2>> {
        super::flex_cpu::few_rows_matmul(x, w)
    }

    fn swiglu(g: &Tensor<Self, 3>, u: &Tensor<Self, 3>) -> Option<Tensor<Self, 3>> {
        super::flex_cpu::swiglu(g, u)
    }

    fn grouped_attention(
        q: Tensor<Self, 4>,
        k: Tensor<Self, 4>,
        v: Tensor<Self, 4>,
        vis: Visibility,
        scale: f32,
    ) -> Tensor<Self, 4> {
        super::flex_cpu::grouped_attention(q, k, v, vis, scale)
    }

    fn cache_write(buf: Tensor<Self, 4>, at: [usize; 3], x: Tensor<Self, 4>) -> Tensor<Self, 4> {
        super::flex_cpu::cache_write(buf, at, x)
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

#[cfg(feature = "wgpu")]
impl AttentionBackend for burn::backend::Wgpu {}

/// Training: autodiff backends take the generic (differentiable) paths, and FP8 rounding as a
/// custom operation whose backward is the (optionally rounded) identity.
impl<B: Backend, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy>
    AttentionBackend for burn::backend::Autodiff<B, C>
{
    fn fp8_straight_through(
        x: Tensor<Self, 2>,
        forward: Option<Fp8Tiles>,
        backward: Option<Fp8Tiles>,
    ) -> Tensor<Self, 2> {
        use burn::backend::autodiff::checkpoint::base::Checkpointer;
        use burn::backend::autodiff::grads::Gradients;
        use burn::backend::autodiff::ops::{unary, Backward, Ops};
        use burn::tensor::TensorPrimitive;

        /// The straight-through backward: the gradient, rounded to the tiles where set.
        #[derive(Debug)]
        struct StraightThrough(Option<Fp8Tiles>);

        impl<B: Backend> Backward<B, 1> for StraightThrough {
            type State = ();

            fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                unary::<B, _>(ops.parents, ops.node, grads, |g| match self.0 {
                    Some(t) => {
                        let g = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(g));
                        fake_quant(g, t).into_primitive().tensor()
                    }
                    None => g,
                });
            }
        }

        let x = x.into_primitive().tensor();
        let inner = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(x.primitive.clone()));
        let out = match forward {
            Some(t) => fake_quant(inner, t),
            None => inner,
        };
        let out = StraightThrough(backward)
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateless(out.into_primitive().tensor());
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }
}
