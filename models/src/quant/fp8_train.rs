//! FP8 mixed-precision training, simulated on any backend, after DeepSeek-V3 §3.3 ("FP8
//! Training"): the inputs of every projection's matrix products are rounded to FP8 with
//! fine-grained scales (1×128 tiles of activations, 128×128 blocks of weights), while master
//! weights, optimizer state and the products' accumulation stay FP32.
//!
//! Rounding is the quantization code's own: a tile's codes and scale are what
//! [`QuantizedTensor::quantize`](super::QuantizedTensor::quantize) gives for FP8 with one scale
//! per row (a 1×128 tile) or per tensor (a 128×128 block): scale = max |x| / max_fp8 (1 for an
//! all-zero tile), code = [`Fp8Kind::encode`]`(x / scale)` (nearest, ties to even, saturating),
//! value = [`Fp8Kind::decode`]`(code) · scale`. The round trip runs on the host (tensor data is
//! read back, rounded and written again), so it is exact on every backend and slow on a GPU.
//!
//! The projection ([`crate::proj::Proj::forward`] with [`Fp8Training`] set) computes
//! `y = Q_a(x) · Q_w(W)` where `Q_a`, `Q_w` are straight-through roundings
//! ([`crate::kernels::AttentionBackend::fp8_straight_through`]): autodiff saves the rounded
//! inputs, so Fprop, Dgrad (`dX = dY · Q_w(W)ᵀ`) and Wgrad (`dW = Q_a(x)ᵀ · dY`) all multiply FP8
//! values, as in the paper. With a gradient format set, `dY` itself is rounded per 1×128 tile
//! (along the output width) before both backward products.
//!
//! Deviations from the paper: no FP8 GEMM (the products multiply the rounded values with FP32
//! accumulation throughout, where the paper's tensor cores accumulate in limited precision and
//! promote to FP32 every 128 elements); Wgrad reuses the forward's 1×128 activation
//! tiles (the paper re-tiles the transposed activations 128×1); scales are any f32 (the paper
//! also uses unrounded scales; it rounds them to powers of two only for the activations after
//! attention); embeddings, norms, attention and the head stay FP32, as the paper keeps them in
//! BF16 or FP32.

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::format::Fp8Kind;
use super::tensor::{absmax, fp8_scale};
use crate::ModelError;

/// Edge of the fine-grained scaling tiles (DeepSeek-V3 §3.3.2): 1×128 for activations and
/// gradients, 128×128 for weights.
pub const TILE: usize = 128;

/// An FP8 format and a tile shape: one scale per `rows × cols` tile of a row-major matrix
/// (partial tiles at the right and bottom edges).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fp8Tiles {
    kind: Fp8Kind,
    rows: usize,
    cols: usize,
}

impl Fp8Tiles {
    /// `rows × cols` tiles of `kind`; both sides at least 1.
    pub fn new(kind: Fp8Kind, rows: usize, cols: usize) -> crate::Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(ModelError::InvalidConfig(format!(
                "FP8 tiles must be at least 1×1, got {rows}×{cols}"
            )));
        }
        Ok(Self { kind, rows, cols })
    }

    /// 1×[`TILE`] tiles along the row (activations, gradients).
    pub fn row_tiles(kind: Fp8Kind) -> Self {
        Self {
            kind,
            rows: 1,
            cols: TILE,
        }
    }

    /// [`TILE`]×[`TILE`] blocks (weights).
    pub fn blocks(kind: Fp8Kind) -> Self {
        Self {
            kind,
            rows: TILE,
            cols: TILE,
        }
    }

    /// The format.
    pub fn kind(&self) -> Fp8Kind {
        self.kind
    }

    /// Tile height and width.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

/// Simulated FP8 training of the projections: activations and weights in E4M3 (1×128 and
/// 128×128 tiles), output gradients in `grad` (1×128 tiles) or FP32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fp8Training {
    /// Format of the output gradients `dY` fed to Dgrad and Wgrad; `None` keeps them FP32.
    pub grad: Option<Fp8Kind>,
}

impl Fp8Training {
    /// Format of the forward inputs (activations and weights): E4M3, as DeepSeek-V3.
    pub const FORWARD: Fp8Kind = Fp8Kind::E4M3;

    /// Tiles of the activations `x`.
    pub fn activation_tiles(&self) -> Fp8Tiles {
        Fp8Tiles::row_tiles(Self::FORWARD)
    }

    /// Blocks of the weights `W`.
    pub fn weight_tiles(&self) -> Fp8Tiles {
        Fp8Tiles::blocks(Self::FORWARD)
    }

    /// Tiles of the output gradients, when rounded.
    pub fn grad_tiles(&self) -> Option<Fp8Tiles> {
        self.grad.map(Fp8Tiles::row_tiles)
    }

    /// The precision as written on cards and records, e.g.
    /// `fp8-e4m3 (1x128 act, 128x128 weight tiles), grads e5m2`.
    pub fn name(&self) -> String {
        let grad = match self.grad {
            Some(k) => fp8_kind_name(k),
            None => "fp32",
        };
        format!("fp8-e4m3 (1x{TILE} act, {TILE}x{TILE} weight tiles), grads {grad}")
    }
}

/// `e4m3` or `e5m2`.
pub fn fp8_kind_name(kind: Fp8Kind) -> &'static str {
    match kind {
        Fp8Kind::E4M3 => "e4m3",
        Fp8Kind::E5M2 => "e5m2",
    }
}

/// Parses `e4m3` or `e5m2`.
pub fn parse_fp8_kind(s: &str) -> crate::Result<Fp8Kind> {
    match s {
        "e4m3" => Ok(Fp8Kind::E4M3),
        "e5m2" => Ok(Fp8Kind::E5M2),
        other => Err(ModelError::InvalidConfig(format!(
            "unknown FP8 format `{other}`; known: e4m3, e5m2"
        ))),
    }
}

fn check_len(len: usize, rows: usize, cols: usize) -> crate::Result<()> {
    if rows.checked_mul(cols) != Some(len) {
        return Err(ModelError::Shape {
            what: "FP8 tiles input",
            expected: format!("{rows}×{cols} values"),
            got: format!("{len}"),
        });
    }
    Ok(())
}

/// Calls `f(tile index, row range, col range)` for each tile, row-major over the tile grid.
fn for_each_tile(
    rows: usize,
    cols: usize,
    t: Fp8Tiles,
    mut f: impl FnMut(usize, std::ops::Range<usize>, std::ops::Range<usize>),
) {
    let (tr, tc) = (rows.div_ceil(t.rows), cols.div_ceil(t.cols));
    for i in 0..tr {
        for j in 0..tc {
            let r = i * t.rows..((i + 1) * t.rows).min(rows);
            let c = j * t.cols..((j + 1) * t.cols).min(cols);
            f(i * tc + j, r, c);
        }
    }
}

fn tile_scale(
    x: &[f32],
    cols: usize,
    t: Fp8Tiles,
    r: &std::ops::Range<usize>,
    c: &std::ops::Range<usize>,
) -> f32 {
    let m = r
        .clone()
        .map(|i| absmax(&x[i * cols + c.start..i * cols + c.end]))
        .fold(0f32, f32::max);
    fp8_scale(t.kind, m)
}

/// FP8 codes and scales of the row-major `[rows, cols]` matrix `x`: codes in `x`'s order, one
/// scale per tile, row-major over the grid of `rows.div_ceil(h) × cols.div_ceil(w)` tiles.
pub fn quantize_tiles(
    x: &[f32],
    rows: usize,
    cols: usize,
    tiles: Fp8Tiles,
) -> crate::Result<(Vec<u8>, Vec<f32>)> {
    check_len(x.len(), rows, cols)?;
    let mut codes = vec![0u8; x.len()];
    let mut scales = Vec::new();
    for_each_tile(rows, cols, tiles, |_, r, c| {
        let s = tile_scale(x, cols, tiles, &r, &c);
        for i in r {
            for k in c.clone() {
                codes[i * cols + k] = tiles.kind.encode(x[i * cols + k] / s);
            }
        }
        scales.push(s);
    });
    Ok((codes, scales))
}

/// Rounds the row-major `[rows, cols]` matrix `x` in place to its FP8 value in `tiles`:
/// `decode(encode(x / s)) · s` per tile of scale `s` (what [`quantize_tiles`] then decoding
/// gives, without storing the codes).
pub fn fake_quant_slice(
    x: &mut [f32],
    rows: usize,
    cols: usize,
    tiles: Fp8Tiles,
) -> crate::Result<()> {
    check_len(x.len(), rows, cols)?;
    let kind = tiles.kind;
    let lut: [f32; 256] = std::array::from_fn(|c| kind.decode(c as u8));
    for_each_tile(rows, cols, tiles, |_, r, c| {
        let s = tile_scale(x, cols, tiles, &r, &c);
        for i in r {
            for v in &mut x[i * cols + c.start..i * cols + c.end] {
                *v = lut[kind.encode(*v / s) as usize] * s;
            }
        }
    });
    Ok(())
}

/// `x` rounded to its FP8 value in `tiles` (a host round trip: read back, round, upload).
///
/// # Shapes
/// - `x`: `[m, n]` → `[m, n]`
pub fn fake_quant<B: Backend>(x: Tensor<B, 2>, tiles: Fp8Tiles) -> Tensor<B, 2> {
    let device = x.device();
    let [m, n] = x.dims();
    let mut v = x
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("converted to f32");
    fake_quant_slice(&mut v, m, n, tiles).expect("the data has the tensor's shape");
    Tensor::from_data(TensorData::new(v, [m, n]), &device)
}
