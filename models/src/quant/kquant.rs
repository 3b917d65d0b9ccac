//! llama.cpp's K-quant super-blocks (ggml-quants.c, `block_q4_K` and `block_q6_K`): 256 weights
//! a block, in sub-blocks with their own scales. They are read from GGUF files, not produced by
//! [`super::QuantizedTensor::quantize`].
//!
//! | type | bytes | layout | weight |
//! |---|---|---|---|
//! | Q4_K | 144 | f16 `d`, f16 `dmin`, 12 B of 6-bit scales and mins, 128 B of nibbles | `d·sc_j·q − dmin·m_j` per sub-block `j` of 32 |
//! | Q6_K | 210 | 128 B low nibbles, 64 B high 2 bits, 16 × i8 scales, f16 `d` | `d·sc_i·(q − 32)` per 16 |
//!
//! In Q4_K the 128 nibble bytes are four runs of 32: run `r`'s low nibbles are sub-block `2r`,
//! its high nibbles sub-block `2r + 1`.

use half::f16;

/// Weights per super-block.
pub const QK_K: usize = 256;
/// Bytes of a Q4_K block.
pub const Q4_K_BYTES: usize = 144;
/// Bytes of a Q6_K block.
pub const Q6_K_BYTES: usize = 210;

fn half(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
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
