//! llama.cpp's K-quant super-blocks (ggml-quants.c, `block_q4_K`, `block_q5_K` and
//! `block_q6_K`): 256 weights a block, in sub-blocks with their own scales; and the 32-weight
//! Q5_0 block. Read from GGUF files and produced by [`super::QuantizedTensor::quantize`] with
//! quantizers that follow ggml's reference ones (`quantize_row_q{4,5,6}_K_ref`,
//! `quantize_row_q5_0_ref`; no importance matrix).
//!
//! | type | bytes | layout | weight |
//! |---|---|---|---|
//! | Q4_K | 144 | f16 `d`, f16 `dmin`, 12 B of 6-bit scales and mins, 128 B of nibbles | `d·sc_j·q − dmin·m_j` per sub-block `j` of 32 |
//! | Q5_K | 176 | as Q4_K, then 32 B of fifth bits, then 128 B of nibbles | `d·sc_j·q − dmin·m_j`, `q` in 0..=31 |
//! | Q6_K | 210 | 128 B low nibbles, 64 B high 2 bits, 16 × i8 scales, f16 `d` | `d·sc_i·(q − 32)` per 16 |
//! | Q5_0 | 22 | f16 `d`, 4 B of fifth bits (LE u32), 16 B of nibbles | `d·(q − 16)` |
//!
//! In Q4_K and Q5_K the 128 nibble bytes are four runs of 32: run `r`'s low nibbles are
//! sub-block `2r`, its high nibbles sub-block `2r + 1`; in Q5_K, bit `j` of fifth-bit byte `l`
//! is the fifth bit of weight `l` of sub-block `j`. In Q5_0, nibble byte `j` holds weights `j`
//! (low) and `j + 16` (high), and bit `i` of the u32 is weight `i`'s fifth bit.
//!
//! The quantizers search, per sub-block, the scale (and for Q4_K/Q5_K the minimum) that
//! minimizes a weighted squared error over a small grid of candidate scales, then quantize the
//! sub-block scales themselves (6 bits against the largest for Q4_K/Q5_K, i8 for Q6_K) and
//! recompute the codes against the quantized scales, as ggml does. Rounding is to nearest,
//! ties to even (ggml's `nearest_int`).

use half::f16;

/// Weights per super-block.
pub const QK_K: usize = 256;
/// Bytes of a Q4_K block.
pub const Q4_K_BYTES: usize = 144;
/// Bytes of a Q5_K block.
pub const Q5_K_BYTES: usize = 176;
/// Bytes of a Q6_K block.
pub const Q6_K_BYTES: usize = 210;
/// Bytes of a Q5_0 block (32 weights).
pub const Q5_0_BYTES: usize = 22;

/// Below this largest magnitude a group counts as all zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

fn half(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Nearest integer, ties to even (ggml's `nearest_int`, exact for `|x| < 2^22`).
fn nearest(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// The `j`-th 6-bit scale and min of a Q4_K block's 12 packed bytes (ggml's
/// `get_scale_min_k4`).
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// A Q4_K block's sub-block scales: `(d·sc_j, dmin·m_j)` for `j` in 0..8.
pub fn q4_k_scales(b: &[u8]) -> [(f32, f32); 8] {
    let (d, dmin) = (half(b), half(&b[2..]));
    std::array::from_fn(|j| {
        let (sc, m) = scale_min_k4(j, &b[4..16]);
        (d * sc as f32, dmin * m as f32)
    })
}

/// One Q4_K block (144 bytes) into 256 weights.
pub fn dequantize_q4_k(b: &[u8], out: &mut [f32]) {
    let s = q4_k_scales(b);
    for (run, (q, o)) in b[16..144]
        .chunks_exact(32)
        .zip(out[..QK_K].chunks_exact_mut(64))
        .enumerate()
    {
        let ((d1, m1), (d2, m2)) = (s[2 * run], s[2 * run + 1]);
        for (j, &x) in q.iter().enumerate() {
            o[j] = d1 * (x & 0x0F) as f32 - m1;
            o[32 + j] = d2 * (x >> 4) as f32 - m2;
        }
    }
}

/// One Q6_K block (210 bytes) into 256 weights.
pub fn dequantize_q6_k(b: &[u8], out: &mut [f32]) {
    let d = half(&b[208..]);
    for part in 0..2 {
        let ql = &b[64 * part..64 * part + 64];
        let qh = &b[128 + 32 * part..128 + 32 * part + 32];
        let sc = &b[192 + 8 * part..192 + 8 * part + 8];
        let y = &mut out[128 * part..128 * part + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * (sc[is + k] as i8) as f32;
            y[l] = s(0) * q1 as f32;
            y[l + 32] = s(2) * q2 as f32;
            y[l + 64] = s(4) * q3 as f32;
            y[l + 96] = s(6) * q4 as f32;
        }
    }
}

/// One Q5_K block (176 bytes) into 256 weights.
pub fn dequantize_q5_k(b: &[u8], out: &mut [f32]) {
    let s = q4_k_scales(b);
    let qh = &b[16..48];
    for (run, (q, o)) in b[48..176]
        .chunks_exact(32)
        .zip(out[..QK_K].chunks_exact_mut(64))
        .enumerate()
    {
        let ((d1, m1), (d2, m2)) = (s[2 * run], s[2 * run + 1]);
        for (j, &x) in q.iter().enumerate() {
            let h1 = ((qh[j] >> (2 * run)) & 1) << 4;
            let h2 = ((qh[j] >> (2 * run + 1)) & 1) << 4;
            o[j] = d1 * ((x & 0x0F) | h1) as f32 - m1;
            o[32 + j] = d2 * ((x >> 4) | h2) as f32 - m2;
        }
    }
}

/// One Q5_0 block (22 bytes) into 32 weights.
pub fn dequantize_q5_0(b: &[u8], out: &mut [f32]) {
    let d = half(b);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &x) in b[6..22].iter().enumerate() {
        let h0 = ((qh >> j) & 1) << 4;
        let h1 = ((qh >> (j + 16)) & 1) << 4;
        out[j] = (((x & 0x0F) as u32 | h0) as i32 - 16) as f32 * d;
        out[j + 16] = (((x >> 4) as u32 | h1) as i32 - 16) as f32 * d;
    }
}

/// Weighted least-squares fit of `x ≈ scale·l − min` with `l` in `0..=nmax` (ggml's
/// `make_qkx2_quants`): starts from the range `[min(x, 0), max(x)]`, then tries `nstep + 1`
/// candidate inverse scales `(nmax + rmin + rdelta·i) / range`, each with the closed-form best
/// scale and minimum for its codes, and keeps the one of least weighted squared error. Writes
/// the codes to `l`; returns `(scale, min)` with `min ≥ 0` subtracted.
fn fit_scale_min(
    x: &[f32],
    w: &[f32],
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: usize,
    l: &mut [u8],
) -> (f32, f32) {
    let n = x.len();
    let (mut lo, mut hi) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = w[0] * x[0];
    for i in 1..n {
        lo = lo.min(x[i]);
        hi = hi.max(x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if lo > 0.0 {
        lo = 0.0;
    }
    if hi == lo {
        l[..n].fill(0);
        return (0.0, -lo);
    }
    let code = |iscale: f32, v: f32, lo: f32| nearest(iscale * (v - lo)).clamp(0, nmax);
    let mut iscale = nmax as f32 / (hi - lo);
    let mut scale = 1.0 / iscale;
    let mut best = 0f32;
    for i in 0..n {
        l[i] = code(iscale, x[i], lo) as u8;
        let diff = scale * l[i] as f32 + lo - x[i];
        best += w[i] * diff * diff;
    }
    let mut min = lo;
    let mut trial = [0u8; 32];
    for step in 0..=nstep {
        iscale = (rmin + rdelta * step as f32 + nmax as f32) / (hi - lo);
        let (mut sl, mut sl2, mut sxl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let q = code(iscale, x[i], lo);
            trial[i] = q as u8;
            let q = q as f32;
            sl += w[i] * q;
            sl2 += w[i] * q * q;
            sxl += w[i] * q * x[i];
        }
        let det = sum_w * sl2 - sl * sl;
        if det > 0.0 {
            let mut s = (sum_w * sxl - sum_x * sl) / det;
            let mut m = (sl2 * sum_x - sl * sxl) / det;
            if m > 0.0 {
                m = 0.0;
                s = sxl / sl2;
            }
            let mut err = 0f32;
            for i in 0..n {
                let diff = s * trial[i] as f32 + m - x[i];
                err += w[i] * diff * diff;
            }
            if err < best {
                l[..n].copy_from_slice(&trial[..n]);
                best = err;
                scale = s;
                min = m;
            }
        }
    }
    (scale, -min)
}

/// Symmetric fit `x ≈ scale·l` with `l` in `−nmax..nmax` weighted by `x²` (ggml's
/// `make_qx_quants` with `rmse_type = 1`): the scale that maps the largest-magnitude weight
/// (with its sign) to `−nmax`, and 18 neighbours `−(nmax ± 0.1·i)/max`, each refit by least
/// squares; keeps the best. Writes `l + nmax` to `l`; returns the scale (of either sign).
fn fit_scale_sym(x: &[f32], nmax: i32, l: &mut [u8]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..x.len()].fill(0);
        return 0.0;
    }
    let fit = |iscale: f32| {
        let (mut slx, mut sl2) = (0f32, 0f32);
        for &v in x {
            let q = nearest(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            slx += w * v * q;
            sl2 += w * q * q;
        }
        (slx, sl2)
    };
    let write = |iscale: f32, l: &mut [u8]| {
        for (li, &v) in l.iter_mut().zip(x) {
            *li = (nearest(iscale * v).clamp(-nmax, nmax - 1) + nmax) as u8;
        }
    };
    let iscale = -(nmax as f32) / max;
    write(iscale, l);
    let (slx, sl2) = fit(iscale);
    let mut scale = if sl2 != 0.0 { slx / sl2 } else { 0.0 };
    let mut best = scale * slx;
    for step in (-9..=9).filter(|&s| s != 0) {
        let iscale = -(nmax as f32 + 0.1 * step as f32) / max;
        let (slx, sl2) = fit(iscale);
        if sl2 > 0.0 && slx * slx > best * sl2 {
            write(iscale, l);
            scale = slx / sl2;
            best = scale * slx;
        }
    }
    scale
}

/// The 12 bytes of eight 6-bit scales and mins that [`scale_min_k4`] reads back.
pub fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..8 {
        let (s, mm) = (sc[j] & 63, m[j] & 63);
        if j < 4 {
            q[j] = s;
            q[j + 4] = mm;
        } else {
            q[j + 4] = (s & 0x0F) | ((mm & 0x0F) << 4);
            q[j - 4] |= (s >> 4) << 6;
            q[j] |= (mm >> 4) << 6;
        }
    }
    q
}

/// Q4_K and Q5_K's common part for one super-block with codes of `0..=nmax` (15 or 31): per
/// sub-block of 32 a weighted (`w = rms(x) + |x|`) scale-and-min fit, the eight scales and
/// mins quantized to 6 bits against the largest of each, then every code recomputed against
/// the quantized values. Returns the 16 header bytes (`d`, `dmin`, packed scales) and the
/// 256 codes.
fn kx_block(x: &[f32; QK_K], nmax: i32, rmin: f32, nstep: usize) -> ([u8; 16], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    let mut weights = [0f32; 32];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let rms = (xs.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = rms + v.abs();
        }
        let (s, m) = fit_scale_min(xs, &weights, nmax, rmin, 0.1, nstep, &mut l[32 * j..]);
        scales[j] = s;
        mins[j] = m;
        max_scale = max_scale.max(s);
        max_min = max_min.max(m);
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let ls: [u8; 8] = std::array::from_fn(|j| nearest(inv_scale * scales[j]).clamp(0, 63) as u8);
    let lm: [u8; 8] = std::array::from_fn(|j| nearest(inv_min * mins[j]).clamp(0, 63) as u8);
    let mut head = [0u8; 16];
    head[..2].copy_from_slice(&f16::from_f32(max_scale / 63.0).to_le_bytes());
    head[2..4].copy_from_slice(&f16::from_f32(max_min / 63.0).to_le_bytes());
    head[4..].copy_from_slice(&pack_scale_min_k4(&ls, &lm));
    let (d, dmin) = (half(&head), half(&head[2..]));
    for j in 0..8 {
        let dj = d * ls[j] as f32;
        if dj == 0.0 {
            continue;
        }
        let mj = dmin * lm[j] as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest((x[i] + mj) / dj).clamp(0, nmax) as u8;
        }
    }
    (head, l)
}

/// 256 weights into one Q4_K block (ggml's `quantize_row_q4_K_ref`: 21 candidate scales from
/// `(15 − 1)/range` in steps of 0.1).
pub fn quantize_q4_k(x: &[f32; QK_K]) -> [u8; Q4_K_BYTES] {
    let (head, l) = kx_block(x, 15, -1.0, 20);
    let mut out = [0u8; Q4_K_BYTES];
    out[..16].copy_from_slice(&head);
    for r in 0..4 {
        for i in 0..32 {
            out[16 + 32 * r + i] = l[64 * r + i] | (l[64 * r + 32 + i] << 4);
        }
    }
    out
}

/// 256 weights into one Q5_K block (ggml's `quantize_row_q5_K_ref`: 16 candidate scales from
/// `(31 − 0.5)/range` in steps of 0.1).
pub fn quantize_q5_k(x: &[f32; QK_K]) -> [u8; Q5_K_BYTES] {
    let (head, l) = kx_block(x, 31, -0.5, 15);
    let mut out = [0u8; Q5_K_BYTES];
    out[..16].copy_from_slice(&head);
    for r in 0..4 {
        for i in 0..32 {
            let (a, b) = (l[64 * r + i], l[64 * r + 32 + i]);
            out[16 + i] |= ((a >> 4) << (2 * r)) | ((b >> 4) << (2 * r + 1));
            out[48 + 32 * r + i] = (a & 0x0F) | ((b & 0x0F) << 4);
        }
    }
    out
}

/// 256 weights into one Q6_K block (ggml's `quantize_row_q6_K_ref`): a symmetric fit per 16
/// (codes −32..=31), the 16 scales quantized to i8 against the one of largest magnitude
/// (which becomes −128), codes recomputed against them. A block whose scales are all below
/// ggml's epsilon is all zero bytes.
pub fn quantize_q6_k(x: &[f32; QK_K]) -> [u8; Q6_K_BYTES] {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0f32, 0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        *s = fit_scale_sym(&x[16 * ib..16 * ib + 16], 32, &mut l[16 * ib..16 * ib + 16]);
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = *s;
        }
    }
    let mut out = [0u8; Q6_K_BYTES];
    if max_abs < GROUP_MAX_EPS {
        return out;
    }
    let iscale = -128.0 / max_scale;
    out[208..].copy_from_slice(&f16::from_f32(1.0 / iscale).to_le_bytes());
    let d = half(&out[208..]);
    for (ib, s) in scales.iter().enumerate() {
        let q = nearest(iscale * s).clamp(-128, 127) as i8;
        out[192 + ib] = q as u8;
        let dj = d * q as f32;
        if dj == 0.0 {
            continue;
        }
        for i in 16 * ib..16 * ib + 16 {
            l[i] = (nearest(x[i] / dj).clamp(-32, 31) + 32) as u8;
        }
    }
    for h in 0..2 {
        let (j, ql, qh) = (128 * h, 64 * h, 128 + 32 * h);
        for i in 0..32 {
            let q = [l[j + i], l[j + i + 32], l[j + i + 64], l[j + i + 96]];
            out[ql + i] = (q[0] & 0x0F) | ((q[2] & 0x0F) << 4);
            out[ql + 32 + i] = (q[1] & 0x0F) | ((q[3] & 0x0F) << 4);
            out[qh + i] =
                (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    out
}

/// 32 weights into one Q5_0 block (ggml's `quantize_row_q5_0_ref`): `d = m / −16` where `m`
/// is the weight of largest magnitude with its sign, codes `min(31, trunc(w/d + 16.5))`.
pub fn quantize_q5_0(x: &[f32; 32]) -> [u8; Q5_0_BYTES] {
    let (mut amax, mut m) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            m = v;
        }
    }
    let d = m / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; Q5_0_BYTES];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..16 {
        let q0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
        let q1 = ((x[16 + j] * id + 16.5) as i8).min(31) as u8;
        out[6 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= ((q0 as u32 >> 4) & 1) << j;
        qh |= ((q1 as u32 >> 4) & 1) << (j + 16);
    }
    out[2..6].copy_from_slice(&qh.to_le_bytes());
    out
}
