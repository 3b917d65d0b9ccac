//! Grouped products (a block's Q, K, V or gate and up as one product): every matrix's output
//! equals its own product exactly, on every integer path, for mixed formats and block orders,
//! 1–8 input rows, through the kernel and through the `QuantLinear` / `Proj` seam.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use infermark_models::proj::Proj;
use infermark_models::quant::int_dot::{matvec_int8_many, matvec_int8_with, IntPath};
use infermark_models::quant::{Activations, QuantFormat, QuantLinear, QuantizedTensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn layer(rng: &mut StdRng, format: QuantFormat, rows: usize, cols: usize) -> QuantizedTensor {
    QuantizedTensor::quantize(format, &random(rng, rows * cols), rows, cols).unwrap()
}

#[test]
fn a_grouped_product_equals_each_matrix_alone_on_every_path() {
    let mut rng = StdRng::seed_from_u64(17);
    let int4 = QuantFormat::Int4 {
        group: 32,
        asym: false,
    };
    // Mixed formats (both activation block orders), a matrix below one task and ones above the
    // parallel threshold together.
    let cases = [
        (
            576,
            vec![
                (QuantFormat::Q4_1, 576),
                (QuantFormat::Q4_1, 192),
                (QuantFormat::Q8_0, 192),
            ],
        ),
        (576, vec![(QuantFormat::Q4_0, 1536), (int4, 1536)]),
        (96, vec![(QuantFormat::Q8_0, 5), (QuantFormat::Q4_1, 700)]),
    ];
    for path in IntPath::test_paths("grouped product") {
        for (cols, mats) in &cases {
            let ws: Vec<QuantizedTensor> = mats
                .iter()
                .map(|&(f, rows)| layer(&mut rng, f, rows, *cols))
                .collect();
            let refs: Vec<&QuantizedTensor> = ws.iter().collect();
            for n in [1, 3, 8] {
                let x = random(&mut rng, n * cols);
                let mut ys: Vec<Vec<f32>> = ws.iter().map(|w| vec![f32::NAN; n * w.rows]).collect();
                let mut outs: Vec<&mut [f32]> = ys.iter_mut().map(|y| &mut y[..]).collect();
                matvec_int8_many(path, &refs, &x, &mut outs);
                for (w, y) in ws.iter().zip(&ys) {
                    let mut alone = vec![0f32; n * w.rows];
                    matvec_int8_with(path, w, &x, &mut alone);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(y),
                        bits(&alone),
                        "{} {} {}x{cols} n={n}",
                        path.name(),
                        w.format,
                        w.rows
                    );
                }
            }
        }
    }
}

#[test]
fn grouped_projections_equal_their_forward_each() {
    let mut rng = StdRng::seed_from_u64(19);
    let dev = Default::default();
    let cols = 64;
    let q = |rng: &mut StdRng, f, rows, acts| {
        QuantLinear::new(layer(rng, f, rows, cols)).with_activations(acts)
    };
    for acts in Activations::ALL {
        let a = Proj::<Flex>::quantized(q(&mut rng, QuantFormat::Q4_1, 96, acts));
        let b = Proj::<Flex>::quantized(q(&mut rng, QuantFormat::Q8_0, 32, acts));
        let c = Proj::<Flex>::quantized(q(&mut rng, QuantFormat::Q4_0, 40, acts));
        for rows in [1, 5, 12] {
            let x = Tensor::<Flex, 3>::from_data(
                TensorData::new(random(&mut rng, rows * cols), [1, rows, cols]),
                &dev,
            );
            let [ya, yb, yc] = Proj::forward_group([&a, &b, &c], x.clone());
            for (y, p) in [(ya, &a), (yb, &b), (yc, &c)] {
                let want = p.forward(x.clone());
                assert_eq!(y.dims(), want.dims());
                let (y, want) = (
                    y.into_data().to_vec::<f32>().unwrap(),
                    want.into_data().to_vec::<f32>().unwrap(),
                );
                assert!(
                    y.iter().zip(&want).all(|(u, v)| u.to_bits() == v.to_bits()),
                    "{acts} rows={rows}"
                );
            }
        }
    }
}
