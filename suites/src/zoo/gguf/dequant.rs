//! ggml tensor types and their dequantization to f32, following ggml's reference C code
//! (`dequantize_row_*` in ggml-quants.c) operation for operation, so that results are
//! bit-identical: a block's scale is converted from f16 first, products are taken in the same
//! order, and nothing is fused.
//!
//! | type | elements / block | bytes / block | value |
//! |---|---|---|---|
//! | F32, F16, BF16 | 1 | 4, 2, 2 | as stored |
//! | Q4_0 | 32 | 18: f16 d, 16 B nibbles | (q − 8)·d |
//! | Q4_1 | 32 | 20: f16 d, f16 m, 16 B nibbles | q·d + m |
//! | Q5_0 | 32 | 22: f16 d, u32 fifth bits, 16 B nibbles | (q − 16)·d |
//! | Q8_0 | 32 | 34: f16 d, 32 × i8 | q·d |
//! | Q4_K | 256 | 144: f16 d, f16 dmin, 12 B 6-bit scales and mins, 128 B nibbles | (d·sc)·q − dmin·m |
//! | Q5_K | 256 | 176: as Q4_K with 32 B of fifth bits before the nibbles | (d·sc)·q − dmin·m |
//! | Q6_K | 256 | 210: 128 B low nibbles, 64 B high 2 bits, 16 × i8 scales, f16 d | (d·sc)·(q − 32) |
//!
//! In the 4-bit types of 32, the low nibbles of the 16 bytes are elements 0–15 and the high
//! nibbles elements 16–31.

use half::{bf16, f16};
use infermark_models::quant::kquant::{
    dequantize_q4_k, dequantize_q5_0, dequantize_q5_k, dequantize_q6_k, QK_K,
};

/// The ggml element types infermark reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
    BF16,
}

impl GgmlType {
    /// Every supported type.
    pub const ALL: [GgmlType; 10] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::BF16,
    ];

    /// ggml's type code.
    pub fn code(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// The type with ggml code `code`, if supported.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// ggml's name.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
            GgmlType::BF16 => "BF16",
        }
    }

    /// Elements per block.
    pub fn block_elems(self) -> u64 {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 => 32,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
        }
    }

    /// Bytes of `elements` values; `None` unless they are whole blocks.
    pub fn bytes_for(self, elements: u64) -> Option<u64> {
        elements
            .is_multiple_of(self.block_elems())
            .then(|| elements / self.block_elems() * self.block_bytes())
    }
}

fn h(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Dequantizes whole blocks of type `ty` (`bytes.len()` a multiple of the block size).
///
/// # Panics
/// When `bytes` is not whole blocks (the file reader checks this on open).
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let bb = ty.block_bytes() as usize;
    assert_eq!(bytes.len() % bb, 0, "whole {} blocks", ty.name());
    let mut out = Vec::with_capacity(bytes.len() / bb * ty.block_elems() as usize);
    for b in bytes.chunks_exact(bb) {
        match ty {
            GgmlType::F32 => out.push(f32::from_le_bytes(b.try_into().expect("4 bytes"))),
            GgmlType::F16 => out.push(h(b)),
            GgmlType::BF16 => out.push(bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            GgmlType::Q4_0 => {
                let d = h(b);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
            GgmlType::Q4_1 => {
                let (d, m) = (h(b), h(&b[2..]));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
            GgmlType::Q8_0 => {
                let d = h(b);
                out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
            }
            GgmlType::Q5_0 => {
                let start = out.len();
                out.resize(start + 32, 0.0);
                dequantize_q5_0(b, &mut out[start..]);
            }
            GgmlType::Q4K => q4_k(b, &mut out),
            GgmlType::Q5K => {
                let start = out.len();
                out.resize(start + QK_K, 0.0);
                dequantize_q5_k(b, &mut out[start..]);
            }
            GgmlType::Q6K => q6_k(b, &mut out),
        }
    }
    out
}

fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + QK_K, 0.0);
    dequantize_q4_k(b, &mut out[start..]);
}

fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + QK_K, 0.0);
    dequantize_q6_k(b, &mut out[start..]);
}

impl GgmlType {
    /// The infermark weight format holding this type's blocks natively, if any.
    pub fn native_format(self) -> Option<infermark_models::quant::QuantFormat> {
        use infermark_models::quant::QuantFormat;
        Some(match self {
            GgmlType::Q4_0 => QuantFormat::Q4_0,
            GgmlType::Q4_1 => QuantFormat::Q4_1,
            GgmlType::Q5_0 => QuantFormat::Q5_0,
            GgmlType::Q8_0 => QuantFormat::Q8_0,
            GgmlType::Q4K => QuantFormat::Q4K,
            GgmlType::Q5K => QuantFormat::Q5K,
            GgmlType::Q6K => QuantFormat::Q6K,
            _ => return None,
        })
    }

    /// The ggml type of an infermark block format, if it is one.
    pub fn of_format(f: infermark_models::quant::QuantFormat) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.native_format() == Some(f))
    }
}
