//! Fused dequantize-and-multiply for a few input rows (single-token decode): each weight row is
//! streamed once from its packed codes and applied to every input vector, with nothing
//! dequantized to memory. Rows are split across threads. The row loop is compiled three times
//! (portable; AVX2 + FMA + F16C; AVX-512) and the path comes from [`crate::kernels::isa`]; the
//! vector inner loops are 256-bit on both SIMD paths (faster than a 512-bit nibble loop on Zen 4).
//!
//! INT4, Q4_0 and Q4_1 share one kernel (Q4_1 adds `m · Σ x` per block); Q8_0 takes the INT8
//! dot product block by block. Per group, `Σ_j w_j x_j = d · (Σ_j q_j x_j − z · Σ_j x_j)`,
//! so the group sums of `x` are computed once per call and the inner loop is a product of
//! unpacked nibbles with `x`. The input is permuted once per call so that low nibbles meet the
//! first half of a group's slice and high nibbles the second half: INT4 packs neighbours
//! (`2j`, `2j + 1`) into a byte, Q4_0 packs `j` and `j + 16`.

use half::{bf16, f16};
use rayon::prelude::*;

use super::format::{Fp8Kind, QuantFormat};
use super::tensor::{padded_cols, QuantizedTensor, Scales};
use crate::kernels::isa::{self, Isa};

/// Input vectors per call that the fused path handles (more rows are a matrix product).
pub const MAX_ROWS: usize = 8;

/// Layers with fewer weights than this run on the calling thread (measured on SmolLM2-135M,
/// 2 cores: 2^20 gave 36 tokens/s, 2^18 49, 2^16 43).
const PARALLEL_WEIGHTS: usize = 1 << 18;

/// `y[i][r] = Σ_c W[r, c] · x[i][c]` for `n = x.len() / cols` input vectors.
///
/// # Shapes
/// - `x`: `[n, cols]` row-major with `n <= MAX_ROWS`; `y`: `[n, rows]`
pub fn matvec(w: &QuantizedTensor, x: &[f32], y: &mut [f32]) {
    matvec_with(isa::active(), w, x, y)
}

/// [`matvec`] on an explicit SIMD path (tests run every path; benches time them side by side).
///
/// # Panics
/// When this CPU lacks `isa`, or on the shapes [`matvec`] refuses.
pub fn matvec_with(isa: Isa, w: &QuantizedTensor, x: &[f32], y: &mut [f32]) {
    assert!(
        isa.supported(),
        "ISA path {isa} is not supported by this CPU"
    );
    let n = x.len() / w.cols;
    assert!(
        (1..=MAX_ROWS).contains(&n) && x.len() == n * w.cols,
        "x must be [n <= 8, cols]"
    );
    let prep = Prepared::new(w, x, n);
    drive(w, n, x, y, |r0, o| {
        let rows = o.len() / n;
        match isa {
            // SAFETY: the CPU has the features of each kernel (asserted above).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { rows_avx512(w, &prep, r0, rows, o) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { rows_avx2(w, &prep, r0, rows, o) },
            _ => rows_plain(w, &prep, r0, rows, o),
        }
    });
}

/// Splits `w`'s rows into tasks and runs `run(first row, out)` on each, where `out` is the
/// task's `[rows, n]` slice of results; then writes them to `y` (`[n, rows]`). Checks the
/// shapes of `x` and `y`.
pub(super) fn drive<F: Fn(usize, &mut [f32]) + Sync>(
    w: &QuantizedTensor,
    n: usize,
    x: &[f32],
    y: &mut [f32],
    run: F,
) {
    assert!(
        (1..=MAX_ROWS).contains(&n) && x.len() == n * w.cols,
        "x must be [n <= 8, cols]"
    );
    drive_many(&[w], n, &mut [y], |_, r0, o| run(r0, o));
}

/// [`drive`] over several matrices of one input at once (a layer's Q, K and V, or its gate and
/// up projections): one set of tasks over all their rows, so that small matrices share the
/// threads with large ones and the pool is woken once. `run(matrix, first row, out)`; `ys[m]`
/// is `[n, rows of m]`.
pub(super) fn drive_many<F: Fn(usize, usize, &mut [f32]) + Sync>(
    ws: &[&QuantizedTensor],
    n: usize,
    ys: &mut [&mut [f32]],
    run: F,
) {
    assert_eq!(ws.len(), ys.len(), "one output per matrix");
    assert!((1..=MAX_ROWS).contains(&n), "n must be in 1..=8");
    for (w, y) in ws.iter().zip(ys.iter()) {
        assert_eq!(y.len(), n * w.rows, "y must be [n, rows]");
    }
    // Kernels write `[rows, n]` (each weight row's results side by side). For one input that is
    // `y`'s own layout; for more, scratch buffers are transposed into `y` at the end.
    let mut scratch: Vec<Vec<f32>> = if n == 1 {
        Vec::new()
    } else {
        ws.iter().map(|w| vec![0f32; w.rows * n]).collect()
    };
    let weights: usize = ws.iter().map(|w| w.rows * w.cols).sum();
    {
        let outs: Vec<&mut [f32]> = if n == 1 {
            ys.iter_mut().map(|y| &mut **y).collect()
        } else {
            scratch.iter_mut().map(|s| &mut s[..]).collect()
        };
        // At least 16 rows and about 32 K weights per task: small layers stay on few threads.
        let mut tasks: Vec<(usize, usize, &mut [f32])> = Vec::new();
        for (m, (w, out)) in ws.iter().zip(outs).enumerate() {
            let chunk = (32 * 1024 / w.cols.max(1)).max(16);
            for (ci, o) in out.chunks_mut(chunk * n).enumerate() {
                tasks.push((m, ci * chunk, o));
            }
        }
        if tasks.len() == 1 || weights < PARALLEL_WEIGHTS {
            // One task, or too little work to pay for waking the pool (~0.1 ms on a 2-core
            // machine).
            for (m, r0, o) in tasks {
                run(m, r0, o);
            }
        } else {
            tasks.into_par_iter().for_each(|(m, r0, o)| run(m, r0, o));
        }
    }
    if n > 1 {
        for ((w, y), s) in ws.iter().zip(ys.iter_mut()).zip(&scratch) {
            for r in 0..w.rows {
                for i in 0..n {
                    y[i * w.rows + r] = s[r * n + i];
                }
            }
        }
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

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    //! AVX2 + FMA + F16C dot products over packed codes. Callers guarantee the CPU features
    //! and that slices have the documented lengths (multiples of 16 codes).
    use std::arch::x86_64::*;

    /// The sum of the eight lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn hsum(a: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// `Σ_k d[k] · Σ_j q_kj · p_kj` over a whole row of nibble groups: `g / 2` bytes and `g`
    /// permuted inputs per group (`g` a multiple of 32), `stride` bytes from one group's codes to
    /// the next (`g / 2` for INT4, 18 for Q4_0 blocks). One horizontal sum per row.
    ///
    /// Eight code bytes widen straight from memory to eight 32-bit lanes (`vpmovzxbd` with a
    /// memory operand: no shuffles), where the low nibble is a mask and the high one a shift.
    /// Even and odd groups go to separate accumulators, so consecutive groups do not wait on
    /// each other's FMA.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn nibble_row(
        codes: *const u8,
        stride: usize,
        p: &[f32],
        d: &[f32],
        g: usize,
    ) -> f32 {
        let mask = _mm256_set1_epi32(15);
        let mut acc = [_mm256_setzero_ps(); 4];
        let h = g / 2;
        for (k, &dk) in d.iter().enumerate() {
            let b = codes.add(k * stride);
            let pa = p.as_ptr().add(k * g);
            let pb = pa.add(h);
            let (mut t0, mut t1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut j = 0;
            while j < h {
                let v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(b.add(j) as *const __m128i));
                let v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(b.add(j + 8) as *const __m128i));
                let lo0 = _mm256_cvtepi32_ps(_mm256_and_si256(v0, mask));
                let lo1 = _mm256_cvtepi32_ps(_mm256_and_si256(v1, mask));
                let hi0 = _mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4));
                let hi1 = _mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4));
                t0 = _mm256_fmadd_ps(lo0, _mm256_loadu_ps(pa.add(j)), t0);
                t1 = _mm256_fmadd_ps(lo1, _mm256_loadu_ps(pa.add(j + 8)), t1);
                t0 = _mm256_fmadd_ps(hi0, _mm256_loadu_ps(pb.add(j)), t0);
                t1 = _mm256_fmadd_ps(hi1, _mm256_loadu_ps(pb.add(j + 8)), t1);
                j += 16;
            }
            let dv = _mm256_set1_ps(dk);
            let e = 2 * (k & 1);
            acc[e] = _mm256_fmadd_ps(t0, dv, acc[e]);
            acc[e + 1] = _mm256_fmadd_ps(t1, dv, acc[e + 1]);
        }
        hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    }

    /// `out[i] = f32(h[i])` for f16 bit patterns, eight at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn halves_to_f32(h: &[u16], out: &mut [f32]) {
        let n = h.len().min(out.len());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm_loadu_si128(h.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(v));
            i += 8;
        }
        for j in i..n {
            // One F16C conversion (`half`'s `to_f32` checks the CPU at run time, per call).
            out[j] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h[j] as i32)));
        }
    }

    /// Which bytes make a half: F16 codes, E5M2 codes (the high byte of the same half), or
    /// E4M3 codes (`S.EEEE.MMM` → `S.0EEEE.MMM0000000`, a half 256 times too small: the exponent
    /// bias drops from 15 to 7, subnormals included; NaN codes are not handled, quantized
    /// weights never hold them).
    pub const F16: u8 = 0;
    pub const E5M2: u8 = 1;
    pub const E4M3: u8 = 2;

    /// 16 codes starting at `p` as 16 halves.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn widen<const KIND: u8>(p: *const u8) -> __m256i {
        match KIND {
            F16 => _mm256_loadu_si256(p as *const __m256i),
            E5M2 => _mm256_slli_epi16(
                _mm256_cvtepu8_epi16(_mm_loadu_si128(p as *const __m128i)),
                8,
            ),
            _ => {
                let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(p as *const __m128i));
                let sign = _mm256_slli_epi16(_mm256_and_si256(c, _mm256_set1_epi16(0x80)), 8);
                let rest = _mm256_slli_epi16(_mm256_and_si256(c, _mm256_set1_epi16(0x7F)), 7);
                _mm256_or_si256(sign, rest)
            }
        }
    }

    /// `Σ_j half(c_j)·x[j]` over `x.len()` (a multiple of 16) codes of kind `KIND`; E4M3 sums
    /// come back 256 times too small.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn half_dot<const KIND: u8>(codes: &[u8], x: &[f32]) -> f32 {
        let bpc = if KIND == F16 { 2 } else { 1 };
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut j = 0;
        while j < x.len() {
            let h = widen::<KIND>(codes.as_ptr().add(j * bpc));
            let f0 = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
            let f1 = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
            a0 = _mm256_fmadd_ps(f0, _mm256_loadu_ps(x.as_ptr().add(j)), a0);
            a1 = _mm256_fmadd_ps(f1, _mm256_loadu_ps(x.as_ptr().add(j + 8)), a1);
            j += 16;
        }
        hsum(_mm256_add_ps(a0, a1))
    }

    /// BF16 codes: the high half of an f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn bf16_dot(codes: &[u8], x: &[f32]) -> f32 {
        let mut a = _mm256_setzero_ps();
        let mut j = 0;
        while j < x.len() {
            let h = _mm_loadu_si128(codes.as_ptr().add(2 * j) as *const __m128i);
            let f = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
            a = _mm256_fmadd_ps(f, _mm256_loadu_ps(x.as_ptr().add(j)), a);
            j += 8;
        }
        hsum(a)
    }
}

/// `Σ_k d[k] · Σ_j q_kj · p_kj` over one row of nibble groups of `g` codes whose bytes start
/// `stride` apart in `codes` (see `avx2::nibble_row`).
#[inline(always)]
fn nibble_row<const LEVEL: u8>(codes: &[u8], stride: usize, p: &[f32], d: &[f32], g: usize) -> f32 {
    let groups = d.len();
    assert!(codes.len() >= (groups - 1) * stride + g / 2 && p.len() >= groups * g);
    #[cfg(target_arch = "x86_64")]
    if LEVEL > 0 && g.is_multiple_of(32) {
        // SAFETY: LEVEL 1 runs inside `rows_avx2`, LEVEL 2 inside `rows_avx512` (a superset),
        // whose callers checked the features; the bounds above cover every load.
        //
        // Both levels take the 256-bit kernel: on Zen 4 it beat a 512-bit form of the same
        // loop (INT4 g32 4096², criterion medians: 0.69 and 0.71 ms against 0.77–0.85 ms in
        // five runs), since 512-bit operations issue as two 256-bit halves there.
        return unsafe { avx2::nibble_row(codes.as_ptr(), stride, p, d, g) };
    }
    (0..groups)
        .map(|k| {
            d[k] * nibble_dot_plain(
                &codes[k * stride..k * stride + g / 2],
                &p[k * g..(k + 1) * g],
            )
        })
        .sum()
}

#[inline(always)]
fn nibble_dot_plain(b: &[u8], p: &[f32]) -> f32 {
    let h = b.len();
    let (pa, pb) = p.split_at(h);
    b.iter()
        .zip(pa.iter().zip(pb))
        .map(|(&c, (x, y))| (c & 15) as f32 * x + (c >> 4) as f32 * y)
        .sum()
}

#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// `Σ_j decode(c_j)·x[j]` for 8- or 16-bit float codes, vectorized over the largest multiple
/// of 16 when `LEVEL > 0`, the rest through the portable decode. Returns the sum before scaling
/// (on the vector path the E4M3 ×256 is applied here, so the caller's scale is unchanged).
#[inline(always)]
fn float_code_dot<const LEVEL: u8>(
    format: QuantFormat,
    codes: &[u8],
    x: &[f32],
    buf: &mut [f32],
) -> f32 {
    let n = x.len();
    let bpc = match format {
        QuantFormat::F16 | QuantFormat::Bf16 => 2,
        _ => 1,
    };
    let mut head = 0;
    let mut acc = 0f32;
    #[cfg(target_arch = "x86_64")]
    if LEVEL > 0 {
        head = n / 16 * 16;
        let (c, xs) = (&codes[..head * bpc], &x[..head]);
        // SAFETY: LEVEL > 0 only inside `rows_avx2`/`rows_avx512`, whose callers checked avx2,
        // fma and f16c;
        // `c` holds `head` codes and `xs` `head` floats, head a multiple of 16.
        acc = unsafe {
            match format {
                QuantFormat::F16 => avx2::half_dot::<{ avx2::F16 }>(c, xs),
                QuantFormat::Bf16 => avx2::bf16_dot(c, xs),
                QuantFormat::Fp8(Fp8Kind::E5M2, _) => avx2::half_dot::<{ avx2::E5M2 }>(c, xs),
                QuantFormat::Fp8(Fp8Kind::E4M3, _) => {
                    256.0 * avx2::half_dot::<{ avx2::E4M3 }>(c, xs)
                }
                _ => unreachable!("float formats only"),
            }
        };
    }
    let tail = &mut buf[..n - head];
    for (j, b) in tail.iter_mut().enumerate() {
        let i = head + j;
        *b = match format {
            QuantFormat::F16 => f16::from_le_bytes([codes[2 * i], codes[2 * i + 1]]).to_f32(),
            QuantFormat::Bf16 => bf16::from_le_bytes([codes[2 * i], codes[2 * i + 1]]).to_f32(),
            QuantFormat::Fp8(kind, _) => kind.decode(codes[i]),
            _ => unreachable!("float formats only"),
        };
    }
    acc + dot(tail, &x[head..])
}

/// `out[k] = f32(s[k])`: F16C eight at a time when `LEVEL > 0`.
#[inline(always)]
fn scales_to_f32<const LEVEL: u8>(s: &[f16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if LEVEL > 0 {
        use half::slice::HalfFloatSliceExt;
        // SAFETY: LEVEL > 0 only inside `rows_avx2`/`rows_avx512`, whose callers checked F16C.
        unsafe { avx2::halves_to_f32(s.reinterpret_cast(), out) };
        return;
    }
    for (d, s) in out.iter_mut().zip(s) {
        *d = s.to_f32();
    }
}

/// Weight rows `r0 .. r0 + rows` against every prepared input; `out` is `[rows, n]`.
#[inline(always)]
fn rows_body<const LEVEL: u8>(
    w: &QuantizedTensor,
    p: &Prepared,
    r0: usize,
    rows: usize,
    out: &mut [f32],
) {
    let (n, pc, cols) = (p.n, p.pc, w.cols);
    let g = w.format.group();
    let gpr = pc / g;
    // Scratch: decoded weights of one row (float formats), or the row's group scales and zero
    // points as f32 (nibble formats).
    let nibbles = matches!(
        w.format,
        QuantFormat::Int4 { .. } | QuantFormat::Q4_0 | QuantFormat::Q4_1
    );
    let mut buf = if nibbles { Vec::new() } else { vec![0f32; pc] };
    let (mut ds, mut zs, mut dz) = if nibbles {
        (vec![0f32; gpr], vec![0f32; gpr], vec![0f32; gpr])
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    for rr in 0..rows {
        let r = r0 + rr;
        let o = &mut out[rr * n..(rr + 1) * n];
        match (&w.format, &w.scales) {
            (QuantFormat::Int4 { .. }, Scales::Group { scale, zero }) => {
                scales_to_f32::<LEVEL>(&scale[r * gpr..(r + 1) * gpr], &mut ds);
                // `dz[k] = d_k · z_k`: the zero point's share of the group, times Σ x below.
                if let Some(z) = zero {
                    for ((dz, &zb), d) in dz.iter_mut().zip(&z[r * gpr..(r + 1) * gpr]).zip(&ds) {
                        *dz = d * zb as f32;
                    }
                } else {
                    for (dz, d) in dz.iter_mut().zip(&ds) {
                        *dz = d * 8.0;
                    }
                }
                let bytes = &w.codes[r * pc / 2..(r + 1) * pc / 2];
                for (i, oi) in o.iter_mut().enumerate() {
                    let (px, sums) = (&p.px[i * pc..(i + 1) * pc], &p.sums[i * gpr..(i + 1) * gpr]);
                    // 16 lanes (vectorised), not one serial chain of `gpr` additions.
                    let corr = dot(&dz, sums);
                    *oi = nibble_row::<LEVEL>(bytes, g / 2, px, &ds, g) - corr;
                }
            }
            (QuantFormat::Q4_0, _) => {
                let blocks = &w.codes[r * gpr * 18..(r + 1) * gpr * 18];
                for (d, blk) in ds.iter_mut().zip(blocks.chunks_exact(18)) {
                    *d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                }
                for (i, oi) in o.iter_mut().enumerate() {
                    let (px, sums) = (&p.px[i * pc..(i + 1) * pc], &p.sums[i * gpr..(i + 1) * gpr]);
                    let corr = 8.0 * dot(&ds, sums);
                    *oi = nibble_row::<LEVEL>(&blocks[2..], 18, px, &ds, 32) - corr;
                }
            }
            (QuantFormat::Q4_1, _) => {
                // Σ (d·q + m)·x = d·Σ q·x + m·Σ x per block.
                let blocks = &w.codes[r * gpr * 20..(r + 1) * gpr * 20];
                for ((d, m), blk) in ds
                    .iter_mut()
                    .zip(zs.iter_mut())
                    .zip(blocks.chunks_exact(20))
                {
                    *d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                    *m = f16::from_le_bytes([blk[2], blk[3]]).to_f32();
                }
                for (i, oi) in o.iter_mut().enumerate() {
                    let (px, sums) = (&p.px[i * pc..(i + 1) * pc], &p.sums[i * gpr..(i + 1) * gpr]);
                    let corr = dot(&zs, sums);
                    *oi = nibble_row::<LEVEL>(&blocks[4..], 20, px, &ds, 32) + corr;
                }
            }
            (QuantFormat::Q8_0, _) => {
                let blocks = &w.codes[r * gpr * 34..(r + 1) * gpr * 34];
                for (i, oi) in o.iter_mut().enumerate() {
                    let px = &p.px[i * pc..(i + 1) * pc];
                    // A plain loop, so that the dot product is compiled inside this kernel's
                    // target features (an iterator adapter's closure may not be).
                    let mut acc = 0f32;
                    for k in 0..gpr {
                        let b = &blocks[k * 34..(k + 1) * 34];
                        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                        acc += d * int8_dot(&b[2..], &px[k * 32..(k + 1) * 32]);
                    }
                    *oi = acc;
                }
            }
            (QuantFormat::Int8, Scales::Row(s)) => {
                let c = &w.codes[r * cols..(r + 1) * cols];
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = s[r] * int8_dot(c, &p.px[i * pc..i * pc + cols]);
                }
            }
            (QuantFormat::Fp8(..), s) => {
                let s = match s {
                    Scales::Tensor(s) => *s,
                    Scales::Row(v) => v[r],
                    _ => unreachable!("fp8 scales"),
                };
                let c = &w.codes[r * cols..(r + 1) * cols];
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = s * float_code_dot::<LEVEL>(
                        w.format,
                        c,
                        &p.px[i * pc..i * pc + cols],
                        &mut buf,
                    );
                }
            }
            (QuantFormat::F16 | QuantFormat::Bf16, _) => {
                let c = &w.codes[r * cols * 2..(r + 1) * cols * 2];
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = float_code_dot::<LEVEL>(
                        w.format,
                        c,
                        &p.px[i * pc..i * pc + cols],
                        &mut buf,
                    );
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
            (QuantFormat::Q5_0 | QuantFormat::Q4K | QuantFormat::Q5K | QuantFormat::Q6K, _) => {
                // No f32-activation kernel of its own: the row dequantized, then a dot product.
                w.dequantize_row(r, &mut buf);
                for (i, oi) in o.iter_mut().enumerate() {
                    *oi = dot(&buf[..pc], &p.px[i * pc..(i + 1) * pc]);
                }
            }
            _ => unreachable!("format and scales always agree"),
        }
    }
}

fn rows_plain(w: &QuantizedTensor, p: &Prepared, r0: usize, rows: usize, out: &mut [f32]) {
    rows_body::<0>(w, p, r0, rows, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(w: &QuantizedTensor, p: &Prepared, r0: usize, rows: usize, out: &mut [f32]) {
    rows_body::<1>(w, p, r0, rows, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn rows_avx512(w: &QuantizedTensor, p: &Prepared, r0: usize, rows: usize, out: &mut [f32]) {
    rows_body::<2>(w, p, r0, rows, out)
}
