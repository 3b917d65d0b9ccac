//! Writes the blocks of `models/tests/fixtures/kquant_blocks.txt`: seeded weights and the bytes
//! infermark's Q5_0, Q4_K, Q5_K and Q6_K quantizers make of them, for the `gguf` package to
//! dequantize independently (`make_kquant_dequant.py`). One block per line:
//! `TYPE | weights as f32 bit patterns (hex) | block bytes (hex)`.
//!
//! `cargo run --release -p infermark-models --example kquant_fixture > models/tests/fixtures/kquant_blocks.txt`

use infermark_models::quant::kquant::{quantize_q4_k, quantize_q5_0, quantize_q5_k, quantize_q6_k};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Blocks of `n` weights: zeros, a constant, one outlier among small values, and Gaussian-like
/// blocks (sum of uniforms) at several scales, some shifted off zero.
fn blocks(n: usize, rng: &mut StdRng) -> Vec<Vec<f32>> {
    let mut v = vec![vec![0.0; n], vec![-0.375; n]];
    let mut spike: Vec<f32> = (0..n).map(|_| rng.random_range(-0.01..0.01)).collect();
    spike[n / 3] = 2.5;
    v.push(spike);
    for scale in [1e-3f32, 0.02, 1.0, 30.0] {
        for shift in [0.0f32, 0.5] {
            v.push(
                (0..n)
                    .map(|_| {
                        let g: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum();
                        scale * (g + shift)
                    })
                    .collect(),
            );
        }
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let mut rng = StdRng::seed_from_u64(20261207);
    println!("# infermark quantizers: TYPE | f32 bit patterns (hex) | block bytes (hex)");
    for ty in ["Q5_0", "Q4_K", "Q5_K", "Q6_K"] {
        let n = if ty == "Q5_0" { 32 } else { 256 };
        for x in blocks(n, &mut rng) {
            let bytes = match ty {
                "Q5_0" => quantize_q5_0(x.as_slice().try_into().unwrap()).to_vec(),
                "Q4_K" => quantize_q4_k(x.as_slice().try_into().unwrap()).to_vec(),
                "Q5_K" => quantize_q5_k(x.as_slice().try_into().unwrap()).to_vec(),
                _ => quantize_q6_k(x.as_slice().try_into().unwrap()).to_vec(),
            };
            let xs: Vec<String> = x.iter().map(|v| format!("{:08x}", v.to_bits())).collect();
            println!("{ty} | {} | {}", xs.join(" "), hex(&bytes));
        }
    }
}
