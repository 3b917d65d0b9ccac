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
//! product of two per-block vectors. The 5-bit formats fit the same form with `q_j ∈ 0..=31` (fifth
//! bit ORed onto the nibble): Q5_0 `mw = −16·d`, Q5_K per sub-block `mw = −dmin·m` as Q4_K.
//! On AVX2 the fifth bits are spread to bytes (`vpshufb` and a compare for Q5_0's u32, a shift
//! and mask for Q5_K's bit plane); on the AVX-512 VNNI path they are a byte mask and one masked
//! add (`vpaddb` under `k`), as the nibbles need no other change. Q8_0 has signed codes (`w_j = d · c_j`) and no correction;
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
        QuantFormat::Int4 { .. }
            | QuantFormat::Q4_0
            | QuantFormat::Q4_1
            | QuantFormat::Q8_0
            | QuantFormat::Q5_0
            | QuantFormat::Q4K
            | QuantFormat::Q5K
            | QuantFormat::Q6K
    )
}

/// How activations must be ordered inside a block for `format`'s codes.
pub fn order(format: QuantFormat) -> Order {
    match format {
        QuantFormat::Int4 { .. } => Order::EvenOdd,
        _ => Order::Natural,
    }
}

/// Block layouts, as const generics of the kernels (so the per-block branches compile away).
const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q8_0: u8 = 2;
const INT4_SYM: u8 = 3;
const INT4_ASYM: u8 = 4;
const Q4_K: u8 = 5;
const Q6_K: u8 = 6;
const Q5_0: u8 = 7;
const Q5_K: u8 = 8;

/// One weight row as the kernels read it.
///
/// - Q4_0 / Q4_1 / Q8_0: `codes` holds the row's whole llama.cpp blocks (18, 20 or 34 bytes:
///   f16 `d`, Q4_1's f16 `m`, then 16 nibble bytes or 32 signed bytes).
/// - INT4: `codes` holds 16 bytes a block; group `g` of the row has the f16 scale `scales[g]`
///   and (asym) zero point `zeros[g]`; `1 << shift` blocks share a group.
#[derive(Clone, Copy)]
struct RowCodes<'a> {
    codes: &'a [u8],
    scales: &'a [f16],
    zeros: &'a [u8],
    shift: u32,
}

/// The layout constant of `w`'s format, and row `r` of it.
#[inline(always)]
fn row(w: &QuantizedTensor, r: usize) -> (u8, RowCodes<'_>) {
    let pc = padded_cols(w.format, w.cols);
    match (w.format, &w.scales) {
        (QuantFormat::Int4 { group, .. }, Scales::Group { scale, zero }) => {
            assert!(
                group.is_power_of_two() && group >= BLOCK,
                "INT4 groups of {group}: the integer kernels take powers of two from 32"
            );
            let gpr = pc / group;
            let c = RowCodes {
                codes: &w.codes[r * pc / 2..(r + 1) * pc / 2],
                scales: &scale[r * gpr..(r + 1) * gpr],
                zeros: zero
                    .as_ref()
                    .map_or(&[][..], |z| &z[r * gpr..(r + 1) * gpr]),
                shift: (group / BLOCK).trailing_zeros(),
            };
            (if zero.is_some() { INT4_ASYM } else { INT4_SYM }, c)
        }
        (
            QuantFormat::Q4_0
            | QuantFormat::Q4_1
            | QuantFormat::Q8_0
            | QuantFormat::Q5_0
            | QuantFormat::Q4K
            | QuantFormat::Q5K
            | QuantFormat::Q6K,
            _,
        ) => {
            let size = w.format.ggml_block().expect("a block format");
            let n = pc / w.format.group() * size;
            let kind = match w.format {
                QuantFormat::Q4_0 => Q4_0,
                QuantFormat::Q4_1 => Q4_1,
                QuantFormat::Q5_0 => Q5_0,
                QuantFormat::Q4K => Q4_K,
                QuantFormat::Q5K => Q5_K,
                QuantFormat::Q6K => Q6_K,
                _ => Q8_0,
            };
            let c = RowCodes {
                codes: &w.codes[r * n..(r + 1) * n],
                scales: &[],
                zeros: &[],
                shift: 0,
            };
            (kind, c)
        }
        _ => panic!("{} has no integer kernel", w.format),
    }
}

/// Bytes from the start of one block's record to the next, and to its codes (Q4_K, Q5_K: of
/// a 256-weight super-block, and to its nibble runs; Q5_0: to its nibbles).
const fn layout(kind: u8) -> (usize, usize) {
    match kind {
        Q4_0 => (18, 2),
        Q4_1 => (20, 4),
        Q8_0 => (34, 2),
        Q5_0 => (super::kquant::Q5_0_BYTES, 6),
        Q4_K => (super::kquant::Q4_K_BYTES, 16),
        Q5_K => (super::kquant::Q5_K_BYTES, 48),
        Q6_K => (super::kquant::Q6_K_BYTES, 0),
        _ => (16, 0),
    }
}

/// Where 32-weight block `k`'s codes start, and (Q4_K, Q5_K) whether they are the high
/// nibbles of the 32 bytes there rather than the low ones.
#[inline(always)]
const fn codes_at(kind: u8, k: usize) -> (usize, bool) {
    let (stride, skip) = layout(kind);
    if kind == Q4_K || kind == Q5_K {
        let (s, j) = (k / 8, k % 8);
        (s * stride + skip + 32 * (j / 2), j % 2 == 1)
    } else {
        (k * stride + skip, false)
    }
}

/// Bytes a row of `nb` blocks holds.
const fn row_bytes(kind: u8, nb: usize) -> usize {
    let (stride, _) = layout(kind);
    if kind == Q4_K || kind == Q5_K || kind == Q6_K {
        nb.div_ceil(8) * stride
    } else {
        nb * stride
    }
}

/// Block `k`'s `(dw, mw)`: `w_j = dw · q_j + mw` (nibbles), or `w_j = dw · c_j` (Q8_0, `mw = 0`).
#[inline(always)]
fn block_scales<const KIND: u8>(
    c: &RowCodes,
    k: usize,
    f16_to_f32: impl Fn(u16) -> f32,
) -> (f32, f32) {
    let (stride, _) = layout(KIND);
    match KIND {
        Q4_K | Q5_K => {
            let (d, m) = super::kquant::q4_k_scales(&c.codes[k / 8 * stride..])[k % 8];
            (d, -m)
        }
        Q4_0 | Q4_1 | Q8_0 | Q5_0 => {
            let b = &c.codes[k * stride..];
            let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            let m = match KIND {
                Q4_0 => -8.0 * d,
                Q5_0 => -16.0 * d,
                Q4_1 => f16_to_f32(u16::from_le_bytes([b[2], b[3]])),
                _ => 0.0,
            };
            (d, m)
        }
        _ => {
            let g = k >> c.shift;
            let d = f16_to_f32(c.scales[g].to_bits());
            let z = if KIND == INT4_ASYM {
                c.zeros[g] as f32
            } else {
                8.0
            };
            (d, -d * z)
        }
    }
}

/// `Σ_k (dw_k · da_k · Σ_j q_kj · a_kj + mw_k · s_k)` over one row, with `s_k = da_k · Σ_j a_kj`:
/// plain loops, the reference arithmetic.
fn row_plain<const KIND: u8>(c: RowCodes, a: &[i8], da: &[f32], sums: &[f32]) -> f32 {
    let mut acc = 0f32;
    for k in 0..da.len() {
        if KIND == Q6_K {
            let (q, d, s) = q6_k_block(c.codes, k);
            let a = &a[k * BLOCK..(k + 1) * BLOCK];
            let half = |h: usize| {
                (16 * h..16 * h + 16)
                    .map(|j| q[j] * a[j] as i32)
                    .sum::<i32>()
            };
            acc += d * da[k] * (s[0] * half(0) as f32 + s[1] * half(1) as f32);
            continue;
        }
        let (off, high) = codes_at(KIND, k);
        let b = &c.codes[off..];
        let a = &a[k * BLOCK..(k + 1) * BLOCK];
        let s: i32 = if KIND == Q8_0 {
            (0..BLOCK).map(|j| b[j] as i8 as i32 * a[j] as i32).sum()
        } else if KIND == Q4_K {
            let shift = if high { 4 } else { 0 };
            (0..BLOCK)
                .map(|j| ((b[j] >> shift) & 15) as i32 * a[j] as i32)
                .sum()
        } else if KIND == Q5_K {
            let shift = if high { 4 } else { 0 };
            let qh = &c.codes[k / 8 * super::kquant::Q5_K_BYTES + 16..];
            let bit = k % 8;
            (0..BLOCK)
                .map(|j| {
                    let q = ((b[j] >> shift) & 15) | (((qh[j] >> bit) & 1) << 4);
                    q as i32 * a[j] as i32
                })
                .sum()
        } else if KIND == Q5_0 {
            let qh = &c.codes[k * super::kquant::Q5_0_BYTES + 2..];
            let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
            let fifth = |j: usize| (((qh >> j) & 1) << 4) as i32;
            (0..BLOCK / 2)
                .map(|j| {
                    ((b[j] & 15) as i32 | fifth(j)) * a[j] as i32
                        + ((b[j] >> 4) as i32 | fifth(16 + j)) * a[16 + j] as i32
                })
                .sum()
        } else {
            (0..BLOCK / 2)
                .map(|j| (b[j] & 15) as i32 * a[j] as i32 + (b[j] >> 4) as i32 * a[16 + j] as i32)
                .sum()
        };
        let (dw, mw) = block_scales::<KIND>(&c, k, |h| f16::from_bits(h).to_f32());
        acc += dw * da[k] * s as f32 + mw * sums[k];
    }
    acc
}

/// Q6_K 32-weight block `k` of a row: its codes `q − 32` (in −32..=31), `d`, and the i8 scales
/// of its two halves of 16. Super-block `k / 8`, block `j = k % 8` is part `j / 4` (128
/// weights) and quarter `m = j % 4` of it: low 4 bits from `ql[64·part + 32·(m % 2) ..]`
/// (nibble `m / 2`), high 2 bits from `qh[32·part ..]` (bits `2m`), scales `sc[2j], sc[2j + 1]`.
fn q6_k_block(codes: &[u8], k: usize) -> ([i32; BLOCK], f32, [f32; 2]) {
    let b = &codes[k / 8 * super::kquant::Q6_K_BYTES..][..super::kquant::Q6_K_BYTES];
    let (d, s) = q6_k_scales(codes, k);
    let j = k % 8;
    let (part, m) = (j / 4, j % 4);
    let ql = &b[64 * part + 32 * (m % 2)..][..32];
    let qh = &b[128 + 32 * part..][..32];
    let q = std::array::from_fn(|l| {
        let lo = (ql[l] >> (4 * (m / 2))) & 15;
        let hi = (qh[l] >> (2 * m)) & 3;
        (lo | (hi << 4)) as i32 - 32
    });
    (q, d, s)
}

/// Q6_K block `k`'s `d` and the i8 scales of its two halves (see [`q6_k_block`]).
#[inline(always)]
fn q6_k_scales(codes: &[u8], k: usize) -> (f32, [f32; 2]) {
    let b = &codes[k / 8 * super::kquant::Q6_K_BYTES..][..super::kquant::Q6_K_BYTES];
    let j = k % 8;
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    (
        d,
        [b[192 + 2 * j] as i8 as f32, b[193 + 2 * j] as i8 as f32],
    )
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The block loops on AVX2 and AVX-512 VNNI. Per row, the blocks' scales are first
    //! converted into `dw` / `mw` vectors (F16C, eight at a time) and, per input, combined with
    //! the activation scales into `c_k = dw_k · da_k`; the block loop then reads `c_k` with a
    //! broadcast from memory and builds nibbles with a per-lane shift, so that it issues no
    //! shuffle (port 5 on Intel) per block. Callers guarantee the CPU features, that the row's
    //! codes hold `da.len()` blocks, and that `a` holds `32 · da.len()` codes.
    use std::arch::x86_64::*;

    use super::{
        codes_at, layout, row_codes, QuantizedActs, QuantizedTensor, RowCodes, INT4_ASYM, Q4_0,
        Q4_1, Q4_K, Q5_0, Q5_K, Q6_K, Q8_0,
    };

    use crate::quant::matvec::avx2::{halves_to_f32, hsum};

    /// Bytes ahead of the block being read that are prefetched.
    const PREFETCH: usize = 1024;

    /// Row scales: `dw[k]` and `mw[k]` for `nb` blocks (`w_j = dw · q_j + mw`; `mw = 0` for
    /// Q8_0), f16 scales converted eight at a time by matvec's F16C helper. `dw` and `mw` hold at
    /// least `nb` rounded up to 8.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn row_scales<const KIND: u8>(
        c: &RowCodes,
        nb: usize,
        dw: &mut [f32],
        mw: &mut [f32],
        tmp: &mut [f32],
    ) {
        let (stride, _) = layout(KIND);
        match KIND {
            Q4_K | Q5_K => {
                for (s, b) in c
                    .codes
                    .chunks_exact(stride)
                    .take(nb.div_ceil(8))
                    .enumerate()
                {
                    for (j, (d, m)) in crate::quant::kquant::q4_k_scales(b).into_iter().enumerate()
                    {
                        dw[8 * s + j] = d;
                        mw[8 * s + j] = -m;
                    }
                }
            }
            Q4_0 | Q4_1 | Q8_0 | Q5_0 => {
                // Eight blocks at a time: one gather of the 32 bits at each block's start (`d`,
                // then `m` for Q4_1), the halves packed and converted in registers. (Copying
                // them through a stack array first stalls on store forwarding: 16-bit stores
                // read back by one 128-bit load.)
                let base = c.codes.as_ptr();
                let idx = _mm256_mullo_epi32(
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                    _mm256_set1_epi32(stride as i32),
                );
                let mut k = 0;
                while k < nb {
                    // The last chunk of a row gathers only its `nb − k` blocks (masked lanes
                    // read nothing and give 0).
                    let live = _mm256_cmpgt_epi32(
                        _mm256_set1_epi32((nb - k).min(8) as i32),
                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                    );
                    let g = _mm256_mask_i32gather_epi32::<1>(
                        _mm256_setzero_si256(),
                        base.add(k * stride) as *const i32,
                        idx,
                        live,
                    );
                    let lo = _mm256_and_si256(g, _mm256_set1_epi32(0xFFFF));
                    let hi = _mm256_srli_epi32::<16>(g);
                    // [d0..3, m0..3 | d4..7, m4..7] as u16, then [d0..7 | m0..7].
                    let p = _mm256_permute4x64_epi64::<0xD8>(_mm256_packus_epi32(lo, hi));
                    let d = _mm256_cvtph_ps(_mm256_castsi256_si128(p));
                    _mm256_storeu_ps(dw.as_mut_ptr().add(k), d);
                    if KIND == Q4_1 {
                        let m = _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(p));
                        _mm256_storeu_ps(mw.as_mut_ptr().add(k), m);
                    }
                    k += 8;
                }
                if KIND == Q4_0 || KIND == Q5_0 {
                    let z = if KIND == Q4_0 { 8.0 } else { 16.0 };
                    for k in 0..nb {
                        mw[k] = -z * dw[k];
                    }
                }
            }
            _ => {
                // Group scales (and zero points) converted once into `tmp`, then spread to
                // eight blocks at a time with one permute: blocks `k .. k + 8` (`k` a multiple
                // of 8) read groups `(k >> shift) + (j >> shift)`.
                use half::slice::HalfFloatSliceExt;
                let groups = ((nb - 1) >> c.shift) + 1;
                let (gs, zs) = tmp.split_at_mut(tmp.len() / 2);
                assert!(gs.len() >= groups + 8 && zs.len() >= groups + 8);
                halves_to_f32(c.scales[..groups].reinterpret_cast(), &mut gs[..groups]);
                if KIND == INT4_ASYM {
                    for (z, &q) in zs[..groups].iter_mut().zip(&c.zeros[..groups]) {
                        *z = q as f32;
                    }
                }
                let sh = _mm256_set1_epi32(c.shift.min(3) as i32);
                let idx = _mm256_srlv_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), sh);
                let mut k = 0;
                while k < nb {
                    let g = k >> c.shift;
                    let d = _mm256_permutevar8x32_ps(_mm256_loadu_ps(gs.as_ptr().add(g)), idx);
                    let z = if KIND == INT4_ASYM {
                        _mm256_permutevar8x32_ps(_mm256_loadu_ps(zs.as_ptr().add(g)), idx)
                    } else {
                        _mm256_set1_ps(8.0)
                    };
                    _mm256_storeu_ps(dw.as_mut_ptr().add(k), d);
                    let m = _mm256_mul_ps(d, _mm256_sub_ps(_mm256_setzero_ps(), z));
                    _mm256_storeu_ps(mw.as_mut_ptr().add(k), m);
                    k += 8;
                }
            }
        }
    }

    /// The 16 code bytes at `p` as 32 unsigned nibbles, low nibbles in the low 128 bits and high
    /// ones in the high 128: a 128-bit broadcast load, then the high half shifted by 4 in each
    /// 32-bit lane (`vpsrlvd`; bits that cross from the next byte are masked off).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        let b = _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i));
        _mm256_and_si256(
            _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
            _mm256_set1_epi8(0x0F),
        )
    }

    /// Eight `i32` partial sums of `u · s` (unsigned by signed bytes) with `vpmaddubsw` and
    /// `vpmaddwd`; no saturation for `u ≤ 128` and `|s| ≤ 127`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_avx2(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    /// A Q5_0 block's fifth bits (the little-endian u32 at `p`) as `0x10` in the bytes of the
    /// weights that have them: each of the four bytes spread over eight lanes (`vpshufb`),
    /// one bit picked per lane and compared.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fifth_bits_u32(p: *const u8) -> __m256i {
        let v = _mm256_set1_epi32((p as *const i32).read_unaligned());
        let spread = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let v = _mm256_and_si256(_mm256_shuffle_epi8(v, spread), bit);
        _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10))
    }

    /// A Q5_K sub-block's fifth bits: bit `j` of the 32 bytes at `p` as `0x10` per byte.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fifth_bits_plane(p: *const u8, j: usize) -> __m256i {
        let h = _mm256_loadu_si256(p as *const __m256i);
        let h = _mm256_srl_epi16(h, _mm_cvtsi32_si128(j as i32));
        _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(1)), 4)
    }

    /// `q` with 16 added where the Q5_0 fifth bit (the u32 at `p`) is set: AVX2.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fifth_u32_avx2(q: __m256i, p: *const u8) -> __m256i {
        _mm256_or_si256(q, fifth_bits_u32(p))
    }

    /// `q` with 16 added where bit `j` of the Q5_K plane at `p` is set: AVX2.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fifth_plane_avx2(q: __m256i, p: *const u8, j: usize) -> __m256i {
        _mm256_or_si256(q, fifth_bits_plane(p, j))
    }

    /// The Q5_0 form on AVX-512: the u32 is the byte mask itself (`kmovd`), one masked add.
    #[inline]
    #[target_feature(enable = "avx512bw,avx512vl,avx512f,avx2,fma,f16c")]
    unsafe fn fifth_u32_512(q: __m256i, p: *const u8) -> __m256i {
        let m = (p as *const u32).read_unaligned();
        _mm256_mask_add_epi8(q, m, q, _mm256_set1_epi8(16))
    }

    /// The Q5_K form on AVX-512: bit `j` of each byte tested into a mask, one masked add.
    #[inline]
    #[target_feature(enable = "avx512bw,avx512vl,avx512f,avx2,fma,f16c")]
    unsafe fn fifth_plane_512(q: __m256i, p: *const u8, j: usize) -> __m256i {
        let h = _mm256_loadu_si256(p as *const __m256i);
        let m = _mm256_test_epi8_mask(h, _mm256_set1_epi8((1u8 << j) as i8));
        _mm256_mask_add_epi8(q, m, q, _mm256_set1_epi8(16))
    }

    /// The same with one `vpdpbusd`.
    #[inline]
    #[target_feature(enable = "avx512vnni,avx512vl,avx512f,avx2,fma,f16c")]
    unsafe fn dot_vnni(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }

    macro_rules! block_loop {
        ($module:ident, $features:literal, $dot:ident, $fifth_u32:ident, $fifth_plane:ident) => {
            pub mod $module {
                use super::*;

                /// Block `k`'s eight `i32` partial sums.
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn block<const KIND: u8>(c: &RowCodes, a: *const i8, k: usize) -> __m256i {
                    let (off, high) = codes_at(KIND, k);
                    let p = c.codes.as_ptr().add(off);
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
                    let av = _mm256_loadu_si256(a.add(32 * k) as *const __m256i);
                    if KIND == Q4_K || KIND == Q5_K {
                        let b = _mm256_loadu_si256(p as *const __m256i);
                        let b = if high { _mm256_srli_epi16(b, 4) } else { b };
                        let q = _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
                        let q = if KIND == Q5_K {
                            let qh = c
                                .codes
                                .as_ptr()
                                .add(k / 8 * crate::quant::kquant::Q5_K_BYTES + 16);
                            $fifth_plane(q, qh, k % 8)
                        } else {
                            q
                        };
                        $dot(q, av)
                    } else if KIND == Q5_0 {
                        $dot($fifth_u32(nibbles(p), p.sub(4)), av)
                    } else if KIND == Q8_0 {
                        let w = _mm256_loadu_si256(p as *const __m256i);
                        $dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(av, w))
                    } else {
                        $dot(nibbles(p), av)
                    }
                }

                /// Q6_K block `k`'s eight `i32` partial sums of `(q − 32)·a` (see
                /// [`super::super::q6_k_block`]): lanes 0–3 are the first half of 16, 4–7 the
                /// second.
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn block_q6k(codes: *const u8, a: *const i8, k: usize) -> __m256i {
                    let (j, m) = (k % 8, k % 4);
                    let part = j / 4;
                    let b = codes.add(k / 8 * crate::quant::kquant::Q6_K_BYTES);
                    let ql = _mm256_loadu_si256(b.add(64 * part + 32 * (m % 2)) as *const __m256i);
                    let qh = _mm256_loadu_si256(b.add(128 + 32 * part) as *const __m256i);
                    let ql = if m >= 2 { _mm256_srli_epi16(ql, 4) } else { ql };
                    let lo = _mm256_and_si256(ql, _mm256_set1_epi8(0x0F));
                    let hi = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * m as i32));
                    let hi = _mm256_slli_epi16(_mm256_and_si256(hi, _mm256_set1_epi8(3)), 4);
                    let w = _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32));
                    let av = _mm256_loadu_si256(a.add(32 * k) as *const __m256i);
                    $dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(av, w))
                }

                /// Block `k`'s eight lane scales `d·sc·da` from the row's `d·sc` at `sp`.
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn lane_scales(sp: *const f32, da: &[f32], k: usize) -> __m256 {
                    _mm256_mul_ps(
                        _mm256_loadu_ps(sp.add(8 * k)),
                        _mm256_broadcast_ss(da.get_unchecked(k)),
                    )
                }

                /// Q6_K rows: per row the per-lane half-block scales `d·sc`, then per input and
                /// block one multiply by `da` and one FMA.
                #[target_feature(enable = $features)]
                unsafe fn rows_q6k(
                    w: &QuantizedTensor,
                    acts: &QuantizedActs,
                    r0: usize,
                    out: &mut [f32],
                ) {
                    let (n, nb) = (acts.n, acts.blocks);
                    // Per row, lane scales `d·sc` (lanes 0–3 the first half of 16, 4–7 the
                    // second); per input and block, one multiply by `da` in the loop.
                    let mut scratch = super::super::take_scratch(8 * nb);
                    let d8 = &mut scratch[..8 * nb];
                    for (rr, o) in out.chunks_mut(n).enumerate() {
                        let c = row_codes::<Q6_K>(w, r0 + rr, nb);
                        for k in 0..nb {
                            let (d, s) = super::super::q6_k_scales(c.codes, k);
                            d8[8 * k..8 * k + 4].fill(d * s[0]);
                            d8[8 * k + 4..8 * k + 8].fill(d * s[1]);
                        }
                        let sp = d8.as_ptr();
                        for (i, oi) in o.iter_mut().enumerate() {
                            let (a, da, _) = acts.row(i);
                            let scale = |k: usize| lane_scales(sp, da, k);
                            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                            let mut k = 0;
                            while k + 2 <= nb {
                                let p0 = block_q6k(c.codes.as_ptr(), a.as_ptr(), k);
                                let p1 = block_q6k(c.codes.as_ptr(), a.as_ptr(), k + 1);
                                acc0 = _mm256_fmadd_ps(scale(k), _mm256_cvtepi32_ps(p0), acc0);
                                acc1 = _mm256_fmadd_ps(scale(k + 1), _mm256_cvtepi32_ps(p1), acc1);
                                k += 2;
                            }
                            if k < nb {
                                let p0 = block_q6k(c.codes.as_ptr(), a.as_ptr(), k);
                                acc0 = _mm256_fmadd_ps(scale(k), _mm256_cvtepi32_ps(p0), acc0);
                            }
                            *oi = hsum(_mm256_add_ps(acc0, acc1));
                        }
                    }
                    super::super::give_back_scratch(scratch);
                }

                /// `Σ_k c_k · Σ_j q_kj · a_kj` over one row, two blocks a step into two
                /// accumulators; one horizontal sum per row.
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn blocks<const KIND: u8>(
                    c: &RowCodes,
                    a: *const i8,
                    cs: &[f32],
                    mw: &[f32],
                    sums: &[f32],
                ) -> f32 {
                    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    let nb = cs.len();
                    // The offsets' share `Σ mw·s`, eight blocks at a time, into `acc1`: one
                    // horizontal sum per row for both terms.
                    let mut tail = 0f32;
                    if KIND != Q8_0 {
                        let mut k = 0;
                        while k + 8 <= nb {
                            let m = _mm256_loadu_ps(mw.as_ptr().add(k));
                            let s = _mm256_loadu_ps(sums.as_ptr().add(k));
                            acc1 = _mm256_fmadd_ps(m, s, acc1);
                            k += 8;
                        }
                        while k < nb {
                            tail += *mw.get_unchecked(k) * *sums.get_unchecked(k);
                            k += 1;
                        }
                    }
                    let cp = cs.as_ptr();
                    let mut k = 0;
                    while k + 2 <= nb {
                        let (p0, p1) = (block::<KIND>(c, a, k), block::<KIND>(c, a, k + 1));
                        let s0 = _mm256_broadcast_ss(&*cp.add(k));
                        let s1 = _mm256_broadcast_ss(&*cp.add(k + 1));
                        acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(p0), acc0);
                        acc1 = _mm256_fmadd_ps(s1, _mm256_cvtepi32_ps(p1), acc1);
                        k += 2;
                    }
                    if k < nb {
                        let s0 = _mm256_broadcast_ss(&*cp.add(k));
                        let p0 = block::<KIND>(c, a, k);
                        acc0 = _mm256_fmadd_ps(s0, _mm256_cvtepi32_ps(p0), acc0);
                    }
                    hsum(_mm256_add_ps(acc0, acc1)) + tail
                }

                /// Weight rows `r0 ..` of one layout against every input: per row its scales
                /// once, then per input `c = dw · da` and the block loop.
                #[target_feature(enable = $features)]
                pub unsafe fn rows<const KIND: u8>(
                    w: &QuantizedTensor,
                    acts: &QuantizedActs,
                    r0: usize,
                    out: &mut [f32],
                ) {
                    if KIND == Q6_K {
                        return rows_q6k(w, acts, r0, out);
                    }
                    let (n, nb) = (acts.n, acts.blocks);
                    let pad = nb.div_ceil(8) * 8;
                    let mut scratch = super::super::take_scratch(4 * pad + 16 + nb);
                    let (dw, rest) = scratch.split_at_mut(pad);
                    let (mw, rest) = rest.split_at_mut(pad);
                    let (tmp, cs) = rest.split_at_mut(2 * pad + 16);
                    let cs = &mut cs[..nb];
                    for (rr, o) in out.chunks_mut(n).enumerate() {
                        let c = row_codes::<KIND>(w, r0 + rr, nb);
                        row_scales::<KIND>(&c, nb, dw, mw, tmp);
                        for (i, oi) in o.iter_mut().enumerate() {
                            let (a, da, sums) = acts.row(i);
                            for ((c, d), a) in cs.iter_mut().zip(&*dw).zip(da) {
                                *c = d * a;
                            }
                            *oi = blocks::<KIND>(&c, a.as_ptr(), cs, &mw[..nb], sums);
                        }
                    }
                    super::super::give_back_scratch(scratch);
                }
            }
        };
    }

    block_loop!(
        avx2,
        "avx2,fma,f16c",
        dot_avx2,
        fifth_u32_avx2,
        fifth_plane_avx2
    );
    block_loop!(
        vnni,
        "avx512vnni,avx512bw,avx512vl,avx512f,avx2,fma,f16c",
        dot_vnni,
        fifth_u32_512,
        fifth_plane_512
    );
}

thread_local! {
    /// Per-thread scratch of the SIMD row loops (row scales), kept between calls: a decode
    /// step makes a few hundred products, and allocating per task showed in profiles.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's scratch, at least `len` long (hand it back with [`give_back_scratch`]).
#[cfg(target_arch = "x86_64")]
fn take_scratch(len: usize) -> Vec<f32> {
    let mut v = SCRATCH.take();
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v
}

#[cfg(target_arch = "x86_64")]
fn give_back_scratch(v: Vec<f32>) {
    SCRATCH.set(v);
}

/// Row `r` of `w` in layout `KIND`, its lengths checked for `nb` blocks (the SIMD loops read
/// without bounds checks).
#[inline(always)]
fn row_codes<const KIND: u8>(w: &QuantizedTensor, r: usize, nb: usize) -> RowCodes<'_> {
    let (k, c) = row(w, r);
    assert_eq!(k, KIND, "row layout");
    assert!(nb > 0 && c.codes.len() >= row_bytes(KIND, nb));
    if KIND == INT4_SYM || KIND == INT4_ASYM {
        let groups = ((nb - 1) >> c.shift) + 1;
        assert!(c.scales.len() >= groups && (KIND == INT4_SYM || c.zeros.len() >= groups));
    }
    c
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
fn rows(path: IntPath, w: &QuantizedTensor, acts: &QuantizedActs, r0: usize, out: &mut [f32]) {
    macro_rules! on {
        ($kind:ident) => {
            match path {
                // SAFETY: the caller checked the CPU features of `path`; `row_codes` checks
                // each row's lengths and `acts` holds `blocks` blocks per input.
                #[cfg(target_arch = "x86_64")]
                IntPath::Vnni => unsafe { simd::vnni::rows::<$kind>(w, acts, r0, out) },
                #[cfg(target_arch = "x86_64")]
                IntPath::Avx2 => unsafe { simd::avx2::rows::<$kind>(w, acts, r0, out) },
                _ => {
                    for (rr, o) in out.chunks_mut(acts.n).enumerate() {
                        let c = row_codes::<$kind>(w, r0 + rr, acts.blocks);
                        for (i, oi) in o.iter_mut().enumerate() {
                            let (a, da, sums) = acts.row(i);
                            *oi = row_plain::<$kind>(c, a, da, sums);
                        }
                    }
                }
            }
        };
    }
    match row(w, r0).0 {
        Q4_0 => on!(Q4_0),
        Q4_1 => on!(Q4_1),
        Q8_0 => on!(Q8_0),
        Q5_0 => on!(Q5_0),
        Q4_K => on!(Q4_K),
        Q5_K => on!(Q5_K),
        Q6_K => on!(Q6_K),
        INT4_SYM => on!(INT4_SYM),
        _ => on!(INT4_ASYM),
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

/// [`matvec_int8_with`] for several matrices of one input (`ys[m] = x · ws[m]ᵀ`), as one
/// product: the input is quantized once per block order and one set of tasks covers every
/// matrix's rows. Each `ys[m]` equals what `matvec_int8_with` gives for `ws[m]` alone.
///
/// # Shapes
/// - `x`: `[n, cols]` with `n <= MAX_ROWS`, every `ws[m]` `[rows_m, cols]`; `ys[m]`: `[n, rows_m]`
///
/// # Panics
/// As [`matvec_int8_with`], and when the matrices' widths differ.
pub fn matvec_int8_many(path: IntPath, ws: &[&QuantizedTensor], x: &[f32], ys: &mut [&mut [f32]]) {
    assert!(
        path_supported(path),
        "integer path {} is not supported by this CPU",
        path.name()
    );
    let Some(first) = ws.first() else {
        return;
    };
    let cols = first.cols;
    for w in ws {
        assert!(supports(w.format), "{} has no integer kernel", w.format);
        assert_eq!(
            w.cols, cols,
            "the matrices of one product share their input width"
        );
    }
    assert!(
        cols > 0 && x.len().is_multiple_of(cols),
        "x must be [n, cols]"
    );
    let n = x.len() / cols;
    let natural = ws.iter().any(|w| order(w.format) == Order::Natural);
    let even_odd = ws.iter().any(|w| order(w.format) == Order::EvenOdd);
    let acts_natural = natural.then(|| QuantizedActs::new(x, cols, Order::Natural));
    let acts_even_odd = even_odd.then(|| QuantizedActs::new(x, cols, Order::EvenOdd));
    super::matvec::drive_many(ws, n, ys, |m, r0, o| {
        let acts = match order(ws[m].format) {
            Order::Natural => acts_natural.as_ref(),
            Order::EvenOdd => acts_even_odd.as_ref(),
        };
        rows(path, ws[m], acts.expect("quantized for this order"), r0, o)
    });
}
