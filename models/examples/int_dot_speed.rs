//! Times the integer and f32-activation quantized matvec at one shape, alternately:
//! `cargo run --release -p infermark-models --example int_dot_speed -- ROWS COLS FORMAT THREADS`.

use infermark_models::kernels::isa;
use infermark_models::quant::int_dot::{matvec_int8_with, IntPath};
use infermark_models::quant::matvec::matvec;
use infermark_models::quant::{QuantFormat, QuantizedTensor};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = a.first().map_or(4096, |s| s.parse().unwrap());
    let cols: usize = a.get(1).map_or(4096, |s| s.parse().unwrap());
    let name = a.get(2).map_or("q4_0", |s| s.as_str());
    let threads: usize = a.get(3).map_or(2, |s| s.parse().unwrap());
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0)
        .collect();
    let x: Vec<f32> = (0..cols)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let f: QuantFormat = name.parse().unwrap();
    let q = QuantizedTensor::quantize(f, &w, rows, cols).unwrap();
    let f = q.format;
    let mut y = vec![0f32; rows];
    let path = IntPath::for_isa(isa::active());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let reps = (200_000_000 / (rows * cols)).max(5);
        for round in 0..3 {
            let t = Instant::now();
            for _ in 0..reps {
                matvec_int8_with(path, &q, &x, &mut y);
            }
            let a8 = t.elapsed().as_secs_f64() / reps as f64;
            let t = Instant::now();
            // INT8_ONLY=1 skips the f32-activation product (for `perf stat` of the int8 one).
            let f32_reps = if std::env::var_os("INT8_ONLY").is_some() { 0 } else { reps };
            for _ in 0..f32_reps {
                matvec(&q, &x, &mut y);
            }
            let f32a = t.elapsed().as_secs_f64() / reps as f64;
            let blocks = (rows * cols / 32) as f64;
            println!(
                "{round}: {f} {rows}x{cols} {threads} threads: a8 {:.1} µs ({:.2} ns/block, {:.1} GB/s), f32-act {:.1} µs",
                a8 * 1e6, a8 * 1e9 / blocks, q.bytes() as f64 / a8 / 1e9, f32a * 1e6
            );
        }
    });
}
