//! Speculative decoding on the committed byte-level models: one speculative step (the draft
//! model proposes γ = 4 tokens, the target verifies them in one forward) against one plain
//! target step, and the target's forward over γ + 1 tokens against one token (the
//! verification cost v). Each step is rolled back, so every iteration sees the same context.
//!
//! Run: `cargo bench --bench speculative`.

#[macro_use]
mod common;

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use criterion::{criterion_group, Criterion};
use infermark_models::generation::speculative::{ModelDrafter, Proposer};
use infermark_models::generation::{Sampler, SamplingConfig};
use infermark_suites::zoo::{checkpoint, corpus};

type B = Flex;
const GAMMA: usize = 4;
const CTX: usize = 64;

fn ids(t: &[u32]) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = t.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [1, t.len()]), &Default::default())
}

fn steps(c: &mut Criterion) {
    let dev = Default::default();
    let load = |name: &str| {
        checkpoint::load::<B>(&checkpoint::committed(name), &dev)
            .unwrap()
            .0
    };
    let (target, draft) = (load("target"), load("draft"));
    let text = corpus::tokenize(&corpus::stories_split().valid)[..CTX].to_vec();
    let mut cache = target.contiguous_cache(1, 512, &dev);
    let seq = cache.add_sequence().unwrap();
    target
        .forward(ids(&text[..CTX - 1]), &[seq], &mut cache)
        .unwrap();
    let mut drafter = ModelDrafter::new(draft.clone(), draft.contiguous_cache(1, 512, &dev), &dev);
    drafter.prefill(&[&text]).unwrap();
    let mut greedy = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let mut group = c.benchmark_group(infermark_suites::speculative::NAME);
    group.bench_function("plain_step/target", |b| {
        b.iter(|| {
            let y = target
                .forward(ids(&text[CTX - 1..]), &[seq], &mut cache)
                .unwrap();
            B::sync(&dev).unwrap();
            cache.truncate(seq, CTX - 1).unwrap();
            y
        })
    });
    group.bench_function(format!("verify/target_gamma{GAMMA}"), |b| {
        let x = ids(&[text[CTX - 1]; GAMMA + 1]);
        b.iter(|| {
            let y = target.forward(x.clone(), &[seq], &mut cache).unwrap();
            B::sync(&dev).unwrap();
            cache.truncate(seq, CTX - 1).unwrap();
            y
        })
    });
    group.bench_function(format!("speculative_step/draft_gamma{GAMMA}"), |b| {
        b.iter(|| {
            // The drafter rolls its own cache back to the text before each proposal.
            let d = drafter
                .propose(&[&text], &[GAMMA], &mut greedy)
                .unwrap()
                .remove(0);
            let mut input = vec![text[CTX - 1]];
            input.extend_from_slice(&d.tokens);
            let y = target.forward(ids(&input), &[seq], &mut cache).unwrap();
            let rows = infermark_models::generation::generate::host_rows(y);
            cache.truncate(seq, CTX - 1).unwrap();
            infermark_models::generation::speculative::verify_greedy(&rows, &d.tokens)
        })
    });
    group.finish();
}

criterion_group!(benches, steps);
criterion_main_on_pool!(benches);
