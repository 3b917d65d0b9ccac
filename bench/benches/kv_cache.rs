//! Paged against contiguous KV caches: one decode-attention step at context 4096 (GQA at
//! Llama-3-8B's shape: 8 KV heads of 128, 4 query heads each), and the block-table operations
//! append, fork and truncate.
//!
//! Run: `cargo bench --bench kv_cache`.

#[macro_use]
mod common;

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use infermark_models::kernels::Visibility;
use infermark_models::kv_cache::{
    BlockPool, CacheLayout, ContiguousKv, KvCache, PagedCache, Values,
};

type B = Flex;
const CTX: usize = 4096;
const KV: usize = 8;
const D: usize = 128;

fn rand<const N: usize>(shape: [usize; N]) -> Tensor<B, N> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

fn decode_step(c: &mut Criterion) {
    let dev = Default::default();
    B::seed(&dev, 1);
    let mut group = c.benchmark_group(infermark_suites::kv_cache::NAME);
    group.throughput(Throughput::Bytes((2 * KV * D * 4 * CTX) as u64));
    let q = rand([1, KV, 4, D]);
    let (k, v) = (rand([1, KV, CTX, D]), rand([1, KV, CTX, D]));
    let layout = CacheLayout {
        heads: KV,
        k_width: D,
        values: Values::Separate(D),
    };
    let mut contiguous = ContiguousKv::<B>::new(1, CTX, layout, &dev);
    let cs = contiguous.add_sequence().expect("one slot");
    let sq = |t: &Tensor<B, 4>| t.clone().squeeze_dim::<3>(0);
    contiguous
        .append(cs, sq(&k), Some(sq(&v)))
        .expect("capacity");
    group.bench_function(format!("decode/contiguous/kv{KV}_d{D}_ctx{CTX}"), |b| {
        b.iter(|| {
            let o = contiguous
                .attend(q.clone(), cs, Visibility::All, 0.088)
                .expect("sequence");
            B::sync(&dev).expect("sync");
            o
        })
    });
    for block in [16, 64] {
        let mut cache =
            PagedCache::<B>::new(2 * CTX / block + 8, block, layout, &dev).expect("pool");
        // Interleave two sequences so that the measured one's blocks are scattered.
        let s = cache.add_sequence().expect("pool");
        let other = cache.add_sequence().expect("pool");
        for i in 0..CTX / 256 {
            let kk = k.clone().narrow(2, i * 256, 256).squeeze_dim::<3>(0);
            let vv = v.clone().narrow(2, i * 256, 256).squeeze_dim::<3>(0);
            cache.append(s, kk, Some(vv)).expect("capacity");
            cache
                .append(other, rand([KV, 100, D]), Some(rand([KV, 100, D])))
                .expect("capacity");
        }
        group.bench_function(format!("decode/paged-b{block}/kv{KV}_d{D}_ctx{CTX}"), |b| {
            b.iter(|| {
                let o = cache
                    .attend(q.clone(), s, Visibility::All, 0.088)
                    .expect("sequence");
                B::sync(&dev).expect("sync");
                o
            })
        });
    }
    group.finish();
}

fn block_table(c: &mut Criterion) {
    let mut group = c.benchmark_group(infermark_suites::kv_cache::NAME);
    group.bench_function("block_pool/append_4096_tokens_b16", |b| {
        b.iter(|| {
            let mut p = BlockPool::new(512, 16).expect("size");
            let s = p.add_sequence();
            for _ in 0..CTX {
                p.append(s, 1).expect("capacity");
            }
            p
        })
    });
    let mut p = BlockPool::new(1024, 16).expect("size");
    let s = p.add_sequence();
    p.append(s, CTX).expect("capacity");
    group.bench_function("block_pool/fork_and_free_4096_tokens_b16", |b| {
        b.iter(|| {
            let child = p.fork(s).expect("sequence");
            p.free(child).expect("sequence");
        })
    });
    group.bench_function("block_pool/truncate_and_regrow_64_tokens_b16", |b| {
        b.iter(|| {
            p.truncate(s, CTX - 64).expect("sequence");
            p.append(s, 64).expect("capacity")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500));
    targets = decode_step, block_table
}
criterion_main_on_pool!(benches);
