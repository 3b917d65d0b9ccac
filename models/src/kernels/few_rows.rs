//! `y = x · W` for a few rows of `x` (a decode step of a small batch, or a speculative
//! verification of γ + 1 tokens) with `W` read exactly once. A general GEMM packs `W` into
//! tiles first, which for a handful of rows costs more than the product: on SmolLM2-135M a
//! forward of 5 tokens took 4.7 times one of 1 token. Here the cost is one pass over `W`
//! whatever the number of rows (up to [`MAX_ROWS`]).
//!
//! Two layouts, both read in place:
//! - `W` row-major `[k, n]` (a projection stored burn-style `[d_in, d_out]`): for each row of `W`,
//!   every output row gets `x[i][kk] · W[kk]` added (axpy form), in column blocks that keep the
//!   outputs in L1;
//! - `W` given as `Eᵀ` with `E` row-major `[n, k]` (a head tied to the embedding): each output is
//!   a dot product of an input row with a row of `E`.
//!
//! Every output element accumulates over `k` in the same order whatever the number of rows, so a
//! row's result does not depend on the rows beside it: decoding one token and verifying it among
//! γ + 1 give the same logits. Wide layers split their columns across threads.

use rayon::prelude::*;

use super::isa::{self, Isa};

/// Rows one pass over `W` serves.
pub const MAX_ROWS: usize = 8;

/// Most rows the kernel takes, in passes of [`MAX_ROWS`] (more is a matrix product). A
/// ragged step of several sequences (batched speculative verification: batch × (γ + 1) rows)
/// stays here, so that each row's result is the one it would get alone: a GEMM would block
/// and order its sums by the shape of the whole batch.
pub const STEP_ROWS: usize = 64;

/// Columns per task of the axpy form (outputs stay in L1: 8 rows × 512 × 4 bytes).
const BLOCK: usize = 512;

/// Layers with fewer weights than this run on the calling thread.
const PARALLEL_WEIGHTS: usize = 1 << 18;

/// How `W` lies in memory.
#[derive(Clone, Copy, Debug)]
pub enum WeightLayout {
    /// Row-major `[k, n]` starting at `offset`, rows `stride` apart.
    KByN { offset: usize, stride: usize },
    /// `Eᵀ` of a row-major `[n, k]` matrix `E` starting at `offset`, rows `stride` apart.
    NByK { offset: usize, stride: usize },
}

/// `y[m][n] = Σ_kk x[m][kk] · W[kk][n]`, or `None` when there are more than [`STEP_ROWS`] rows.
///
/// # Shapes
/// - `x`: `[m, k]` row-major → `[m, n]` row-major
///
/// # Panics
/// When `w` is too short for the layout.
pub fn matmul(
    x: &[f32],
    m: usize,
    k: usize,
    n: usize,
    w: &[f32],
    layout: WeightLayout,
) -> Option<Vec<f32>> {
    matmul_with(isa::active(), x, m, k, n, w, layout)
}

/// [`matmul`] on an explicit SIMD path (tests run every path).
///
/// # Panics
/// When this CPU lacks `isa`, or when `w` is too short for the layout.
pub fn matmul_with(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    n: usize,
    w: &[f32],
    layout: WeightLayout,
) -> Option<Vec<f32>> {
    assert!(
        isa.supported(),
        "ISA path {isa} is not supported by this CPU"
    );
    if m == 0 || m > STEP_ROWS || x.len() != m * k {
        return None;
    }
    if m > MAX_ROWS {
        let mut y = Vec::with_capacity(m * n);
        for rows in x.chunks(MAX_ROWS * k) {
            y.extend(matmul_with(isa, rows, rows.len() / k, k, n, w, layout)?);
        }
        return Some(y);
    }
    let mut y = vec![0f32; m * n];
    let parallel = k * n >= PARALLEL_WEIGHTS;
    match layout {
        WeightLayout::KByN { offset, stride } => {
            assert!(
                k == 0 || w.len() >= offset + (k - 1) * stride + n,
                "W too short"
            );
            // Outputs in column blocks: task b owns columns b·BLOCK.. of every row, written to
            // its own [m, block] scratch and copied out.
            let blocks: Vec<usize> = (0..n.div_ceil(BLOCK)).collect();
            let run = |&b: &usize| {
                let (n0, n1) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
                let mut out = vec![0f32; m * (n1 - n0)];
                axpy_block(isa, x, m, k, &w[offset..], stride, n0, n1, &mut out);
                out
            };
            let parts: Vec<Vec<f32>> = if parallel {
                blocks.par_iter().map(run).collect()
            } else {
                blocks.iter().map(run).collect()
            };
            for (b, part) in parts.iter().enumerate() {
                let (n0, width) = (b * BLOCK, part.len() / m);
                for i in 0..m {
                    y[i * n + n0..i * n + n0 + width]
                        .copy_from_slice(&part[i * width..(i + 1) * width]);
                }
            }
        }
        WeightLayout::NByK { offset, stride } => {
            assert!(
                n == 0 || w.len() >= offset + (n - 1) * stride + k,
                "W too short"
            );
            // Task per chunk of output columns; results [chunk, m] transposed at the end.
            let chunk = (32 * 1024 / k.max(1)).max(16);
            let chunks: Vec<usize> = (0..n.div_ceil(chunk)).collect();
            let run = |&c: &usize| {
                let (n0, n1) = (c * chunk, ((c + 1) * chunk).min(n));
                let mut out = vec![0f32; (n1 - n0) * m];
                dot_rows(isa, x, m, k, &w[offset..], stride, n0, n1, &mut out);
                out
            };
            let parts: Vec<Vec<f32>> = if parallel {
                chunks.par_iter().map(run).collect()
            } else {
                chunks.iter().map(run).collect()
            };
            for (c, part) in parts.iter().enumerate() {
                for (j, row) in part.chunks(m).enumerate() {
                    for (i, &v) in row.iter().enumerate() {
                        y[i * n + c * chunk + j] = v;
                    }
                }
            }
        }
    }
    Some(y)
}

/// Columns per register tile: every row's outputs for the tile stay in registers while `W`'s
/// rows stream past (8 rows × 32 columns = 16 AVX-512 or 32 AVX2 registers).
const TILE: usize = 32;

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn axpy_body(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    stride: usize,
    n0: usize,
    n1: usize,
    out: &mut [f32],
) {
    match m {
        1 => axpy_rows::<1>(x, k, w, stride, n0, n1, out),
        2 => axpy_rows::<2>(x, k, w, stride, n0, n1, out),
        3 => axpy_rows::<3>(x, k, w, stride, n0, n1, out),
        4 => axpy_rows::<4>(x, k, w, stride, n0, n1, out),
        5 => axpy_rows::<5>(x, k, w, stride, n0, n1, out),
        6 => axpy_rows::<6>(x, k, w, stride, n0, n1, out),
        7 => axpy_rows::<7>(x, k, w, stride, n0, n1, out),
        _ => axpy_rows::<8>(x, k, w, stride, n0, n1, out),
    }
}

/// `out[i][c − n0] = Σ_kk x[i][kk] · W[kk][c]` for columns `n0..n1`, a register tile at a time;
/// each output accumulates over `kk` in order.
#[inline(always)]
fn axpy_rows<const M: usize>(
    x: &[f32],
    k: usize,
    w: &[f32],
    stride: usize,
    n0: usize,
    n1: usize,
    out: &mut [f32],
) {
    let width = n1 - n0;
    let mut c = n0;
    while c + TILE <= n1 {
        let mut acc = [[0f32; TILE]; M];
        for kk in 0..k {
            let wr: &[f32; TILE] = w[kk * stride + c..kk * stride + c + TILE]
                .try_into()
                .expect("a tile");
            for (i, a) in acc.iter_mut().enumerate() {
                let xi = x[i * k + kk];
                for t in 0..TILE {
                    a[t] += xi * wr[t];
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            out[i * width + c - n0..i * width + c - n0 + TILE].copy_from_slice(a);
        }
        c += TILE;
    }
    // Remaining columns (fewer than a tile), same order of accumulation.
    for col in c..n1 {
        for i in 0..M {
            let mut s = 0f32;
            for kk in 0..k {
                s += x[i * k + kk] * w[kk * stride + col];
            }
            out[i * width + col - n0] = s;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dot_body(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    stride: usize,
    n0: usize,
    n1: usize,
    out: &mut [f32],
) {
    let rows = DotRows { x, k, m };
    match m {
        // Two or three rows: one at a time, each weight row staying in L1 (measured faster here
        // than the interleaved form, whose codegen for so few rows is poor).
        1..=3 => (0..m).for_each(|i| dot_m::<1>(rows, i, w, stride, n0, n1, out)),
        4 => dot_m::<4>(rows, 0, w, stride, n0, n1, out),
        5 => dot_m::<5>(rows, 0, w, stride, n0, n1, out),
        6 => dot_m::<6>(rows, 0, w, stride, n0, n1, out),
        7 => dot_m::<7>(rows, 0, w, stride, n0, n1, out),
        _ => dot_m::<8>(rows, 0, w, stride, n0, n1, out),
    }
}

/// The input rows of a dot-form product: `m` rows of `k`.
#[derive(Clone, Copy)]
struct DotRows<'a> {
    x: &'a [f32],
    k: usize,
    m: usize,
}

/// [`dot_body`] for input rows `first..first + M`: each 16-wide chunk of a weight row is loaded once and
/// multiplied into all `M` rows' accumulators (`M` independent FMA chains, where one row alone
/// waits on each FMA's latency: v(4) was 2.1 on SmolLM2, 56% of the step in this loop). Every
/// row keeps its own sixteen partial sums in the same order as alone, so its result does not
/// depend on `M`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dot_m<const M: usize>(
    rows: DotRows<'_>,
    first: usize,
    w: &[f32],
    stride: usize,
    n0: usize,
    n1: usize,
    out: &mut [f32],
) {
    let (k, m) = (rows.k, rows.m);
    let x = &rows.x[first * k..(first + M) * k];
    let full = k / 16 * 16;
    for (j, r) in (n0..n1).enumerate() {
        let wr = &w[r * stride..r * stride + k];
        let mut acc = [[0f32; 16]; M];
        for c in (0..full).step_by(16) {
            let a: &[f32; 16] = wr[c..c + 16].try_into().expect("16 weights");
            for (i, acc) in acc.iter_mut().enumerate() {
                let b: &[f32; 16] = x[i * k + c..i * k + c + 16].try_into().expect("16 inputs");
                for t in 0..16 {
                    acc[t] += a[t] * b[t];
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let tail: f32 = wr[full..]
                .iter()
                .zip(&x[i * k + full..(i + 1) * k])
                .map(|(a, b)| a * b)
                .sum();
            out[j * m + first + i] = lane_sum(acc) + tail;
        }
    }
}

/// The sixteen partial sums of one dot product, added in lane order. Kept out of line: inlined,
/// the compiler vectorises the sums of several rows together with shuffles, which made 2 and 3
/// rows slower than 5.
#[inline(never)]
fn lane_sum(acc: &[f32; 16]) -> f32 {
    acc.iter().sum()
}

macro_rules! dispatch {
    ($name:ident, $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        fn $name(
            isa: Isa,
            x: &[f32],
            m: usize,
            k: usize,
            w: &[f32],
            stride: usize,
            n0: usize,
            n1: usize,
            out: &mut [f32],
        ) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide(
                    x: &[f32],
                    m: usize,
                    k: usize,
                    w: &[f32],
                    stride: usize,
                    n0: usize,
                    n1: usize,
                    out: &mut [f32],
                ) {
                    $body(x, m, k, w, stride, n0, n1, out)
                }
                #[target_feature(enable = "avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2(
                    x: &[f32],
                    m: usize,
                    k: usize,
                    w: &[f32],
                    stride: usize,
                    n0: usize,
                    n1: usize,
                    out: &mut [f32],
                ) {
                    $body(x, m, k, w, stride, n0, n1, out)
                }
                match isa {
                    // SAFETY: `matmul_with` asserted that the CPU supports `isa`.
                    Isa::Avx512 => return unsafe { wide(x, m, k, w, stride, n0, n1, out) },
                    // SAFETY: as above.
                    Isa::Avx2 => return unsafe { avx2(x, m, k, w, stride, n0, n1, out) },
                    Isa::Portable => {}
                }
            }
            $body(x, m, k, w, stride, n0, n1, out)
        }
    };
}

dispatch!(axpy_block, axpy_body);
dispatch!(dot_rows, dot_body);

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], m: usize, k: usize, n: usize, w_kn: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for kk in 0..k {
                    s += x[i * k + kk] as f64 * w_kn[kk * n + j] as f64;
                }
                y[i * n + j] = s as f32;
            }
        }
        y
    }

    #[test]
    fn both_layouts_equal_a_plain_loop_and_rows_do_not_depend_on_their_neighbours() {
        let (k, n) = (75, 1100);
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 700.0)
            .collect();
        let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
        let x: Vec<f32> = (0..8 * k)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0)
            .collect();
        for (isa, m) in crate::kernels::isa::test_paths("few_rows::matmul")
            .into_iter()
            .flat_map(|isa| [1, 3, 5, 8].map(|m| (isa, m)))
        {
            let want = reference(&x[..m * k], m, k, n, &w);
            let a = matmul_with(
                isa,
                &x[..m * k],
                m,
                k,
                n,
                &w,
                WeightLayout::KByN {
                    offset: 0,
                    stride: n,
                },
            )
            .unwrap();
            let b = matmul_with(
                isa,
                &x[..m * k],
                m,
                k,
                n,
                &wt,
                WeightLayout::NByK {
                    offset: 0,
                    stride: k,
                },
            )
            .unwrap();
            for (got, what) in [(&a, "k×n"), (&b, "n×k")] {
                let d = crate::diff::max_abs_diff(got, &want).unwrap();
                assert!(d < 1e-4, "{isa}, {what}, {m} rows: {d}");
            }
            // Row 0 alone and row 0 among m rows: bit-identical.
            let one = matmul_with(
                isa,
                &x[..k],
                1,
                k,
                n,
                &w,
                WeightLayout::KByN {
                    offset: 0,
                    stride: n,
                },
            )
            .unwrap();
            assert_eq!(&a[..n], &one[..]);
            let one = matmul_with(
                isa,
                &x[..k],
                1,
                k,
                n,
                &wt,
                WeightLayout::NByK {
                    offset: 0,
                    stride: k,
                },
            )
            .unwrap();
            assert_eq!(&b[..n], &one[..]);
        }
        assert!(matmul(
            &x,
            9,
            k,
            n,
            &w,
            WeightLayout::KByN {
                offset: 0,
                stride: n
            }
        )
        .is_none());
    }
}
