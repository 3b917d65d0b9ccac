//! One decode step of the attention core of each variant at a fixed real-model shape, context
//! 1024, batch 1, over the contiguous cache of the one cache family; GQA also at contexts 256
//! (K/V in L2/L3) and 4096 (K/V beyond the last-level cache). Throughput is the KV cache bytes
//! the step reads, so criterion reports GB/s. `INFERMARK_ISA=avx2` (or `portable`) times a
//! lower SIMD path.
//!
//! Run: `cargo bench --bench attention`; CI compiles and runs each once with `-- --test`.

#[macro_use]
mod common;

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use infermark_models::attention::{Attention, GqaConfig, MlaConfig, MlaPath};
use infermark_models::kv_cache::{ContiguousKv, KvCache, SeqId, Values};

type B = Flex;
const CTX: usize = 1024;
/// Extra contexts of the GQA shape.
const GQA_CTX: [usize; 2] = [256, 4096];

/// A cache for `layer` holding one sequence of `ctx` random rows.
fn filled(layer: &Attention<B>, ctx: usize) -> (ContiguousKv<B>, SeqId) {
    let dev = Default::default();
    let l = layer.cache_layout();
    let mut cache = ContiguousKv::new(1, ctx + 1, l, &dev);
    let seq = cache.add_sequence().expect("one slot");
    let rand = |w| Tensor::random([l.heads, ctx, w], Distribution::Normal(0.0, 1.0), &dev);
    let v = match l.values {
        Values::Separate(w) => Some(rand(w)),
        Values::PrefixOfKeys(_) => None,
    };
    cache.append(seq, rand(l.k_width), v).expect("capacity");
    (cache, seq)
}

/// Benchmarks the attention core of `layer`'s decode step.
fn core(
    c: &mut Criterion,
    name: String,
    layer: Attention<B>,
    d_model: usize,
    ctx: usize,
    bytes: usize,
) {
    let dev = Default::default();
    let (mut cache, seq) = filled(&layer, ctx);
    let x = Tensor::<B, 3>::random([1, 1, d_model], Distribution::Normal(0.0, 1.0), &dev);
    let p = layer.prepare(x, &[seq], &mut cache).expect("capacity");
    let mut group = c.benchmark_group(infermark_suites::attention::NAME);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let o = layer.attend_core(&p, &[seq], &cache).expect("held");
            B::sync(&dev).expect("sync");
            o
        })
    });
    group.finish();
}

fn gqa(c: &mut Criterion) {
    let dev = Default::default();
    for (variant, kv) in [("mha", 32), ("gqa", 8), ("mqa", 1)] {
        B::seed(&dev, 1);
        let cfg = GqaConfig::new(4096, 32, kv, 128).with_max_seq_len(8192);
        let layer = Attention::Gqa(cfg.init::<B>(&dev).expect("valid preset"));
        let contexts = if variant == "gqa" {
            vec![GQA_CTX[0], CTX, GQA_CTX[1]]
        } else {
            vec![CTX]
        };
        for ctx in contexts {
            let name = format!("{variant}/h32_kv{kv}_d128_ctx{ctx}");
            let bytes = cfg.kv_bytes_per_token(4) * (ctx + 1);
            core(c, name, layer.clone(), 4096, ctx, bytes);
        }
    }
}

fn mla(c: &mut Criterion) {
    let dev = Default::default();
    B::seed(&dev, 1);
    let cfg = MlaConfig::new(5120, 128, 128, 64, 512, 1536);
    let layer = cfg.init::<B>(&dev).expect("valid preset");
    for (variant, path) in [
        ("mla-naive", MlaPath::Naive),
        ("mla-absorbed", MlaPath::Absorbed),
    ] {
        let name = format!("{variant}/h128_dc512_dr64_ctx{CTX}");
        let layer = Attention::Mla(layer.clone().with_path(path));
        core(
            c,
            name,
            layer,
            5120,
            CTX,
            cfg.kv_bytes_per_token(4) * (CTX + 1),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500));
    targets = gqa, mla
}
criterion_main_on_pool!(benches);
