//! Simulated FP8 training: the tile rounding equals the FP8 formats of the quantization code
//! code for code (per-row scales = 1×128 tiles, per-tensor scale = a 128×128 block), on every
//! path a training step takes it (host slices, a plain tensor, an autodiff tensor), and the
//! straight-through gradients are the (rounded) incoming gradients, so a projection's Dgrad and
//! Wgrad multiply FP8 values.

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use infermark_models::diff::max_abs_diff;
use infermark_models::kernels::AttentionBackend;
use infermark_models::proj::Proj;
use infermark_models::quant::fp8_train::{
    fake_quant, fake_quant_slice, parse_fp8_kind, quantize_tiles, TILE,
};
use infermark_models::quant::{
    Fp8Kind, Fp8Scaling, Fp8Tiles, Fp8Training, QuantFormat, QuantizedTensor, Scales,
};

type B = Flex;
type AB = Autodiff<Flex>;

const KINDS: [Fp8Kind; 2] = [Fp8Kind::E4M3, Fp8Kind::E5M2];

/// Deterministic values spread over many binades, both signs.
fn spread(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let m = (s >> 8) as f32 / (1u32 << 24) as f32; // [0, 1)
            let e = ((s >> 3) % 24) as i32 - 16;
            let sign = if s & 1 == 0 { 1.0 } else { -1.0 };
            sign * (1.0 + m) * 2f32.powi(e)
        })
        .collect()
}

/// The largest value of a tile whose scale `a / max` divides `a` to just over `max`
/// (`a / (a / max) > max` in f32): that value's code saturates.
fn over_max(kind: Fp8Kind) -> f32 {
    (1..100_000)
        .map(|k| 1.0 + k as f32 * 1e-4)
        .find(|a| a / (a / kind.max()) > kind.max())
        .expect("some tile maximum rounds over the FP8 maximum")
}

/// Four rows of 128: row 0 at scale 1 in E4M3 (its maximum is 448), row 1 at scale 1 in E5M2
/// (maximum 57344), each with ties, ±0 and subnormals of that format; row 2 a tile whose maximum
/// divides to over the FP8 maximum; row 3 all zeros, some negative.
fn fixture() -> Vec<f32> {
    let p = |e: i32| 2f32.powi(e);
    let e4m3 = [
        448.0,
        -448.0,
        0.0,
        -0.0,
        1.0625,       // tie between 1 and 1.125 → 1 (even)
        1.1875,       // tie between 1.125 and 1.25 → 1.25 (even)
        -1.0625,      // → -1
        432.0,        // tie between 416 and 448 → 448 (even)
        p(-9),        // smallest subnormal
        p(-10),       // tie between 0 and 2^-9 → +0
        -p(-10),      // → -0
        3.0 * p(-10), // tie between 2^-9 and 2^-8 → 2^-8
        0.9 * p(-6),  // subnormal
        1e-10,        // far below the smallest subnormal → 0
    ];
    let e5m2 = [
        57344.0,
        -57344.0,
        -0.0,
        0.0,
        1.125,        // tie between 1 and 1.25 → 1
        1.375,        // tie between 1.25 and 1.5 → 1.5
        p(-16),       // smallest subnormal
        p(-17),       // tie → 0
        3.0 * p(-17), // tie between 2^-16 and 2^-15 → 2^-15
        53248.0,      // tie between 49152 (even) and 57344 → 49152
    ];
    let mut x = Vec::with_capacity(4 * TILE);
    for (i, special) in [&e4m3[..], &e5m2[..]].into_iter().enumerate() {
        let rest = spread(TILE - special.len(), i as u32)
            .into_iter()
            .map(|v| v.clamp(-400.0, 400.0));
        x.extend(special.iter().copied().chain(rest));
    }
    let a = over_max(Fp8Kind::E4M3);
    let mut row2 = spread(TILE, 7)
        .into_iter()
        .map(|v| v.clamp(-a / 2.0, a / 2.0))
        .collect::<Vec<_>>();
    row2[5] = a;
    row2[6] = -a;
    x.extend(row2);
    x.extend((0..TILE).map(|i| if i % 3 == 0 { -0.0 } else { 0.0 }));
    x
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn row_scales(q: &QuantizedTensor) -> Vec<f32> {
    match &q.scales {
        Scales::Row(s) => s.clone(),
        Scales::Tensor(s) => vec![*s],
        other => panic!("FP8 has row or tensor scales, got {other:?}"),
    }
}

#[test]
fn row_tiles_equal_the_per_row_fp8_format_code_for_code() {
    let x = fixture();
    for kind in KINDS {
        let t = Fp8Tiles::row_tiles(kind);
        let (codes, scales) = quantize_tiles(&x, 4, TILE, t).expect("tiles");
        let q = QuantizedTensor::quantize(QuantFormat::Fp8(kind, Fp8Scaling::Channel), &x, 4, TILE)
            .expect("quantizes");
        assert_eq!(codes, q.codes, "{kind:?} codes");
        assert_eq!(bits(&scales), bits(&row_scales(&q)), "{kind:?} scales");
        let mut fq = x.clone();
        fake_quant_slice(&mut fq, 4, TILE, t).expect("tiles");
        assert_eq!(bits(&fq), bits(&q.dequantize()), "{kind:?} values");
    }
}

#[test]
fn the_fixture_reaches_ties_zeros_subnormals_and_saturation() {
    let x = fixture();
    let mut e4 = x.clone();
    fake_quant_slice(&mut e4, 4, TILE, Fp8Tiles::row_tiles(Fp8Kind::E4M3)).expect("tiles");
    let p = |e: i32| 2f32.powi(e);
    // Row 0 runs at scale 1: the codec's own values.
    assert_eq!(
        e4[..12],
        [
            448.0,
            -448.0,
            0.0,
            -0.0,
            1.0,
            1.25,
            -1.0,
            448.0,
            p(-9),
            0.0,
            -0.0,
            p(-8)
        ]
    );
    assert_eq!(e4[3].to_bits(), (-0.0f32).to_bits());
    assert_eq!(e4[10].to_bits(), (-0.0f32).to_bits());
    assert_eq!(e4[13], 0.0);
    let mut e5 = x.clone();
    fake_quant_slice(&mut e5, 4, TILE, Fp8Tiles::row_tiles(Fp8Kind::E5M2)).expect("tiles");
    let r1 = &e5[TILE..TILE + 10];
    assert_eq!(
        r1,
        [
            57344.0,
            -57344.0,
            -0.0,
            0.0,
            1.0,
            1.5,
            p(-16),
            0.0,
            p(-15),
            49152.0
        ]
    );
    // Row 2's maximum divides to over 448 and saturates to the largest code.
    let a = x[2 * TILE + 5];
    assert!(a / (a / 448.0) > 448.0);
    let (codes, _) =
        quantize_tiles(&x, 4, TILE, Fp8Tiles::row_tiles(Fp8Kind::E4M3)).expect("tiles");
    assert_eq!(codes[2 * TILE + 5], 0x7E);
    assert_eq!(codes[2 * TILE + 6], 0xFE);
    // The all-zero row keeps its signs.
    assert_eq!(bits(&e4[3 * TILE..]), bits(&x[3 * TILE..]));
}

#[test]
fn a_block_equals_the_per_tensor_fp8_format_code_for_code() {
    let mut x = spread(TILE * TILE, 3);
    let f = fixture();
    x[..f.len()].copy_from_slice(&f);
    for kind in KINDS {
        let t = Fp8Tiles::blocks(kind);
        let (codes, scales) = quantize_tiles(&x, TILE, TILE, t).expect("tiles");
        let q =
            QuantizedTensor::quantize(QuantFormat::Fp8(kind, Fp8Scaling::Tensor), &x, TILE, TILE)
                .expect("quantizes");
        assert_eq!(codes, q.codes, "{kind:?} codes");
        assert_eq!(bits(&scales), bits(&row_scales(&q)), "{kind:?} scale");
        let mut fq = x.clone();
        fake_quant_slice(&mut fq, TILE, TILE, t).expect("tiles");
        assert_eq!(bits(&fq), bits(&q.dequantize()), "{kind:?} values");
    }
}

/// Rows `r`, columns `c` of the row-major `[_, cols]` matrix `x`.
fn sub(x: &[f32], cols: usize, r: std::ops::Range<usize>, c: std::ops::Range<usize>) -> Vec<f32> {
    r.flat_map(|i| x[i * cols + c.start..i * cols + c.end].to_vec())
        .collect()
}

#[test]
fn partial_edge_tiles_are_quantized_as_matrices_of_their_own() {
    let (rows, cols) = (130, 200);
    let x = spread(rows * cols, 5);
    let kind = Fp8Kind::E4M3;
    // 1×128 tiles: columns 0..128 and 128..200 of each row.
    let mut fq = x.clone();
    fake_quant_slice(&mut fq, rows, cols, Fp8Tiles::row_tiles(kind)).expect("tiles");
    let (_, scales) = quantize_tiles(&x, rows, cols, Fp8Tiles::row_tiles(kind)).expect("tiles");
    assert_eq!(scales.len(), rows * 2);
    for c in [0..128, 128..200] {
        let part = sub(&x, cols, 0..rows, c.clone());
        let w = c.len();
        let q =
            QuantizedTensor::quantize(QuantFormat::Fp8(kind, Fp8Scaling::Channel), &part, rows, w)
                .expect("quantizes");
        assert_eq!(bits(&sub(&fq, cols, 0..rows, c)), bits(&q.dequantize()));
    }
    // 128×128 blocks: a 2×2 grid, the right and bottom ones partial.
    let mut fq = x.clone();
    fake_quant_slice(&mut fq, rows, cols, Fp8Tiles::blocks(kind)).expect("tiles");
    for (r, c) in [
        (0..128, 0..128),
        (0..128, 128..200),
        (128..130, 0..128),
        (128..130, 128..200),
    ] {
        let part = sub(&x, cols, r.clone(), c.clone());
        let (h, w) = (r.len(), c.len());
        let q = QuantizedTensor::quantize(QuantFormat::Fp8(kind, Fp8Scaling::Tensor), &part, h, w)
            .expect("quantizes");
        assert_eq!(bits(&sub(&fq, cols, r, c)), bits(&q.dequantize()));
    }
}

fn tensor<BB: burn::tensor::backend::Backend>(x: &[f32], m: usize, n: usize) -> Tensor<BB, 2> {
    Tensor::from_data(TensorData::new(x.to_vec(), [m, n]), &Default::default())
}

fn values<BB: burn::tensor::backend::Backend>(t: Tensor<BB, 2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32")
}

#[test]
fn every_tensor_path_rounds_like_the_codec() {
    let x = fixture();
    for kind in KINDS {
        let t = Fp8Tiles::row_tiles(kind);
        let mut want = x.clone();
        fake_quant_slice(&mut want, 4, TILE, t).expect("tiles");
        let plain = fake_quant(tensor::<B>(&x, 4, TILE), t);
        let ste =
            <B as AttentionBackend>::fp8_straight_through(tensor::<B>(&x, 4, TILE), Some(t), None);
        let ad = <AB as AttentionBackend>::fp8_straight_through(
            tensor::<AB>(&x, 4, TILE).require_grad(),
            Some(t),
            Some(t),
        );
        assert_eq!(bits(&values(plain)), bits(&want), "{kind:?} fake_quant");
        assert_eq!(bits(&values(ste)), bits(&want), "{kind:?} flex");
        assert_eq!(bits(&values(ad)), bits(&want), "{kind:?} autodiff");
    }
}

#[test]
fn the_straight_through_gradient_is_the_incoming_gradient_rounded_or_not() {
    let x = spread(3 * 200, 11);
    let c = spread(3 * 200, 12); // d loss / d y
    for grad in [None, Some(Fp8Kind::E5M2), Some(Fp8Kind::E4M3)] {
        let xt = tensor::<AB>(&x, 3, 200).require_grad();
        let tiles = grad.map(Fp8Tiles::row_tiles);
        let y = <AB as AttentionBackend>::fp8_straight_through(
            xt.clone(),
            Some(Fp8Tiles::row_tiles(Fp8Kind::E4M3)),
            tiles,
        );
        let g = (y * tensor::<AB>(&c, 3, 200)).sum().backward();
        let got = values(xt.grad(&g).expect("x has a gradient"));
        let mut want = c.clone();
        if let Some(t) = tiles {
            fake_quant_slice(&mut want, 3, 200, t).expect("tiles");
            assert_ne!(
                bits(&want),
                bits(&c),
                "{grad:?} rounding changes the gradient"
            );
        }
        assert_eq!(bits(&got), bits(&want), "{grad:?}");
    }
}

#[test]
fn an_fp8_projection_multiplies_rounded_inputs_forward_and_backward() {
    let (m, d_in, d_out) = (5, 200, 136);
    let x = spread(m * d_in, 21);
    let w: Vec<f32> = spread(d_in * d_out, 22)
        .iter()
        .map(|v| v.clamp(-2.0, 2.0))
        .collect();
    let c = spread(m * d_out, 23);
    let fp8 = Fp8Training {
        grad: Some(Fp8Kind::E5M2),
    };
    let wp = Param::from_tensor(tensor::<AB>(&w, d_in, d_out));
    let mut proj = Proj::<AB>::dense(wp);
    proj.set_fp8_training(Some(fp8));
    let xt = tensor::<AB>(&x, m, d_in).require_grad();
    let y = proj.forward(xt.clone());
    // The reference: plain products of the rounded values.
    let q = |v: &[f32], r, k, t| {
        let mut v = v.to_vec();
        fake_quant_slice(&mut v, r, k, t).expect("tiles");
        tensor::<B>(&v, r, k)
    };
    let (qx, qw) = (
        q(&x, m, d_in, fp8.activation_tiles()),
        q(&w, d_in, d_out, fp8.weight_tiles()),
    );
    let qdy = q(&c, m, d_out, fp8.grad_tiles().expect("grads rounded"));
    let y_ref = values(qx.clone().matmul(qw.clone()));
    assert_eq!(bits(&values(y.clone())), bits(&y_ref), "Fprop");
    let g = (y * tensor::<AB>(&c, m, d_out)).sum().backward();
    let gx = values(xt.grad(&g).expect("x grad"));
    let gw = values(proj.weight(&Default::default()).grad(&g).expect("w grad"));
    let gx_ref = values(qdy.clone().matmul(qw.transpose()));
    let gw_ref = values(qx.transpose().matmul(qdy));
    assert!(
        max_abs_diff(&gx, &gx_ref).unwrap() < 1e-4,
        "Dgrad {}",
        max_abs_diff(&gx, &gx_ref).unwrap()
    );
    assert!(
        max_abs_diff(&gw, &gw_ref).unwrap() < 1e-4,
        "Wgrad {}",
        max_abs_diff(&gw, &gw_ref).unwrap()
    );
    // And they differ from the FP32 products by more than that (the rounding is in effect).
    let gw32 = values(
        tensor::<B>(&x, m, d_in)
            .transpose()
            .matmul(tensor::<B>(&c, m, d_out)),
    );
    assert!(max_abs_diff(&gw32, &gw_ref).unwrap() > 1e-2);
}

#[test]
fn bad_tiles_and_names_are_errors() {
    assert!(Fp8Tiles::new(Fp8Kind::E4M3, 0, 128).is_err());
    assert!(Fp8Tiles::new(Fp8Kind::E4M3, 1, 0).is_err());
    let t = Fp8Tiles::new(Fp8Kind::E4M3, 1, 128).expect("valid");
    assert_eq!(t, Fp8Tiles::row_tiles(Fp8Kind::E4M3));
    assert!(quantize_tiles(&[1.0; 10], 3, 4, t).is_err());
    assert!(fake_quant_slice(&mut [1.0; 10], 3, 4, t).is_err());
    assert_eq!(parse_fp8_kind("e5m2"), Ok(Fp8Kind::E5M2));
    let e = parse_fp8_kind("e3m4").expect_err("unknown");
    assert!(e.to_string().contains("e3m4"), "{e}");
    assert_eq!(
        Fp8Training {
            grad: Some(Fp8Kind::E5M2)
        }
        .name(),
        "fp8-e4m3 (1x128 act, 128x128 weight tiles), grads e5m2"
    );
}
