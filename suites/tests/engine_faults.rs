//! A forward that fails mid-run (a paged cache whose pool runs out: it refuses an append) comes
//! back as an error from every harness that times the engine, and from the loops the speculative
//! suite times: never a skipped sample, never a panic.

use burn::backend::Flex;
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::generation::speculative::{
    speculative_generate, Gamma, ModelDrafter, Proposer,
};
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kv_cache::{ModelCache, PagedCache};
use infermark_suites::kv_cache::decode::decode_step;
use infermark_suites::measure::{time_pair, Plan};
use infermark_suites::stepper::Stepper;
use infermark_suites::SuiteError;

type B = Flex;

fn model() -> Decoder<B> {
    DecoderConfig::new(32, 32, 2, 4, 8, 64, AttentionKind::Gqa { n_kv_heads: 2 })
        .with_max_seq_len(64)
        .init::<B>(&Default::default())
        .unwrap()
}

/// A paged cache of `blocks` blocks of 8 tokens: appends past them are refused.
fn small_pool(m: &Decoder<B>, blocks: usize) -> ModelCache<B, PagedCache<B>> {
    m.paged_cache(blocks, 8, &Default::default()).unwrap()
}

fn plan() -> Plan {
    Plan::new(1, 12, 12, 60_000)
}

fn engine_error<T: std::fmt::Debug>(r: Result<T, SuiteError>) {
    let e = r.expect_err("a refused append must end the measurement");
    assert!(matches!(e, SuiteError::Model { .. }), "{e}");
}

#[test]
fn the_stepper_harness_returns_the_refused_step() {
    let device = Default::default();
    let m = model();
    let prompt = [1, 2, 3, 4, 5, 6];
    // The prompt fills 6 of the pool's 8 slots; a step of 3 tokens is refused.
    let mut bad = Stepper::with_cache(&m, small_pool(&m, 1), &prompt, &device).unwrap();
    let mut good = Stepper::new(&m, &prompt, 3, &device).unwrap();
    engine_error(time_pair(plan(), || good.step(3), || bad.step(3)));
}

#[test]
fn the_decode_step_harness_returns_the_refused_step() {
    let device = Default::default();
    let m = model();
    // Two sequences of one block each: the ninth step of each needs a block the pool lacks.
    let mut b = small_pool(&m, 2);
    let sb: Vec<_> = (0..2).map(|_| b.add_sequence().unwrap()).collect();
    let mut done = 0;
    let r = (0..12).try_for_each(|_| {
        decode_step(&m, &mut b, &sb, &device)?;
        done += 1;
        Ok(())
    });
    engine_error(r);
    assert_eq!(
        done, 8,
        "the steps that fit in the pool ran, the first that did not ended it"
    );
}

#[test]
fn plain_and_speculative_loops_return_the_refused_step() {
    let device = Default::default();
    let m = model();
    let prompts = vec![vec![1, 2, 3], vec![4, 5, 6, 7]];
    let config = GenerateConfig {
        max_new: 20,
        stop: vec![],
    };
    // Two blocks per sequence: 16 tokens each, fewer than prompt + 20.
    let run = |target: &mut ModelCache<B, PagedCache<B>>, drafter: &mut dyn Proposer, gamma| {
        let mut greedy = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
        speculative_generate(
            &m,
            target,
            &prompts,
            drafter,
            gamma,
            &config,
            &mut greedy,
            &device,
        )
    };
    let mut greedy = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let plain = generate(
        &m,
        &mut small_pool(&m, 4),
        &prompts,
        &config,
        &mut greedy,
        &device,
    );
    assert!(plain.is_err(), "plain decoding");
    let mut drafter = ModelDrafter::new(m.clone(), m.contiguous_cache(2, 64, &device), &device);
    let target_refuses = run(&mut small_pool(&m, 4), &mut drafter, Gamma::Fixed(3));
    assert!(
        target_refuses.is_err(),
        "speculative decoding, target refusing"
    );
    let mut drafter = ModelDrafter::new(m.clone(), small_pool(&m, 4), &device);
    let drafter_refuses = run(&mut small_pool(&m, 16), &mut drafter, Gamma::Fixed(3));
    assert!(
        drafter_refuses.is_err(),
        "speculative decoding, drafter refusing"
    );
}
