//! The sampler on hand-made logits (support of top-k and top-p worked out by hand, argmax as the
//! zero-temperature limit, seeded reproducibility), and the generation loop against a plain
//! reference loop (full forward of the whole text every step, argmax).

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::generation::{
    argmax, generate, last_logits, GenerateConfig, Sampler, SamplingConfig,
};

type B = Flex;

/// Hand-made logits: probabilities at T = 1 are proportional to e^logit.
const LOGITS: [f32; 6] = [1.0, 3.0, 0.0, 2.5, -1.0, 2.9];

fn support(p: &[f32]) -> Vec<usize> {
    (0..p.len()).filter(|&i| p[i] > 0.0).collect()
}

#[test]
fn argmax_takes_the_first_of_equal_maxima() {
    assert_eq!(argmax(&LOGITS), 1);
    assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
}

#[test]
fn greedy_probabilities_are_one_hot_at_the_argmax() {
    let s = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let p = s.probs(&LOGITS).unwrap();
    assert_eq!(p, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn argmax_is_the_zero_temperature_limit() {
    let mut s = Sampler::new(SamplingConfig::with_temperature(1e-3), 42).unwrap();
    let p = s.probs(&LOGITS).unwrap();
    assert!(p[1] > 0.999_999, "p(argmax) = {}", p[1]);
    for _ in 0..200 {
        assert_eq!(s.sample(&LOGITS).unwrap(), 1);
    }
}

#[test]
fn temperature_one_is_the_softmax() {
    let s = Sampler::new(SamplingConfig::with_temperature(1.0), 0).unwrap();
    let p = s.probs(&LOGITS).unwrap();
    let z: f32 = LOGITS.iter().map(|x| x.exp()).sum();
    for (i, &x) in LOGITS.iter().enumerate() {
        assert!((p[i] - x.exp() / z).abs() < 1e-6, "token {i}");
    }
}

#[test]
fn top_k_keeps_exactly_the_k_most_likely() {
    let s = Sampler::new(SamplingConfig::with_temperature(1.0).with_top_k(3), 0).unwrap();
    let p = s.probs(&LOGITS).unwrap();
    assert_eq!(support(&p), vec![1, 3, 5]);
    let z: f32 = [3.0f32, 2.5, 2.9].iter().map(|x| x.exp()).sum();
    assert!((p[3] - 2.5f32.exp() / z).abs() < 1e-6);
}

#[test]
fn top_p_keeps_the_smallest_nucleus_reaching_p() {
    // Softmax of LOGITS: [0.0497, 0.3675, 0.0183, 0.2229, 0.0067, 0.3325] (rounded).
    // Sorted: 1 (0.3675), 5 (0.7000 cumulative), 3 (0.9229), 0 (0.9726), ...
    let probs = |p: f32| {
        Sampler::new(SamplingConfig::with_temperature(1.0).with_top_p(p), 0)
            .unwrap()
            .probs(&LOGITS)
            .unwrap()
    };
    assert_eq!(support(&probs(0.3)), vec![1]);
    assert_eq!(support(&probs(0.69)), vec![1, 5]);
    assert_eq!(support(&probs(0.71)), vec![1, 3, 5]);
    assert_eq!(support(&probs(0.95)), vec![0, 1, 3, 5]);
    assert_eq!(support(&probs(1.0)).len(), 6);
    let p = probs(0.69);
    assert!((p[1] + p[5] - 1.0).abs() < 1e-6, "renormalised");
}

#[test]
fn the_same_seed_draws_the_same_tokens_and_another_seed_others() {
    let draw = |seed| {
        let mut s = Sampler::new(SamplingConfig::with_temperature(1.0), seed).unwrap();
        (0..64)
            .map(|_| s.sample(&LOGITS).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn bad_settings_and_nan_logits_are_refused() {
    assert!(Sampler::new(SamplingConfig::with_temperature(-1.0), 0).is_err());
    assert!(Sampler::new(SamplingConfig::with_temperature(f32::NAN), 0).is_err());
    assert!(Sampler::new(SamplingConfig::greedy().with_top_p(0.0), 0).is_err());
    let mut s = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let err = s.sample(&[0.0, f32::NAN]).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    assert!(s.sample(&[0.0, f32::INFINITY]).is_err());
    assert!(s.sample(&[f32::NEG_INFINITY; 3]).is_err());
    // Masked tokens (-inf) are fine and never drawn.
    let mut t = Sampler::new(SamplingConfig::with_temperature(1.0), 3).unwrap();
    for _ in 0..50 {
        assert_eq!(
            t.sample(&[f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY])
                .unwrap(),
            1
        );
    }
}

fn tiny() -> Decoder<B> {
    let device = Default::default();
    B::seed(&device, 3);
    DecoderConfig::new(32, 32, 2, 4, 8, 48, AttentionKind::Gqa { n_kv_heads: 2 })
        .with_max_seq_len(40)
        .init::<B>(&device)
        .unwrap()
}

/// The reference: recompute the full forward of the whole text for every new token, argmax.
fn reference_greedy(model: &Decoder<B>, prompt: &[u32], max_new: usize, stop: u32) -> Vec<u32> {
    let mut text: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    let mut out = vec![];
    while out.len() < max_new {
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(text.clone(), [1, text.len()]),
            &Default::default(),
        );
        let next = argmax(&last_logits(model.forward_full(ids).unwrap())[0]);
        out.push(next);
        if next == stop {
            break;
        }
        text.push(next as i64);
    }
    out
}

#[test]
fn greedy_generation_of_a_batch_equals_the_reference_loop_per_prompt() {
    let device = Default::default();
    let model = tiny();
    let prompts = vec![vec![1, 2, 3], vec![9, 8, 7, 6, 5, 4, 3], vec![30]];
    // Stop on the token the second prompt's reference produces third, so one sequence stops
    // early and the batch shrinks while the others go on.
    let stop = reference_greedy(&model, &prompts[1], 3, u32::MAX)[2];
    let config = GenerateConfig {
        max_new: 12,
        stop: vec![stop],
    };
    for paged in [false, true] {
        let mut sampler = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
        let g = if paged {
            let mut cache = model.paged_cache(32, 8, &device).unwrap();
            generate(&model, &mut cache, &prompts, &config, &mut sampler, &device).unwrap()
        } else {
            let mut cache = model.contiguous_cache(3, 40, &device);
            generate(&model, &mut cache, &prompts, &config, &mut sampler, &device).unwrap()
        };
        for (i, p) in prompts.iter().enumerate() {
            let want = reference_greedy(&model, p, 12, stop);
            assert_eq!(g.tokens[i], want, "paged {paged}: prompt {i}");
        }
        assert!(g.tokens[1].len() <= 3, "the stop token ends a sequence");
        let c = &g.counters;
        // Every prompt but its last token is prefilled; the first step feeds the last.
        assert_eq!(c.prefill_tokens, 11 - 3);
        assert_eq!(
            c.generated_tokens,
            g.tokens.iter().map(Vec::len).sum::<usize>()
        );
        let longest = g.tokens.iter().map(Vec::len).max().unwrap();
        assert_eq!(
            c.forwards,
            1 + longest,
            "one prefill for the batch, then one per step"
        );
    }
}

#[test]
fn the_budget_and_the_longest_sequence_bound_generation() {
    let device = Default::default();
    let model = tiny();
    let mut cache = model.contiguous_cache(1, 40, &device);
    let mut sampler = Sampler::new(SamplingConfig::with_temperature(1.0), 1).unwrap();
    // New tokens for a prompt of `len` tokens and a budget of `max_new`.
    let mut new_tokens = |len: usize, max_new: usize| {
        let cfg = GenerateConfig {
            max_new,
            stop: vec![],
        };
        let g = generate(
            &model,
            &mut cache,
            &[vec![5; len]],
            &cfg,
            &mut sampler,
            &device,
        );
        g.unwrap().tokens[0].len()
    };
    assert_eq!(new_tokens(4, 7), 7);
    // max_seq_len 40: a 36-token prompt leaves room for 4 tokens.
    assert_eq!(new_tokens(36, 9), 4);
    assert_eq!(new_tokens(3, 0), 0);
}
