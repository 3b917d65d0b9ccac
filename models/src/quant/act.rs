//! Activation quantization for integer dot products (llama.cpp's `quantize_row_q8_0`, the
//! activation side of its `vec_dot_q4_0_q8_0` family): each input row is cut into blocks of 32,
//! each block gets `d = max|x| / 127` and codes `round(x / d)` (half away from zero, computed as
//! `x · (1 / d)` exactly as the reference does), once per matrix product, shared by every output
//! row.
//!
//! Deviations from llama.cpp, both on the side of accuracy: the block scale is kept as f32 (the
//! reference rounds it to f16; [`q8_0_bytes`] gives that rounded form, which tests compare with
//! the `gguf` package byte for byte), and the block sum `Σ q` that asymmetric formats need is
//! kept as `d · Σ q` in f32 (llama.cpp's `block_q8_1.s`, also f16 there).
//!
//! A block holding NaN gets a NaN scale, so that NaN reaches the output as it does on the f32
//! path instead of being quantized away.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use half::f16;

use crate::kernels::isa::{self, Isa};

/// What a quantized decode product multiplies its weights with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activations {
    /// The f32 input rows as they are; weights unpacked to f32 (one FMA per weight).
    F32,
    /// The input rows quantized to int8 blocks of 32 once per product; integer dot products
    /// (one FMA per 32 weights). Formats without an integer kernel fall back to `F32`.
    #[default]
    Int8,
}

impl Activations {
    /// Both, in the order suites report them.
    pub const ALL: [Activations; 2] = [Activations::F32, Activations::Int8];

    /// Name on the command line, in run.json and in records' params.
    pub fn name(self) -> &'static str {
        match self {
            Activations::F32 => "f32",
            Activations::Int8 => "int8",
        }
    }
}

impl fmt::Display for Activations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activations {
    type Err = crate::ModelError;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" => Ok(Activations::F32),
            "int8" => Ok(Activations::Int8),
            _ => Err(crate::ModelError::InvalidConfig(format!(
                "unknown activations `{s}`: expected f32 or int8"
            ))),
        }
    }
}

static DEFAULT: OnceLock<Activations> = OnceLock::new();

/// The activations new quantized layers take: the one set by [`set_default`], else
/// [`Activations::default`] (int8: within the accuracy budget and faster, as the quantization
/// suite measures).
pub fn default_activations() -> Activations {
    *DEFAULT.get_or_init(Activations::default)
}

/// Fixes the process's default (`infermark --activations`). Call it before any model is
/// built; asking again for the same value is fine, for another one an error.
pub fn set_default(a: Activations) -> crate::Result<Activations> {
    let fixed = *DEFAULT.get_or_init(|| a);
    if fixed != a {
        return Err(crate::ModelError::InvalidConfig(format!(
            "activations already fixed to {fixed}; cannot switch to {a} within a process"
        )));
    }
    Ok(a)
}

/// Activations per block (one scale each).
pub const BLOCK: usize = 32;

/// How a block's 32 codes are ordered in memory, to meet the weight format's nibble order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Position `j` at `j` (Q4_0, Q4_1, Q8_0: byte `j` holds weights `j` and `j + 16`).
    Natural,
    /// Even positions first, then odd ones (INT4: byte `j` holds weights `2j` and `2j + 1`).
    EvenOdd,
}

/// `d = max|x| / 127` and codes `round(x · (1/d))`, half away from zero; all zero when `d = 0`.
/// The plain loop: the definition the SIMD form ([`quantize_block_with`]) is tested against.
pub fn quantize_block(x: &[f32; BLOCK]) -> (f32, [i8; BLOCK]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = if x.iter().any(|v| v.is_nan()) {
        f32::NAN
    } else {
        amax / 127.0
    };
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; BLOCK];
    for (q, v) in q.iter_mut().zip(x) {
        *q = round_away(v * id);
    }
    (d, q)
}

/// `y.round() as i8` (half away from zero; `as` saturates and NaN becomes 0: the NaN scale
/// carries it) without a call to libm's `roundf`, so that the block loop vectorizes: truncate
/// (exact below 2^31, saturating above), then step away from zero when the exact remainder is
/// at least one half. Equal to `y.round() as i8` for every `f32`, infinities and NaN included.
#[inline(always)]
fn round_away(y: f32) -> i8 {
    let t = (y as i32) as f32;
    let r = if (y - t).abs() >= 0.5 {
        t + 1f32.copysign(y)
    } else {
        t
    };
    r as i8
}

/// [`quantize_block`] on an explicit SIMD path (the AVX2 form serves `avx2` and `avx512`):
/// equal to it code for code and in the scale's bits, NaN and infinities included.
///
/// # Panics
/// When this CPU lacks `isa`.
pub fn quantize_block_with(isa: Isa, x: &[f32; BLOCK]) -> (f32, [i8; BLOCK]) {
    let mut q = [0i8; BLOCK];
    let (d, _) = quantize_into(isa, x, &mut q);
    (d, q)
}

/// [`quantize_block_with`] writing the codes into `q`; returns the scale and `Σ q`.
#[inline]
fn quantize_into(isa: Isa, x: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> (f32, i32) {
    assert!(
        isa.supported(),
        "ISA path {isa} is not supported by this CPU"
    );
    match isa {
        // SAFETY: the CPU has AVX2 + FMA (asserted above; both SIMD paths include them).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::quantize_block(x, q) },
        _ => {
            let (d, codes) = quantize_block(x);
            *q = codes;
            (d, codes.iter().map(|&v| v as i32).sum())
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::BLOCK;
    use std::arch::x86_64::*;

    /// The block's scale and codes, as [`super::quantize_block`] defines them: `max |x|` and a
    /// NaN check over four vectors, then per lane `x · (1/d)` with NaN set to 0 and clamped to
    /// [−128, 127] (where `as i8` saturates), truncated, stepped away from zero on a remainder
    /// of at least one half, and packed to bytes.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn quantize_block(x: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> (f32, i32) {
        let p = x.as_ptr();
        let v = [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ];
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let (mut m, mut nan) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for &vi in &v {
            m = _mm256_max_ps(m, _mm256_and_ps(vi, abs));
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(vi, vi));
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let d = if _mm256_movemask_ps(nan) != 0 {
            f32::NAN
        } else {
            amax / 127.0
        };
        let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
        let mut r = [_mm256_setzero_si256(); 4];
        for (r, &vi) in r.iter_mut().zip(&v) {
            let y = _mm256_mul_ps(vi, id);
            let y = _mm256_and_ps(y, _mm256_cmp_ps::<_CMP_ORD_Q>(y, y));
            let y = _mm256_min_ps(_mm256_max_ps(y, lo), hi);
            let t = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(y));
            let half = _mm256_cmp_ps::<_CMP_GE_OQ>(
                _mm256_and_ps(_mm256_sub_ps(y, t), abs),
                _mm256_set1_ps(0.5),
            );
            let step = _mm256_or_ps(_mm256_and_ps(y, sign), _mm256_set1_ps(1.0));
            *r = _mm256_cvtps_epi32(_mm256_add_ps(t, _mm256_and_ps(half, step)));
        }
        let w = _mm256_packs_epi16(
            _mm256_packs_epi32(r[0], r[1]),
            _mm256_packs_epi32(r[2], r[3]),
        );
        let w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, w);
        let s = _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        (d, _mm_cvtsi128_si32(s))
    }
}

/// One block as llama.cpp's Q8_0 bytes: `[d as f16, little-endian][32 × i8]`.
pub fn q8_0_bytes(x: &[f32; BLOCK]) -> [u8; 34] {
    let (d, q) = quantize_block(x);
    let mut out = [0u8; 34];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (o, q) in out[2..].iter_mut().zip(q) {
        *o = q as u8;
    }
    out
}

/// Replaces each value of `x` (`[n, cols]` row-major) by what its int8 block represents,
/// `d · q`: the activations an integer product multiplies, for paths that multiply in f32
/// (prefill-sized products), so that they compute the same W4A8 arithmetic.
pub fn fake_quantize(x: &mut [f32], cols: usize) {
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "x must be [n, cols]"
    );
    let mut buf = [0f32; BLOCK];
    for row in x.chunks_mut(cols) {
        for chunk in row.chunks_mut(BLOCK) {
            buf[..chunk.len()].copy_from_slice(chunk);
            buf[chunk.len()..].fill(0.0);
            let (d, q) = quantize_block(&buf);
            for (v, q) in chunk.iter_mut().zip(q) {
                *v = d * q as f32;
            }
        }
    }
}

/// `n` input rows quantized to int8 blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedActs {
    /// Rows.
    pub n: usize,
    /// Blocks per row (`cols` rounded up to a multiple of [`BLOCK`]; the padding is zero).
    pub blocks: usize,
    /// `[n, blocks, 32]` codes in `order`.
    pub codes: Vec<i8>,
    /// `[n, blocks]` scales `d`.
    pub scales: Vec<f32>,
    /// `[n, blocks]` `d · Σ q` over each block (the block's sum as the codes represent it).
    pub sums: Vec<f32>,
    /// The order of each block's codes.
    pub order: Order,
}

impl QuantizedActs {
    /// Quantizes `x` (`[n, cols]` row-major).
    ///
    /// # Panics
    /// When `x.len()` is not a multiple of `cols`, or `cols` is zero.
    pub fn new(x: &[f32], cols: usize, order: Order) -> Self {
        assert!(
            cols > 0 && x.len().is_multiple_of(cols),
            "x must be [n, cols]"
        );
        let n = x.len() / cols;
        let blocks = cols.div_ceil(BLOCK);
        let mut codes = vec![0i8; n * blocks * BLOCK];
        let mut scales = vec![0f32; n * blocks];
        let mut sums = vec![0f32; n * blocks];
        let mut buf = [0f32; BLOCK];
        let mut tmp = [0i8; BLOCK];
        let isa = isa::active();
        for i in 0..n {
            let row = &x[i * cols..(i + 1) * cols];
            for k in 0..blocks {
                let src = &row[k * BLOCK..row.len().min((k + 1) * BLOCK)];
                let src: &[f32; BLOCK] = match src.try_into() {
                    Ok(full) => full,
                    Err(_) => {
                        buf[..src.len()].copy_from_slice(src);
                        buf[src.len()..].fill(0.0);
                        &buf
                    }
                };
                let at = i * blocks + k;
                let dst: &mut [i8; BLOCK] = (&mut codes[at * BLOCK..(at + 1) * BLOCK])
                    .try_into()
                    .expect("a block");
                let (d, sum) = match order {
                    Order::Natural => quantize_into(isa, src, dst),
                    Order::EvenOdd => {
                        let r = quantize_into(isa, src, &mut tmp);
                        for j in 0..BLOCK / 2 {
                            dst[j] = tmp[2 * j];
                            dst[BLOCK / 2 + j] = tmp[2 * j + 1];
                        }
                        r
                    }
                };
                scales[at] = d;
                sums[at] = d * sum as f32;
            }
        }
        Self {
            n,
            blocks,
            codes,
            scales,
            sums,
            order,
        }
    }

    /// Row `i`: its codes, scales and sums.
    pub fn row(&self, i: usize) -> (&[i8], &[f32], &[f32]) {
        let b = self.blocks;
        (
            &self.codes[i * b * BLOCK..(i + 1) * b * BLOCK],
            &self.scales[i * b..(i + 1) * b],
            &self.sums[i * b..(i + 1) * b],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_round_away_from_zero_and_the_largest_magnitude_maps_to_127() {
        let mut x = [0f32; BLOCK];
        x[0] = 127.0; // d = 1 exactly
        x[1] = 2.5;
        x[2] = -2.5;
        x[3] = 0.5;
        x[4] = -126.5;
        let (d, q) = quantize_block(&x);
        assert_eq!(d, 1.0);
        assert_eq!(&q[..5], &[127, 3, -3, 1, -127]);
    }

    #[test]
    fn round_away_equals_libm_round_on_edge_values() {
        let mut v = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            0.49999997,
            -0.49999997,
            1.5,
            2.5,
            126.5,
            -127.5,
            127.49,
            128.0,
            -129.0,
            8388607.5,
            8388608.0,
            2147483520.0,
            3e9,
            -3e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ];
        let mut s = 0x2545F491u32;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            v.push(f32::from_bits(s) % 300.0);
        }
        for y in v {
            assert_eq!(round_away(y), y.round() as i8, "{y:e}");
        }
    }

    #[test]
    fn simd_blocks_equal_the_plain_loop_bit_for_bit() {
        let mut s = 0x9E3779B9u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let specials = [
            0.0f32,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-45,
            -3e-39,
            3e38,
        ];
        for isa in Isa::ALL.into_iter().filter(|i| i.supported()) {
            for case in 0..20_000 {
                let scale = [1e-3f32, 1.0, 1e4, 1e-38, 1e30][case % 5];
                let mut x = [0f32; BLOCK];
                for v in x.iter_mut() {
                    *v = ((next() % 20001) as f32 - 10000.0) / 10000.0 * scale;
                }
                if case % 7 == 0 {
                    x[(next() % 32) as usize] = specials[(next() % 8) as usize];
                }
                if case % 11 == 0 {
                    let j = (next() % 32) as usize;
                    x[j] = (x[j] * 127.0).round() / 127.0 + 0.5 / 127.0;
                }
                let (d0, q0) = quantize_block(&x);
                let (d1, q1) = quantize_block_with(isa, &x);
                assert_eq!(d0.to_bits(), d1.to_bits(), "{isa} scale of {x:?}");
                assert_eq!(q0, q1, "{isa} codes of {x:?}");
            }
        }
    }

    #[test]
    fn nan_in_a_block_gives_a_nan_scale() {
        let mut x = [1f32; BLOCK];
        x[7] = f32::NAN;
        assert!(quantize_block(&x).0.is_nan());
    }

    #[test]
    fn even_odd_order_puts_even_positions_first_and_padding_is_zero() {
        let x: Vec<f32> = (0..40).map(|i| i as f32 - 20.0).collect();
        let n = QuantizedActs::new(&x, 40, Order::Natural);
        let e = QuantizedActs::new(&x, 40, Order::EvenOdd);
        assert_eq!((n.blocks, e.blocks), (2, 2));
        for j in 0..16 {
            assert_eq!(e.codes[j], n.codes[2 * j]);
            assert_eq!(e.codes[16 + j], n.codes[2 * j + 1]);
        }
        assert!(n.codes[40..64].iter().all(|&c| c == 0));
        let s: i32 = n.codes[..32].iter().map(|&c| c as i32).sum();
        assert_eq!(n.sums[0], n.scales[0] * s as f32);
    }
}
