//! GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization
//! for Generative Pre-trained Transformers", Algorithm 1) for one `[rows, cols]` = `[out, in]`
//! weight matrix, given `H = 2·XᵀX / N` from `N` calibration inputs `X` of the layer.
//!
//! Columns are quantized left to right; each column's rounding error, divided by the diagonal
//! of `R` (the upper Cholesky factor of `H⁻¹`, 1% of the mean diagonal added to `H` first) and
//! multiplied by `R`'s row, is subtracted from the columns not yet quantized. Columns go in
//! blocks of 128: inside a block the update is immediate, and the columns after the block get
//! the block's errors at once, as one matrix product (the paper's lazy batch update). A group's
//! grid (scale, zero point or minimum) is chosen by round-to-nearest's rule from the group's
//! weights as they are when its first column comes up, so the output is the same
//! [`QuantizedTensor`] as round-to-nearest's and every kernel applies unchanged.
//!
//! Act-order (the reference code's `--act-order`) takes columns by decreasing `H` diagonal; its
//! grids are then chosen from the original weights before any update (the reference's
//! `static_groups`), since the format's groups are contiguous in the original order.
//!
//! Where this deviates from the reference code (`gptq.py`): the grid of a group that starts
//! inside a block is chosen from the block's *updated* weights (the reference reads the matrix
//! not yet updated by the block's earlier columns), so that blocking changes nothing but speed
//! (a test checks it against a plain loop over Algorithm 1); grids are the format's own
//! (`max|w| / 7` for symmetric INT4, not the reference's `/ 7.5`), so that `H = I` gives
//! round-to-nearest exactly; columns whose inputs were always zero keep their weights (the
//! reference zeroes them); the arithmetic is f64.

use rayon::prelude::*;

use super::format::QuantFormat;
use super::grid::{self, Grid, Prepared};
use super::linalg;
use super::tensor::{padded_cols, QuantizedTensor};
use crate::ModelError;

/// GPTQ's options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptqConfig {
    /// Damping added to `H`'s diagonal, as a fraction of its mean (the paper: 0.01).
    pub damp: f64,
    /// Columns per lazy-batch block (the paper: 128; a multiple of the format's group).
    pub block: usize,
    /// Quantize columns by decreasing `H` diagonal (grids chosen from the original weights).
    pub act_order: bool,
}

impl Default for GptqConfig {
    fn default() -> Self {
        Self {
            damp: 0.01,
            block: 128,
            act_order: false,
        }
    }
}

/// `H` of GPTQ for `cols`-wide inputs: padded to `pc` columns, columns that never saw an input
/// (zero diagonal, padding included) given a diagonal of 1 so that `H` stays invertible (their
/// weights meet no error and push none), then damped by `damp` times the mean diagonal of the
/// real columns.
fn prepared_hessian(h: &[f64], cols: usize, pc: usize, damp: f64) -> Vec<f64> {
    let mut hp = vec![0f64; pc * pc];
    for i in 0..cols {
        hp[i * pc..i * pc + cols].copy_from_slice(&h[i * cols..(i + 1) * cols]);
    }
    for i in 0..pc {
        if hp[i * pc + i] == 0.0 {
            hp[i * pc + i] = 1.0;
        }
    }
    let mean = (0..cols).map(|i| hp[i * pc + i]).sum::<f64>() / cols as f64;
    for i in 0..pc {
        hp[i * pc + i] += damp * mean;
    }
    hp
}

/// Quantizes `w` (`[rows, cols]` row-major, f32) to `format` by GPTQ with `h` (`[cols, cols]`,
/// symmetric positive semidefinite: `2·XᵀX / N`). Refuses formats without group grids, wrong
/// lengths, non-finite values and a block that is not a positive multiple of the group.
pub fn gptq(
    format: QuantFormat,
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f64],
    cfg: &GptqConfig,
) -> crate::Result<QuantizedTensor> {
    if !grid::supports(format) {
        return Err(grid::unsupported(format, "GPTQ"));
    }
    if w.len() != rows * cols || h.len() != cols * cols || rows == 0 || cols == 0 {
        return Err(ModelError::Shape {
            what: "GPTQ weights and Hessian",
            expected: format!("{rows}·{cols} weights and {cols}·{cols} Hessian values"),
            got: format!("{} weights and {} Hessian values", w.len(), h.len()),
        });
    }
    let g = format.group();
    if cfg.block == 0 || !cfg.block.is_multiple_of(g) || !cfg.damp.is_finite() || cfg.damp < 0.0 {
        return Err(ModelError::InvalidConfig(format!(
            "GPTQ block {} must be a positive multiple of the group {g}, damping {} ≥ 0",
            cfg.block, cfg.damp
        )));
    }
    if let Some(i) = w.iter().position(|x| !x.is_finite()) {
        return Err(ModelError::InvalidConfig(format!(
            "weight {i} is {}; GPTQ quantizes finite weights",
            w[i]
        )));
    }
    if let Some(i) = h.iter().position(|x| !x.is_finite()) {
        return Err(ModelError::InvalidConfig(format!(
            "Hessian entry {i} is {}; it must be finite",
            h[i]
        )));
    }
    let n = padded_cols(format, cols);
    let groups = n / g;
    let hp = prepared_hessian(h, cols, n, cfg.damp);
    // Column order: act-order sorts the real columns by decreasing diagonal; padding stays last.
    let mut perm: Vec<usize> = (0..n).collect();
    if cfg.act_order {
        perm[..cols].sort_by(|&a, &b| hp[b * n + b].total_cmp(&hp[a * n + a]));
    }
    let hperm: Vec<f64> = (0..n * n)
        .map(|k| hp[perm[k / n] * n + perm[k % n]])
        .collect();
    let r = linalg::inverse_cholesky_upper(&hperm, n)?;
    // Working weights in column order, f64; the grids start as round-to-nearest's on the
    // original weights (act-order keeps them; otherwise each is chosen again when its group
    // starts).
    let mut wp = vec![0f64; rows * n];
    let mut grids = Vec::with_capacity(rows * groups);
    let mut padded = vec![0f32; n];
    for row in 0..rows {
        padded[..cols].copy_from_slice(&w[row * cols..(row + 1) * cols]);
        for (i, &c) in perm.iter().enumerate() {
            wp[row * n + i] = padded[c] as f64;
        }
        grids.extend(
            padded
                .chunks(g)
                .map(|x| Grid::rtn(format, x).expect("a group format")),
        );
    }
    let mut codes = vec![0u8; rows * n];
    let mut err = vec![0f64; rows * cfg.block];
    for i1 in (0..n).step_by(cfg.block) {
        let i2 = (i1 + cfg.block).min(n);
        let b = i2 - i1;
        // Rows are independent given R: each quantizes its block and updates it in place.
        wp.par_chunks_mut(n)
            .zip(codes.par_chunks_mut(n))
            .zip(grids.par_chunks_mut(groups))
            .zip(err.par_chunks_mut(cfg.block))
            .for_each(|(((wr, cr), gr), er)| {
                let mut group = vec![0f32; g];
                let mut cur: Option<(usize, Prepared)> = None;
                for i in i1..i2 {
                    if !cfg.act_order && i % g == 0 {
                        for (x, y) in group.iter_mut().zip(&wr[i..i + g]) {
                            *x = *y as f32;
                        }
                        gr[i / g] = Grid::rtn(format, &group).expect("a group format");
                    }
                    let k = perm[i] / g;
                    let grid = match cur {
                        Some((j, p)) if j == k => p,
                        _ => {
                            let p = gr[k].prepare();
                            cur = Some((k, p));
                            p
                        }
                    };
                    let x = wr[i];
                    let q = grid.code(x as f32);
                    cr[perm[i]] = q;
                    let e = (x - grid.value(q) as f64) / r[i * n + i];
                    er[i - i1] = e;
                    for (wj, rj) in wr[i + 1..i2].iter_mut().zip(&r[i * n + i + 1..i * n + i2]) {
                        *wj -= e * rj;
                    }
                }
            });
        // The lazy batch update: W[:, i2..] −= E · R[i1..i2, i2..].
        let rest = n - i2;
        if rest > 0 {
            let mut rb = Vec::with_capacity(b * rest);
            for i in i1..i2 {
                rb.extend_from_slice(&r[i * n + i2..(i + 1) * n]);
            }
            let e: Vec<f64> = err
                .chunks(cfg.block)
                .flat_map(|e| &e[..b])
                .copied()
                .collect();
            let u = linalg::matmul(&e, &rb, rows, b, rest, false);
            for (wr, ur) in wp.chunks_mut(n).zip(u.chunks(rest)) {
                for (x, y) in wr[i2..].iter_mut().zip(ur) {
                    *x -= y;
                }
            }
        }
    }
    grid::assemble(format, rows, cols, &grids, &codes)
}
