//! The dense f64 linear algebra GPTQ needs, on row-major `n × n` matrices: a blocked Cholesky
//! factorization and a blocked inverse of a lower-triangular matrix, whose O(n³) parts are
//! matrix products through the `gemm` crate (the GEMM that burn's flex backend and faer use,
//! already a dependency), and the plain loops for the small diagonal blocks.
//!
//! Hand-written rather than a new linear-algebra dependency: GPTQ needs two factorizations of
//! symmetric positive definite matrices of at most a few thousand columns, and `gemm` already
//! gives these the speed of a library on 2 cores (SmolLM2's 1536-wide MLP input factors in well
//! under a second).

use crate::ModelError;

/// Diagonal blocks handled by the plain loops.
const NB: usize = 64;

/// `a · b` (`b` transposed when `bt`): `a` is `[m, k]`, `b` is `[k, n]` (or `[n, k]`), all
/// contiguous row-major; returns `[m, n]`.
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, bt: bool) -> Vec<f64> {
    assert!(
        a.len() >= m * k && b.len() >= k * n,
        "matmul operand lengths"
    );
    let mut c = vec![0f64; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    let (b_cs, b_rs) = if bt { (k as isize, 1) } else { (1, n as isize) };
    let threads = if m * n * k >= 1 << 20 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `c` holds m·n values written at column stride 1 and row stride n; `a` holds at
    // least m·k values read at strides (1, k); `b` at least k·n read at the strides above (its
    // transpose is read at (k, 1) over n rows of k): every index lies inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
    c
}

fn not_positive(i: usize, pivot: f64) -> ModelError {
    ModelError::InvalidConfig(format!(
        "matrix is not positive definite: pivot {i} is {pivot} (raise the damping)"
    ))
}

/// The lower Cholesky factor `L` of a symmetric positive definite `a` (`a = L·Lᵀ`), in place:
/// the lower triangle of `a` becomes `L`, the upper triangle zeros. Refuses a non-positive or
/// non-finite pivot.
pub fn cholesky_lower(a: &mut [f64], n: usize) -> crate::Result<()> {
    if a.len() != n * n {
        return Err(ModelError::Shape {
            what: "matrix to factor",
            expected: format!("{n}·{n} values"),
            got: format!("{} values", a.len()),
        });
    }
    for k0 in (0..n).step_by(NB) {
        let k1 = (k0 + NB).min(n);
        // The diagonal block, by the plain loop (rows k0..k1 already hold their updates).
        for i in k0..k1 {
            for j in k0..=i {
                let mut s = a[i * n + j];
                for p in k0..j {
                    s -= a[i * n + p] * a[j * n + p];
                }
                if i == j {
                    if !(s > 0.0 && s.is_finite()) {
                        return Err(not_positive(i, s));
                    }
                    a[i * n + i] = s.sqrt();
                } else {
                    a[i * n + j] = s / a[j * n + j];
                }
            }
        }
        // The panel below it: L[i, k0..k1] = A[i, k0..k1] · L_kk⁻ᵀ.
        for i in k1..n {
            for j in k0..k1 {
                let mut s = a[i * n + j];
                for p in k0..j {
                    s -= a[i * n + p] * a[j * n + p];
                }
                a[i * n + j] = s / a[j * n + j];
            }
        }
        // The trailing matrix: A[k1.., k1..] −= P·Pᵀ with P = L[k1.., k0..k1].
        let (m, b) = (n - k1, k1 - k0);
        if m > 0 {
            let mut p = Vec::with_capacity(m * b);
            for i in k1..n {
                p.extend_from_slice(&a[i * n + k0..i * n + k1]);
            }
            let u = matmul(&p, &p, m, b, m, true);
            for i in 0..m {
                let row = &mut a[(k1 + i) * n + k1..(k1 + i) * n + k1 + i + 1];
                for (x, y) in row.iter_mut().zip(&u[i * m..i * m + i + 1]) {
                    *x -= y;
                }
            }
        }
    }
    for i in 0..n {
        a[i * n + i + 1..(i + 1) * n]
            .iter_mut()
            .for_each(|x| *x = 0.0);
    }
    Ok(())
}

/// The inverse of a lower-triangular `l` with a nonzero diagonal (lower-triangular too).
pub fn inverse_lower(l: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(l.len(), n * n, "inverse_lower: n·n values");
    let mut x = vec![0f64; n * n];
    for i0 in (0..n).step_by(NB) {
        let i1 = (i0 + NB).min(n);
        let b = i1 - i0;
        // X[I, I] = L_II⁻¹ by forward substitution, column by column.
        for c in i0..i1 {
            for i in c..i1 {
                let mut s = if i == c { 1.0 } else { 0.0 };
                for p in c..i {
                    s -= l[i * n + p] * x[p * n + c];
                }
                x[i * n + c] = s / l[i * n + i];
            }
        }
        if i0 == 0 {
            continue;
        }
        // X[I, ..i0] = −L_II⁻¹ · (L[I, ..i0] · X[..i0, ..i0]).
        let mut li = Vec::with_capacity(b * i0);
        for i in i0..i1 {
            li.extend_from_slice(&l[i * n..i * n + i0]);
        }
        let mut xp = Vec::with_capacity(i0 * i0);
        for i in 0..i0 {
            xp.extend_from_slice(&x[i * n..i * n + i0]);
        }
        let t = matmul(&li, &xp, b, i0, i0, false);
        let mut xii = Vec::with_capacity(b * b);
        for i in i0..i1 {
            xii.extend_from_slice(&x[i * n + i0..i * n + i1]);
        }
        let s = matmul(&xii, &t, b, b, i0, false);
        for (r, i) in (i0..i1).enumerate() {
            for (dst, v) in x[i * n..i * n + i0]
                .iter_mut()
                .zip(&s[r * i0..(r + 1) * i0])
            {
                *dst = -v;
            }
        }
    }
    x
}

/// The upper-triangular `R` with `a⁻¹ = Rᵀ·R` (what `torch.linalg.cholesky(inverse(a),
/// upper=True)` returns, GPTQ's `Hinv`), without forming `a⁻¹`: with `J` the reversal,
/// `J·a·J = L·Lᵀ` gives `a = V·Vᵀ` with `V = J·L·J` upper, so `R = V⁻¹ = J·L⁻¹·J`.
pub fn inverse_cholesky_upper(a: &[f64], n: usize) -> crate::Result<Vec<f64>> {
    if a.len() != n * n {
        return Err(ModelError::Shape {
            what: "matrix to invert",
            expected: format!("{n}·{n} values"),
            got: format!("{} values", a.len()),
        });
    }
    let mut r: Vec<f64> = (0..n * n)
        .map(|k| a[(n - 1 - k / n) * n + (n - 1 - k % n)])
        .collect();
    cholesky_lower(&mut r, n)?;
    let li = inverse_lower(&r, n);
    Ok((0..n * n)
        .map(|k| li[(n - 1 - k / n) * n + (n - 1 - k % n)])
        .collect())
}
