//! Weight formats: spec-defined FP8 codes, INT4 packing and error bounds, the Q4_0 byte layout,
//! storage cost in closed form, and the fused kernels against dequantize-then-multiply.

use burn::backend::Flex;
use burn::nn::LinearConfig;
use burn::tensor::TensorData;
use infermark_models::kernels::isa;
use infermark_models::quant::matvec::matvec_with;
use infermark_models::quant::tensor::{q4_0_block, q4_1_block, q8_0_block};
use infermark_models::quant::{Fp8Kind, Fp8Scaling, QuantFormat, QuantLinear, QuantizedTensor};

mod common;

type B = Flex;

/// E4M3 by the spec's formula: bias 7; exponent 0 is subnormal; S.1111.111 is NaN.
fn e4m3_spec(code: u8) -> f32 {
    let s = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((code >> 3) & 15) as i32;
    let m = (code & 7) as f32;
    if e == 15 && m == 7.0 {
        return f32::NAN;
    }
    if e == 0 {
        s * 2f32.powi(-6) * m / 8.0
    } else {
        s * 2f32.powi(e - 7) * (1.0 + m / 8.0)
    }
}

/// E5M2 by the spec's formula: bias 15; exponent 31 is infinity (mantissa 0) or NaN.
fn e5m2_spec(code: u8) -> f32 {
    let s = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((code >> 2) & 31) as i32;
    let m = (code & 3) as f32;
    match e {
        31 if m == 0.0 => s * f32::INFINITY,
        31 => f32::NAN,
        0 => s * 2f32.powi(-14) * m / 4.0,
        _ => s * 2f32.powi(e - 15) * (1.0 + m / 4.0),
    }
}

fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits() || (a == 0.0 && b == 0.0)
}

#[test]
fn every_fp8_code_decodes_to_the_spec_value() {
    for c in 0..=255u8 {
        let (a, b) = (Fp8Kind::E4M3.decode(c), e4m3_spec(c));
        assert!(same(a, b), "E4M3 {c:#04x}: {a} vs spec {b}");
        let (a, b) = (Fp8Kind::E5M2.decode(c), e5m2_spec(c));
        assert!(same(a, b), "E5M2 {c:#04x}: {a} vs spec {b}");
    }
}

#[test]
fn fp8_spot_values_worked_out_by_hand() {
    let e4 = |c| Fp8Kind::E4M3.decode(c);
    assert_eq!(e4(0x38), 1.0);
    assert_eq!(e4(0x3C), 1.5);
    assert_eq!(e4(0x40), 2.0);
    assert_eq!(e4(0xB8), -1.0);
    assert_eq!(e4(0x08), 0.015625); // smallest normal 2^-6
    assert_eq!(e4(0x01), 0.001953125); // smallest subnormal 2^-9
    assert_eq!(e4(0x77), 240.0);
    assert_eq!(e4(0x78), 256.0);
    assert_eq!(e4(0x7E), 448.0); // largest finite; E4M3 has no infinity
    assert!(e4(0x7F).is_nan() && e4(0xFF).is_nan());
    assert_eq!((0..=255u8).filter(|&c| e4(c).is_nan()).count(), 2);
    assert!((0..=255u8).all(|c| !e4(c).is_infinite()));

    let e5 = |c| Fp8Kind::E5M2.decode(c);
    assert_eq!(e5(0x3C), 1.0);
    assert_eq!(e5(0x01), 2f32.powi(-16));
    assert_eq!(e5(0x7B), 57344.0); // largest finite
    assert_eq!(e5(0x7C), f32::INFINITY);
    assert_eq!(e5(0xFC), f32::NEG_INFINITY);
    assert!(e5(0x7D).is_nan() && e5(0x7E).is_nan() && e5(0x7F).is_nan());
}

#[test]
fn fp8_encoding_rounds_to_nearest_even_and_saturates() {
    let e4 = |x| Fp8Kind::E4M3.encode(x);
    assert_eq!(e4(1.0625), 0x38); // halfway 1.0 | 1.125 → even mantissa (1.0)
    assert_eq!(e4(1.1875), 0x3A); // halfway 1.125 | 1.25 → even mantissa (1.25)
    assert_eq!(e4(1.05), 0x38); // nearer 1.0 than 1.125
    assert_eq!(e4(1000.0), 0x7E);
    assert_eq!(e4(-1e9), 0xFE);
    assert_eq!(e4(f32::INFINITY), 0x7E);
    assert!(Fp8Kind::E4M3.decode(e4(f32::NAN)).is_nan());
    let e5 = |x| Fp8Kind::E5M2.encode(x);
    assert_eq!(e5(1.125), 0x3C); // halfway 1.0 | 1.25 → even (1.0)
    assert_eq!(e5(1.375), 0x3E); // halfway 1.25 | 1.5 → even (1.5)
    assert_eq!(e5(1e6), 0x7B);
    assert_eq!(e5(f32::NEG_INFINITY), 0xFB);
    assert!(Fp8Kind::E5M2.decode(e5(f32::NAN)).is_nan());
}

/// Deterministic weights with a spread of magnitudes (a few outliers).
fn weights(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| {
            let t = (i as f32 * 0.618_034).fract() - 0.5;
            if i % 97 == 0 {
                4.0 * t
            } else {
                t * (1.0 + (i % 7) as f32 * 0.1)
            }
        })
        .collect()
}

#[test]
fn int4_codes_pack_two_per_byte_and_unpack_to_the_dequantized_values() {
    let w = weights(3, 64);
    let q = QuantizedTensor::quantize(
        QuantFormat::Int4 {
            group: 32,
            asym: false,
        },
        &w,
        3,
        64,
    )
    .unwrap();
    assert_eq!(q.codes.len(), 3 * 64 / 2);
    let d = q.dequantize();
    let infermark_models::quant::Scales::Group { scale, .. } = &q.scales else {
        panic!("group scales")
    };
    for (i, &x) in d.iter().enumerate() {
        let byte = q.codes[i / 2];
        let code = if i % 2 == 0 { byte & 15 } else { byte >> 4 };
        assert_eq!(
            x,
            (code as f32 - 8.0) * scale[i / 32].to_f32(),
            "weight {i}"
        );
    }
}

#[test]
fn symmetric_int4_error_is_at_most_half_a_step() {
    for group in [32, 64, 128] {
        let w = weights(4, 256);
        let f = QuantFormat::Int4 { group, asym: false };
        let q = QuantizedTensor::quantize(f, &w, 4, 256).unwrap();
        let infermark_models::quant::Scales::Group { scale, .. } = &q.scales else {
            panic!()
        };
        for (i, (a, b)) in w.iter().zip(q.dequantize()).enumerate() {
            let step = scale[i / group].to_f32();
            assert!(
                (a - b).abs() <= 0.5 * step * (1.0 + 1e-6),
                "{f} weight {i}: {a} → {b}, step {step}"
            );
        }
    }
}

#[test]
fn asymmetric_int4_error_is_at_most_a_step() {
    let w: Vec<f32> = weights(2, 128).iter().map(|x| x + 0.7).collect();
    let f = QuantFormat::Int4 {
        group: 32,
        asym: true,
    };
    let q = QuantizedTensor::quantize(f, &w, 2, 128).unwrap();
    let infermark_models::quant::Scales::Group { scale, .. } = &q.scales else {
        panic!()
    };
    for (i, (a, b)) in w.iter().zip(q.dequantize()).enumerate() {
        assert!(
            (a - b).abs() <= scale[i / 32].to_f32() * 1.0001,
            "weight {i}: {a} → {b}"
        );
    }
}

#[test]
fn rows_that_do_not_fill_a_group_are_padded_and_the_padding_is_counted() {
    let w = weights(3, 40);
    for f in [
        QuantFormat::Int4 {
            group: 32,
            asym: false,
        },
        QuantFormat::Int4 {
            group: 32,
            asym: true,
        },
        QuantFormat::Q4_0,
    ] {
        let q = QuantizedTensor::quantize(f, &w, 3, 40).unwrap();
        assert_eq!(q.dequantize().len(), 120);
        assert_eq!(q.bytes(), f.bytes(3, 40), "{f}");
        // 40 columns are stored as 64: two groups per row.
        let per_group = match f {
            QuantFormat::Q4_0 => 18,
            QuantFormat::Int4 { asym: true, .. } => 16 + 3,
            _ => 16 + 2,
        };
        assert_eq!(q.bytes(), 3 * 2 * per_group, "{f}");
        let err = infermark_models::diff::max_abs_diff(&w, &q.dequantize()).unwrap();
        assert!(err < 0.5, "{f}: {err}");
    }
}

#[test]
fn q4_0_block_is_byte_for_byte_the_hand_computed_block() {
    // w_j = j - 16: the largest magnitude is w_0 = -16, so d = -16 / -8 = 2 and 1/d = 0.5.
    // Code of w: trunc(w / 2 + 8.5), capped at 15.
    let w: [f32; 32] = std::array::from_fn(|j| j as f32 - 16.0);
    // Low nibbles (j = 0..16): trunc((j - 16) / 2 + 8.5) = 0,1,1,2,2,3,3,4,4,5,5,6,6,7,7,8
    // High nibbles (j + 16):    trunc(j / 2 + 8.5)        = 8,9,9,10,10,11,11,12,12,13,13,14,14,15,15,15
    let lo = [0u8, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8];
    let hi = [
        8u8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 15,
    ];
    let mut expect = vec![0x00, 0x40]; // f16 2.0 = 0x4000, little-endian
    expect.extend((0..16).map(|j| lo[j] | (hi[j] << 4)));
    assert_eq!(q4_0_block(&w).to_vec(), expect);
    let q = QuantizedTensor::quantize(QuantFormat::Q4_0, &w, 1, 32).unwrap();
    assert_eq!(q.codes, expect);
}

#[test]
fn q4_0_block_with_a_positive_maximum_has_a_negative_scale() {
    // w_j = 16 - j: the largest magnitude is w_0 = +16, so ggml's d = max / -8 = -2 (the
    // sign of the extreme is kept, so it maps to code 0) and 1/d = -0.5.
    let w: [f32; 32] = std::array::from_fn(|j| 16.0 - j as f32);
    // Low nibbles: trunc((16 - j) · -0.5 + 8.5) = trunc((j - 16) / 2 + 8.5), as for w_j = j - 16
    // with d = 2; high nibbles: trunc(j / 2 + 8.5), capped at 15.
    let lo = [0u8, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8];
    let hi = [
        8u8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 15,
    ];
    let mut expect = vec![0x00, 0xC0]; // f16 -2.0 = 0xC000, little-endian
    expect.extend((0..16).map(|j| lo[j] | (hi[j] << 4)));
    assert_eq!(q4_0_block(&w).to_vec(), expect);
    let q = QuantizedTensor::quantize(QuantFormat::Q4_0, &w, 1, 32).unwrap();
    // (0 - 8) · -2 = 16: the maximum is exact.
    assert_eq!(q.dequantize()[0], 16.0);
}

#[test]
fn q4_1_and_q8_0_blocks_are_byte_for_byte_the_hand_computed_blocks() {
    // w_j = j / 2 − 4: min −4, max 11.5, so d = 15.5 / 15 and m = −4. Code of w:
    // trunc((w + 4) / d + 0.5) = trunc(j · 15 / 31 + 0.5), capped at 15.
    let w: [f32; 32] = std::array::from_fn(|j| j as f32 / 2.0 - 4.0);
    let d = 15.5f32 / 15.0;
    let code = |j: usize| (((w[j] + 4.0) * (1.0 / d) + 0.5) as i8).min(15) as u8;
    let mut expect = half::f16::from_f32(d).to_le_bytes().to_vec();
    expect.extend(half::f16::from_f32(-4.0).to_le_bytes());
    expect.extend((0..16).map(|j| code(j) | (code(j + 16) << 4)));
    assert_eq!(q4_1_block(&w).to_vec(), expect);
    // The first and last codes by hand: 0 and 15.
    assert_eq!((expect[4] & 15, expect[19] >> 4), (0, 15));
    // Q8_0: max |w| = 11.5, d = 11.5 / 127, codes round(w · 127 / 11.5), half away from zero.
    let mut expect = half::f16::from_f32(11.5 / 127.0).to_le_bytes().to_vec();
    expect.extend((0..32).map(|j| (w[j] * (1.0 / (11.5f32 / 127.0))).round() as i8 as u8));
    assert_eq!(q8_0_block(&w).to_vec(), expect);
    assert_eq!(expect[2] as i8, -44); // −4 · 127 / 11.5 = −44.17
    assert_eq!(expect[33] as i8, 127);
    for f in [QuantFormat::Q4_1, QuantFormat::Q8_0] {
        let q = QuantizedTensor::quantize(f, &w, 1, 32).unwrap();
        let back = QuantizedTensor::from_ggml_blocks(f, q.codes.clone(), 1, 32).unwrap();
        assert_eq!(back.dequantize(), q.dequantize(), "{f}");
    }
    assert!(QuantizedTensor::from_ggml_blocks(QuantFormat::Q4_1, vec![0; 19], 1, 32).is_err());
}

#[test]
fn storage_cost_matches_the_closed_forms() {
    let (r, c) = (64, 256);
    let bpw = |f: QuantFormat| f.bits_per_weight(r, c);
    assert_eq!(bpw(QuantFormat::F32), 32.0);
    assert_eq!(bpw(QuantFormat::F16), 16.0);
    assert_eq!(bpw(QuantFormat::Bf16), 16.0);
    assert_eq!(bpw(QuantFormat::Int8), 8.0 + 32.0 / c as f64);
    assert_eq!(
        bpw(QuantFormat::Fp8(Fp8Kind::E4M3, Fp8Scaling::Tensor)),
        8.0 + 32.0 / (r * c) as f64
    );
    assert_eq!(
        bpw(QuantFormat::Int4 {
            group: 32,
            asym: false
        }),
        4.5
    );
    assert_eq!(
        bpw(QuantFormat::Int4 {
            group: 32,
            asym: true
        }),
        4.75
    );
    assert_eq!(
        bpw(QuantFormat::Int4 {
            group: 128,
            asym: false
        }),
        4.125
    );
    assert_eq!(bpw(QuantFormat::Q4_0), 4.5);
    assert_eq!(bpw(QuantFormat::Q4_1), 5.0);
    assert_eq!(bpw(QuantFormat::Q8_0), 8.5);
    assert_eq!(bpw(QuantFormat::Q5_0), 5.5);
    assert_eq!(QuantFormat::Q4K.bits_per_weight(4, 512), 4.5);
    assert_eq!(QuantFormat::Q5K.bits_per_weight(4, 512), 5.5);
    assert_eq!(QuantFormat::Q6K.bits_per_weight(4, 512), 6.5625);
    let w = weights(r, c);
    for f in QuantFormat::known() {
        let q = QuantizedTensor::quantize(f, &w, r, c).unwrap();
        assert_eq!(q.bytes(), f.bytes(r, c), "{f}");
        assert_eq!(q.bits_per_weight(), f.bits_per_weight(r, c), "{f}");
    }
}

#[test]
fn non_finite_weights_and_wrong_lengths_are_refused() {
    let mut w = weights(2, 32);
    w[37] = f32::NAN;
    let err = QuantizedTensor::quantize(QuantFormat::Int8, &w, 2, 32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("weight 37") && err.contains("row 1"), "{err}");
    let err = QuantizedTensor::quantize(QuantFormat::Int8, &w[..10], 2, 32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("64"), "{err}");
    assert!("int3"
        .parse::<QuantFormat>()
        .unwrap_err()
        .to_string()
        .contains("int4-g32"));
}

#[test]
fn fused_matvec_equals_dequantize_then_multiply_for_every_format_on_every_isa_path() {
    let (rows, cols) = (37, 200);
    let w = weights(rows, cols);
    let x: Vec<f32> = (0..3 * cols)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    for isa in isa::test_paths("fused quantized matvec") {
        for f in QuantFormat::known() {
            let q = QuantizedTensor::quantize(f, &w, rows, cols).unwrap();
            let d = q.dequantize();
            let mut y = vec![0f32; 3 * rows];
            matvec_with(isa, &q, &x, &mut y);
            for i in 0..3 {
                for r in 0..rows {
                    let want: f32 = (0..cols).map(|c| d[r * cols + c] * x[i * cols + c]).sum();
                    let got = y[i * rows + r];
                    assert!(
                        (want - got).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{isa}, {f} row {r} input {i}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// Error budgets of QuantLinear against FP32 on a fixed input: relative L2 error of the output.
const INT8_TOLERANCE: f32 = 0.01;
const FP8_E4M3_TOLERANCE: f32 = 0.05;
const FP8_E5M2_TOLERANCE: f32 = 0.10;

#[test]
fn quant_linear_stays_within_named_tolerances_of_fp32() {
    let device = Default::default();
    let linear = LinearConfig::new(96, 64)
        .with_bias(false)
        .init::<B>(&device);
    let w = linear.weight.val(); // [in, out]
    let x = burn::tensor::Tensor::<B, 3>::from_data(
        TensorData::new(
            (0..2 * 3 * 96)
                .map(|i| ((i * 29 % 83) as f32 / 41.0) - 1.0)
                .collect::<Vec<_>>(),
            [2, 3, 96],
        ),
        &device,
    );
    let exact = x.clone().reshape([6, 96]).matmul(w).reshape([2, 3, 64]);
    let norm: f32 = exact.clone().powf_scalar(2.0).sum().sqrt().into_scalar();
    use Fp8Kind::*;
    use Fp8Scaling::*;
    for (f, tol) in [
        (QuantFormat::Int8, INT8_TOLERANCE),
        (QuantFormat::Fp8(E4M3, Tensor), FP8_E4M3_TOLERANCE),
        (QuantFormat::Fp8(E4M3, Channel), FP8_E4M3_TOLERANCE),
        (QuantFormat::Fp8(E5M2, Channel), FP8_E5M2_TOLERANCE),
    ] {
        let q = QuantLinear::from_linear(&linear, f).unwrap();
        for (path, y) in [
            ("reference", q.forward_reference(x.clone())),
            ("fused", q.forward(x.clone())),
        ] {
            let err: f32 = (y - exact.clone())
                .powf_scalar(2.0)
                .sum()
                .sqrt()
                .into_scalar();
            assert!(
                err / norm <= tol,
                "{f} {path}: relative error {} > {tol}",
                err / norm
            );
        }
    }
}

mod whole_model {
    use super::common::{tokens, values};
    use super::B;
    use burn::tensor::{backend::Backend, Tensor};
    use infermark_models::attention::MlaPath;
    use infermark_models::decoder::{AttentionKind, DecoderConfig};
    use infermark_models::diff::max_abs_diff;
    use infermark_models::quant::{
        dequantize_decoder, quantize_decoder, set_activations, Activations, Assignment, QuantFormat,
    };

    /// Prefill 4 tokens then decode one at a time with the quantized projections (fused kernel
    /// for the decode rows); every position must match the full forward of the same model with
    /// the dequantized weights as dense projections (f32 activations), or of the quantized model
    /// itself, whose prefill-sized products fake-quantize their inputs (int8 activations: the
    /// decode rows take the integer kernels).
    fn check(attention: AttentionKind, path: MlaPath) {
        let device = Default::default();
        B::seed(&device, 11);
        let cfg = DecoderConfig::new(64, 64, 2, 4, 16, 96, attention).with_max_seq_len(32);
        let model = cfg.init::<B>(&device).unwrap().with_mla_path(path);
        let ids: Vec<i64> = (0..10).map(|i| (i * 13 + 5) % 64).collect();
        for f in [
            QuantFormat::F32,
            QuantFormat::Int8,
            QuantFormat::Int4 {
                group: 32,
                asym: false,
            },
            QuantFormat::Q4_1,
        ] {
            for acts in Activations::ALL {
                let (mut q, bytes) = quantize_decoder(&model, Assignment::uniform(f)).unwrap();
                set_activations(&mut q, acts);
                assert!(bytes.quantized > 0);
                let want = match acts {
                    Activations::F32 => dequantize_decoder(&q).forward_full(tokens(&ids)),
                    Activations::Int8 => q.forward_full(tokens(&ids)),
                }
                .unwrap();
                let mut cache = q.contiguous_cache(1, ids.len(), &device);
                let seq = cache.add_sequence().unwrap();
                let mut parts = vec![q.forward(tokens(&ids[..4]), &[seq], &mut cache).unwrap()];
                for &t in &ids[4..] {
                    parts.push(q.forward(tokens(&[t]), &[seq], &mut cache).unwrap());
                }
                let got = Tensor::cat(parts, 1);
                let diff = max_abs_diff(&values(got), &values(want)).unwrap();
                // Int8 rounding is a step function: where the cached and the full forward's
                // attention differ in the last bit, an activation can round to the neighbouring
                // code, which moves a logit here by about d_a·|w| ≈ 1e-3 (measured up to 6.9e-4).
                let budget = match acts {
                    Activations::F32 => 1e-4,
                    Activations::Int8 => 1e-2,
                };
                assert!(diff < budget, "{f} {acts} {path:?}: {diff}");
            }
        }
    }

    #[test]
    fn quantized_decoder_matches_the_dequantized_model() {
        check(AttentionKind::Gqa { n_kv_heads: 2 }, MlaPath::Naive);
    }

    #[test]
    fn quantized_mla_decoder_matches_the_dequantized_model_on_both_paths() {
        let mla = AttentionKind::Mla {
            d_latent_kv: 32,
            d_latent_q: 32,
            d_rope: 4,
        };
        check(mla.clone(), MlaPath::Naive);
        check(mla, MlaPath::Absorbed);
    }
}

/// Cross-check against burn's own quantization (flex implements `quantize_dynamic` for integer
/// schemes): INT8 per channel is Q8S with one block per row; symmetric INT4 in groups of 32 is
/// Q4S in blocks of 32 (burn keeps f32 scales, infermark f16 ones, so those may differ by one
/// step where rounding lands on the other side).
#[test]
fn int8_and_int4_agree_with_burns_own_quantization() {
    use burn::tensor::quantization::{BlockSize, QuantLevel, QuantScheme, QuantStore, QuantValue};
    let (rows, cols) = (16, 128);
    let w = weights(rows, cols);
    let device = Default::default();
    let t =
        burn::tensor::Tensor::<B, 2>::from_data(TensorData::new(w.clone(), [rows, cols]), &device);
    for (f, value, block, max_steps) in [
        (QuantFormat::Int8, QuantValue::Q8S, cols as u8, 0.0f32),
        (
            QuantFormat::Int4 {
                group: 32,
                asym: false,
            },
            QuantValue::Q4S,
            32u8,
            1.0,
        ),
    ] {
        let scheme = QuantScheme::default()
            .with_value(value)
            .with_level(QuantLevel::Block(BlockSize::new([block])))
            .with_store(QuantStore::Native);
        let theirs = t
            .clone()
            .quantize_dynamic(&scheme)
            .dequantize()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let q = QuantizedTensor::quantize(f, &w, rows, cols).unwrap();
        let ours = q.dequantize();
        let group = block as usize;
        let mut same = 0;
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let g = &w[i / group * group..(i / group + 1) * group];
            let step = g.iter().fold(0f32, |m, x| m.max(x.abs()))
                / if group == cols { 127.0 } else { 7.0 };
            assert!(
                (a - b).abs() <= max_steps * step * 1.01 + 1e-6,
                "{f} weight {i}: ours {a}, burn {b}"
            );
            // Same code: values differ at most by the f16 rounding of the scale (7 · 2^-11 step).
            same += ((a - b).abs() <= 1e-2 * step) as usize;
        }
        assert!(
            same as f64 >= 0.99 * ours.len() as f64,
            "{f}: only {same} of {} agree",
            ours.len()
        );
    }
}

/// Standard normal samples (Box–Muller over a seeded generator).
fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    (s / a.len() as f64).sqrt()
}

/// Analytic bound of a block's RMSE: half a step of the plain grid over the block's range.
/// Q4_K / Q5_K: codes 0..=nmax over `[min(x, 0), max(x)]` (the fit's starting grid; every weight
/// is within half a step of it, and the search only keeps lower weighted error); Q6_K and
/// Q5_0: a symmetric grid of step `max|x| / 32` (Q6_K, per 16) or `/ 16` (Q5_0). The 6-bit and
/// i8 scale quantization moves scales by under 1% on Gaussian blocks, inside the slack of the
/// half step (a Gaussian block's RMSE is near step/√12 ≈ 0.29 step).
fn half_step_bound(f: QuantFormat, x: &[f32]) -> f64 {
    let lo = x.iter().fold(0f32, |m, v| m.min(*v)) as f64;
    let hi = x.iter().fold(f32::MIN, |m, v| m.max(*v)) as f64;
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    match f {
        QuantFormat::Q4K => (hi - lo) / 15.0 / 2.0,
        QuantFormat::Q5K => (hi - lo) / 31.0 / 2.0,
        QuantFormat::Q6K => amax / 32.0 / 2.0,
        QuantFormat::Q5_0 => amax / 16.0 / 2.0,
        _ => unreachable!(),
    }
}

#[test]
fn k_quant_and_q5_0_block_error_on_gaussian_weights_is_under_half_a_grid_step() {
    let (rows, cols) = (16, 1024);
    let w = gaussian(rows * cols, 41);
    for f in QuantFormat::ggml_extra() {
        let q = QuantizedTensor::quantize(f, &w, rows, cols).unwrap();
        let d = q.dequantize();
        let g = f.group();
        for (b, (x, y)) in w.chunks(g).zip(d.chunks(g)).enumerate() {
            let (e, bound) = (rmse(x, y), half_step_bound(f, x));
            assert!(e < bound, "{f} block {b}: RMSE {e} ≥ bound {bound}");
        }
        eprintln!("{f}: RMSE {:.5} on N(0, 1) weights", rmse(&w, &d));
    }
    for f in [QuantFormat::Q4_0, QuantFormat::Q4_1, QuantFormat::Q8_0] {
        let d = QuantizedTensor::quantize(f, &w, rows, cols)
            .unwrap()
            .dequantize();
        eprintln!(
            "{f}: RMSE {:.5} on N(0, 1) weights (for comparison)",
            rmse(&w, &d)
        );
    }
}

#[test]
fn more_bits_give_less_error_q6_k_then_q5_k_then_q4_k() {
    let (rows, cols) = (8, 2048);
    for seed in [1, 2, 3] {
        let w: Vec<f32> = gaussian(rows * cols, seed)
            .iter()
            .map(|v| v * 0.02)
            .collect();
        let e = |f| {
            let q = QuantizedTensor::quantize(f, &w, rows, cols).unwrap();
            rmse(&w, &q.dequantize())
        };
        let (e4, e5, e6) = (
            e(QuantFormat::Q4K),
            e(QuantFormat::Q5K),
            e(QuantFormat::Q6K),
        );
        assert!(
            e6 < e5 && e5 < e4,
            "seed {seed}: Q6_K {e6}, Q5_K {e5}, Q4_K {e4}"
        );
        // Each extra bit halves the step: the errors are well apart, not just ordered.
        assert!(e5 < 0.7 * e4 && e6 < 0.7 * e5, "{e4} {e5} {e6}");
        // And Q4_K's searched scale and min beat Q4_1's plain min/max grid.
        assert!(e4 < e(QuantFormat::Q4_1), "seed {seed}");
    }
}

#[test]
fn an_all_zero_block_quantizes_to_zeros_in_every_llama_cpp_format() {
    for f in QuantFormat::ggml_extra() {
        let q = QuantizedTensor::quantize(f, &[0.0; 512], 2, 256).unwrap();
        assert!(q.dequantize().iter().all(|v| *v == 0.0), "{f}");
        // Padding to whole blocks is zeros too and dropped by dequantize.
        let q = QuantizedTensor::quantize(f, &[0.25; 40], 1, 40).unwrap();
        assert_eq!(
            q.codes.len(),
            f.ggml_block().unwrap() * 40usize.div_ceil(f.group())
        );
        assert_eq!(q.dequantize().len(), 40, "{f}");
    }
}

#[test]
fn constant_and_one_hot_blocks_come_back_close() {
    // A constant block: Q4_K / Q5_K put it all in the scale (min 0); Q6_K / Q5_0 in the
    // largest code. One weight of 1 among zeros: every format returns it within 1%.
    for f in QuantFormat::ggml_extra() {
        let q = QuantizedTensor::quantize(f, &[0.75; 256], 1, 256).unwrap();
        for v in q.dequantize() {
            assert!((v - 0.75).abs() < 0.75 * 0.01, "{f}: {v}");
        }
        let mut x = [0f32; 256];
        x[77] = -1.0;
        let d = QuantizedTensor::quantize(f, &x, 1, 256)
            .unwrap()
            .dequantize();
        assert!((d[77] + 1.0).abs() < 0.01, "{f}: {}", d[77]);
        assert!(
            d.iter().enumerate().all(|(i, v)| i == 77 || v.abs() < 0.01),
            "{f}"
        );
    }
}

#[test]
fn the_k_quantizers_refuse_non_finite_weights_as_the_other_formats_do() {
    for f in QuantFormat::ggml_extra() {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut w = gaussian(512, 9);
            w[300] = bad;
            let err = QuantizedTensor::quantize(f, &w, 2, 256)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("weight 300") && err.contains("row 1"),
                "{f}: {err}"
            );
        }
    }
}

#[test]
fn q4_k_six_bit_scales_and_mins_pack_and_unpack_for_every_value() {
    use infermark_models::quant::kquant::{pack_scale_min_k4, scale_min_k4};
    for v in 0..64u8 {
        let sc: [u8; 8] = std::array::from_fn(|j| (v + 7 * j as u8) % 64);
        let m: [u8; 8] = std::array::from_fn(|j| (v * 3 + 11 * j as u8) % 64);
        let packed = pack_scale_min_k4(&sc, &m);
        for j in 0..8 {
            assert_eq!(
                scale_min_k4(j, &packed),
                (sc[j], m[j]),
                "value {v}, sub-block {j}"
            );
        }
    }
}

#[test]
fn k_formats_parse_by_name() {
    for f in QuantFormat::ggml_extra() {
        assert_eq!(f.name().parse::<QuantFormat>().unwrap(), f);
    }
    let e = "q4_k_m".parse::<QuantFormat>().unwrap_err().to_string();
    assert!(e.contains("q4_k_m") && e.contains("q5_k"), "{e}");
}

/// Bytes our quantizers wrote (`examples/kquant_fixture.rs`) dequantized by the `gguf` package
/// (`fixtures/make_kquant_dequant.py`, gguf 0.19.0): the quantizers still write those bytes, our
/// dequantizers give gguf's values bit for bit, and for Q5_0 gguf's own quantizer writes the
/// same bytes.
#[test]
fn quantizer_bytes_dequantize_like_the_gguf_package_and_q5_0_equals_its_quantizer() {
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let words = |s: &str| -> Vec<u32> {
        s.split(' ')
            .map(|h| u32::from_str_radix(h, 16).unwrap())
            .collect()
    };
    let lines = |t: &'static str| t.lines().filter(|l| !l.starts_with('#'));
    let blocks = lines(include_str!("fixtures/kquant_blocks.txt"));
    let golden = lines(include_str!("fixtures/kquant_dequant.txt"));
    let mut checked = std::collections::BTreeMap::new();
    for (b, g) in blocks.zip(golden) {
        let b: Vec<&str> = b.split(" | ").collect();
        let g: Vec<&str> = g.split(" | ").collect();
        assert_eq!(b[0], g[0], "fixtures out of step");
        let format: QuantFormat = b[0].to_lowercase().parse().unwrap();
        let x: Vec<f32> = words(b[1]).into_iter().map(f32::from_bits).collect();
        let bytes = hex(b[2]);
        let q = QuantizedTensor::quantize(format, &x, 1, x.len()).unwrap();
        assert_eq!(q.codes, bytes, "{format}: the quantizer changed its bytes");
        let ours: Vec<u32> = QuantizedTensor::from_ggml_blocks(format, bytes.clone(), 1, x.len())
            .unwrap()
            .dequantize()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(
            ours,
            words(g[1]),
            "{format}: dequantized values differ from gguf's"
        );
        if format == QuantFormat::Q5_0 {
            assert_eq!(bytes, hex(g[2]), "Q5_0 bytes differ from gguf's quantizer");
        }
        *checked.entry(format.name()).or_insert(0) += 1;
    }
    assert_eq!(
        checked.into_iter().collect::<Vec<_>>(),
        ["q4_k", "q5_0", "q5_k", "q6_k"].map(|n| (n.to_string(), 11))
    );
}
