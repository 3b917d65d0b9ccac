//! Weight formats at 4096 × 4096: the fused decode matrix-vector product per format against
//! burn's f32 matrix-vector product on flex (f32 activations as `FORMAT/…`, int8 activations
//! and integer dot products as `FORMAT-a8/…` for the formats that have them), and quantize /
//! dequantize per format (1024 × 1024).
//!
//! Run: `cargo bench --bench quant` (or `-- matvec` for the products only).

#[macro_use]
mod common;

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use infermark_models::kernels::isa;
use infermark_models::quant::int_dot::{self, matvec_int8_with, IntPath};
use infermark_models::quant::matvec::matvec;
use infermark_models::quant::{QuantFormat, QuantizedTensor};

type B = Flex;
const N: usize = 4096;

fn weights(rows: usize, cols: usize) -> Vec<f32> {
    let t = Tensor::<B, 2>::random(
        [rows, cols],
        Distribution::Normal(0.0, 0.02),
        &Default::default(),
    );
    t.into_data().to_vec::<f32>().expect("f32")
}

/// The 4096² weights (seeded) and a fixed input vector.
fn fixture(dev: &<B as burn::tensor::backend::BackendTypes>::Device) -> (Vec<f32>, Vec<f32>) {
    B::seed(dev, 1);
    let x = (0..N)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    (weights(N, N), x)
}

fn matvecs(c: &mut Criterion) {
    let dev = Default::default();
    let (w, x) = fixture(&dev);
    let mut group = c.benchmark_group("quant/matvec");
    group.sample_size(30);
    // burn's f32 decode product: [1, in] × [in, out], the weight layout of burn's Linear.
    let wt = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(w.clone(), [N, N]), &dev);
    let xt = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(x.clone(), [1, N]), &dev);
    group.throughput(Throughput::Bytes((N * N * 4) as u64));
    group.bench_function(format!("burn-f32/{N}x{N}"), |b| {
        b.iter(|| {
            let y = xt.clone().matmul(wt.clone());
            B::sync(&dev).expect("sync");
            y
        })
    });
    for f in QuantFormat::all() {
        let q = QuantizedTensor::quantize(f, &w, N, N).expect("finite weights");
        group.throughput(Throughput::Bytes(q.bytes() as u64));
        let mut y = vec![0f32; N];
        group.bench_function(format!("{f}/{N}x{N}"), |b| {
            b.iter(|| matvec(&q, &x, &mut y))
        });
        if int_dot::supports(f) {
            let path = IntPath::for_isa(isa::active());
            group.bench_function(format!("{f}-a8/{N}x{N}"), |b| {
                b.iter(|| matvec_int8_with(path, &q, &x, &mut y))
            });
        }
    }
    group.finish();
}

/// The same products with the last-level cache flushed before each one (a 64 MiB buffer is
/// rewritten in the untimed setup), as in a real model whose weights are far larger than the
/// cache: the weights stream from DRAM.
fn cold_matvecs(c: &mut Criterion) {
    let dev = Default::default();
    let (w, x) = fixture(&dev);
    let mut flush = vec![0u8; 64 << 20];
    let mut group = c.benchmark_group("quant/matvec-cold");
    group.sample_size(30);
    let wt = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(w.clone(), [N, N]), &dev);
    let xt = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(x.clone(), [1, N]), &dev);
    group.bench_function(format!("burn-f32/{N}x{N}"), |b| {
        b.iter_batched(
            || flush.iter_mut().for_each(|v| *v = v.wrapping_add(1)),
            |_| {
                let y = xt.clone().matmul(wt.clone());
                B::sync(&dev).expect("sync");
                y
            },
            criterion::BatchSize::PerIteration,
        )
    });
    for f in [
        QuantFormat::Int8,
        QuantFormat::Int4 {
            group: 32,
            asym: false,
        },
        QuantFormat::Int4 {
            group: 128,
            asym: false,
        },
        QuantFormat::Q4_0,
    ] {
        let q = QuantizedTensor::quantize(f, &w, N, N).expect("finite weights");
        let mut y = vec![0f32; N];
        group.bench_function(format!("{f}/{N}x{N}"), |b| {
            b.iter_batched(
                || flush.iter_mut().for_each(|v| *v = v.wrapping_add(1)),
                |_| matvec(&q, &x, &mut y),
                criterion::BatchSize::PerIteration,
            )
        });
        if int_dot::supports(f) {
            let path = IntPath::for_isa(isa::active());
            group.bench_function(format!("{f}-a8/{N}x{N}"), |b| {
                b.iter_batched(
                    || flush.iter_mut().for_each(|v| *v = v.wrapping_add(1)),
                    |_| matvec_int8_with(path, &q, &x, &mut y),
                    criterion::BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

fn conversions(c: &mut Criterion) {
    let dev = Default::default();
    B::seed(&dev, 2);
    let n = 1024;
    let w = weights(n, n);
    let mut group = c.benchmark_group("quant/convert");
    group.sample_size(10);
    group.throughput(Throughput::Elements((n * n) as u64));
    for f in QuantFormat::all() {
        group.bench_function(format!("quantize/{f}/{n}x{n}"), |b| {
            b.iter(|| QuantizedTensor::quantize(f, &w, n, n).expect("finite"))
        });
        let q = QuantizedTensor::quantize(f, &w, n, n).expect("finite");
        group.bench_function(format!("dequantize/{f}/{n}x{n}"), |b| {
            b.iter(|| q.dequantize())
        });
    }
    group.finish();
}

criterion_group!(benches, matvecs, cold_matvecs, conversions);
criterion_main_on_pool!(benches);
