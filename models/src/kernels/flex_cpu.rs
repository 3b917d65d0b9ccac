//! Fused grouped attention for the flex CPU backend.
//!
//! The generic core (matmul → softmax → matmul) writes the score matrix out and reads it back, and
//! runs three passes over memory. Decode attention is bandwidth-bound: what matters is reading each
//! cached K and V row exactly once. This kernel splits the context into chunks (FlashDecoding,
//! Dao et al. 2023), and for each (batch, kv head, chunk) task streams the K rows against all
//! grouped query rows, then the V rows, keeping scores and accumulators in cache; partial
//! softmaxes are combined at the end. The SIMD path (AVX-512, AVX2 + FMA, or portable code) comes
//! from [`super::isa`], decided once per process, so one binary runs on any x86-64 CPU and a
//! lower path can be forced to test and time it. The whole task body, softmax included, is
//! compiled for the path; the block kernels share each K or V load between two query rows.
//!
//! Falls back to the generic core when a tensor is not f32 or its last dimension is strided.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::Flex;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

use super::isa::{self, Isa};
use super::{grouped_attention_generic, Visibility};

/// Contexts shorter than this are not split further across tasks.
const MIN_CHUNK: usize = 256;

/// Above this many query rows per K/V head the core is compute-bound (MQA, absorbed MLA,
/// prefill) and two strided GEMMs beat streaming; the streaming kernel is for the
/// bandwidth-bound few-rows case (MHA, GQA decode).
const MAX_STREAMING_ROWS: usize = 8;

/// Calls reading fewer K/V elements than this run on the calling thread when it is outside the
/// thread pool: handing a call to the pool and being woken costs about 10–20 µs there.
const SEQUENTIAL_BELOW: usize = 1 << 17;

/// The same threshold for a caller that is a pool worker (see `on_pool_worker`): the fork and
/// join cost about 2 µs, so splitting pays from a few µs of work (2 K/V heads × 257 rows of 32:
/// 9.5–10.3 µs on one core).
const SEQUENTIAL_BELOW_ON_WORKER: usize = 1 << 15;

/// GEMM-path calls of fewer multiply-adds than this run on the calling thread (a few
/// verification rows against a short context: handing them to the pool costs more than the
/// work, ~0.1 ms per call on a 2-core machine).
const GEMM_SEQUENTIAL_BELOW: usize = 1 << 21;

/// Largest score tile of the GEMM path, in elements (16 MiB of f32).
const MAX_SCORE_TILE: usize = 4 << 20;

/// A strided 4-D f32 view `[batch, heads, seq, dim]` with a unit inner stride; for a paged
/// cache, `seq` is logical and rows are found through a block table.
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    strides: [usize; 3],
    dims: [usize; 4],
    /// Block table, log2 of the block size and the block stride: logical row `i` is slot
    /// `i % bs` of block `table[i / bs]` (dim 1 of a head-major pool). Block sizes are powers
    /// of two, so this is a shift and a mask.
    blocks: Option<(&'a [usize], u32, usize)>,
}

impl<'a> View<'a> {
    fn of(t: &'a FlexTensor) -> Option<Self> {
        if t.dtype() != DType::F32 {
            return None;
        }
        let layout: &Layout = t.layout();
        let s = layout.strides();
        let dims = layout.shape().dims::<4>();
        if s.len() != 4 || (s[3] != 1 && dims[3] > 1) || s[..3].iter().any(|&x| x < 0) {
            return None;
        }
        Some(Self {
            data: t.storage::<f32>(),
            offset: layout.start_offset(),
            strides: [s[0] as usize, s[1] as usize, s[2] as usize],
            dims,
            blocks: None,
        })
    }

    /// A head-major pool `[heads, blocks, block_size, dim]` read as one sequence of `len` rows through
    /// `table`.
    fn paged(pool: &'a FlexTensor, table: &'a [usize], len: usize) -> Option<Self> {
        let mut v = Self::of(pool)?;
        let [h, n_blocks, bs, w] = v.dims;
        if !bs.is_power_of_two()
            || table.len() < len.div_ceil(bs)
            || table.iter().any(|&b| b >= n_blocks)
        {
            return None;
        }
        let [head_stride, block_stride, slot_stride] = v.strides;
        v.dims = [1, h, len, w];
        v.strides = [0, head_stride, slot_stride];
        v.blocks = Some((table, bs.trailing_zeros(), block_stride));
        Some(v)
    }

    /// Row `i` of head `(b, h)`.
    #[inline(always)]
    fn row(&self, b: usize, h: usize, i: usize) -> &'a [f32] {
        let start = match self.blocks {
            None => self.offset + b * self.strides[0] + h * self.strides[1] + i * self.strides[2],
            Some((table, shift, block_stride)) => {
                let slot = i & ((1 << shift) - 1);
                self.offset
                    + table[i >> shift] * block_stride
                    + h * self.strides[1]
                    + slot * self.strides[2]
            }
        };
        &self.data[start..start + self.dims[3]]
    }

    /// Rows `j0 .. j0 + BLOCK` of head `(b, h)`. Rows that lie in one run (always unpaged, and
    /// paged when they share a cache block) are sliced with one bounds check for the block.
    #[inline(always)]
    fn block(&self, b: usize, h: usize, j0: usize) -> [&'a [f32]; BLOCK] {
        let d = self.dims[3];
        let stride = self.strides[2];
        let mut out = [&self.data[..0]; BLOCK];
        let start = match self.blocks {
            None => self.offset + b * self.strides[0] + h * self.strides[1] + j0 * stride,
            Some((table, shift, block_stride)) => {
                let slot = j0 & ((1 << shift) - 1);
                if slot + BLOCK > 1 << shift {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = self.row(b, h, j0 + i);
                    }
                    return out;
                }
                self.offset
                    + table[j0 >> shift] * block_stride
                    + h * self.strides[1]
                    + slot * stride
            }
        };
        let run = &self.data[start..start + (BLOCK - 1) * stride + d];
        for (i, o) in out.iter_mut().enumerate() {
            *o = &run[i * stride..i * stride + d];
        }
        out
    }
}

/// One unit of parallel work: head `h` of query batch entry `b` against K/V batch entry `kb`,
/// over the context positions `range`.
struct Task<'a> {
    q: &'a View<'a>,
    k: &'a View<'a>,
    v: &'a View<'a>,
    b: usize,
    kb: usize,
    h: usize,
    range: std::ops::Range<usize>,
    vis: Visibility,
    scale: f32,
    /// Whether to prefetch K/V rows ahead (see `prefetch_needed`).
    prefetch: bool,
}

/// Partial softmax state of one (batch, head, chunk) task over all rows, in a slice of one flat
/// buffer that holds every task's state (no allocation per task).
struct Partial<'a> {
    /// Running max per row.
    max: &'a mut [f32],
    /// Sum of exp(score - max) per row.
    sum: &'a mut [f32],
    /// Σ exp(score - max)·v per row, `[rows, d_v]`.
    acc: &'a mut [f32],
}

impl<'a> Partial<'a> {
    /// Floats of one task's state: max and sum per row, then the accumulators.
    fn len(rows: usize, dv: usize) -> usize {
        rows * (dv + 2)
    }

    /// The state laid out in `buf` (`Partial::len(rows, dv)` floats).
    fn of(buf: &'a mut [f32], rows: usize) -> Self {
        let (max, rest) = buf.split_at_mut(rows);
        let (sum, acc) = rest.split_at_mut(rows);
        Self { max, sum, acc }
    }
}

thread_local! {
    /// Score rows of the task running on this thread, kept between tasks and calls.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) fn grouped_attention(
    q: Tensor<Flex, 4>,
    k: Tensor<Flex, 4>,
    v: Tensor<Flex, 4>,
    vis: Visibility,
    scale: f32,
) -> Tensor<Flex, 4> {
    grouped_attention_with(isa::active(), Prefetch::Probe, q, k, v, vis, scale)
}

/// Whether the streaming kernel prefetches K/V rows ahead of use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    /// Prefetch unless a probe finds the call's K/V in the caches (what every call does; see
    /// `prefetch_needed`).
    Probe,
    /// Always.
    On,
    /// Never.
    Off,
}

/// [`grouped_attention`] with the streaming kernel on an explicit SIMD path.
pub(super) fn grouped_attention_with(
    isa: Isa,
    prefetch: Prefetch,
    q: Tensor<Flex, 4>,
    k: Tensor<Flex, 4>,
    v: Tensor<Flex, 4>,
    vis: Visibility,
    scale: f32,
) -> Tensor<Flex, 4> {
    let (qp, kp, vp) = (
        q.clone().into_primitive().tensor(),
        k.clone().into_primitive().tensor(),
        v.clone().into_primitive().tensor(),
    );
    let (Some(qv), Some(kv), Some(vv)) = (View::of(&qp), View::of(&kp), View::of(&vp)) else {
        return grouped_attention_generic(q, k, v, vis, scale);
    };
    let out = if qv.dims[2] > MAX_STREAMING_ROWS {
        gemm_path(&qv, &kv, &vv, vis, scale)
    } else {
        fused(&qv, &kv, &vv, vis, scale, isa, prefetch)
    };
    let [b, h, rows, _] = qv.dims;
    let dv = vv.dims[3];
    let data = TensorData::new(out, [b, h, rows, dv]);
    Tensor::from_primitive(TensorPrimitive::Float(FlexTensor::from_data(data)))
}

/// Layers of fewer weights than this use burn's matmul for few rows too.
const SMALL_LAYER: usize = 1 << 16;

/// `x · w` by [`super::few_rows`] when `x` has few rows and `w` is f32 read in place (row-major
/// or a transposed row-major matrix).
pub(super) fn few_rows_matmul(x: &Tensor<Flex, 2>, w: &Tensor<Flex, 2>) -> Option<Tensor<Flex, 2>> {
    use super::few_rows::{matmul, WeightLayout, STEP_ROWS};
    let ([m, k], [k2, n]) = (x.dims(), w.dims());
    // Small layers (the byte-level models' 128 × 384) stay with burn's GEMM, which is faster
    // there: packing costs little when the whole matrix sits in cache.
    if k != k2 || m == 0 || m > STEP_ROWS || k * n < SMALL_LAYER {
        return None;
    }
    let wp = w.clone().into_primitive().tensor();
    if wp.dtype() != DType::F32 {
        return None;
    }
    let layout: &Layout = wp.layout();
    let (s, offset) = (layout.strides(), layout.start_offset());
    let lay = match *s {
        [s0, 1] if s0 >= n as isize => WeightLayout::KByN {
            offset,
            stride: s0 as usize,
        },
        [1, s1] if s1 >= k as isize => WeightLayout::NByK {
            offset,
            stride: s1 as usize,
        },
        _ => return None,
    };
    let xd = x.clone().into_data().convert::<f32>();
    let y = matmul(
        xd.as_slice::<f32>().ok()?,
        m,
        k,
        n,
        wp.storage::<f32>(),
        lay,
    )?;
    Some(Tensor::from_data(TensorData::new(y, [m, n]), &x.device()))
}

/// `silu(g) ⊙ u` in one pass over host memory, with the branch-free [`exp_nonpositive`]
/// (relative error about 2e-7) so that the loop vectorises: `sigmoid(x) = 1 / (1 + e^-|x|)` for
/// x ≥ 0 and `e^-|x| / (1 + e^-|x|)` below. burn's `silu` then `mul` make three passes with a
/// scalar `expf` each element (measured: `expf` and burn's unary op 14% of a batch-4
/// speculative run of the byte-level target).
pub(super) fn swiglu(g: &Tensor<Flex, 3>, u: &Tensor<Flex, 3>) -> Option<Tensor<Flex, 3>> {
    let dims = g.dims();
    if u.dims() != dims {
        return None;
    }
    let gd = g.clone().into_data().convert::<f32>();
    let ud = u.clone().into_data().convert::<f32>();
    let (gs, us) = (gd.as_slice::<f32>().ok()?, ud.as_slice::<f32>().ok()?);
    let mut out = vec![0f32; gs.len()];
    silu_mul(gs, us, &mut out);
    Some(Tensor::from_data(TensorData::new(out, dims), &g.device()))
}

/// `out[i] = silu(g[i]) · u[i]`, on the widest SIMD path this CPU has (the loop is compiled
/// inside each path's target features, where `floor` is one instruction and it vectorises).
pub fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn body(g: &[f32], u: &[f32], out: &mut [f32]) {
        for ((o, &x), &y) in out.iter_mut().zip(g).zip(u) {
            let e = exp_nonpositive(-x.abs());
            let sig = if x >= 0.0 { 1.0 } else { e } / (1.0 + e);
            *o = x * sig * y;
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(g: &[f32], u: &[f32], out: &mut [f32]) {
            body(g, u, out)
        }
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
        unsafe fn avx512(g: &[f32], u: &[f32], out: &mut [f32]) {
            body(g, u, out)
        }
        match isa::active() {
            // SAFETY: `isa::active` only returns paths this CPU supports.
            Isa::Avx512 => return unsafe { avx512(g, u, out) },
            Isa::Avx2 => return unsafe { avx2(g, u, out) },
            _ => {}
        }
    }
    body(g, u, out)
}

/// Attention over a paged cache, streaming rows through the block table (no gather) when the
/// streaming kernel applies; otherwise the gather-then-attend reference.
pub(super) fn paged_attention(
    q: Tensor<Flex, 4>,
    k_pool: Tensor<Flex, 4>,
    v_pool: Tensor<Flex, 4>,
    table: &[usize],
    len: usize,
    vis: Visibility,
    scale: f32,
) -> Tensor<Flex, 4> {
    let (qp, kp, vp) = (
        q.clone().into_primitive().tensor(),
        k_pool.clone().into_primitive().tensor(),
        v_pool.clone().into_primitive().tensor(),
    );
    let views = (
        View::of(&qp),
        View::paged(&kp, table, len),
        View::paged(&vp, table, len),
    );
    match views {
        (Some(qv), Some(kv), Some(vv)) if qv.dims[2] <= MAX_STREAMING_ROWS && qv.dims[0] == 1 => {
            let out = fused(&qv, &kv, &vv, vis, scale, isa::active(), Prefetch::Probe);
            let [b, h, rows, _] = qv.dims;
            let data = TensorData::new(out, [b, h, rows, vv.dims[3]]);
            Tensor::from_primitive(TensorPrimitive::Float(FlexTensor::from_data(data)))
        }
        _ => super::paged_attention_gather(q, k_pool, v_pool, table, len, vis, scale),
    }
}

/// Copies token row `(i, h)` of `x` into `buf[h, slots[i].0, slots[i].1, :]` in place, in one
/// pass over all sequences.
pub(super) fn cache_scatter(
    buf: Tensor<Flex, 4>,
    slots: &[(usize, usize)],
    x: Tensor<Flex, 4>,
) -> Tensor<Flex, 4> {
    let mut bp = buf.into_primitive().tensor();
    let xp = x.into_primitive().tensor();
    let [h, n_blocks, bs, w] = bp.layout().shape().dims::<4>();
    let plain = |t: &FlexTensor| {
        t.dtype() == DType::F32 && t.layout().is_contiguous() && t.layout().start_offset() == 0
    };
    if plain(&bp) && xp.layout().shape().dims::<4>()[2] == 1 {
        let xc = xp.to_contiguous();
        let src = &xc.storage::<f32>()[..slots.len() * h * w];
        if let Some(dst) = bp.try_storage_mut::<f32>() {
            for (i, &(block, slot)) in slots.iter().enumerate() {
                for hi in 0..h {
                    let d = ((hi * n_blocks + block) * bs + slot) * w;
                    let o = (i * h + hi) * w;
                    dst[d..d + w].copy_from_slice(&src[o..o + w]);
                }
            }
            return Tensor::from_primitive(TensorPrimitive::Float(bp));
        }
    }
    let mut buf = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(bp));
    let x = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(xp));
    for (i, &(block, slot)) in slots.iter().enumerate() {
        buf = cache_write(
            buf,
            [0, block, slot],
            x.clone().narrow(0, i, 1).swap_dims(0, 1),
        );
    }
    buf
}

/// Copies `x` into `buf[at[0].., at[1].., at[2].., :]` in place. burn-flex 0.21's
/// `slice_assign` copies the whole destination first (it keeps a second reference to it while
/// writing), which would make every cache append cost a full copy of the cache.
pub(super) fn cache_write(
    buf: Tensor<Flex, 4>,
    at: [usize; 3],
    x: Tensor<Flex, 4>,
) -> Tensor<Flex, 4> {
    let mut bp = buf.into_primitive().tensor();
    let xp = x.into_primitive().tensor();
    let [_, d1, d2, w] = bp.layout().shape().dims::<4>();
    let [n0, n1, n2, _] = xp.layout().shape().dims::<4>();
    let plain = |t: &FlexTensor| {
        t.dtype() == DType::F32 && t.layout().is_contiguous() && t.layout().start_offset() == 0
    };
    if plain(&bp) {
        let xc = xp.to_contiguous();
        let src = &xc.storage::<f32>()[..n0 * n1 * n2 * w];
        if let Some(dst) = bp.try_storage_mut::<f32>() {
            for i0 in 0..n0 {
                for i1 in 0..n1 {
                    let d = (((at[0] + i0) * d1 + at[1] + i1) * d2 + at[2]) * w;
                    let o = (i0 * n1 + i1) * n2 * w;
                    dst[d..d + n2 * w].copy_from_slice(&src[o..o + n2 * w]);
                }
            }
            return Tensor::from_primitive(TensorPrimitive::Float(bp));
        }
    }
    let buf = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(bp));
    buf.slice_assign(
        [
            at[0]..at[0] + n0,
            at[1]..at[1] + n1,
            at[2]..at[2] + n2,
            0..w,
        ],
        Tensor::from_primitive(TensorPrimitive::Float(xp)),
    )
}

/// Many query rows: scores = q·Kᵀ and out = P·V as GEMMs that read the cache views in place
/// (strided, no copies), with the softmax in between; rows in tiles to bound the score buffer.
fn gemm_path(q: &View, k: &View, v: &View, vis: Visibility, scale: f32) -> Vec<f32> {
    let [b, h, rows, dk] = q.dims;
    let t = k.dims[2];
    let dv = v.dims[3];
    let tile = (MAX_SCORE_TILE / t.max(1)).clamp(1, rows);
    let parallel = b * h * rows * t * (dk + dv) >= GEMM_SEQUENTIAL_BELOW;
    let threads = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let softmax = |(i, row): (usize, &mut [f32]), r0: usize| {
        let (seen, hidden) = row.split_at_mut(vis.visible(r0 + i, t));
        hidden.iter_mut().for_each(|x| *x = 0.0);
        let mx = lanes_fold(seen, f32::NEG_INFINITY, f32::max);
        seen.iter_mut().for_each(|x| *x = exp_nonpositive(*x - mx));
        let inv = 1.0 / lanes_fold(seen, 0.0, |a, b| a + b);
        seen.iter_mut().for_each(|x| *x *= inv);
    };
    let mut out = vec![0f32; b * h * rows * dv];
    let mut scores = vec![0f32; tile * t];
    let ptr = |x: &View, bi: usize, hi: usize, r: usize| -> *const f32 {
        x.data[x.offset + bi * x.strides[0] + hi * x.strides[1] + r * x.strides[2]..].as_ptr()
    };
    for bi in 0..b {
        for hi in 0..h {
            for r0 in (0..rows).step_by(tile) {
                let m = tile.min(rows - r0);
                let sc = &mut scores[..m * t];
                // SAFETY: every operand lies within its view: q rows r0..r0+m (dk wide), K and V
                // rows 0..t (dk and dv wide) at the views' strides, checked by `View::of`; dst
                // buffers are sized m·t and m·dv.
                unsafe {
                    gemm::gemm(
                        m,
                        t,
                        dk,
                        sc.as_mut_ptr(),
                        1,
                        t as isize,
                        false,
                        ptr(q, bi, hi, r0),
                        1,
                        q.strides[2] as isize,
                        ptr(k, bi, hi, 0),
                        k.strides[2] as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        threads,
                    );
                }
                if parallel {
                    sc.par_chunks_mut(t)
                        .enumerate()
                        .for_each(|x| softmax(x, r0));
                } else {
                    sc.chunks_mut(t).enumerate().for_each(|x| softmax(x, r0));
                }
                let dst = &mut out
                    [((bi * h + hi) * rows + r0) * dv..((bi * h + hi) * rows + r0 + m) * dv];
                // SAFETY: as above.
                unsafe {
                    gemm::gemm(
                        m,
                        dv,
                        t,
                        dst.as_mut_ptr(),
                        1,
                        dv as isize,
                        false,
                        sc.as_ptr(),
                        1,
                        t as isize,
                        ptr(v, bi, hi, 0),
                        1,
                        v.strides[2] as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        threads,
                    );
                }
            }
        }
    }
    out
}

/// One sequence of a fused call: batch entry `b` of its views.
struct Item<'a> {
    q: &'a View<'a>,
    k: &'a View<'a>,
    v: &'a View<'a>,
    /// Batch entry of `q`.
    b: usize,
    /// Batch entry of `k` and `v`.
    kb: usize,
}

fn fused(
    q: &View,
    k: &View,
    v: &View,
    vis: Visibility,
    scale: f32,
    isa: Isa,
    prefetch: Prefetch,
) -> Vec<f32> {
    let items: Vec<Item> = (0..q.dims[0]).map(|b| Item { q, k, v, b, kb: b }).collect();
    fused_many(&items, vis, scale, isa, prefetch)
}

/// Streams every item's K and V once, all items in one parallel dispatch: tasks are
/// (item, head, context chunk); partial softmaxes are combined per (item, head).
/// Output: `[items, heads, rows, d_v]`.
///
/// # Panics
/// When this CPU lacks `isa`.
fn fused_many(
    items: &[Item],
    vis: Visibility,
    scale: f32,
    isa: Isa,
    prefetch: Prefetch,
) -> Vec<f32> {
    assert!(
        isa.supported(),
        "ISA path {isa} is not supported by this CPU"
    );
    let Some(first) = items.first() else {
        return Vec::new();
    };
    let [_, h, rows, _] = first.q.dims;
    let dv = first.v.dims[3];
    let threads = rayon::current_num_threads().max(1);
    let heads_total = items.len() * h;
    let mut tasks: Vec<(usize, usize, std::ops::Range<usize>)> = Vec::new();
    let mut elems = 0;
    for (ii, it) in items.iter().enumerate() {
        let t = it.k.dims[2];
        let want_chunks = (2 * threads).div_ceil(heads_total).max(1);
        let chunk = t.div_ceil(want_chunks).max(MIN_CHUNK).min(t.max(1));
        let n_chunks = t.div_ceil(chunk).max(1);
        for hi in 0..h {
            for c in 0..n_chunks {
                tasks.push((ii, hi, (c * chunk).min(t)..((c + 1) * chunk).min(t)));
            }
        }
        elems += h * t * (it.k.dims[3] + dv);
    }
    let prefetch = match prefetch {
        Prefetch::Probe => prefetch_needed(items, elems),
        Prefetch::On => true,
        Prefetch::Off => false,
    };
    PREFETCH_CALLS[usize::from(prefetch)].fetch_add(1, Ordering::Relaxed);
    let run = |((ii, hi, range), state): (&(usize, usize, std::ops::Range<usize>), &mut [f32])| {
        let it = &items[*ii];
        let state = Partial::of(state, rows);
        SCORES.with_borrow_mut(|scores| {
            run_task(
                &Task {
                    q: it.q,
                    k: it.k,
                    v: it.v,
                    b: it.b,
                    kb: it.kb,
                    h: *hi,
                    range: range.clone(),
                    vis,
                    scale,
                    prefetch,
                },
                isa,
                state,
                scores,
            )
        })
    };
    let per_task = Partial::len(rows, dv);
    let mut states = vec![0f32; tasks.len() * per_task];
    // Below this many K/V elements a call is too small to pay for waking the thread pool.
    let sequential_below = match rayon::current_thread_index() {
        Some(_) => SEQUENTIAL_BELOW_ON_WORKER,
        None => SEQUENTIAL_BELOW,
    };
    if elems < sequential_below {
        tasks.iter().zip(states.chunks_mut(per_task)).for_each(run);
    } else {
        tasks
            .par_iter()
            .zip(states.par_chunks_mut(per_task))
            .for_each(run);
    }
    // Task `i`'s state as (max, sum, acc), laid out as `Partial::of` splits it.
    let part = |i: usize| {
        let (max, rest) = states[i * per_task..(i + 1) * per_task].split_at(rows);
        let (sum, acc) = rest.split_at(rows);
        (max, sum, acc)
    };

    let mut out = vec![0f32; heads_total * rows * dv];
    let mut start = 0;
    while start < tasks.len() {
        let (ii, hi, _) = tasks[start];
        let end = start
            + tasks[start..]
                .iter()
                .take_while(|t| t.0 == ii && t.1 == hi)
                .count();
        let bh = ii * h + hi;
        for r in 0..rows {
            let m = (start..end)
                .map(|i| part(i).0[r])
                .fold(f32::NEG_INFINITY, f32::max);
            let o = &mut out[(bh * rows + r) * dv..(bh * rows + r + 1) * dv];
            let mut denom = 0f32;
            for (max, sum, acc) in (start..end).map(part) {
                if max[r] == f32::NEG_INFINITY {
                    continue;
                }
                let w = (max[r] - m).exp();
                denom += w * sum[r];
                for (x, a) in o.iter_mut().zip(&acc[r * dv..(r + 1) * dv]) {
                    *x += w * a;
                }
            }
            let inv = 1.0 / denom;
            o.iter_mut().for_each(|x| *x *= inv);
        }
        start = end;
    }
    out
}

/// Decode attention of many sequences in one dispatch, each over its own cache views
/// (`caches[i]` = K and V of sequence `i`, `[1, heads, t_i, d]`), all keys visible.
pub(super) fn attention_many(
    q: Tensor<Flex, 4>,
    caches: &[(FlexTensor, FlexTensor)],
    paged: Option<(&[&[usize]], &[usize])>,
    scale: f32,
) -> Option<Tensor<Flex, 4>> {
    let qp = q.into_primitive().tensor();
    let qv = View::of(&qp)?;
    if qv.dims[2] > MAX_STREAMING_ROWS {
        return None;
    }
    let mut views = Vec::with_capacity(caches.len());
    for (i, (k, v)) in caches.iter().enumerate() {
        let kv = match paged {
            None => (View::of(k)?, View::of(v)?),
            Some((tables, lens)) => (
                View::paged(k, tables[i], lens[i])?,
                View::paged(v, tables[i], lens[i])?,
            ),
        };
        views.push(kv);
    }
    let items: Vec<Item> = views
        .iter()
        .enumerate()
        .map(|(b, (k, v))| Item {
            q: &qv,
            k,
            v,
            b,
            kb: 0,
        })
        .collect();
    let out = fused_many(
        &items,
        Visibility::All,
        scale,
        isa::active(),
        Prefetch::Probe,
    );
    let [n, h, rows, _] = qv.dims;
    let dv = views.first().map(|(_, v)| v.dims[3]).unwrap_or(0);
    let data = TensorData::new(out, [n, h, rows, dv]);
    Some(Tensor::from_primitive(TensorPrimitive::Float(
        FlexTensor::from_data(data),
    )))
}

/// One task on the path `isa` (which the caller checked the CPU supports). The whole task body,
/// softmax included, is compiled inside the path's target features, so that its loops (the
/// `exp` polynomial, max and sum) vectorise too and the block kernels inline.
fn run_task(task: &Task, isa: Isa, state: Partial, scores: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn avx2_task(task: &Task, state: Partial, scores: &mut Vec<f32>) {
            task_body::<avx2::Avx2>(task, state, scores)
        }
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn avx512_task(task: &Task, state: Partial, scores: &mut Vec<f32>) {
            task_body::<avx512::Avx512>(task, state, scores)
        }
        match isa {
            // SAFETY: `isa` is supported by this CPU (`fused_many` checks it).
            Isa::Avx512 => return unsafe { avx512_task(task, state, scores) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { avx2_task(task, state, scores) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    task_body::<Portable>(task, state, scores)
}

/// Inner products and weighted sums over blocks of [`BLOCK`] cached rows, for every grouped query
/// row at once (so that a K or V row loaded into a register serves several query rows).
///
/// Each (query row, cached row) result is computed in the same order whatever the number of
/// rows beside it, so a row's output never depends on its neighbours.
trait Block {
    /// `out[r · BLOCK + i] = q[r] · k[i]`
    fn dots(q: &[&[f32]], k: &[&[f32]; BLOCK], out: &mut [f32]);
    /// `acc[r] += Σ_i p[r · stride + i] · v[i]` with `acc` `[rows, d_v]`
    fn weighted_sum(acc: &mut [f32], p: &[f32], stride: usize, v: &[&[f32]; BLOCK]);
}

/// Cached rows handled together: their K or V rows (8 × d floats) stay in L1 while every grouped
/// query row uses them, and the 8 partial sums of one query are reduced together.
const BLOCK: usize = 8;

/// Plain Rust, for CPUs without AVX2 and FMA.
struct Portable;

impl Block for Portable {
    #[inline(always)]
    fn dots(q: &[&[f32]], k: &[&[f32]; BLOCK], out: &mut [f32]) {
        for (q, o) in q.iter().zip(out.chunks_exact_mut(BLOCK)) {
            for (o, k) in o.iter_mut().zip(k) {
                *o = q.iter().zip(k.iter()).map(|(a, b)| a * b).sum();
            }
        }
    }

    #[inline(always)]
    fn weighted_sum(acc: &mut [f32], p: &[f32], stride: usize, v: &[&[f32]; BLOCK]) {
        let dv = v[0].len();
        for (r, acc) in acc.chunks_exact_mut(dv).enumerate() {
            for (pi, vi) in p[r * stride..r * stride + BLOCK].iter().zip(v) {
                for (a, x) in acc.iter_mut().zip(vi.iter()) {
                    *a += pi * x;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 + FMA: 8-lane registers. Dot products: two query rows share every K load (2 rows ×
    //! 4 keys of accumulators: 8 of the 16 registers, 8 independent FMA chains to cover the FMA
    //! latency). Weighted sum: two rows share every V load (2 rows × 32 columns in 8
    //! accumulators, the key's two weights broadcast as needed).
    use super::{Block, BLOCK};
    use std::arch::x86_64::*;

    pub(super) struct Avx2;

    impl Block for Avx2 {
        #[inline(always)]
        fn dots(q: &[&[f32]], k: &[&[f32]; BLOCK], out: &mut [f32]) {
            // SAFETY: `Avx2` only runs inside `run_task`'s AVX2 (or wider) function, which the
            // caller reaches after checking the CPU; every row is at least `d` long (views).
            unsafe { dots(q, k, out) }
        }

        #[inline(always)]
        fn weighted_sum(acc: &mut [f32], p: &[f32], stride: usize, v: &[&[f32]; BLOCK]) {
            // SAFETY: as above.
            unsafe { weighted_sum(acc, p, stride, v) }
        }
    }

    /// Sums each of eight registers into one lane of the result, in order. Each lane is
    /// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))` of its register, wherever it sits.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn hsum8(r: [__m256; 8]) -> __m256 {
        let t0 = _mm256_hadd_ps(r[0], r[1]);
        let t1 = _mm256_hadd_ps(r[2], r[3]);
        let t2 = _mm256_hadd_ps(r[4], r[5]);
        let t3 = _mm256_hadd_ps(r[6], r[7]);
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        _mm256_add_ps(
            _mm256_permute2f128_ps(u0, u1, 0x20),
            _mm256_permute2f128_ps(u0, u1, 0x31),
        )
    }

    // Not inlined: its accumulators need most of the registers, which constants hoisted
    // from the surrounding task (the softmax polynomial) would otherwise take.
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dots(q: &[&[f32]], k: &[&[f32]; BLOCK], out: &mut [f32]) {
        let rows = q.len();
        let d = q.first().map_or(0, |r| r.len());
        let mut r = 0;
        if d.is_multiple_of(8) {
            while r + 2 <= rows {
                let (q0, q1) = (q[r].as_ptr(), q[r + 1].as_ptr());
                for half in 0..2 {
                    let kp: [*const f32; 4] = std::array::from_fn(|i| k[4 * half + i].as_ptr());
                    let mut acc = [_mm256_setzero_ps(); 8];
                    let mut c = 0;
                    while c < d {
                        let (a, b) = (_mm256_loadu_ps(q0.add(c)), _mm256_loadu_ps(q1.add(c)));
                        for i in 0..4 {
                            let kv = _mm256_loadu_ps(kp[i].add(c));
                            acc[i] = _mm256_fmadd_ps(a, kv, acc[i]);
                            acc[4 + i] = _mm256_fmadd_ps(b, kv, acc[4 + i]);
                        }
                        c += 8;
                    }
                    let mut s = [0f32; 8];
                    _mm256_storeu_ps(s.as_mut_ptr(), hsum8(acc));
                    out[r * BLOCK + 4 * half..r * BLOCK + 4 * half + 4].copy_from_slice(&s[..4]);
                    out[(r + 1) * BLOCK + 4 * half..(r + 1) * BLOCK + 4 * half + 4]
                        .copy_from_slice(&s[4..]);
                }
                r += 2;
            }
        }
        for r in r..rows {
            let o = dots_one(q[r], k);
            out[r * BLOCK..(r + 1) * BLOCK].copy_from_slice(&o);
        }
    }

    /// One query row against the block (any `d`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dots_one(q: &[f32], k: &[&[f32]; BLOCK]) -> [f32; BLOCK] {
        let d = q.len();
        let full = d / 8 * 8;
        let mut acc = [_mm256_setzero_ps(); BLOCK];
        let mut c = 0;
        while c < full {
            let qv = _mm256_loadu_ps(q.as_ptr().add(c));
            for i in 0..BLOCK {
                debug_assert!(k[i].len() >= d);
                acc[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k[i].as_ptr().add(c)), acc[i]);
            }
            c += 8;
        }
        let mut out = [0f32; BLOCK];
        _mm256_storeu_ps(out.as_mut_ptr(), hsum8(acc));
        for (i, o) in out.iter_mut().enumerate() {
            for j in full..d {
                *o += q[j] * k[i][j];
            }
        }
        out
    }

    // Not inlined: its accumulators need most of the registers, which constants hoisted
    // from the surrounding task (the softmax polynomial) would otherwise take.
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weighted_sum(acc: &mut [f32], p: &[f32], stride: usize, v: &[&[f32]; BLOCK]) {
        // Rows in pairs sharing each V load, the pair's two weights broadcast per key (a form
        // holding all 16 broadcasts spilled them: 1.6 loads per FMA). One core, 256 keys in
        // L2, Zen 4 through the override: 11.9 µs per task one row at a time, 10.3–10.8 paired.
        let dv = v[0].len();
        let rows = acc.len() / dv;
        let mut r = 0;
        if dv.is_multiple_of(32) {
            while r + 2 <= rows {
                let (head, tail) = acc[r * dv..(r + 2) * dv].split_at_mut(dv);
                let p0: &[f32; BLOCK] =
                    p[r * stride..r * stride + BLOCK].try_into().expect("block");
                let p1: &[f32; BLOCK] = p[(r + 1) * stride..(r + 1) * stride + BLOCK]
                    .try_into()
                    .expect("block");
                weighted_two(head, tail, p0, p1, v);
                r += 2;
            }
        }
        for r in r..rows {
            let pr: &[f32; BLOCK] = p[r * stride..r * stride + BLOCK].try_into().expect("block");
            weighted_one(&mut acc[r * dv..(r + 1) * dv], pr, v);
        }
    }

    /// Two output rows (`d_v` a multiple of 32) sharing every V load: 32 columns of each row in
    /// eight accumulators, the two weights of the current key broadcast from memory as they are
    /// needed (11 registers). Each element adds `p[0]·v[0] … p[7]·v[7]` in order, as
    /// [`weighted_one`] does.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weighted_two(
        a0: &mut [f32],
        a1: &mut [f32],
        p0: &[f32; BLOCK],
        p1: &[f32; BLOCK],
        v: &[&[f32]; BLOCK],
    ) {
        let d = a0.len();
        debug_assert!(a1.len() == d && d.is_multiple_of(32));
        debug_assert!(v.iter().all(|r| r.len() >= d));
        let vp: [*const f32; BLOCK] = std::array::from_fn(|i| v[i].as_ptr());
        let (o0, o1) = (a0.as_mut_ptr(), a1.as_mut_ptr());
        let mut c = 0;
        while c < d {
            let mut a: [__m256; 8] = std::array::from_fn(|j| {
                let base = if j < 4 { o0 } else { o1 };
                _mm256_loadu_ps(base.add(c + 8 * (j % 4)))
            });
            for i in 0..BLOCK {
                let (w0, w1) = (_mm256_set1_ps(p0[i]), _mm256_set1_ps(p1[i]));
                for j in 0..4 {
                    let x = _mm256_loadu_ps(vp[i].add(c + 8 * j));
                    a[j] = _mm256_fmadd_ps(w0, x, a[j]);
                    a[4 + j] = _mm256_fmadd_ps(w1, x, a[4 + j]);
                }
            }
            for (j, aj) in a.iter().enumerate() {
                let base = if j < 4 { o0 } else { o1 };
                _mm256_storeu_ps(base.add(c + 8 * (j % 4)), *aj);
            }
            c += 32;
        }
    }

    /// One output row (any `d_v`): 32 columns at a time in four independent accumulators, then
    /// 8, then scalars; each element adds `p[0]·v[0] … p[7]·v[7]` in order either way.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weighted_one(acc: &mut [f32], p: &[f32; BLOCK], v: &[&[f32]; BLOCK]) {
        let d = acc.len();
        let full = d / 8 * 8;
        debug_assert!(v.iter().all(|r| r.len() >= d));
        let pv = p.map(|x| _mm256_set1_ps(x));
        let vp: [*const f32; BLOCK] = std::array::from_fn(|i| v[i].as_ptr());
        let o = acc.as_mut_ptr();
        let mut c = 0;
        while c + 32 <= full {
            let mut a: [__m256; 4] = std::array::from_fn(|j| _mm256_loadu_ps(o.add(c + 8 * j)));
            for i in 0..BLOCK {
                for (j, aj) in a.iter_mut().enumerate() {
                    *aj = _mm256_fmadd_ps(pv[i], _mm256_loadu_ps(vp[i].add(c + 8 * j)), *aj);
                }
            }
            for (j, aj) in a.iter().enumerate() {
                _mm256_storeu_ps(o.add(c + 8 * j), *aj);
            }
            c += 32;
        }
        while c < full {
            let mut a = _mm256_loadu_ps(o.add(c));
            for i in 0..BLOCK {
                a = _mm256_fmadd_ps(pv[i], _mm256_loadu_ps(vp[i].add(c)), a);
            }
            _mm256_storeu_ps(o.add(c), a);
            c += 8;
        }
        for j in full..d {
            for i in 0..BLOCK {
                acc[j] += p[i] * v[i][j];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! AVX-512: 16-lane registers, 32 of them: two query rows × eight keys of dot-product
    //! accumulators, or two rows × 64 output columns of the weighted sum.
    use super::avx2::hsum8;
    use super::{Block, BLOCK};
    use std::arch::x86_64::*;

    pub(super) struct Avx512;

    impl Block for Avx512 {
        #[inline(always)]
        fn dots(q: &[&[f32]], k: &[&[f32]; BLOCK], out: &mut [f32]) {
            // SAFETY: `Avx512` only runs inside `run_task`'s AVX-512 function, which the caller
            // reaches after checking the CPU; every row is at least `d` long (views).
            unsafe { dots(q, k, out) }
        }

        #[inline(always)]
        fn weighted_sum(acc: &mut [f32], p: &[f32], stride: usize, v: &[&[f32]; BLOCK]) {
            // SAFETY: as above.
            unsafe { weighted_sum(acc, p, stride, v) }
        }
    }

    /// Each of eight registers summed into one lane: halves added, then [`hsum8`]'s tree.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn hsum8x16(r: &[__m512]) -> __m256 {
        let h: [__m256; 8] = std::array::from_fn(|i| {
            _mm256_add_ps(
                _mm512_castps512_ps256(r[i]),
                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r[i]), 1)),
            )
        });
        hsum8(h)
    }

    // Not inlined: its accumulators need most of the registers, which constants hoisted
    // from the surrounding task (the softmax polynomial) would otherwise take.
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn dots(q: &[&[f32]], k: &[&[f32]; BLOCK], out: &mut [f32]) {
        let rows = q.len();
        let d = q.first().map_or(0, |r| r.len());
        if !d.is_multiple_of(16) {
            return super::avx2::Avx2::dots(q, k, out);
        }
        let kp: [*const f32; BLOCK] = std::array::from_fn(|i| k[i].as_ptr());
        let mut r = 0;
        while r + 2 <= rows {
            let (q0, q1) = (q[r].as_ptr(), q[r + 1].as_ptr());
            let mut acc = [_mm512_setzero_ps(); 2 * BLOCK];
            let mut c = 0;
            while c < d {
                let (a, b) = (_mm512_loadu_ps(q0.add(c)), _mm512_loadu_ps(q1.add(c)));
                for i in 0..BLOCK {
                    let kv = _mm512_loadu_ps(kp[i].add(c));
                    acc[i] = _mm512_fmadd_ps(a, kv, acc[i]);
                    acc[BLOCK + i] = _mm512_fmadd_ps(b, kv, acc[BLOCK + i]);
                }
                c += 16;
            }
            _mm256_storeu_ps(out.as_mut_ptr().add(r * BLOCK), hsum8x16(&acc[..BLOCK]));
            _mm256_storeu_ps(
                out.as_mut_ptr().add((r + 1) * BLOCK),
                hsum8x16(&acc[BLOCK..]),
            );
            r += 2;
        }
        if r < rows {
            let q0 = q[r].as_ptr();
            let mut acc = [_mm512_setzero_ps(); BLOCK];
            let mut c = 0;
            while c < d {
                let a = _mm512_loadu_ps(q0.add(c));
                for i in 0..BLOCK {
                    acc[i] = _mm512_fmadd_ps(a, _mm512_loadu_ps(kp[i].add(c)), acc[i]);
                }
                c += 16;
            }
            _mm256_storeu_ps(out.as_mut_ptr().add(r * BLOCK), hsum8x16(&acc));
        }
    }

    // Not inlined: its accumulators need most of the registers, which constants hoisted
    // from the surrounding task (the softmax polynomial) would otherwise take.
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn weighted_sum(acc: &mut [f32], p: &[f32], stride: usize, v: &[&[f32]; BLOCK]) {
        let dv = v[0].len();
        if !dv.is_multiple_of(64) {
            return super::avx2::Avx2::weighted_sum(acc, p, stride, v);
        }
        let rows = acc.len() / dv;
        let vp: [*const f32; BLOCK] = std::array::from_fn(|i| v[i].as_ptr());
        let mut r = 0;
        // Two rows at a time, then one (the same order per element either way).
        while r < rows {
            let two = r + 2 <= rows;
            let a0 = acc.as_mut_ptr().add(r * dv);
            let a1 = if two {
                acc.as_mut_ptr().add((r + 1) * dv)
            } else {
                a0
            };
            let p0 = &p[r * stride..r * stride + BLOCK];
            let p1 = if two {
                &p[(r + 1) * stride..(r + 1) * stride + BLOCK]
            } else {
                p0
            };
            let mut c = 0;
            while c < dv {
                let mut a: [__m512; 8] = std::array::from_fn(|j| {
                    let base = if j < 4 { a0 } else { a1 };
                    _mm512_loadu_ps(base.add(c + 16 * (j % 4)))
                });
                for i in 0..BLOCK {
                    let (w0, w1) = (_mm512_set1_ps(p0[i]), _mm512_set1_ps(p1[i]));
                    for j in 0..4 {
                        let x = _mm512_loadu_ps(vp[i].add(c + 16 * j));
                        a[j] = _mm512_fmadd_ps(w0, x, a[j]);
                        if two {
                            a[4 + j] = _mm512_fmadd_ps(w1, x, a[4 + j]);
                        }
                    }
                }
                for (j, aj) in a.iter().enumerate().take(if two { 8 } else { 4 }) {
                    let base = if j < 4 { a0 } else { a1 };
                    _mm512_storeu_ps(base.add(c + 16 * (j % 4)), *aj);
                }
                c += 64;
            }
            r += if two { 2 } else { 1 };
        }
    }
}

/// Blocks ahead to prefetch: with several query rows per block the loop computes long enough
/// between loads that the hardware prefetcher alone leaves the memory bus idle. Measured on
/// Zen 4 (GQA, context 4096, K/V beyond the cache, criterion medians of 2 alternating rounds):
/// no prefetch 1.63–2.05 ms (AVX-512 path) and 2.26–2.29 ms (AVX2), 2 blocks (16 rows, 8 KiB of
/// 128-wide rows) 0.92–1.08 and 1.29–1.65 ms, 4 blocks 1.18 and 1.64 ms, 8 blocks 1.43–1.50 and
/// 1.79 ms.
///
/// How the prefetches are issued matters as much as how far ahead: row by row, each after its
/// row's address is looked up, as `task_body` does. Issuing the block's 64 line prefetches in
/// one burst (addresses computed up front), or spreading them through the block kernels, was as
/// slow at context 4096 as not prefetching at all: in-run `kv_read_gbps` 17–23 and 22–30 GB/s
/// against 40–51 GB/s row by row (none: 20–27), 3 alternated runs each on Zen 4.
///
/// Where K/V sit in the caches the prefetches only cost: one core, a 256-key task, 9.1–9.6
/// against 7.2–7.8 µs without them; 2 cores, contexts 256–2048 (2–17 MB of K/V, inside a 32 MB
/// L3), 46–59 against 52–65 GB/s. So a call prefetches only when [`prefetch_needed`] finds its
/// K/V coming from DRAM.
const PREFETCH_BLOCKS: usize = 2;

/// Streaming-kernel calls so far that went without prefetching (`[0]`) and with (`[1]`).
static PREFETCH_CALLS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// How many streaming-kernel calls of this process went without prefetching K/V rows and how
/// many with, so far: a benchmark can say which regime its timings measured.
pub fn prefetch_calls() -> [u64; 2] {
    PREFETCH_CALLS.each_ref().map(|c| c.load(Ordering::Relaxed))
}

/// Rows a call probes before it decides whether to prefetch: one per this many K/V elements
/// (128 KiB), at least [`MIN_PROBES`] and at most [`MAX_PROBES`], so that probing costs about
/// the same small share of every call: 2–3% where the rows answer from the caches (about 50 ns
/// a probe: 12 took 0.62 µs a call, timer included); where they answer from DRAM the call
/// stops at its first few misses.
const ELEMS_PER_PROBE: usize = 1 << 15;
const MIN_PROBES: usize = 8;
const MAX_PROBES: usize = 64;

/// Whether a call over `items` (reading `elems` K/V elements) should prefetch K/V rows ahead:
/// when more than an eighth of the probed rows answer from DRAM ([`super::probe`]). One
/// decision per call, so that its tasks run alike; calls under a MiB always prefetch.
///
/// The probes are spread over every item, head and both tensors. Misses out of 64 probes per
/// call on Zen 4 (32 MiB L3, GQA with Llama-3-8B heads, 2 × 200 calls per context): context
/// 512 and 1024 (4 and 8 MiB of K/V) 0–2 in all but a few calls; 2048 (17 MiB) 0–5 in most;
/// 4096 (34 MiB) 14–43; 8192 25–64. Without prefetching, a call at 2048 ran 10% faster, one
/// at 4096 35% slower. So a call with a stray miss or two (another tenant's lines in the
/// shared L3) still goes without, and one that no longer fits goes with.
fn prefetch_needed(items: &[Item], elems: usize) -> bool {
    if elems < MIN_PROBES * ELEMS_PER_PROBE {
        return true;
    }
    let probes = (elems / ELEMS_PER_PROBE).min(MAX_PROBES);
    let allowed = probes / 8;
    let heads = items.first().map_or(0, |it| it.k.dims[1]);
    let pairs = items.len() * heads;
    let mut misses = 0;
    for i in 0..probes {
        let pair = i * pairs / probes;
        let (it, h) = (&items[pair / heads], pair % heads);
        let x = if i % 2 == 0 { it.k } else { it.v };
        let t = x.dims[2];
        // Golden-ratio steps (40503 / 65536): rows spread over the context, not in lockstep
        // with the heads.
        let row = (i * 40503 % 65536) * t / 65536;
        if t > 0 && h < x.dims[1] && !super::probe::cached(x.row(it.kb, h, row).as_ptr()) {
            misses += 1;
            if misses > allowed {
                return true;
            }
        }
    }
    false
}

/// Asks for the cache lines of `row` ahead of use.
#[inline(always)]
fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: prefetching is a hint; any address is allowed and SSE is baseline on x86-64.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// `exp(x)` for `x <= 0`, branch-free so that loops over it vectorise (Cephes `expf` scheme:
/// x = n·ln2 + r, degree-6 polynomial for e^r, 2^n through the exponent bits). Relative error
/// about 2e-7; inputs below -87 give about 1e-38 instead of underflowing.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    // SAFETY: `x` is clamped to [-87, 0] (a NaN becomes -87), so `n + 127` is a finite float in
    // [1, 127]: exactly representable as i32. (`as i32` would saturate and test for NaN per
    // element, which keeps the loop from vectorising.)
    let bias: i32 = unsafe { (n + 127.0).to_int_unchecked() };
    e * f32::from_bits((bias as u32) << 23)
}

/// Folds with 16 independent lanes (vectorisable), then across lanes.
#[inline(always)]
fn lanes_fold(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..16 {
            lanes[l] = f(lanes[l], c[l]);
        }
    }
    let mut out = rest.iter().fold(init, |a, &b| f(a, b));
    for l in lanes {
        out = f(out, l);
    }
    out
}

#[inline(always)]
fn task_body<K: Block>(task: &Task, state: Partial, scores: &mut Vec<f32>) {
    let Task {
        q,
        k,
        v,
        b,
        kb,
        h,
        vis,
        scale,
        ..
    } = *task;
    let range = task.range.clone();
    let rows = q.dims[2];
    let dv = v.dims[3];
    let t_total = k.dims[2];
    let len = range.len();
    // Keys visible to each row within this chunk: [range.start, ends[r]).
    assert!(rows <= MAX_STREAMING_ROWS, "{rows} query rows stream");
    let mut ends = [0usize; MAX_STREAMING_ROWS];
    let mut qrows = [&q.data[..0]; MAX_STREAMING_ROWS];
    for r in 0..rows {
        ends[r] = vis.visible(r, t_total).clamp(range.start, range.end);
        qrows[r] = q.row(b, h, r);
    }
    let qrows = &qrows[..rows];
    let blocks = len / BLOCK;

    // Scores [rows, len]: stream K once; each block of rows serves every grouped query.
    // Every score is written below before it is read: blocks by `dots`, the tail by the scalar
    // loop; only the buffer's length needs setting.
    scores.resize(rows * (len + BLOCK), 0.0);
    let (scores, block_scores) = scores.split_at_mut(rows * len);
    for blk in 0..blocks {
        let j0 = range.start + blk * BLOCK;
        let krows = k.block(kb, h, j0);
        if task.prefetch && blk + PREFETCH_BLOCKS < blocks {
            (0..BLOCK).for_each(|i| prefetch(k.row(kb, h, j0 + PREFETCH_BLOCKS * BLOCK + i)));
        }
        // Every row, visible or not: keys a row does not see get weight 0 below.
        K::dots(qrows, &krows, block_scores);
        for (r, d) in block_scores.chunks_exact(BLOCK).enumerate() {
            scores[r * len + blk * BLOCK..r * len + (blk + 1) * BLOCK].copy_from_slice(d);
        }
    }
    for j in range.start + blocks * BLOCK..range.end {
        let krow = k.row(kb, h, j);
        for r in 0..rows {
            scores[r * len + j - range.start] = qrows[r].iter().zip(krow).map(|(a, b)| a * b).sum();
        }
    }
    // Softmax numerators per row, over the keys it sees; invisible keys get weight 0.
    let Partial { max, sum, acc } = state;
    for r in 0..rows {
        let visible = ends[r] - range.start;
        let row = &mut scores[r * len..(r + 1) * len];
        let (seen, hidden) = row.split_at_mut(visible);
        hidden.iter_mut().for_each(|x| *x = 0.0);
        let m = lanes_fold(seen, f32::NEG_INFINITY, f32::max) * scale;
        max[r] = m;
        for x in seen.iter_mut() {
            *x = exp_nonpositive(*x * scale - m);
        }
        sum[r] = lanes_fold(seen, 0.0, |a, b| a + b);
    }
    // Weighted sum of V: stream V once.
    acc.fill(0.0);
    for blk in 0..blocks {
        let j0 = range.start + blk * BLOCK;
        let vrows = v.block(kb, h, j0);
        if task.prefetch && blk + PREFETCH_BLOCKS < blocks {
            (0..BLOCK).for_each(|i| prefetch(v.row(kb, h, j0 + PREFETCH_BLOCKS * BLOCK + i)));
        }
        K::weighted_sum(acc, &scores[blk * BLOCK..], len, &vrows);
    }
    for j in range.start + blocks * BLOCK..range.end {
        let vrow = v.row(kb, h, j);
        for r in 0..rows {
            let p = scores[r * len + j - range.start];
            for (a, x) in acc[r * dv..(r + 1) * dv].iter_mut().zip(vrow) {
                *a += p * x;
            }
        }
    }
}

#[cfg(test)]
mod swiglu_tests {
    use burn::backend::Flex;
    use burn::tensor::activation::silu;
    use burn::tensor::{Distribution, Tensor};

    /// The one-pass SwiGLU gate against burn's own `silu(g) * u` (the independent reference),
    /// over inputs from -40 to 40, NaN kept.
    #[test]
    fn fused_swiglu_equals_burns_silu_times_u() {
        let device = Default::default();
        let g = Tensor::<Flex, 3>::random([2, 3, 700], Distribution::Uniform(-40.0, 40.0), &device);
        let u = Tensor::<Flex, 3>::random([2, 3, 700], Distribution::Normal(0.0, 2.0), &device);
        let got = super::swiglu(&g, &u).expect("host tensors of equal shapes");
        let want = silu(g) * u;
        let got = got.into_data().to_vec::<f32>().unwrap();
        let want = want.into_data().to_vec::<f32>().unwrap();
        // Element by element, relative: a few ulp of f32 (the polynomial exp is 2e-7).
        crate::diff::max_abs_diff(&got, &want).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let rel = (g - w).abs() / w.abs().max(f32::MIN_POSITIVE);
            assert!(rel <= 1e-6, "element {i}: {g} against {w} ({rel})");
        }
        let mut out = [0f32; 3];
        super::silu_mul(&[f32::NAN, 0.0, -0.0], &[1.0, 5.0, 5.0], &mut out);
        assert!(out[0].is_nan() && out[1] == 0.0 && out[2] == 0.0, "{out:?}");
    }
}
