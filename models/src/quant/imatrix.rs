//! Importance-weighted round-to-nearest, after llama.cpp's importance matrix (`llama-imatrix`,
//! and the weighted searches of `make_qx_quants` / `make_qkx2_quants` in ggml-quants.c): the
//! grid of each group is chosen to minimise `Σ_j imp_j · (w_j − ŵ_j)²`, where `imp_j` is the
//! mean square of input channel `j` over calibration activations (`mean(x_j²)`, the diagonal
//! of `XᵀX / N`), so weights that meet large inputs are rounded more carefully.
//!
//! The search, per group: round-to-nearest's grid first; scales that map the largest magnitude
//! to `c` levels for `c` around the format's own (symmetric formats, both signs for Q4_0), or
//! ranges shrunk at either end (asymmetric formats); then up to two weighted least-squares
//! refits of the best one's scale (and minimum) to the codes it gives. The candidate with the
//! smallest weighted error wins, ties to the earlier, so the result is never worse than
//! round-to-nearest's under the importance (a test checks it) and is round-to-nearest itself
//! where the importance is zero.
//!
//! Deviations from llama.cpp: its weights are `imp_j · sqrt(σ² + w_j²)` inside its K-quant
//! searches; here they are `imp_j` alone, as the weighted output error asks; the formats are
//! infermark's 4-bit group formats, with their stored f16 parameters.

use half::f16;

use super::format::QuantFormat;
use super::grid::{self, Grid};
use super::tensor::{padded_cols, QuantizedTensor};
use crate::ModelError;

/// `Σ_j imp_j · (w_j − grid(w_j))²` over one group.
pub fn weighted_error(grid: &Grid, w: &[f32], imp: &[f32]) -> f64 {
    let grid = grid.prepare();
    w.iter()
        .zip(imp)
        .map(|(&x, &m)| {
            let e = (x - grid.round(x)) as f64;
            m as f64 * e * e
        })
        .sum()
}

fn h(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Weighted least squares of `w ≈ d·q + m` over the codes `q` (centred by `offset`): `(d, m)`,
/// or `(d, 0)` without a minimum; `None` when singular.
fn refit(grid: &Grid, w: &[f32], imp: &[f32], offset: f32, with_min: bool) -> Option<(f32, f32)> {
    let grid = grid.prepare();
    let (mut sqq, mut sq, mut s1, mut sxq, mut sx) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&x, &m) in w.iter().zip(imp) {
        let q = (grid.code(x) as f32 - offset) as f64;
        let (m, x) = (m as f64, x as f64);
        sqq += m * q * q;
        sq += m * q;
        s1 += m;
        sxq += m * x * q;
        sx += m * x;
    }
    if with_min {
        let det = sqq * s1 - sq * sq;
        if det.abs() <= 1e-30 * (sqq * s1).max(1e-300) {
            return None;
        }
        Some((
            ((sxq * s1 - sq * sx) / det) as f32,
            ((sqq * sx - sq * sxq) / det) as f32,
        ))
    } else if sqq > 0.0 {
        Some(((sxq / sqq) as f32, 0.0))
    } else {
        None
    }
}

/// The starting grids for one group besides round-to-nearest's: scales that map the largest
/// magnitude to `c` levels for `c` around the format's own (symmetric formats; both signs for
/// Q4_0), or ranges shrunk at either end (asymmetric formats).
fn candidates(format: QuantFormat, w: &[f32]) -> Vec<Grid> {
    let amax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
    let signed_max = w
        .iter()
        .fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
    let lo0 = w.iter().fold(f32::MAX, |m, &x| m.min(x));
    let hi0 = w.iter().fold(-f32::MAX, |m, &x| m.max(x));
    const SHRINK: [f32; 4] = [1.0, 0.9, 0.8, 0.7];
    let mut out = Vec::new();
    match format {
        QuantFormat::Int4 { asym: false, .. } => {
            for k in -4..=4 {
                out.push(Grid::Sym {
                    d: f16::from_f32(amax / (7.0 + 0.5 * k as f32)),
                });
            }
        }
        QuantFormat::Q4_0 => {
            for k in -4..=4 {
                let c = 0.5 * k as f32;
                out.push(Grid::Q4_0 {
                    d: h(signed_max / -(8.0 + c)),
                });
                out.push(Grid::Q4_0 {
                    d: h(signed_max / (7.0 + c)),
                });
            }
        }
        QuantFormat::Int4 { asym: true, .. } => {
            let (lo, hi) = (lo0.min(0.0), hi0.max(0.0));
            for s1 in SHRINK {
                for s2 in SHRINK {
                    let d = f16::from_f32((hi * s2 - lo * s1) / 15.0);
                    let z = if d.to_f32() == 0.0 {
                        0
                    } else {
                        (-lo * s1 / d.to_f32()).round().clamp(0.0, 15.0) as u8
                    };
                    out.push(Grid::Asym { d, z });
                }
            }
        }
        QuantFormat::Q4_1 => {
            for s1 in SHRINK {
                for s2 in SHRINK {
                    let (lo, hi) = (lo0 * s1, hi0 * s2);
                    out.push(Grid::Q4_1 {
                        d: h((hi - lo) / 15.0),
                        m: h(lo),
                    });
                }
            }
        }
        _ => {}
    }
    out
}

/// The weighted least-squares refit of `grid`'s scale (and minimum) to the codes it gives.
fn refitted(grid: &Grid, w: &[f32], imp: &[f32]) -> Option<Grid> {
    let fitted = match grid {
        Grid::Sym { .. } => refit(grid, w, imp, 8.0, false).map(|(d, _)| Grid::Sym {
            d: f16::from_f32(d.abs()),
        }),
        Grid::Q4_0 { .. } => refit(grid, w, imp, 8.0, false).map(|(d, _)| Grid::Q4_0 { d: h(d) }),
        Grid::Asym { .. } => refit(grid, w, imp, 0.0, true).and_then(|(d, m)| {
            let d = f16::from_f32(d);
            (d.to_f32() > 0.0).then(|| Grid::Asym {
                d,
                z: (-m / d.to_f32()).round().clamp(0.0, 15.0) as u8,
            })
        }),
        Grid::Q4_1 { .. } => refit(grid, w, imp, 0.0, true)
            .filter(|&(d, _)| d > 0.0)
            .map(|(d, m)| Grid::Q4_1 { d: h(d), m: h(m) }),
    };
    fitted.filter(|g| match g {
        Grid::Sym { d } | Grid::Asym { d, .. } => d.to_f32().is_finite(),
        Grid::Q4_0 { d } | Grid::Q4_1 { d, .. } => d.is_finite(),
    })
}

/// The grid of least weighted error for one group: round-to-nearest's, the starting
/// candidates, then up to two least-squares refits of the best (each kept only where it
/// lowers the error); ties keep the earlier, so round-to-nearest's wins where the importance
/// is zero.
pub fn search(format: QuantFormat, w: &[f32], imp: &[f32]) -> Grid {
    let rtn = Grid::rtn(format, w).expect("a group format");
    if imp.iter().all(|&m| m == 0.0) {
        return rtn;
    }
    let mut best = (weighted_error(&rtn, w, imp), rtn);
    for grid in candidates(format, w) {
        let e = weighted_error(&grid, w, imp);
        if e < best.0 {
            best = (e, grid);
        }
    }
    for _ in 0..2 {
        let Some(grid) = refitted(&best.1, w, imp) else {
            break;
        };
        let e = weighted_error(&grid, w, imp);
        if e >= best.0 {
            break;
        }
        best = (e, grid);
    }
    best.1
}

/// Quantizes `w` (`[rows, cols]` row-major) to `format` with each group's grid chosen by
/// [`search`] under `importance` (`cols` values, `mean(x_j²)` per input channel, ≥ 0).
pub fn imatrix(
    format: QuantFormat,
    w: &[f32],
    rows: usize,
    cols: usize,
    importance: &[f32],
) -> crate::Result<QuantizedTensor> {
    if !grid::supports(format) {
        return Err(grid::unsupported(format, "the importance-weighted search"));
    }
    if w.len() != rows * cols || importance.len() != cols || rows == 0 || cols == 0 {
        return Err(ModelError::Shape {
            what: "weights and importance",
            expected: format!("{rows}·{cols} weights and {cols} importances"),
            got: format!("{} weights and {} importances", w.len(), importance.len()),
        });
    }
    if let Some(i) = w.iter().position(|x| !x.is_finite()) {
        return Err(ModelError::InvalidConfig(format!(
            "weight {i} is {}; only finite weights can be quantized",
            w[i]
        )));
    }
    if let Some(i) = importance
        .iter()
        .position(|x| !(x.is_finite() && *x >= 0.0))
    {
        return Err(ModelError::InvalidConfig(format!(
            "importance {i} is {}; importances are finite and ≥ 0",
            importance[i]
        )));
    }
    let (g, pc) = (format.group(), padded_cols(format, cols));
    let mut imp = importance.to_vec();
    imp.resize(pc, 0.0);
    let per_row: Vec<(Vec<Grid>, Vec<u8>)> = {
        use rayon::prelude::*;
        (0..rows)
            .into_par_iter()
            .map(|r| {
                let mut row = w[r * cols..(r + 1) * cols].to_vec();
                row.resize(pc, 0.0);
                let mut grids = Vec::with_capacity(pc / g);
                let mut codes = Vec::with_capacity(pc);
                for (x, m) in row.chunks(g).zip(imp.chunks(g)) {
                    let grid = search(format, x, m);
                    let p = grid.prepare();
                    codes.extend(x.iter().map(|&v| p.code(v)));
                    grids.push(grid);
                }
                (grids, codes)
            })
            .collect()
    };
    let (mut grids, mut codes) = (Vec::new(), Vec::new());
    for (gr, c) in per_row {
        grids.extend(gr);
        codes.extend(c);
    }
    grid::assemble(format, rows, cols, &grids, &codes)
}
