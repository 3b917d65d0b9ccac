//! Speculative decoding's verification rule on hand-made distributions (counts, closed-form
//! acceptance and residual), the sampled rule's output distribution against the target's, and
//! prompt lookup.

use infermark_models::generation::speculative::{
    accepts, prompt_lookup, residual, verify_greedy, verify_sampled, Outcome,
};
use infermark_models::generation::{Sampler, SamplingConfig};

/// A row whose argmax is `t` (vocabulary 6).
fn peak(t: usize) -> Vec<f32> {
    let mut r = vec![0.1f32; 6];
    r[t] = 2.0;
    r
}

#[test]
fn greedy_keeps_every_draft_token_that_is_the_target_argmax_and_adds_the_bonus() {
    let target = vec![peak(3), peak(1), peak(4), peak(5)];
    let o = verify_greedy(&target, &[3, 1, 4]);
    assert_eq!(
        o,
        Outcome {
            accepted: 3,
            proposed: 3,
            next_token: 5
        }
    );
    assert_eq!(o.emitted(), 4);
}

#[test]
fn greedy_rejection_at_the_first_token_emits_the_target_argmax() {
    let target = vec![peak(2), peak(1), peak(4)];
    let o = verify_greedy(&target, &[3, 1]);
    assert_eq!((o.accepted, o.proposed, o.next_token), (0, 2, 2));
}

#[test]
fn greedy_mismatch_in_the_middle_keeps_the_prefix_and_corrects_the_token() {
    let target = vec![peak(3), peak(0), peak(4), peak(5)];
    let o = verify_greedy(&target, &[3, 1, 4]);
    assert_eq!((o.accepted, o.next_token), (1, 0));
}

#[test]
fn acceptance_is_min_one_p_over_q() {
    // p / q = 0.5: kept for u below 0.5, rejected from 0.5 on.
    assert!(accepts(0.2, 0.4, 0.49));
    assert!(!accepts(0.2, 0.4, 0.5));
    // p ≥ q: always kept.
    assert!(accepts(0.5, 0.1, 0.999_999));
    // A token the drafter could not draw, or the target never would, is never kept.
    assert!(!accepts(0.3, 0.0, 0.0));
    assert!(!accepts(0.0, 0.3, 0.0));
}

#[test]
fn zero_probability_drafts_are_never_accepted() {
    let mut s = Sampler::new(SamplingConfig::with_temperature(1.0), 1).unwrap();
    let p = vec![vec![0.0, 0.5, 0.5], vec![0.3, 0.3, 0.4]];
    let q = vec![vec![1.0, 0.0, 0.0]];
    for _ in 0..200 {
        let o = verify_sampled(&p, Some(&q), &[0], &mut s);
        assert_eq!(o.accepted, 0);
        assert_ne!(o.next_token, 0, "the residual has no mass on token 0");
    }
}

#[test]
fn the_residual_is_the_normalised_positive_part_of_p_minus_q() {
    let r = residual(&[0.4, 0.4, 0.2], &[0.1, 0.3, 0.6]);
    let want = [0.75, 0.25, 0.0];
    for (a, b) in r.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{r:?}");
    }
    assert_eq!(
        residual(&[0.5, 0.3, 0.2], &[0.2, 0.6, 0.2]),
        vec![1.0, 0.0, 0.0]
    );
}

#[test]
fn a_point_mass_drafter_is_kept_with_the_target_probability_of_its_token() {
    let mut s = Sampler::new(SamplingConfig::with_temperature(1.0), 2).unwrap();
    let p = vec![vec![0.25, 0.75], vec![0.5, 0.5]];
    let n = 20_000;
    let kept = (0..n)
        .filter(|_| verify_sampled(&p, None, &[1], &mut s).accepted == 1)
        .count() as f64
        / n as f64;
    // Binomial standard deviation sqrt(0.75·0.25/n) ≈ 0.003: five of them.
    assert!((kept - 0.75).abs() < 0.016, "kept {kept}");
    let always = vec![vec![0.0, 1.0], vec![0.5, 0.5]];
    assert!((0..100).all(|_| verify_sampled(&always, None, &[1], &mut s).accepted == 1));
}

/// Total variation distance between an empirical count vector and a distribution.
fn tv(counts: &[usize], p: &[f32]) -> f64 {
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .zip(p)
        .map(|(&c, &q)| (c as f64 / n as f64 - q as f64).abs())
        .sum::<f64>()
        / 2.0
}

#[test]
fn speculative_sampling_emits_tokens_distributed_as_the_target() {
    // Target and draft far apart (TV(p, q) = 0.4), so a wrong rule cannot pass by accident.
    let p = vec![0.1f32, 0.2, 0.3, 0.4];
    let q = vec![0.4f32, 0.3, 0.2, 0.1];
    let n = 40_000;
    let mut s = Sampler::new(SamplingConfig::with_temperature(1.0), 7).unwrap();
    let (mut spec, mut plain) = (vec![0usize; 4], vec![0usize; 4]);
    let (target, draft) = ([p.clone(), p.clone()], [q.clone()]);
    for _ in 0..n {
        let x = s.draw(&q);
        let o = verify_sampled(&target, Some(&draft), &[x], &mut s);
        let first = if o.accepted == 1 { x } else { o.next_token };
        spec[first as usize] += 1;
        plain[s.draw(&p) as usize] += 1;
    }
    // Each frequency has a standard deviation ≤ 0.0025 at n = 40,000; a TV of 0.02 is about
    // eight of them summed over four tokens.
    let bound = 0.02;
    assert!(tv(&plain, &p) < bound, "plain sampling: {}", tv(&plain, &p));
    assert!(tv(&spec, &p) < bound, "speculative: {}", tv(&spec, &p));
    assert!(
        tv(&spec, &q) > 0.3,
        "the draft's distribution would be caught"
    );
}

#[test]
fn prompt_lookup_proposes_what_followed_the_longest_recurring_suffix() {
    // Suffix [7, 8, 9] recurs at 1; [8, 9] also recurs later, but the longer n-gram wins.
    let text = [1, 7, 8, 9, 4, 5, 8, 9, 6, 7, 8, 9];
    assert_eq!(prompt_lookup(&text, 3, 2), vec![4, 5]);
    // With 2-grams only, the latest earlier occurrence of [8, 9] (at 6) proposes [6, 7, 8].
    assert_eq!(prompt_lookup(&text, 2, 3), vec![6, 7, 8]);
    // Fewer tokens than γ when the occurrence is near the end.
    assert_eq!(prompt_lookup(&[3, 4, 3], 3, 5), vec![4, 3]);
}

#[test]
fn prompt_lookup_proposes_nothing_when_no_ngram_recurs() {
    assert!(prompt_lookup(&[1, 2, 3, 4], 3, 4).is_empty());
    assert!(prompt_lookup(&[5], 3, 4).is_empty());
    assert!(prompt_lookup(&[], 3, 4).is_empty());
}

mod with_models {
    use burn::backend::Flex;
    use burn::tensor::backend::Backend;
    use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
    use infermark_models::generation::speculative::{
        speculative_generate, ModelDrafter, PromptLookup, Proposer,
    };
    use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
    use infermark_models::kv_cache::ContiguousKv;
    use infermark_models::quant::{quantize_decoder, Assignment, QuantFormat};

    type B = Flex;

    fn model(layers: usize, d: usize, seed: u64) -> Decoder<B> {
        let device = Default::default();
        B::seed(&device, seed);
        DecoderConfig::new(
            32,
            d,
            layers,
            4,
            d / 4,
            2 * d,
            AttentionKind::Gqa { n_kv_heads: 2 },
        )
        .with_max_seq_len(96)
        .init::<B>(&device)
        .unwrap()
    }

    /// `m` as a drafter with a contiguous cache of its own.
    fn drafter(m: &Decoder<B>) -> ModelDrafter<B, ContiguousKv<B>> {
        let device = Default::default();
        ModelDrafter::new(m.clone(), m.contiguous_cache(1, 96, &device), &device).unwrap()
    }

    fn greedy() -> Sampler {
        Sampler::new(SamplingConfig::greedy(), 0).unwrap()
    }

    /// The prompts: one with repeats (prompt lookup finds them), one without.
    fn prompts() -> Vec<Vec<u32>> {
        vec![vec![1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2], vec![7, 30, 12, 9]]
    }

    fn check_greedy_exact(target: &Decoder<B>, drafter: &mut dyn Proposer, what: &str) {
        let device = Default::default();
        let config = GenerateConfig {
            max_new: 24,
            stop: vec![],
        };
        for (i, prompt) in prompts().into_iter().enumerate() {
            let mut cache = target.contiguous_cache(1, 96, &device);
            let plain = generate(
                target,
                &mut cache,
                std::slice::from_ref(&prompt),
                &config,
                &mut greedy(),
                &device,
            )
            .unwrap()
            .tokens
            .remove(0);
            for gamma in [1, 3, 5] {
                let (spec, stats) = speculative_generate(
                    target,
                    &mut cache,
                    &prompt,
                    drafter,
                    gamma,
                    &config,
                    &mut greedy(),
                    &device,
                )
                .unwrap();
                assert_eq!(spec, plain, "{what}, prompt {i}, γ {gamma}");
                assert!(stats.accepted <= stats.proposed);
                assert_eq!(stats.accepted_at.iter().sum::<usize>(), stats.accepted);
            }
        }
    }

    #[test]
    fn greedy_speculative_decoding_equals_greedy_decoding_for_every_drafter() {
        let device = Default::default();
        let target = model(3, 32, 1);
        let draft = model(1, 16, 2);
        check_greedy_exact(&target, &mut drafter(&draft), "draft model");
        let int4 = Assignment::uniform(QuantFormat::Int4 {
            group: 32,
            asym: false,
        });
        let (q, _) = quantize_decoder(&target, int4).unwrap();
        check_greedy_exact(&target, &mut drafter(&q), "int4-self");
        let skip = target.first_blocks(1).unwrap();
        let mut by_skip = ModelDrafter::new(
            skip.clone(),
            skip.paged_cache(16, 8, &device).unwrap(),
            &device,
        )
        .unwrap();
        check_greedy_exact(&target, &mut by_skip, "layer-skip");
        check_greedy_exact(&target, &mut PromptLookup { max_ngram: 3 }, "prompt lookup");
    }

    #[test]
    fn a_drafter_equal_to_the_target_is_always_accepted() {
        let device = Default::default();
        let target = model(2, 32, 4);
        let mut same = drafter(&target);
        let mut cache = target.contiguous_cache(1, 96, &device);
        let config = GenerateConfig {
            max_new: 20,
            stop: vec![],
        };
        let (out, stats) = speculative_generate(
            &target,
            &mut cache,
            &[3, 4, 5],
            &mut same,
            4,
            &config,
            &mut greedy(),
            &device,
        )
        .unwrap();
        assert_eq!(out.len(), 20);
        assert_eq!(stats.accepted, stats.proposed, "{stats:?}");
        // 20 tokens at up to 5 per step: 4 steps.
        assert_eq!(stats.steps, 4);
    }
}
