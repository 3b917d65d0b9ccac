//! Quantize and dequantize a weight matrix. Matrices are `[rows, cols]` = `[out, in]` row-major
//! (the PyTorch/llama.cpp layout), so that scale groups run along the input dimension and each
//! output's codes are one contiguous stream for matrix-vector products.
//!
//! Rows whose length does not divide by the group size are padded with zeros to the next group
//! (the padding is stored and counted in the bytes); [`QuantizedTensor::dequantize`] drops it.

use half::{bf16, f16};

use super::format::{Fp8Kind, Fp8Scaling, QuantFormat};
use crate::ModelError;

/// Scales (and zero points) of a quantized matrix.
#[derive(Clone, Debug, PartialEq)]
pub enum Scales {
    /// No scale (F32, F16, BF16), or stored inside the code blocks (Q4_0, Q4_1, Q8_0).
    None,
    /// One scale for the whole matrix.
    Tensor(f32),
    /// One scale per row.
    Row(Vec<f32>),
    /// Per group of `group` weights: f16 scales, and u8 zero points for asymmetric formats.
    Group {
        /// `rows · padded_cols / group` scales.
        scale: Vec<f16>,
        /// Zero points (asymmetric only).
        zero: Option<Vec<u8>>,
    },
}

/// A quantized `[rows, cols]` matrix: packed codes and scales, never an f32 copy of the weights
/// (except the F32 reference format itself, whose codes are the f32 bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedTensor {
    /// The format.
    pub format: QuantFormat,
    /// Output channels.
    pub rows: usize,
    /// Input channels (before padding).
    pub cols: usize,
    /// Packed codes. INT4: two per byte, even index in the low nibble. Q4_0, Q4_1, Q8_0: whole
    /// llama.cpp blocks (18, 20, 34 bytes).
    pub codes: Vec<u8>,
    /// Scales and zero points.
    pub scales: Scales,
}

/// Codes per row after padding to the group size.
pub fn padded_cols(format: QuantFormat, cols: usize) -> usize {
    cols.div_ceil(format.group()) * format.group()
}

pub(crate) fn absmax(xs: &[f32]) -> f32 {
    xs.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// Symmetric 4-bit: `d = max|w| / 7` (rounded to f16), codes `round(w / d) + 8` in 1..=15.
fn int4_sym_group(w: &[f32]) -> (f16, Vec<u8>) {
    let d = f16::from_f32(absmax(w) / 7.0);
    let id = if d.to_f32() == 0.0 {
        0.0
    } else {
        1.0 / d.to_f32()
    };
    let q = w
        .iter()
        .map(|x| ((x * id).round().clamp(-8.0, 7.0) as i32 + 8) as u8)
        .collect();
    (d, q)
}

/// Asymmetric 4-bit: `d = (max - min) / 15`, zero point `z = round(-min / d)`, codes
/// `clamp(round(w / d) + z, 0, 15)`.
fn int4_asym_group(w: &[f32]) -> (f16, u8, Vec<u8>) {
    let (lo, hi) = w
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let d = f16::from_f32((hi - lo) / 15.0);
    let df = d.to_f32();
    if df == 0.0 {
        return (d, 0, vec![0; w.len()]);
    }
    let z = (-lo / df).round().clamp(0.0, 15.0) as u8;
    let q = w
        .iter()
        .map(|x| ((x / df).round() + z as f32).clamp(0.0, 15.0) as u8)
        .collect();
    (d, z, q)
}

/// llama.cpp's `quantize_row_q4_0_ref` for one block of 32: `d = m / -8` where `m` is the
/// weight of largest magnitude (with its sign), codes `min(15, trunc(w / d + 8.5))`; bytes
/// `[d as f16 LE][16 bytes: low nibble = weight j, high nibble = weight j + 16]`.
pub fn q4_0_block(w: &[f32; 32]) -> [u8; 18] {
    let mut amax = 0f32;
    let mut m = 0f32;
    for &v in w {
        if amax < v.abs() {
            amax = v.abs();
            m = v;
        }
    }
    let d = m / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; 18];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for j in 0..16 {
        let x0 = ((w[j] * id + 8.5) as i8).min(15) as u8;
        let x1 = ((w[16 + j] * id + 8.5) as i8).min(15) as u8;
        out[2 + j] = x0 | (x1 << 4);
    }
    out
}

/// llama.cpp's `quantize_row_q4_1_ref` for one block of 32: `d = (max − min) / 15`, `m = min`,
/// codes `min(15, trunc((w − min) / d + 0.5))`; bytes `[d f16][m f16][16 bytes as Q4_0]`.
pub fn q4_1_block(w: &[f32; 32]) -> [u8; 20] {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in w {
        min = min.min(v);
        max = max.max(v);
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; 20];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    out[2..4].copy_from_slice(&f16::from_f32(min).to_le_bytes());
    for j in 0..16 {
        let x0 = (((w[j] - min) * id + 0.5) as i8).min(15) as u8;
        let x1 = (((w[16 + j] - min) * id + 0.5) as i8).min(15) as u8;
        out[4 + j] = x0 | (x1 << 4);
    }
    out
}

/// llama.cpp's `quantize_row_q8_0_ref` for one block of 32: `d = max|w| / 127`, codes
/// `round(w / d)` (half away from zero); bytes `[d f16][32 × i8]`.
pub fn q8_0_block(w: &[f32; 32]) -> [u8; 34] {
    super::act::q8_0_bytes(w)
}

fn pack_nibbles(q: &[u8]) -> Vec<u8> {
    q.chunks(2)
        .map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4))
        .collect()
}

impl QuantizedTensor {
    /// llama.cpp blocks taken as they are (e.g. from a GGUF file): `[rows, cols]` with `cols` a
    /// multiple of the block's weights (32, or 256 for Q4_K) and `codes` exactly that many blocks
    /// of `format`.
    pub fn from_ggml_blocks(
        format: QuantFormat,
        codes: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> crate::Result<Self> {
        let Some(size) = format.ggml_block() else {
            return Err(ModelError::InvalidConfig(format!(
                "{format} is not a llama.cpp block format"
            )));
        };
        let g = format.group();
        if !cols.is_multiple_of(g) || codes.len() != rows * cols / g * size {
            return Err(ModelError::Shape {
                what: "llama.cpp blocks",
                expected: format!(
                    "{rows} rows of {cols} (a multiple of {g}) in {size}-byte blocks"
                ),
                got: format!("{} bytes", codes.len()),
            });
        }
        Ok(Self {
            format,
            rows,
            cols,
            codes,
            scales: Scales::None,
        })
    }

    /// Quantizes `w` (`[rows, cols]` row-major). Refuses non-finite weights and wrong lengths.
    /// The llama.cpp block formats pad rows to whole blocks (32, or 256 for the K-quants) with
    /// zeros, as the other group formats do; a GGUF file needs whole blocks, so its writer
    /// refuses padded rows.
    pub fn quantize(
        format: QuantFormat,
        w: &[f32],
        rows: usize,
        cols: usize,
    ) -> crate::Result<Self> {
        if w.len() != rows * cols || rows == 0 || cols == 0 {
            return Err(ModelError::Shape {
                what: "weights to quantize",
                expected: format!("{rows}·{cols} = {} values, both positive", rows * cols),
                got: format!("{} values", w.len()),
            });
        }
        if let Some(i) = w.iter().position(|x| !x.is_finite()) {
            return Err(ModelError::InvalidConfig(format!(
                "weight {i} (row {}, column {}) is {}; only finite weights can be quantized",
                i / cols,
                i % cols,
                w[i]
            )));
        }
        let pc = padded_cols(format, cols);
        let row = |r: usize| -> Vec<f32> {
            let mut v = w[r * cols..(r + 1) * cols].to_vec();
            v.resize(pc, 0.0);
            v
        };
        let (codes, scales) = match format {
            QuantFormat::F32 => (
                w.iter().flat_map(|x| x.to_le_bytes()).collect(),
                Scales::None,
            ),
            QuantFormat::F16 => (
                w.iter()
                    .flat_map(|x| f16::from_f32(*x).to_le_bytes())
                    .collect(),
                Scales::None,
            ),
            QuantFormat::Bf16 => (
                w.iter()
                    .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
                    .collect(),
                Scales::None,
            ),
            QuantFormat::Fp8(kind, Fp8Scaling::Tensor) => {
                let s = fp8_scale(kind, absmax(w));
                (
                    w.iter().map(|x| kind.encode(x / s)).collect(),
                    Scales::Tensor(s),
                )
            }
            QuantFormat::Fp8(kind, Fp8Scaling::Channel) => {
                let mut codes = Vec::with_capacity(w.len());
                let mut scales = Vec::with_capacity(rows);
                for r in w.chunks(cols) {
                    let s = fp8_scale(kind, absmax(r));
                    codes.extend(r.iter().map(|x| kind.encode(x / s)));
                    scales.push(s);
                }
                (codes, Scales::Row(scales))
            }
            QuantFormat::Int8 => {
                let mut codes = Vec::with_capacity(w.len());
                let mut scales = Vec::with_capacity(rows);
                for r in w.chunks(cols) {
                    let m = absmax(r);
                    let s = if m == 0.0 { 1.0 } else { m / 127.0 };
                    codes.extend(
                        r.iter()
                            .map(|x| (x / s).round().clamp(-127.0, 127.0) as i8 as u8),
                    );
                    scales.push(s);
                }
                (codes, Scales::Row(scales))
            }
            QuantFormat::Int4 { group, asym } => {
                let mut q = Vec::with_capacity(rows * pc);
                let mut scale = Vec::with_capacity(rows * pc / group);
                let mut zero = Vec::new();
                for r in 0..rows {
                    for g in row(r).chunks(group) {
                        if asym {
                            let (d, z, c) = int4_asym_group(g);
                            scale.push(d);
                            zero.push(z);
                            q.extend(c);
                        } else {
                            let (d, c) = int4_sym_group(g);
                            scale.push(d);
                            q.extend(c);
                        }
                    }
                }
                (
                    pack_nibbles(&q),
                    Scales::Group {
                        scale,
                        zero: asym.then_some(zero),
                    },
                )
            }
            QuantFormat::Q4_0 | QuantFormat::Q4_1 | QuantFormat::Q8_0 => {
                let size = format.ggml_block().expect("a block format");
                let mut codes = Vec::with_capacity(rows * pc / 32 * size);
                for r in 0..rows {
                    for b in row(r).chunks(32) {
                        let b: &[f32; 32] = b.try_into().expect("32 weights");
                        match format {
                            QuantFormat::Q4_0 => codes.extend(q4_0_block(b)),
                            QuantFormat::Q4_1 => codes.extend(q4_1_block(b)),
                            _ => codes.extend(q8_0_block(b)),
                        }
                    }
                }
                (codes, Scales::None)
            }
            QuantFormat::Q5_0 | QuantFormat::Q4K | QuantFormat::Q5K | QuantFormat::Q6K => {
                use super::kquant::{
                    quantize_q4_k, quantize_q5_0, quantize_q5_k, quantize_q6_k, QK_K,
                };
                let (g, size) = (format.group(), format.ggml_block().expect("a block format"));
                let mut codes = Vec::with_capacity(rows * pc / g * size);
                for r in 0..rows {
                    for b in row(r).chunks(g) {
                        let k = |b: &[f32]| -> [f32; QK_K] { b.try_into().expect("256 weights") };
                        match format {
                            QuantFormat::Q5_0 => {
                                codes.extend(quantize_q5_0(b.try_into().expect("32 weights")))
                            }
                            QuantFormat::Q4K => codes.extend(quantize_q4_k(&k(b))),
                            QuantFormat::Q5K => codes.extend(quantize_q5_k(&k(b))),
                            _ => codes.extend(quantize_q6_k(&k(b))),
                        }
                    }
                }
                (codes, Scales::None)
            }
        };
        Ok(Self {
            format,
            rows,
            cols,
            codes,
            scales,
        })
    }

    /// Bytes held: codes plus scales and zero points.
    pub fn bytes(&self) -> usize {
        let s = match &self.scales {
            Scales::None => 0,
            Scales::Tensor(_) => 4,
            Scales::Row(v) => 4 * v.len(),
            Scales::Group { scale, zero } => 2 * scale.len() + zero.as_ref().map_or(0, Vec::len),
        };
        self.codes.len() + s
    }

    /// Bits per weight actually held.
    pub fn bits_per_weight(&self) -> f64 {
        self.bytes() as f64 * 8.0 / (self.rows * self.cols) as f64
    }

    /// Dequantizes row `r` into `out` (`padded_cols` values, padding included).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (cols, pc) = (self.cols, padded_cols(self.format, self.cols));
        match (&self.format, &self.scales) {
            (QuantFormat::F32, _) => {
                for (o, b) in out
                    .iter_mut()
                    .zip(self.codes[r * cols * 4..].chunks_exact(4))
                {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            (QuantFormat::F16, _) => {
                for (o, b) in out
                    .iter_mut()
                    .zip(self.codes[r * cols * 2..(r + 1) * cols * 2].chunks_exact(2))
                {
                    *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            (QuantFormat::Bf16, _) => {
                for (o, b) in out
                    .iter_mut()
                    .zip(self.codes[r * cols * 2..(r + 1) * cols * 2].chunks_exact(2))
                {
                    *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            (QuantFormat::Fp8(kind, _), s) => {
                let s = match s {
                    Scales::Tensor(s) => *s,
                    Scales::Row(v) => v[r],
                    _ => unreachable!("fp8 has tensor or row scales"),
                };
                for (o, &c) in out.iter_mut().zip(&self.codes[r * cols..(r + 1) * cols]) {
                    *o = kind.decode(c) * s;
                }
            }
            (QuantFormat::Int8, Scales::Row(v)) => {
                for (o, &c) in out.iter_mut().zip(&self.codes[r * cols..(r + 1) * cols]) {
                    *o = c as i8 as f32 * v[r];
                }
            }
            (QuantFormat::Int4 { group, .. }, Scales::Group { scale, zero }) => {
                let bytes = &self.codes[r * pc / 2..(r + 1) * pc / 2];
                let gpr = pc / group;
                for (i, o) in out[..pc].iter_mut().enumerate() {
                    let b = bytes[i / 2];
                    let q = if i % 2 == 0 { b & 15 } else { b >> 4 };
                    let g = r * gpr + i / group;
                    let z = zero.as_ref().map_or(8, |z| z[g]);
                    *o = (q as f32 - z as f32) * scale[g].to_f32();
                }
            }
            (QuantFormat::Q4_0 | QuantFormat::Q4_1 | QuantFormat::Q8_0, _) => {
                let size = self.format.ggml_block().expect("a block format");
                let blocks = &self.codes[r * pc / 32 * size..(r + 1) * pc / 32 * size];
                for (b, o) in blocks.chunks_exact(size).zip(out.chunks_exact_mut(32)) {
                    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                    match self.format {
                        QuantFormat::Q4_0 => {
                            for j in 0..16 {
                                o[j] = ((b[2 + j] & 15) as f32 - 8.0) * d;
                                o[16 + j] = ((b[2 + j] >> 4) as f32 - 8.0) * d;
                            }
                        }
                        QuantFormat::Q4_1 => {
                            let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
                            for j in 0..16 {
                                o[j] = (b[4 + j] & 15) as f32 * d + m;
                                o[16 + j] = (b[4 + j] >> 4) as f32 * d + m;
                            }
                        }
                        _ => {
                            for j in 0..32 {
                                o[j] = b[2 + j] as i8 as f32 * d;
                            }
                        }
                    }
                }
            }
            (QuantFormat::Q5_0 | QuantFormat::Q4K | QuantFormat::Q5K | QuantFormat::Q6K, _) => {
                use super::kquant::*;
                let (g, size) = (
                    self.format.group(),
                    self.format.ggml_block().expect("blocks"),
                );
                let n = pc / g;
                let blocks = &self.codes[r * n * size..(r + 1) * n * size];
                for (b, o) in blocks.chunks_exact(size).zip(out.chunks_exact_mut(g)) {
                    match self.format {
                        QuantFormat::Q5_0 => dequantize_q5_0(b, o),
                        QuantFormat::Q4K => dequantize_q4_k(b, o),
                        QuantFormat::Q5K => dequantize_q5_k(b, o),
                        _ => dequantize_q6_k(b, o),
                    }
                }
            }
            _ => unreachable!("format and scales always agree"),
        }
    }

    /// The dequantized matrix, `[rows, cols]` row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let pc = padded_cols(self.format, self.cols);
        let mut row = vec![0f32; pc];
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            self.dequantize_row(r, &mut row);
            out.extend_from_slice(&row[..self.cols]);
        }
        out
    }
}

/// The FP8 scale of values whose largest magnitude is `m`: `m / max_fp8`, 1 when `m` is 0.
pub(crate) fn fp8_scale(kind: Fp8Kind, m: f32) -> f32 {
    if m == 0.0 {
        1.0
    } else {
        m / kind.max()
    }
}
