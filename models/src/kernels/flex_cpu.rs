//! Fused grouped attention for the flex CPU backend.
//!
//! The generic core (matmul → softmax → matmul) writes the score matrix out and reads it back, and
//! runs three passes over memory. Decode attention is bandwidth-bound: what matters is reading each
//! cached K and V row exactly once. This kernel splits the context into chunks (FlashDecoding,
//! Dao et al. 2023), and for each (batch, kv head, chunk) task streams the K rows against all
//! grouped query rows, then the V rows, keeping scores and accumulators in cache; partial
//! softmaxes are combined at the end. SIMD width is picked at run time (AVX-512, AVX2+FMA, or
//! portable code), so one binary runs on any x86-64 CPU.
//!
//! Falls back to the generic core when a tensor is not f32 or its last dimension is strided.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::Flex;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use super::{grouped_attention_generic, Visibility};

/// Contexts shorter than this are not split further across tasks.
const MIN_CHUNK: usize = 256;

/// A strided 4-D f32 view `[batch, heads, seq, dim]` with a unit inner stride.
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    strides: [usize; 3],
    dims: [usize; 4],
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
        })
    }

    /// Row `i` of head `(b, h)`.
    #[inline(always)]
    fn row(&self, b: usize, h: usize, i: usize) -> &'a [f32] {
        let start = self.offset + b * self.strides[0] + h * self.strides[1] + i * self.strides[2];
        &self.data[start..start + self.dims[3]]
    }
}

/// Partial softmax state of one (batch, head, chunk) task over all rows.
struct Partial {
    /// Running max per row.
    max: Vec<f32>,
    /// Sum of exp(score - max) per row.
    sum: Vec<f32>,
    /// Σ exp(score - max)·v per row, `[rows, d_v]`.
    acc: Vec<f32>,
}

pub(super) fn grouped_attention(
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
    let out = fused(&qv, &kv, &vv, vis, scale);
    let [b, h, rows, _] = qv.dims;
    let dv = vv.dims[3];
    let data = TensorData::new(out, [b, h, rows, dv]);
    Tensor::from_primitive(TensorPrimitive::Float(FlexTensor::from_data(data)))
}

fn fused(q: &View, k: &View, v: &View, vis: Visibility, scale: f32) -> Vec<f32> {
    let [b, h, rows, _] = q.dims;
    let t = k.dims[2];
    let dv = v.dims[3];
    let heads = b * h;
    let threads = rayon::current_num_threads().max(1);
    let want_chunks = (2 * threads).div_ceil(heads).max(1);
    let chunk = t.div_ceil(want_chunks).max(MIN_CHUNK).min(t.max(1));
    let n_chunks = t.div_ceil(chunk).max(1);

    let partials: Vec<Partial> = (0..heads * n_chunks)
        .into_par_iter()
        .map(|task| {
            let (bh, c) = (task / n_chunks, task % n_chunks);
            let (bi, hi) = (bh / h, bh % h);
            let range = (c * chunk).min(t)..((c + 1) * chunk).min(t);
            run_task(q, k, v, bi, hi, range, vis, scale)
        })
        .collect();

    let mut out = vec![0f32; heads * rows * dv];
    for (bh, parts) in partials.chunks(n_chunks).enumerate() {
        for r in 0..rows {
            let m = parts.iter().map(|p| p.max[r]).fold(f32::NEG_INFINITY, f32::max);
            let o = &mut out[(bh * rows + r) * dv..(bh * rows + r + 1) * dv];
            let mut denom = 0f32;
            for p in parts {
                if p.max[r] == f32::NEG_INFINITY {
                    continue;
                }
                let w = (p.max[r] - m).exp();
                denom += w * p.sum[r];
                for (x, a) in o.iter_mut().zip(&p.acc[r * dv..(r + 1) * dv]) {
                    *x += w * a;
                }
            }
            let inv = 1.0 / denom;
            o.iter_mut().for_each(|x| *x *= inv);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn run_task(
    q: &View,
    k: &View,
    v: &View,
    b: usize,
    h: usize,
    range: std::ops::Range<usize>,
    vis: Visibility,
    scale: f32,
) -> Partial {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { task_avx512(q, k, v, b, h, range, vis, scale) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { task_avx2(q, k, v, b, h, range, vis, scale) };
        }
    }
    task_body::<false>(q, k, v, b, h, range, vis, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn task_avx512(
    q: &View,
    k: &View,
    v: &View,
    b: usize,
    h: usize,
    range: std::ops::Range<usize>,
    vis: Visibility,
    scale: f32,
) -> Partial {
    task_body::<true>(q, k, v, b, h, range, vis, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn task_avx2(
    q: &View,
    k: &View,
    v: &View,
    b: usize,
    h: usize,
    range: std::ops::Range<usize>,
    vis: Visibility,
    scale: f32,
) -> Partial {
    task_body::<true>(q, k, v, b, h, range, vis, scale)
}

#[inline(always)]
fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Dot product with four independent 16-lane accumulators (hides FMA latency, vectorises to
/// one 512-bit or two 256-bit registers per accumulator).
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [[0f32; 16]; 4];
    let (ac, bc) = (a.chunks_exact(64), b.chunks_exact(64));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for j in 0..4 {
            for l in 0..16 {
                acc[j][l] = fmadd::<FMA>(x[j * 16 + l], y[j * 16 + l], acc[j][l]);
            }
        }
    }
    let mut tail = 0f32;
    for (x, y) in ar.iter().zip(br) {
        tail = fmadd::<FMA>(*x, *y, tail);
    }
    let mut s = [0f32; 16];
    for l in 0..16 {
        s[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    }
    s.iter().sum::<f32>() + tail
}

/// `acc += p · x`
#[inline(always)]
fn axpy<const FMA: bool>(acc: &mut [f32], p: f32, x: &[f32]) {
    for (a, x) in acc.iter_mut().zip(x) {
        *a = fmadd::<FMA>(p, *x, *a);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn task_body<const FMA: bool>(
    q: &View,
    k: &View,
    v: &View,
    b: usize,
    h: usize,
    range: std::ops::Range<usize>,
    vis: Visibility,
    scale: f32,
) -> Partial {
    let rows = q.dims[2];
    let dv = v.dims[3];
    let t_total = k.dims[2];
    let len = range.len();
    // Keys visible to each row within this chunk: [range.start, end_r).
    let ends: Vec<usize> = (0..rows)
        .map(|r| vis.visible(r, t_total).clamp(range.start, range.end))
        .collect();
    let qrows: Vec<&[f32]> = (0..rows).map(|r| q.row(b, h, r)).collect();

    // Scores [rows, len]: stream K once, each row against all grouped queries.
    let mut scores = vec![f32::NEG_INFINITY; rows * len];
    for (i, j) in range.clone().enumerate() {
        let krow = k.row(b, h, j);
        for r in 0..rows {
            if j < ends[r] {
                scores[r * len + i] = dot::<FMA>(qrows[r], krow) * scale;
            }
        }
    }
    // Softmax numerators per row.
    let mut max = vec![f32::NEG_INFINITY; rows];
    let mut sum = vec![0f32; rows];
    for r in 0..rows {
        let row = &mut scores[r * len..(r + 1) * len];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        max[r] = m;
        if m == f32::NEG_INFINITY {
            row.iter_mut().for_each(|x| *x = 0.0);
            continue;
        }
        let mut s = 0f32;
        for x in row.iter_mut() {
            *x = (*x - m).exp();
            s += *x;
        }
        sum[r] = s;
    }
    // Weighted sum of V: stream V once.
    let mut acc = vec![0f32; rows * dv];
    for (i, j) in range.enumerate() {
        let vrow = v.row(b, h, j);
        for r in 0..rows {
            if j < ends[r] {
                axpy::<FMA>(&mut acc[r * dv..(r + 1) * dv], scores[r * len + i], vrow);
            }
        }
    }
    Partial { max, sum, acc }
}
