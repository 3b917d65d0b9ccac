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
        // `as` saturates, and NaN becomes 0: the NaN scale carries it.
        *q = (v * id).round() as i8;
    }
    (d, q)
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
        for i in 0..n {
            let row = &x[i * cols..(i + 1) * cols];
            for k in 0..blocks {
                let src = &row[k * BLOCK..row.len().min((k + 1) * BLOCK)];
                buf[..src.len()].copy_from_slice(src);
                buf[src.len()..].fill(0.0);
                let (d, q) = quantize_block(&buf);
                let at = i * blocks + k;
                let dst = &mut codes[at * BLOCK..(at + 1) * BLOCK];
                match order {
                    Order::Natural => dst.copy_from_slice(&q),
                    Order::EvenOdd => {
                        for j in 0..BLOCK / 2 {
                            dst[j] = q[2 * j];
                            dst[BLOCK / 2 + j] = q[2 * j + 1];
                        }
                    }
                }
                scales[at] = d;
                sums[at] = d * q.iter().map(|&v| v as i32).sum::<i32>() as f32;
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
