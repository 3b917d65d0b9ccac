//! One decode step of the attention core of each variant at a fixed real-model shape, context
//! 1024, batch 1. Throughput is the KV cache bytes the step reads, so criterion reports GB/s.
//!
//! Run: `cargo bench --bench attention`; CI compiles and runs each once with `-- --test`.

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use infermark_models::attention::{ContiguousCache, GqaConfig, MlaConfig, MlaPath};

type B = Flex;
const CTX: usize = 1024;

fn fill(c: &mut ContiguousCache<B>, n: usize) {
    let [b, h, _, w] = c.dims();
    c.append(Tensor::random(
        [b, h, n, w],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    ))
    .expect("capacity");
}

fn gqa(c: &mut Criterion) {
    let dev = Default::default();
    let mut group = c.benchmark_group("attention");
    for (variant, kv) in [("mha", 32), ("gqa", 8), ("mqa", 1)] {
        B::seed(&dev, 1);
        let cfg = GqaConfig::new(4096, 32, kv, 128);
        let layer = cfg.init::<B>(&dev).expect("valid preset");
        let mut cache = layer.new_cache(1, CTX + 1, &dev);
        fill(&mut cache.k, CTX);
        fill(&mut cache.v, CTX);
        let x = Tensor::<B, 3>::random([1, 1, 4096], Distribution::Normal(0.0, 1.0), &dev);
        let p = layer.prepare(x, &mut cache).expect("capacity");
        group.throughput(Throughput::Bytes(
            (cfg.kv_bytes_per_token(4) * (CTX + 1)) as u64,
        ));
        group.bench_function(format!("{variant}/h32_kv{kv}_d128_ctx{CTX}"), |b| {
            b.iter(|| {
                let o = layer.attend(&p, &cache);
                B::sync(&dev).expect("sync");
                o
            })
        });
    }
    group.finish();
}

fn mla(c: &mut Criterion) {
    let dev = Default::default();
    let mut group = c.benchmark_group("attention");
    B::seed(&dev, 1);
    let cfg = MlaConfig::new(5120, 128, 128, 64, 512, 1536);
    let layer = cfg.init::<B>(&dev).expect("valid preset");
    let mut cache = layer.new_cache(1, CTX + 1, &dev);
    fill(&mut cache.latent, CTX);
    let x = Tensor::<B, 3>::random([1, 1, 5120], Distribution::Normal(0.0, 1.0), &dev);
    let p = layer.prepare(x, &mut cache).expect("capacity");
    group.throughput(Throughput::Bytes(
        (cfg.kv_bytes_per_token(4) * (CTX + 1)) as u64,
    ));
    for (variant, path) in [
        ("mla-naive", MlaPath::Naive),
        ("mla-absorbed", MlaPath::Absorbed),
    ] {
        group.bench_function(format!("{variant}/h128_dc512_dr64_ctx{CTX}"), |b| {
            b.iter(|| {
                let o = layer.attend(&p, &cache, path);
                B::sync(&dev).expect("sync");
                o
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500));
    targets = gqa, mla
}
criterion_main!(benches);
