//! Integer dot products on int8 activations (W4A8 / W8A8): the activation quantizer against the
//! `gguf` package byte for byte, and every kernel on every ISA path against a plain loop over
//! the formats' own definitions, written here from llama.cpp's block layouts (not through the
//! library's unpacking code).

use half::f16;
use infermark_models::quant::act::{q8_0_bytes, quantize_block, BLOCK};
use infermark_models::quant::int_dot::{matvec_int8_with, supports, IntPath};
use infermark_models::quant::matvec::matvec_with;
use infermark_models::quant::{QuantFormat, QuantizedTensor, Scales};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `gguf` 0.19.0's Q8_0 quantizer on activation-like blocks (script beside the fixture).
#[test]
fn activation_blocks_equal_the_gguf_q8_0_quantizer_byte_for_byte() {
    let text = include_str!("fixtures/q8_0_acts.txt");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (xs, want) = line.split_once(" | ").expect("x | bytes");
        let x: Vec<f32> = xs
            .split(' ')
            .map(|h| f32::from_bits(u32::from_str_radix(h, 16).unwrap()))
            .collect();
        let x: [f32; BLOCK] = x.try_into().expect("32 floats");
        let want: Vec<u8> = (0..want.len() / 2)
            .map(|i| u8::from_str_radix(&want[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(q8_0_bytes(&x).to_vec(), want, "block {x:?}");
        checked += 1;
    }
    assert_eq!(checked, 47, "fixture blocks");
}

/// Weight codes as the formats define them, decoded here by hand: per block of 32 weights,
/// the integer codes in natural weight order (unsigned nibbles or 5-bit codes, or signed
/// bytes), the scales `dw` of its two halves of 16 (equal except in Q6_K) and the offset `mw`
/// such that `w_j = dw_{j / 16} · q_j + mw`.
fn decode_blocks(w: &QuantizedTensor, r: usize) -> Vec<([i32; 32], [f64; 2], f64)> {
    let nb = w.cols.div_ceil(32);
    let mut out = Vec::new();
    let pc = w.cols.div_ceil(w.format.group()) * w.format.group();
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f64();
    for k in 0..nb {
        let mut q = [0i32; 32];
        let (dw, mw);
        match (w.format, &w.scales) {
            (QuantFormat::Int4 { group, .. }, Scales::Group { scale, zero }) => {
                let row = &w.codes[r * pc / 2..];
                for (j, qj) in q.iter_mut().enumerate() {
                    let i = 32 * k + j;
                    let b = row[i / 2];
                    *qj = if i % 2 == 0 { b & 15 } else { b >> 4 } as i32;
                }
                let g = r * (pc / group) + 32 * k / group;
                dw = [scale[g].to_f64(); 2];
                mw = -dw[0] * zero.as_ref().map_or(8.0, |z| z[g] as f64);
            }
            (f @ (QuantFormat::Q4K | QuantFormat::Q5K | QuantFormat::Q6K), _) => {
                let size = f.ggml_block().unwrap();
                let sb = &w.codes[(r * pc / 256 + k / 8) * size..][..size];
                let j = k % 8;
                if f == QuantFormat::Q6K {
                    // 128 B of low nibbles, 64 B of high pairs, 16 i8 scales, f16 d.
                    let d = h(&sb[208..]);
                    for (i, qi) in q.iter_mut().enumerate() {
                        let n = 32 * j + i;
                        let (part, m, l) = (n / 128, n % 128 / 32, n % 32);
                        let lo = sb[64 * part + 32 * (m % 2) + l] >> (4 * (m / 2)) & 15;
                        let hi = sb[128 + 32 * part + l] >> (2 * m) & 3;
                        *qi = (lo | hi << 4) as i32 - 32;
                    }
                    dw = [
                        d * sb[192 + 2 * j] as i8 as f64,
                        d * sb[193 + 2 * j] as i8 as f64,
                    ];
                    mw = 0.0;
                } else {
                    // f16 d, f16 dmin, 12 B of 6-bit scales and mins, (Q5_K: 32 B of fifth
                    // bits), 128 B of nibbles in runs of 32 (low: sub-block 2r, high: 2r + 1).
                    let s = &sb[4..16];
                    let (sc, m) = if j < 4 {
                        (s[j] & 63, s[j + 4] & 63)
                    } else {
                        (
                            (s[j + 4] & 15) | (s[j - 4] >> 6) << 4,
                            (s[j + 4] >> 4) | (s[j] >> 6) << 4,
                        )
                    };
                    let skip = if f == QuantFormat::Q5K { 48 } else { 16 };
                    for (i, qi) in q.iter_mut().enumerate() {
                        let b = sb[skip + 32 * (j / 2) + i];
                        let nib = if j % 2 == 0 { b & 15 } else { b >> 4 };
                        let fifth = if f == QuantFormat::Q5K {
                            sb[16 + i] >> j & 1
                        } else {
                            0
                        };
                        *qi = (nib | fifth << 4) as i32;
                    }
                    dw = [h(sb) * sc as f64; 2];
                    mw = -h(&sb[2..]) * m as f64;
                }
            }
            (f, _) => {
                let size = f.ggml_block().unwrap();
                let blk = &w.codes[(r * pc / 32 + k) * size..][..size];
                let d = h(blk);
                dw = [d; 2];
                match f {
                    QuantFormat::Q8_0 => {
                        for (j, qj) in q.iter_mut().enumerate() {
                            *qj = blk[2 + j] as i8 as i32;
                        }
                        mw = 0.0;
                    }
                    QuantFormat::Q5_0 => {
                        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                        for j in 0..16 {
                            q[j] = (blk[6 + j] & 15) as i32 | ((qh >> j & 1) << 4) as i32;
                            q[16 + j] =
                                (blk[6 + j] >> 4) as i32 | ((qh >> (16 + j) & 1) << 4) as i32;
                        }
                        mw = -16.0 * d;
                    }
                    _ => {
                        let (skip, m) = if f == QuantFormat::Q4_1 {
                            (4, h(&blk[2..]))
                        } else {
                            (2, -8.0 * d)
                        };
                        for j in 0..16 {
                            q[j] = (blk[skip + j] & 15) as i32;
                            q[16 + j] = (blk[skip + j] >> 4) as i32;
                        }
                        mw = m;
                    }
                }
            }
        }
        out.push((q, dw, mw));
    }
    out
}

/// The W4A8 / W8A8 product by plain loops: activations quantized per block (`d = max|x|/127`,
/// codes rounded half away from zero), exact integer block sums, then the float terms in f64.
/// Returns the value and the magnitude its float rounding is relative to: the sum over blocks
/// of `|dw·da|·Σ|q·a| + |mw·da|·Σ|a|` (the classic bound of a dot product's rounding error,
/// whatever order the kernel sums in).
fn reference(w: &QuantizedTensor, x: &[f32], r: usize) -> (f64, f64) {
    let (mut y, mut mag) = (0f64, 0f64);
    for (k, (q, dw, mw)) in decode_blocks(w, r).into_iter().enumerate() {
        let mut xb = [0f32; 32];
        for (j, v) in xb.iter_mut().enumerate() {
            *v = x.get(32 * k + j).copied().unwrap_or(0.0);
        }
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let a: Vec<i32> = xb.iter().map(|v| (v * id).round() as i32).collect();
        let sa: i64 = a.iter().map(|&v| v as i64).sum();
        let abs_a: i64 = a.iter().map(|&v| (v as i64).abs()).sum();
        for (half, dw) in dw.iter().enumerate() {
            let js = 16 * half..16 * half + 16;
            let s: i64 = js.clone().map(|j| q[j] as i64 * a[j] as i64).sum();
            let abs_s: i64 = js.map(|j| (q[j] as i64 * a[j] as i64).abs()).sum();
            y += dw * d as f64 * s as f64;
            mag += (dw * d as f64).abs() * abs_s as f64;
        }
        y += mw * d as f64 * sa as f64;
        mag += (mw * d as f64).abs() * abs_a as f64;
    }
    (y, mag)
}

fn formats() -> Vec<QuantFormat> {
    QuantFormat::known()
        .into_iter()
        .filter(|f| supports(*f))
        .collect()
}

#[test]
fn the_integer_formats_are_the_4_bit_5_bit_q8_0_and_k_quant_ones() {
    let names: Vec<String> = formats().iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "int4-g32",
            "int4-g32-asym",
            "int4-g64",
            "int4-g64-asym",
            "int4-g128",
            "int4-g128-asym",
            "q4_0",
            "q4_1",
            "q8_0",
            "q5_0",
            "q4_k",
            "q5_k",
            "q6_k"
        ]
    );
}

#[test]
fn integer_kernels_equal_the_plain_loop_w4a8_product_on_every_path() {
    let mut rng = StdRng::seed_from_u64(7);
    // (rows, cols, inputs): rows not a multiple of 8, one block of columns, a padded INT4 row,
    // and layers big enough to be split across threads.
    let shapes = [
        (13, 32, 1),
        (5, 32, 3),
        (37, 96, 2),
        (9, 40, 1),
        (300, 1024, 1),
        (611, 576, 8),
    ];
    for path in IntPath::test_paths("integer quantized matvec") {
        for f in formats() {
            for &(rows, cols, n) in &shapes {
                if f.ggml_block().is_some() && cols % 32 != 0 {
                    continue; // llama.cpp blocks need whole blocks of columns
                }
                let w: Vec<f32> = (0..rows * cols)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect();
                let x: Vec<f32> = (0..n * cols).map(|_| rng.random_range(-3.0..3.0)).collect();
                let q = QuantizedTensor::quantize(f, &w, rows, cols).unwrap();
                let mut y = vec![f32::NAN; n * rows];
                matvec_int8_with(path, &q, &x, &mut y);
                for i in 0..n {
                    for r in 0..rows {
                        let (want, mag) = reference(&q, &x[i * cols..(i + 1) * cols], r);
                        let got = y[i * rows + r] as f64;
                        assert!(
                            (got - want).abs() <= 1e-6 * mag.max(1e-30),
                            "{f} on {} [{rows}x{cols}] input {i} row {r}: {got} vs {want} (scale {mag})",
                            path.name()
                        );
                    }
                }
            }
        }
    }
}

/// With unit scales (weight blocks of scale 1, activations whose largest magnitude is 127) the
/// product is the integer block sum itself, so it must come out exactly.
#[test]
fn integer_block_sums_are_exact_with_unit_scales() {
    let mut rng = StdRng::seed_from_u64(11);
    let (rows, cols) = (19, 256);
    // Q8_0 blocks with d = 1 and codes in -127..=127; Q4_0 blocks with d = 1 and any nibbles.
    let one = f16::from_f32(1.0).to_le_bytes();
    let mut q8 = Vec::new();
    let mut q4 = Vec::new();
    let mut want8 = vec![0i64; rows];
    let mut want4 = vec![0i64; rows];
    let mut x: Vec<f32> = (0..cols)
        .map(|_| rng.random_range(-127i32..=127) as f32)
        .collect();
    for k in 0..cols / 32 {
        x[32 * k] = if k % 2 == 0 { 127.0 } else { -127.0 };
    }
    for r in 0..rows {
        for k in 0..cols / 32 {
            q8.extend(one);
            q4.extend(one);
            for j in 0..32 {
                let c: i8 = rng.random_range(-127..=127);
                q8.push(c as u8);
                want8[r] += c as i64 * x[32 * k + j] as i64;
            }
            for j in 0..16 {
                let (lo, hi) = (rng.random_range(0u8..16), rng.random_range(0u8..16));
                q4.push(lo | (hi << 4));
                want4[r] += (lo as i64 - 8) * x[32 * k + j] as i64
                    + (hi as i64 - 8) * x[32 * k + 16 + j] as i64;
            }
        }
    }
    let t8 = QuantizedTensor::from_ggml_blocks(QuantFormat::Q8_0, q8, rows, cols).unwrap();
    let t4 = QuantizedTensor::from_ggml_blocks(QuantFormat::Q4_0, q4, rows, cols).unwrap();
    for path in IntPath::test_paths("integer block sums") {
        for (t, want) in [(&t8, &want8), (&t4, &want4)] {
            let mut y = vec![0f32; rows];
            matvec_int8_with(path, t, &x, &mut y);
            let got: Vec<i64> = y.iter().map(|v| *v as i64).collect();
            assert_eq!(&got, want, "{} on {}", t.format, path.name());
            assert!(y.iter().zip(want).all(|(a, b)| *a == *b as f32));
        }
    }
}

#[test]
fn int8_activations_stay_within_the_named_budget_of_f32_activations() {
    // Budget: the int8 rounding of x adds at most d/2 = max|x|/254 per value, so the product's
    // error relative to Σ|w·x| stays well under 1% on Gaussian inputs; 2% is the named bound.
    const BUDGET: f64 = 0.02;
    let mut rng = StdRng::seed_from_u64(3);
    let (rows, cols) = (64, 576);
    let w: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let x: Vec<f32> = (0..cols).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let isa = infermark_models::kernels::isa::active();
    for f in formats() {
        let q = QuantizedTensor::quantize(f, &w, rows, cols).unwrap();
        let (mut a, mut b) = (vec![0f32; rows], vec![0f32; rows]);
        matvec_with(isa, &q, &x, &mut a);
        matvec_int8_with(IntPath::for_isa(isa), &q, &x, &mut b);
        let deq = q.dequantize();
        for r in 0..rows {
            let mag: f64 = (0..cols)
                .map(|c| (deq[r * cols + c] * x[c]).abs() as f64)
                .sum();
            let err = (a[r] as f64 - b[r] as f64).abs() / mag;
            assert!(err < BUDGET, "{f} row {r}: relative error {err}");
        }
    }
}

#[test]
fn nan_activations_reach_the_output() {
    let w = vec![0.5f32; 4 * 64];
    let q = QuantizedTensor::quantize(QuantFormat::Q4_0, &w, 4, 64).unwrap();
    let mut x = vec![1f32; 64];
    x[40] = f32::NAN;
    let mut y = vec![0f32; 4];
    matvec_int8_with(IntPath::Portable, &q, &x, &mut y);
    assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
    let (d, _) = quantize_block(&[f32::NAN; 32]);
    assert!(d.is_nan());
}

/// Random K-quant super-blocks (finite f16 scales, any other bytes: 6-bit scales, mins and
/// codes): the integer kernel on every path equals the product of the dequantized weights (the
/// dequantizers are checked bit for bit against the `gguf` package in the suites' tests) with
/// the activations as their int8 blocks represent them, summed in f64; and the f32-activation
/// path (dequantize a row, then a dot product) equals it with the activations as they are.
#[test]
fn k_quant_integer_kernels_equal_the_dequantized_product_on_every_path() {
    use infermark_models::quant::act::fake_quantize;
    let mut rng = StdRng::seed_from_u64(5);
    for format in [QuantFormat::Q4K, QuantFormat::Q5K, QuantFormat::Q6K] {
        for &(rows, cols, n) in &[(7, 256, 1), (13, 512, 2), (300, 1536, 1)] {
            let mut codes = Vec::new();
            for _ in 0..rows * cols / 256 {
                let scale = |rng: &mut StdRng, hi: f32| f16::from_f32(rng.random_range(0.0..hi));
                match format {
                    QuantFormat::Q4K | QuantFormat::Q5K => {
                        codes.extend(scale(&mut rng, 0.02).to_le_bytes());
                        codes.extend(scale(&mut rng, 0.02).to_le_bytes());
                        let rest = format.ggml_block().unwrap() - 4;
                        codes.extend((0..rest).map(|_| rng.random::<u8>()));
                    }
                    _ => {
                        codes.extend((0..208).map(|_| rng.random::<u8>()));
                        codes.extend(scale(&mut rng, 0.002).to_le_bytes());
                    }
                }
            }
            let q = QuantizedTensor::from_ggml_blocks(format, codes, rows, cols).unwrap();
            let w = q.dequantize();
            let x: Vec<f32> = (0..n * cols)
                .map(|_| rng.random_range(-3.0f32..3.0))
                .collect();
            let mut xq = x.clone();
            fake_quantize(&mut xq, cols);
            for path in IntPath::test_paths("K-quant integer matvec") {
                let mut y = vec![f32::NAN; n * rows];
                matvec_int8_with(path, &q, &x, &mut y);
                for i in 0..n {
                    for r in 0..rows {
                        let terms =
                            (0..cols).map(|c| w[r * cols + c] as f64 * xq[i * cols + c] as f64);
                        let (want, mag) = terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs()));
                        let got = y[i * rows + r] as f64;
                        assert!(
                            (got - want).abs() <= 2e-5 * mag,
                            "{format} on {} [{rows}x{cols}] input {i} row {r}: {got} vs {want} (scale {mag})",
                            path.name()
                        );
                    }
                }
            }
            let mut y = vec![0f32; n * rows];
            matvec_with(infermark_models::kernels::isa::active(), &q, &x, &mut y);
            for i in 0..n {
                for r in 0..rows {
                    let want: f64 = (0..cols)
                        .map(|c| w[r * cols + c] as f64 * x[i * cols + c] as f64)
                        .sum();
                    let got = y[i * rows + r] as f64;
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{format}");
                }
            }
        }
    }
}
