//! Fused dequantize-and-multiply for a few input rows (single-token decode): each weight row is
//! streamed once from its packed codes and applied to every input vector, with nothing
//! dequantized to memory. Rows are split across threads; the inner loops are plain Rust compiled
//! a second time with AVX2, FMA and F16C enabled and chosen at run time.
//!
//! INT4 and Q4_0 share one kernel. Per group, `Σ_j w_j x_j = d · (Σ_j q_j x_j − z · Σ_j x_j)`,
//! so the group sums of `x` are computed once per call and the inner loop is a product of
//! unpacked nibbles with `x`. The input is permuted once per call so that low nibbles meet the
//! first half of a group's slice and high nibbles the second half: INT4 packs neighbours
//! (`2j`, `2j + 1`) into a byte, Q4_0 packs `j` and `j + 16`.

use half::{bf16, f16};
use rayon::prelude::*;

use super::format::QuantFormat;
use super::tensor::{padded_cols, QuantizedTensor, Scales};

/// Input vectors per call that the fused path handles (more rows are a matrix product).
pub const MAX_ROWS: usize = 8;

/// `y[i][r] = Σ_c W[r, c] · x[i][c]` for `n = x.len() / cols` input vectors.
///
/// # Shapes
/// - `x`: `[n, cols]` row-major with `n <= MAX_ROWS`; `y`: `[n, rows]`
pub fn matvec(w: &QuantizedTensor, x: &[f32], y: &mut [f32]) {
    let n = x.len() / w.cols;
    assert!(
        n >= 1 && n <= MAX_ROWS && x.len() == n * w.cols,
        "x must be [n <= 8, cols]"
    );
    assert_eq!(y.len(), n * w.rows, "y must be [n, rows]");
    let prep = Prepared::new(w, x, n);
    // Results per weight row (n each), then transposed into y.
    let mut out = vec![0f32; w.rows * n];
    let chunk = 16;
    out.par_chunks_mut(chunk * n)
        .enumerate()
        .for_each(|(ci, o)| {
            let r0 = ci * chunk;
            let rows = o.len() / n;
            if simd_available() {
                // SAFETY: the CPU supports avx2, fma and f16c (checked at run time).
                unsafe { rows_simd(w, &prep, r0, rows, o) }
            } else {
                rows_plain(w, &prep, r0, rows, o)
            }
        });
    for r in 0..w.rows {
        for i in 0..n {
            y[i * w.rows + r] = out[r * n + i];
        }
    }
}

fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Per-call preparation of the inputs.
struct Prepared {
    n: usize,
    /// `[n, padded_cols]`: `x` permuted for nibble kernels, or padded `x` otherwise.
    px: Vec<f32>,
    /// `[n, groups per row]`: `Σ x` over each group (nibble kernels).
    sums: Vec<f32>,
    /// Codes per row after padding.
    pc: usize,
}

impl Prepared {
    fn new(w: &QuantizedTensor, x: &[f32], n: usize) -> Self {
        let (cols, pc, g) = (w.cols, padded_cols(w.format, w.cols), w.format.group());
        let mut px = vec![0f32; n * pc];
        let mut sums = Vec::new();
        for i in 0..n {
            let xi = &x[i * cols..(i + 1) * cols];
            let dst = &mut px[i * pc..(i + 1) * pc];
            match w.format {
                QuantFormat::Int4 { .. } => {
                    // Group slice: even positions first, then odd ones.
                    for (k, d) in dst.chunks_mut(g).enumerate() {
                        for j in 0..g / 2 {
                            d[j] = xi.get(k * g + 2 * j).copied().unwrap_or(0.0);
                            d[g / 2 + j] = xi.get(k * g + 2 * j + 1).copied().unwrap_or(0.0);
                        }
                    }
                }
                _ => dst[..cols].copy_from_slice(xi),
            }
            if g > 1 {
                sums.extend(dst.chunks(g).map(|c| c.iter().sum::<f32>()));
            }
        }
        Self { n, px, sums, pc }
    }
}

/// `Σ_j lo(b_j)·p[j] + hi(b_j)·p[h + j]` for `h = b.len()` bytes and `p.len() = 2h`.
#[inline(always)]
fn nibble_dot(b: &[u8], p: &[f32]) -> f32 {
    let h = b.len();
    let (pa, pb) = p.split_at(h);
    let mut acc = [0f32; 16];
    for ((bc, ac), bcc) in b
        .chunks_exact(16)
        .zip(pa.chunks_exact(16))
        .zip(pb.chunks_exact(16))
    {
        for j in 0..16 {
            acc[j] += (bc[j] & 15) as f32 * ac[j] + (bc[j] >> 4) as f32 * bcc[j];
        }
    }
    acc.iter().sum()
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for j in 0..16 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn int8_dot(c: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (cc, xc) = (c.chunks_exact(16), x.chunks_exact(16));
    let tail: f32 = cc
        .remainder()
        .iter()
        .zip(xc.remainder())
        .map(|(&q, y)| q as i8 as f32 * y)
        .sum();
    for (q, y) in cc.zip(xc) {
        for j in 0..16 {
            acc[j] += q[j] as i8 as f32 * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Weight rows `r0 .. r0 + rows` against every prepared input; `out` is `[rows, n]`.
#[inline(always)]
fn rows_body(w: &QuantizedTensor, p: &Prepared, r0: usize, rows: usize, out: &mut [f32]) {
    let (n, pc, cols) = (p.n, p.pc, w.cols);
    let mut buf = vec![0f32; pc];
    let fp8_lut: Option<[f32; 256]> = match w.format {
        QuantFormat::Fp8(kind, _) => Some(std::array::from_fn(|c| kind.decode(c as u8))),
        _ => None,
    };
    for rr in 0..rows {
        let r = r0 + rr;
        let o = &mut out[rr * n..(rr + 1) * n];
        match (&w.format, &w.scales) {
            (QuantFormat::Int4 { group, .. }, Scales::Group { scale, zero }) => {
                let g = *group;
                let gpr = pc / g;
                let bytes = &w.codes[r * pc / 2..(r + 1) * pc / 2];
                o.fill(0.0);
                for k in 0..gpr {
                    let gi = r * gpr + k;
                    let d = scale[gi].to_f32();
                    let z = zero.as_ref().map_or(8.0, |z| z[gi] as f32);
                    let b = &bytes[k * g / 2..(k + 1) * g / 2];
                    for (i, oi) in o.iter_mut().enumerate() {
                        let px = &p.px[i * pc + k * g..i * pc + (k + 1) * g];
                        *oi += d * (nibble_dot(b, px) - z * p.sums[i * gpr + k]);
                    }
                }
            }
            (QuantFormat::Q4_0, _) => {
                let gpr = pc / 32;
                let blocks = &w.codes[r * gpr * 18..(r + 1) * gpr * 18];
                o.fill(0.0);
                for (k, blk) in blocks.chunks_exact(18).enumerate() {
                    let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                    for (i, oi) in o.iter_mut().enumerate() {
                        let px = &p.px[i * pc + k * 32..i * pc + (k + 1) * 32];
                        *oi += d * (nibble_dot(&blk[2..], px) - 8.0 * p.sums[i * gpr + k]);
                    }
                }
            }
            (QuantFormat::Int8, Scales::Row(s)) => {
                let c = &w.codes[r * cols..(r + 1) * cols];
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = s[r] * int8_dot(c, &p.px[i * pc..i * pc + cols]);
                }
            }
            (QuantFormat::Fp8(..), s) => {
                let lut = fp8_lut.as_ref().expect("fp8 table");
                let s = match s {
                    Scales::Tensor(s) => *s,
                    Scales::Row(v) => v[r],
                    _ => unreachable!("fp8 scales"),
                };
                for (b, &c) in buf.iter_mut().zip(&w.codes[r * cols..(r + 1) * cols]) {
                    *b = lut[c as usize];
                }
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = s * dot(&buf[..cols], &p.px[i * pc..i * pc + cols]);
                }
            }
            (QuantFormat::F16, _) => {
                for (b, c) in buf
                    .iter_mut()
                    .zip(w.codes[r * cols * 2..(r + 1) * cols * 2].chunks_exact(2))
                {
                    *b = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = dot(&buf[..cols], &p.px[i * pc..i * pc + cols]);
                }
            }
            (QuantFormat::Bf16, _) => {
                for (b, c) in buf
                    .iter_mut()
                    .zip(w.codes[r * cols * 2..(r + 1) * cols * 2].chunks_exact(2))
                {
                    *b = bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = dot(&buf[..cols], &p.px[i * pc..i * pc + cols]);
                }
            }
            (QuantFormat::F32, _) => {
                for (b, c) in buf
                    .iter_mut()
                    .zip(w.codes[r * cols * 4..(r + 1) * cols * 4].chunks_exact(4))
                {
                    *b = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = dot(&buf[..cols], &p.px[i * pc..i * pc + cols]);
                }
            }
            _ => unreachable!("format and scales always agree"),
        }
    }
}

fn rows_plain(w: &QuantizedTensor, p: &Prepared, r0: usize, rows: usize, out: &mut [f32]) {
    rows_body(w, p, r0, rows, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_simd(w: &QuantizedTensor, p: &Prepared, r0: usize, rows: usize, out: &mut [f32]) {
    rows_body(w, p, r0, rows, out)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn rows_simd(w: &QuantizedTensor, p: &Prepared, r0: usize, rows: usize, out: &mut [f32]) {
    rows_body(w, p, r0, rows, out)
}
