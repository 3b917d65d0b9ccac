//! A forward that fails mid-run (a cache that refuses an append, as an exhausted pool does)
//! comes back as an error from every harness that times the engine, and from the loops the
//! speculative suite times: never a skipped sample, never a panic.

use burn::backend::Flex;
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::generation::speculative::{speculative_generate, Gamma, ModelDrafter};
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kv_cache::{ContiguousKv, ModelCache, Refusing};
use infermark_suites::kv_cache::decode::time_decode;
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

/// A contiguous cache of `m` for `seqs` sequences whose layers each take `appends` appends.
fn refusing(
    m: &Decoder<B>,
    seqs: usize,
    appends: usize,
) -> ModelCache<B, Refusing<ContiguousKv<B>>> {
    let device = Default::default();
    let c = m.contiguous_cache(seqs, 64, &device);
    ModelCache::new(
        c.layers
            .into_iter()
            .map(|l| Refusing::new(l, appends))
            .collect(),
    )
}

/// Enough samples that the refusal lands inside the timed samples, not the warm-up.
fn plan() -> Plan {
    Plan::new(1, 6, 6, 60_000)
}

fn is_engine_error(e: &SuiteError) -> bool {
    matches!(e, SuiteError::Model { .. })
}

#[test]
fn the_stepper_harness_returns_the_refused_step() {
    let device = Default::default();
    let m = model();
    let prompt = [1, 2, 3, 4];
    // The prefill and four steps fit; the fifth step's append is refused.
    let mut bad = Stepper::with_cache(&m, refusing(&m, 1, 5), &prompt, &device).unwrap();
    let mut good = Stepper::new(&m, &prompt, 1, &device).unwrap();
    let r = time_pair(plan(), || good.step(1), || bad.step(1));
    let e = r.expect_err("a refused append must end the measurement");
    assert!(is_engine_error(&e), "{e}");
}

#[test]
fn the_decode_step_harness_returns_the_refused_step() {
    let device = Default::default();
    let m = model();
    let mut a = m.contiguous_cache(2, 64, &device);
    let mut b = refusing(&m, 2, 6);
    let sa: Vec<_> = (0..2).map(|_| a.add_sequence().unwrap()).collect();
    let sb: Vec<_> = (0..2).map(|_| b.add_sequence().unwrap()).collect();
    let r = time_decode(&m, (&mut a, &sa), (&mut b, &sb), plan(), &device);
    let e = r.expect_err("a refused append must end the measurement");
    assert!(is_engine_error(&e), "{e}");
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
    let greedy = || Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let g = generate(
        &m,
        &mut refusing(&m, 2, 5),
        &prompts,
        &config,
        &mut greedy(),
        &device,
    );
    assert!(g.is_err(), "plain decoding");
    // A refusing target, then a refusing drafter.
    let mut drafter = ModelDrafter::new(m.clone(), m.contiguous_cache(2, 64, &device), &device);
    let s = speculative_generate(
        &m,
        &mut refusing(&m, 2, 4),
        &prompts,
        &mut drafter,
        Gamma::Fixed(3),
        &config,
        &mut greedy(),
        &device,
    );
    assert!(s.is_err(), "speculative decoding, target refusing");
    let mut drafter = ModelDrafter::new(m.clone(), refusing(&m, 2, 6), &device);
    let s = speculative_generate(
        &m,
        &mut m.contiguous_cache(2, 64, &device),
        &prompts,
        &mut drafter,
        Gamma::Fixed(3),
        &config,
        &mut greedy(),
        &device,
    );
    assert!(s.is_err(), "speculative decoding, drafter refusing");
}
