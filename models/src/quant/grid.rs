//! The quantization grid of one group of a 4-bit format (INT4 g32/g64/g128 sym or asym, Q4_0,
//! Q4_1): its parameters (scale, zero point or minimum), the code of a weight and the value of a
//! code, exactly as [`QuantizedTensor::quantize`] and [`QuantizedTensor::dequantize`] compute
//! them; and [`assemble`], which packs chosen grids and codes into the same [`QuantizedTensor`].
//!
//! Calibrated methods (GPTQ in [`super::gptq`], the importance-weighted search in
//! [`super::imatrix`]) choose grids and codes their own way and hand them to [`assemble`], so
//! every kernel, size figure and file format applies to their output unchanged.
//! [`Grid::rtn`] is round-to-nearest's own choice: quantizing each weight of a group with it and
//! assembling gives `QuantizedTensor::quantize`'s bytes exactly (a test checks it).

use half::f16;

use super::format::QuantFormat;
use super::tensor::{padded_cols, QuantizedTensor, Scales};
use crate::ModelError;

/// The grid of one group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Grid {
    /// INT4 symmetric: value `(q − 8)·d`, code `clamp(round(x / d), −8, 7) + 8`.
    Sym {
        /// Scale (stored f16).
        d: f16,
    },
    /// INT4 asymmetric: value `(q − z)·d`, code `clamp(round(x / d) + z, 0, 15)`.
    Asym {
        /// Scale (stored f16).
        d: f16,
        /// Zero point.
        z: u8,
    },
    /// llama.cpp Q4_0: value `(q − 8)·f16(d)`, code `min(15, trunc(x / d + 8.5))`.
    Q4_0 {
        /// Scale as chosen (stored rounded to f16).
        d: f32,
    },
    /// llama.cpp Q4_1: value `q·f16(d) + f16(m)`, code `min(15, trunc((x − m) / d + 0.5))`.
    Q4_1 {
        /// Scale as chosen (stored rounded to f16).
        d: f32,
        /// Minimum as chosen (stored rounded to f16).
        m: f32,
    },
}

/// Whether `format` has per-group 4-bit grids that calibrated methods can choose.
pub fn supports(format: QuantFormat) -> bool {
    matches!(
        format,
        QuantFormat::Int4 { .. } | QuantFormat::Q4_0 | QuantFormat::Q4_1
    )
}

/// The error for a format without such grids.
pub fn unsupported(format: QuantFormat, method: &str) -> ModelError {
    ModelError::InvalidConfig(format!(
        "{method} quantizes to the 4-bit group formats (int4-g*, q4_0, q4_1), not {format}"
    ))
}

fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

impl Grid {
    /// Round-to-nearest's grid for the weights `w` of one group of `format` (what
    /// `QuantizedTensor::quantize` chooses); `None` for a format without group grids.
    pub fn rtn(format: QuantFormat, w: &[f32]) -> Option<Grid> {
        Some(match format {
            QuantFormat::Int4 { asym: false, .. } => {
                let amax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
                Grid::Sym {
                    d: f16::from_f32(amax / 7.0),
                }
            }
            QuantFormat::Int4 { asym: true, .. } => {
                let (lo, hi) = w
                    .iter()
                    .fold((0f32, 0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                let d = f16::from_f32((hi - lo) / 15.0);
                let df = d.to_f32();
                let z = if df == 0.0 {
                    0
                } else {
                    (-lo / df).round().clamp(0.0, 15.0) as u8
                };
                Grid::Asym { d, z }
            }
            QuantFormat::Q4_0 => {
                let (mut amax, mut m) = (0f32, 0f32);
                for &v in w {
                    if amax < v.abs() {
                        amax = v.abs();
                        m = v;
                    }
                }
                Grid::Q4_0 { d: m / -8.0 }
            }
            QuantFormat::Q4_1 => {
                let (mut min, mut max) = (f32::MAX, -f32::MAX);
                for &v in w {
                    min = min.min(v);
                    max = max.max(v);
                }
                Grid::Q4_1 {
                    d: (max - min) / 15.0,
                    m: min,
                }
            }
            _ => return None,
        })
    }

    /// The code (0..=15) of weight `x`, clamped to the grid.
    pub fn code(&self, x: f32) -> u8 {
        match *self {
            Grid::Sym { d } => {
                let id = inverse(d.to_f32());
                ((x * id).round().clamp(-8.0, 7.0) as i32 + 8) as u8
            }
            Grid::Asym { d, z } => {
                let df = d.to_f32();
                if df == 0.0 {
                    return 0;
                }
                ((x / df).round() + z as f32).clamp(0.0, 15.0) as u8
            }
            Grid::Q4_0 { d } => ((x * inverse(d) + 8.5) as i32).clamp(0, 15) as u8,
            Grid::Q4_1 { d, m } => (((x - m) * inverse(d) + 0.5) as i32).clamp(0, 15) as u8,
        }
    }

    /// The value of code `q`, as the stored (f16) parameters give it.
    pub fn value(&self, q: u8) -> f32 {
        let q = q as f32;
        match *self {
            Grid::Sym { d } => (q - 8.0) * d.to_f32(),
            Grid::Asym { d, z } => (q - z as f32) * d.to_f32(),
            Grid::Q4_0 { d } => (q - 8.0) * f16::from_f32(d).to_f32(),
            Grid::Q4_1 { d, m } => q * f16::from_f32(d).to_f32() + f16::from_f32(m).to_f32(),
        }
    }

    /// `x` on the grid: the value of its code.
    pub fn round(&self, x: f32) -> f32 {
        self.value(self.code(x))
    }

    /// The grid with its parameters in f32 and its 16 values tabulated, for coding many weights
    /// ([`Prepared::code`] and [`Prepared::value`] equal [`Grid::code`] and [`Grid::value`]).
    pub fn prepare(&self) -> Prepared {
        let (a, b) = match *self {
            Grid::Sym { d } => (inverse(d.to_f32()), 0.0),
            Grid::Asym { d, z } => (d.to_f32(), z as f32),
            Grid::Q4_0 { d } => (inverse(d), 0.0),
            Grid::Q4_1 { d, m } => (inverse(d), m),
        };
        // Grid::value's arithmetic, with the f16 parameters converted once.
        let values = match *self {
            Grid::Sym { d } => {
                let d = d.to_f32();
                std::array::from_fn(|q| (q as f32 - 8.0) * d)
            }
            Grid::Asym { d, z } => {
                let d = d.to_f32();
                std::array::from_fn(|q| (q as f32 - z as f32) * d)
            }
            Grid::Q4_0 { d } => {
                let d = f16::from_f32(d).to_f32();
                std::array::from_fn(|q| (q as f32 - 8.0) * d)
            }
            Grid::Q4_1 { d, m } => {
                let (d, m) = (f16::from_f32(d).to_f32(), f16::from_f32(m).to_f32());
                std::array::from_fn(|q| q as f32 * d + m)
            }
        };
        Prepared {
            grid: *self,
            a,
            b,
            values,
        }
    }
}

/// A [`Grid`] ready for many weights: `a` and `b` are its code's f32 parameters (`1/d` or `d`,
/// and `z` or `m`), `values` the value of each code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prepared {
    /// The grid.
    pub grid: Grid,
    a: f32,
    b: f32,
    values: [f32; 16],
}

impl Prepared {
    /// [`Grid::code`], with the same arithmetic.
    #[inline]
    pub fn code(&self, x: f32) -> u8 {
        match self.grid {
            Grid::Sym { .. } => ((x * self.a).round().clamp(-8.0, 7.0) as i32 + 8) as u8,
            Grid::Asym { .. } => {
                if self.a == 0.0 {
                    return 0;
                }
                ((x / self.a).round() + self.b).clamp(0.0, 15.0) as u8
            }
            Grid::Q4_0 { .. } => ((x * self.a + 8.5) as i32).clamp(0, 15) as u8,
            Grid::Q4_1 { .. } => (((x - self.b) * self.a + 0.5) as i32).clamp(0, 15) as u8,
        }
    }

    /// [`Grid::value`].
    #[inline]
    pub fn value(&self, q: u8) -> f32 {
        self.values[q as usize & 15]
    }

    /// `x` on the grid.
    #[inline]
    pub fn round(&self, x: f32) -> f32 {
        self.value(self.code(x))
    }
}

/// Packs `grids` (`rows · padded_cols / group`, row by row) and `codes` (`rows · padded_cols`,
/// one per weight, padding included) into `format`'s [`QuantizedTensor`].
pub fn assemble(
    format: QuantFormat,
    rows: usize,
    cols: usize,
    grids: &[Grid],
    codes: &[u8],
) -> crate::Result<QuantizedTensor> {
    let (g, pc) = (format.group(), padded_cols(format, cols));
    if !supports(format) {
        return Err(unsupported(format, "assembling grids"));
    }
    if grids.len() != rows * pc / g || codes.len() != rows * pc {
        return Err(ModelError::Shape {
            what: "grids and codes to assemble",
            expected: format!("{} grids and {} codes", rows * pc / g, rows * pc),
            got: format!("{} grids and {} codes", grids.len(), codes.len()),
        });
    }
    let mismatch = |i: usize, grid: &Grid| {
        ModelError::InvalidConfig(format!("grid {i} ({grid:?}) is not a grid of {format}"))
    };
    let nibbles = |c: &[u8]| -> Vec<u8> { c.chunks(2).map(|p| p[0] | (p[1] << 4)).collect() };
    match format {
        QuantFormat::Int4 { asym, .. } => {
            let mut scale = Vec::with_capacity(grids.len());
            let mut zero = Vec::with_capacity(if asym { grids.len() } else { 0 });
            for (i, grid) in grids.iter().enumerate() {
                match (*grid, asym) {
                    (Grid::Sym { d }, false) => scale.push(d),
                    (Grid::Asym { d, z }, true) => {
                        scale.push(d);
                        zero.push(z);
                    }
                    _ => return Err(mismatch(i, grid)),
                }
            }
            Ok(QuantizedTensor {
                format,
                rows,
                cols,
                codes: nibbles(codes),
                scales: Scales::Group {
                    scale,
                    zero: asym.then_some(zero),
                },
            })
        }
        _ => {
            let size = format.ggml_block().expect("a block format");
            let mut bytes = Vec::with_capacity(grids.len() * size);
            for (i, (grid, c)) in grids.iter().zip(codes.chunks(32)).enumerate() {
                match *grid {
                    Grid::Q4_0 { d } if format == QuantFormat::Q4_0 => {
                        bytes.extend(f16::from_f32(d).to_le_bytes());
                    }
                    Grid::Q4_1 { d, m } if format == QuantFormat::Q4_1 => {
                        bytes.extend(f16::from_f32(d).to_le_bytes());
                        bytes.extend(f16::from_f32(m).to_le_bytes());
                    }
                    _ => return Err(mismatch(i, grid)),
                }
                bytes.extend((0..16).map(|j| c[j] | (c[16 + j] << 4)));
            }
            Ok(QuantizedTensor {
                format,
                rows,
                cols,
                codes: bytes,
                scales: Scales::None,
            })
        }
    }
}

/// Round-to-nearest through the grids: `QuantizedTensor::quantize`'s result for the 4-bit group
/// formats, built from [`Grid::rtn`] and [`assemble`] (`w` is `[rows, cols]` row-major).
pub fn rtn(
    format: QuantFormat,
    w: &[f32],
    rows: usize,
    cols: usize,
) -> crate::Result<QuantizedTensor> {
    if !supports(format) {
        return Err(unsupported(format, "round-to-nearest through grids"));
    }
    if w.len() != rows * cols {
        return Err(ModelError::Shape {
            what: "weights to quantize",
            expected: format!("{rows}·{cols} values"),
            got: format!("{} values", w.len()),
        });
    }
    let (g, pc) = (format.group(), padded_cols(format, cols));
    let mut grids = Vec::with_capacity(rows * pc / g);
    let mut codes = Vec::with_capacity(rows * pc);
    let mut row = vec![0f32; pc];
    for r in 0..rows {
        row[..cols].copy_from_slice(&w[r * cols..(r + 1) * cols]);
        for group in row.chunks(g) {
            let grid = Grid::rtn(format, group).expect("a group format");
            grids.push(grid);
            let p = grid.prepare();
            codes.extend(group.iter().map(|&x| p.code(x)));
        }
    }
    assemble(format, rows, cols, &grids, &codes)
}
