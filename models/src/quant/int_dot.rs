//! Integer dot products of packed weights with int8 activations (W4A8, W8A8), as llama.cpp's
//! CPU backend does for decode: the activation rows are quantized once per product to blocks of
//! 32 ([`super::act`]), and each 32-weight block costs one integer dot product (AVX2
//! `vpmaddubsw` + `vpmaddwd`, or AVX-512 VNNI `vpdpbusd`) and one float multiply-add.
//!
//! Every 4-bit format is written per block `k` as `w_j = dw_k · q_j + mw_k` with unsigned nibbles
//! `q_j ∈ 0..=15`: Q4_0 and INT4 sym have `mw = −8·d`, INT4 asym `mw = −z·d`, Q4_1 `mw = m`. With
//! activations `x_j ≈ da_k · a_j`,
//!
//! `Σ_j w_j x_j ≈ Σ_k dw_k · da_k · (Σ_j q_j a_j) + Σ_k mw_k · (da_k · Σ_j a_j)`,
//!
//! an exact integer sum per block, one float FMA per block, and a correction that is a dot
//! product of two per-block vectors. Q8_0 has signed codes (`w_j = d · c_j`) and no correction;
//! its SIMD forms multiply `|c|` by `a` with `c`'s sign moved onto `a` (`vpsignb`).
//!
//! Paths ([`IntPath`]): portable (plain loops, the reference arithmetic), AVX2, and AVX-512 VNNI
//! (256-bit `vpdpbusd`: 512-bit forms issue as two halves on Zen 4). The path follows
//! [`crate::kernels::isa`]: `avx512` takes VNNI when the CPU has it and the AVX2 form otherwise.

use half::f16;

use super::act::{Order, QuantizedActs, BLOCK};
use super::format::QuantFormat;
use super::tensor::{padded_cols, QuantizedTensor, Scales};
use crate::kernels::isa::{self, Isa};

/// The integer kernel a product takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntPath {
    /// Plain loops over `i32`.
    Portable,
    /// AVX2: `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// AVX-512 VNNI (with VL): `vpdpbusd` on 256-bit vectors.
    Vnni,
}

impl IntPath {
    /// The path for SIMD level `isa` on this CPU.
    pub fn for_isa(isa: Isa) -> Self {
        match isa {
            Isa::Portable => IntPath::Portable,
            Isa::Avx2 => IntPath::Avx2,
            Isa::Avx512 if isa::has_vnni() => IntPath::Vnni,
            Isa::Avx512 => IntPath::Avx2,
        }
    }

    /// Name in records and messages.
    pub fn name(self) -> &'static str {
        match self {
            IntPath::Portable => "portable",
            IntPath::Avx2 => "avx2",
            IntPath::Vnni => "avx512-vnni",
        }
    }

    /// Every path this CPU can run, lowest first (what tests iterate over); paths it lacks are
    /// announced on stderr.
    pub fn test_paths(what: &str) -> Vec<Self> {
        let mut v: Vec<Self> = isa::test_paths(what)
            .into_iter()
            .map(Self::for_isa)
            .collect();
        v.dedup();
        if !v.contains(&IntPath::Vnni) {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {what} on the avx512-vnni path: this CPU lacks avx512vnni"
            );
        }
        v
    }
}

/// Whether `format` has an integer kernel.
pub fn supports(format: QuantFormat) -> bool {
    matches!(
        format,
        QuantFormat::Int4 { .. } | QuantFormat::Q4_0 | QuantFormat::Q4_1 | QuantFormat::Q8_0
    )
}

/// How activations must be ordered inside a block for `format`'s codes.
pub fn order(format: QuantFormat) -> Order {
    match format {
        QuantFormat::Int4 { .. } => Order::EvenOdd,
        _ => Order::Natural,
    }
}

/// One weight row as the kernels read it: block `k`'s codes start at `codes[k · stride]`
/// (16 nibble bytes, or 32 signed bytes when `signed`).
#[derive(Clone, Copy)]
struct RowCodes<'a> {
    codes: &'a [u8],
    stride: usize,
    signed: bool,
}

/// Row `r` of `w`: its codes, and per block `dw` and `mw` (zero for signed codes) written into
/// the first `blocks` entries of the two buffers.
fn row<'a>(w: &'a QuantizedTensor, r: usize, dw: &mut [f32], mw: &mut [f32]) -> RowCodes<'a> {
    let blocks = w.cols.div_ceil(BLOCK);
    let pc = padded_cols(w.format, w.cols);
    let gblocks = pc / BLOCK;
    let ggml = |size: usize, skip: usize| &w.codes[r * gblocks * size..][..gblocks * size][skip..];
    match (w.format, &w.scales) {
        (QuantFormat::Int4 { group, .. }, Scales::Group { scale, zero }) => {
            let gpr = pc / group;
            let per = group / BLOCK;
            for k in 0..blocks {
                let g = r * gpr + k / per;
                let d = scale[g].to_f32();
                dw[k] = d;
                mw[k] = -d * zero.as_ref().map_or(8.0, |z| z[g] as f32);
            }
            RowCodes {
                codes: &w.codes[r * pc / 2..(r + 1) * pc / 2],
                stride: BLOCK / 2,
                signed: false,
            }
        }
        (QuantFormat::Q4_0 | QuantFormat::Q4_1 | QuantFormat::Q8_0, _) => {
            let size = w.format.ggml_block().expect("a block format");
            let b = ggml(size, 0);
            for k in 0..blocks {
                let blk = &b[k * size..];
                let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                dw[k] = d;
                mw[k] = match w.format {
                    QuantFormat::Q4_0 => -8.0 * d,
                    QuantFormat::Q4_1 => f16::from_le_bytes([blk[2], blk[3]]).to_f32(),
                    _ => 0.0,
                };
            }
            let skip = match w.format {
                QuantFormat::Q4_1 => 4,
                _ => 2,
            };
            RowCodes {
                codes: ggml(size, skip),
                stride: size,
                signed: w.format == QuantFormat::Q8_0,
            }
        }
        _ => panic!("{} has no integer kernel", w.format),
    }
}

/// `Σ_k dw_k · da_k · Σ_j q_kj · a_kj`: plain loops, the reference arithmetic.
fn blocks_plain(c: RowCodes, a: &[i8], dw: &[f32], da: &[f32]) -> f32 {
    let mut acc = 0f32;
    for k in 0..dw.len() {
        let b = &c.codes[k * c.stride..];
        let a = &a[k * BLOCK..(k + 1) * BLOCK];
        let s: i32 = if c.signed {
            (0..BLOCK).map(|j| b[j] as i8 as i32 * a[j] as i32).sum()
        } else {
            (0..BLOCK / 2)
                .map(|j| (b[j] & 15) as i32 * a[j] as i32 + (b[j] >> 4) as i32 * a[16 + j] as i32)
                .sum()
        };
        acc += dw[k] * da[k] * s as f32;
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The block loops on AVX2 and AVX-512 VNNI. Callers guarantee the CPU features, that
    //! `codes` holds `(dw.len() − 1) · stride + 16` (nibbles) or `+ 32` (signed) bytes, and that
    //! `a` holds `32 · dw.len()` codes.
    use std::arch::x86_64::*;

    use super::RowCodes;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(a: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// 16 code bytes as 32 unsigned nibbles: low nibbles in the low 128 bits, high in the high.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        let b = _mm_loadu_si128(p as *const __m128i);
        _mm256_and_si256(
            _mm256_set_m128i(_mm_srli_epi16(b, 4), b),
            _mm256_set1_epi8(0x0F),
        )
    }

    /// Eight `i32` partial sums of `u · s` (unsigned by signed bytes) with `vpmaddubsw` and
    /// `vpmaddwd`; no saturation for `u ≤ 128` and `|s| ≤ 127`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    /// The same with one `vpdpbusd`.
    #[inline]
    #[target_feature(enable = "avx512vnni,avx512vl,avx512f,avx2,fma")]
    unsafe fn dot_vnni(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }

    macro_rules! block_loop {
        ($module:ident, $features:literal, $dot:ident) => {
            pub mod $module {
                use super::*;

                /// Block `k`'s eight `i32` partial sums.
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn block(c: &RowCodes, a: *const i8, k: usize) -> __m256i {
                    let p = c.codes.as_ptr().add(k * c.stride);
                    let av = _mm256_loadu_si256(a.add(32 * k) as *const __m256i);
                    if c.signed {
                        let w = _mm256_loadu_si256(p as *const __m256i);
                        $dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(av, w))
                    } else {
                        $dot(nibbles(p), av)
                    }
                }

                /// `Σ_k dw_k · da_k · Σ_j q_kj · a_kj` over one weight row, two blocks a step
                /// into two accumulators; one horizontal sum per row.
                #[inline]
                #[target_feature(enable = $features)]
                pub unsafe fn blocks(c: &RowCodes, a: *const i8, dw: &[f32], da: &[f32]) -> f32 {
                    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    let nb = dw.len();
                    let mut k = 0;
                    while k + 2 <= nb {
                        let (p0, p1) = (block(c, a, k), block(c, a, k + 1));
                        let s0 = _mm256_set1_ps(dw[k] * da[k]);
                        let s1 = _mm256_set1_ps(dw[k + 1] * da[k + 1]);
                        acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(p0), acc0);
                        acc1 = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(p1), acc1);
                        k += 2;
                    }
                    if k < nb {
                        let s0 = _mm256_set1_ps(dw[k] * da[k]);
                        acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(block(c, a, k)), acc0);
                    }
                    hsum(_mm256_add_ps(acc0, acc1))
                }
            }
        };
    }

    block_loop!(avx2, "avx2,fma", dot_avx2);
    block_loop!(vnni, "avx512vnni,avx512vl,avx512f,avx2,fma", dot_vnni);
}

/// `Σ_k dw_k · da_k · Σ_j q_kj · a_kj` on `path`.
#[inline(always)]
fn blocks_dot(path: IntPath, c: RowCodes, a: &[i8], dw: &[f32], da: &[f32]) -> f32 {
    let nb = dw.len();
    assert!(da.len() == nb && a.len() >= nb * BLOCK && nb > 0);
    assert!(c.codes.len() >= (nb - 1) * c.stride + if c.signed { 32 } else { 16 });
    match path {
        // SAFETY: the caller checked the CPU features of `path`; the asserts bound every load.
        #[cfg(target_arch = "x86_64")]
        IntPath::Vnni => unsafe { simd::vnni::blocks(&c, a.as_ptr(), dw, da) },
        #[cfg(target_arch = "x86_64")]
        IntPath::Avx2 => unsafe { simd::avx2::blocks(&c, a.as_ptr(), dw, da) },
        _ => blocks_plain(c, a, dw, da),
    }
}

/// Whether this CPU can run `path`.
pub fn path_supported(path: IntPath) -> bool {
    match path {
        IntPath::Portable => true,
        IntPath::Avx2 => Isa::Avx2.supported(),
        IntPath::Vnni => Isa::Avx512.supported() && isa::has_vnni(),
    }
}

/// Weight rows `r0 .. r0 + out.len() / n` against every quantized input; `out` is `[rows, n]`.
pub(super) fn rows(
    path: IntPath,
    w: &QuantizedTensor,
    acts: &QuantizedActs,
    r0: usize,
    out: &mut [f32],
) {
    let n = acts.n;
    let nb = acts.blocks;
    let (mut dw, mut mw) = (vec![0f32; nb], vec![0f32; nb]);
    for (rr, o) in out.chunks_mut(n).enumerate() {
        let c = row(w, r0 + rr, &mut dw, &mut mw);
        for (i, oi) in o.iter_mut().enumerate() {
            let (a, da, sums) = acts.row(i);
            let main = blocks_dot(path, c, a, &dw, da);
            let corr = if c.signed {
                0.0
            } else {
                mw.iter().zip(sums).map(|(m, s)| m * s).sum::<f32>()
            };
            *oi = main + corr;
        }
    }
}

/// `y[i][r] = Σ_c W[r, c] · x[i][c]` with `x` quantized to int8 blocks first, on `path`: the
/// product [`super::matvec::matvec_with`] computes with f32 activations.
///
/// # Shapes
/// - `x`: `[n, cols]` row-major with `n <= MAX_ROWS`; `y`: `[n, rows]`
///
/// # Panics
/// When this CPU lacks `path`, `w`'s format has no integer kernel ([`supports`]), or on the
/// shapes `matvec_with` refuses.
pub fn matvec_int8_with(path: IntPath, w: &QuantizedTensor, x: &[f32], y: &mut [f32]) {
    assert!(
        path_supported(path),
        "integer path {} is not supported by this CPU",
        path.name()
    );
    assert!(supports(w.format), "{} has no integer kernel", w.format);
    let n = x.len() / w.cols;
    let acts = QuantizedActs::new(x, w.cols, order(w.format));
    super::matvec::drive(w, n, x, y, |r0, o| rows(path, w, &acts, r0, o));
}
