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
    use burn::tensor::{Int, Tensor, TensorData};
    use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
    use infermark_models::diff::max_abs_diff;
    use infermark_models::generation::speculative::{
        speculative_generate, Gamma, ModelDrafter, PromptLookup, Proposer, SpecGeneration,
    };
    use infermark_models::generation::{
        generate, last_logits, GenerateConfig, Sampler, SamplingConfig,
    };
    use infermark_models::kv_cache::{ContiguousKv, KvCache, ModelCache};
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
        ModelDrafter::new(m.clone(), m.contiguous_cache(4, 96, &device), &device)
    }

    fn greedy() -> Sampler {
        Sampler::new(SamplingConfig::greedy(), 0).unwrap()
    }

    /// The prompts: one with repeats (prompt lookup finds them), one without.
    fn prompts() -> Vec<Vec<u32>> {
        vec![vec![1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2], vec![7, 30, 12, 9]]
    }

    /// Plain greedy decoding of `prompt` alone (batch 1).
    fn plain_greedy<C: KvCache<B>>(
        target: &Decoder<B>,
        cache: &mut ModelCache<B, C>,
        prompt: &[u32],
        config: &GenerateConfig,
    ) -> Vec<u32> {
        let device = Default::default();
        let prompts = [prompt.to_vec()];
        let g = generate(target, cache, &prompts, config, &mut greedy(), &device);
        g.unwrap().tokens.remove(0)
    }

    fn check_greedy_exact(target: &Decoder<B>, drafter: &mut dyn Proposer, what: &str) {
        let device = Default::default();
        let config = GenerateConfig {
            max_new: 24,
            stop: vec![],
        };
        for (i, prompt) in prompts().into_iter().enumerate() {
            let mut cache = target.contiguous_cache(4, 96, &device);
            let plain = plain_greedy(target, &mut cache, &prompt, &config);
            for gamma in [1, 3, 5] {
                let run = speculative_generate(
                    target,
                    &mut cache,
                    std::slice::from_ref(&prompt),
                    drafter,
                    Gamma::Fixed(gamma),
                    &config,
                    &mut greedy(),
                    &device,
                )
                .unwrap();
                let stats = run.stats;
                assert_eq!(run.tokens[0], plain, "{what}, prompt {i}, γ {gamma}");
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
            skip.paged_cache(64, 8, &device).unwrap(),
            &device,
        );
        check_greedy_exact(&target, &mut by_skip, "layer-skip");
        check_greedy_exact(&target, &mut PromptLookup { max_ngram: 3 }, "prompt lookup");
    }

    /// Greedy speculation of `max_new` tokens after [3, 4, 5] with the target drafting for
    /// itself: every drafted token is kept.
    fn self_drafted(max_new: usize, gamma: Gamma) -> SpecGeneration {
        let device = Default::default();
        let target = model(2, 32, 4);
        let mut same = drafter(&target);
        let mut cache = target.contiguous_cache(1, 96, &device);
        let config = GenerateConfig {
            max_new,
            stop: vec![],
        };
        speculative_generate(
            &target,
            &mut cache,
            &[vec![3, 4, 5]],
            &mut same,
            gamma,
            &config,
            &mut greedy(),
            &device,
        )
        .unwrap()
    }

    #[test]
    fn a_drafter_equal_to_the_target_is_always_accepted() {
        let run = self_drafted(20, Gamma::Fixed(4));
        let stats = run.stats;
        assert_eq!(run.tokens[0].len(), 20);
        assert_eq!(stats.accepted, stats.proposed, "{stats:?}");
        // 20 tokens at up to 5 per step: 4 steps.
        assert_eq!(stats.steps, 4);
    }

    /// Last-position logits of a fresh prefill of `text`.
    fn fresh_last(target: &Decoder<B>, text: &[u32]) -> Vec<f32> {
        let device = Default::default();
        let mut c = target.contiguous_cache(1, 96, &device);
        let seq = c.add_sequence().unwrap();
        let x = Tensor::<B, 2, Int>::from_data(
            TensorData::new(text.iter().map(|&t| t as i64).collect(), [1, text.len()]),
            &device,
        );
        last_logits(target.forward(x, &[seq], &mut c).unwrap()).remove(0)
    }

    fn rolled_back_then_next<C: KvCache<B>>(
        target: &Decoder<B>,
        mut cache: ModelCache<B, C>,
        text: &[u32],
        draft: &[u32],
        kept: usize,
        next: u32,
    ) -> (usize, Vec<f32>) {
        let device = Default::default();
        let ids = |t: &[u32]| {
            Tensor::<B, 2, Int>::from_data(
                TensorData::new(t.iter().map(|&x| x as i64).collect(), [1, t.len()]),
                &device,
            )
        };
        let seq = cache.add_sequence().unwrap();
        target.forward(ids(text), &[seq], &mut cache).unwrap();
        target.forward(ids(draft), &[seq], &mut cache).unwrap();
        cache.truncate(seq, text.len() + kept).unwrap();
        let len = cache.len(seq).unwrap();
        let y = target.forward(ids(&[next]), &[seq], &mut cache).unwrap();
        (len, last_logits(y).remove(0))
    }

    #[test]
    fn after_a_rejection_the_cache_holds_the_kept_prefix_and_continues_like_a_fresh_prefill() {
        let device = Default::default();
        let target = model(2, 32, 5);
        let text = [4u32, 9, 1, 30, 2, 7];
        let draft = [5u32, 6, 11, 3, 8];
        let (kept, next) = (1, 17);
        let mut want_text = text.to_vec();
        want_text.extend_from_slice(&draft[..kept]);
        want_text.push(next);
        let want = fresh_last(&target, &want_text);
        let contiguous = rolled_back_then_next(
            &target,
            target.contiguous_cache(1, 96, &device),
            &text,
            &draft,
            kept,
            next,
        );
        // Blocks of 8: 11 tokens held, rolled back to 7, frees the second block.
        let paged = rolled_back_then_next(
            &target,
            target.paged_cache(16, 8, &device).unwrap(),
            &text,
            &draft,
            kept,
            next,
        );
        for (name, (len, got)) in [("contiguous", contiguous), ("paged", paged)] {
            assert_eq!(len, text.len() + kept, "{name}");
            let d = max_abs_diff(&got, &want).unwrap();
            assert!(d < 1e-5, "{name}: {d}");
        }
    }

    #[test]
    fn batched_and_adaptive_speculation_equal_greedy_decoding_per_prompt() {
        let device = Default::default();
        let target = model(3, 32, 1);
        let draft = model(1, 16, 2);
        // Prompts of different lengths in one batch; prompt lookup drafts γ tokens for the
        // repetitive ones and none for the others, so drafts of different lengths (0 included)
        // share a verification step.
        let prompts = [
            vec![1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2],
            vec![7, 30, 12, 9],
            vec![3; 20],
            vec![5, 17, 2, 26, 11, 8],
        ];
        let config = GenerateConfig {
            max_new: 30,
            stop: vec![],
        };
        let mut cache = target.paged_cache(64, 8, &device).unwrap();
        let want: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| plain_greedy(&target, &mut cache, p, &config))
            .collect();
        let int4 = Assignment::uniform(QuantFormat::Int4 {
            group: 32,
            asym: false,
        });
        let (q, _) = quantize_decoder(&target, int4).unwrap();
        let skip = target.first_blocks(1).unwrap();
        let adaptive = Gamma::Adaptive { initial: 2, max: 6 };
        for gamma in [Gamma::Fixed(3), adaptive] {
            let mut drafters: Vec<(&str, Box<dyn Proposer>)> = vec![
                ("draft", Box::new(drafter(&draft))),
                ("int4-self", Box::new(drafter(&q))),
                ("layer-skip", Box::new(drafter(&skip))),
                ("prompt lookup", Box::new(PromptLookup { max_ngram: 3 })),
            ];
            for (name, d) in &mut drafters {
                for batch in [1, 3, 4] {
                    let mut tokens = Vec::new();
                    for group in prompts.chunks(batch) {
                        let run = speculative_generate(
                            &target,
                            &mut cache,
                            group,
                            d.as_mut(),
                            gamma,
                            &config,
                            &mut greedy(),
                            &device,
                        )
                        .unwrap();
                        let st = &run.stats;
                        assert_eq!(st.accepted_at.iter().sum::<usize>(), st.accepted);
                        assert!(st.proposed_at.len() <= gamma.max());
                        // vLLM's identity: 1 + Σ per-position acceptance = mean length.
                        let sum: f64 = (1..=st.accepted_at.len())
                            .map(|p| st.acceptance_at(p).unwrap())
                            .sum();
                        let mal = st.mean_accepted_length().unwrap();
                        assert!((1.0 + sum - mal).abs() <= 1e-12, "{name}: {sum} {mal}");
                        if *name == "prompt lookup" && batch == 4 {
                            // Some steps drafted nothing while others drafted.
                            assert!(st.proposed_at[0] > 0 && st.proposed_at[0] < st.steps);
                        }
                        tokens.extend(run.tokens);
                    }
                    assert_eq!(tokens, want, "{name}, {gamma:?}, batch {batch}");
                }
            }
        }
    }

    #[test]
    fn adaptive_gamma_grows_by_two_while_everything_is_kept() {
        let run = self_drafted(40, Gamma::Adaptive { initial: 1, max: 7 });
        // γ = 1, 3, 5, 7, 7, 7 emit 2, 4, 6, 8, 8, 8 tokens (36); the last 4 come from γ
        // clipped to 3. Steps that drafted position 1..7: 7, 6, 6, 4, 4, 3, 3.
        assert_eq!(run.stats.accepted, run.stats.proposed);
        assert_eq!(run.stats.steps, 7, "{:?}", run.stats);
        assert_eq!(run.stats.proposed_at, vec![7, 6, 6, 4, 4, 3, 3]);
        assert_eq!(run.stats.proposed, 1 + 3 + 5 + 7 + 7 + 7 + 3);
    }

    #[test]
    fn sampled_speculation_draws_the_first_token_from_the_target_distribution() {
        let device = Default::default();
        // Small random models have near-uniform logits; T = 0.1 sharpens them so that the
        // target and draft distributions differ clearly.
        let target = model(2, 32, 8);
        let draft = model(1, 16, 9);
        let prompt = vec![5u32, 1, 22, 7];
        let cfg = SamplingConfig::with_temperature(0.1);
        let p = Sampler::new(cfg, 0)
            .unwrap()
            .probs(&fresh_last(&target, &prompt))
            .unwrap();
        let q = Sampler::new(cfg, 0)
            .unwrap()
            .probs(&fresh_last(&draft, &prompt))
            .unwrap();
        let config = GenerateConfig {
            max_new: 3,
            stop: vec![],
        };
        let mut cache = target.contiguous_cache(1, 96, &device);
        let mut d = drafter(&draft);
        let mut sampler = Sampler::new(cfg, 11).unwrap();
        let n = 3000;
        let mut counts = vec![0usize; 32];
        for _ in 0..n {
            let run = speculative_generate(
                &target,
                &mut cache,
                std::slice::from_ref(&prompt),
                &mut d,
                Gamma::Fixed(2),
                &config,
                &mut sampler,
                &device,
            )
            .unwrap();
            counts[run.tokens[0][0] as usize] += 1;
        }
        let tv_p = super::tv(&counts, &p);
        let tv_q = super::tv(&counts, &q);
        let pq: f64 = p
            .iter()
            .zip(&q)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / 2.0;
        // 32 tokens at n = 3000: the expected empirical TV is about 0.04.
        assert!(tv_p < 0.07, "TV to the target {tv_p}");
        assert!(pq > 0.15, "target and draft too alike to tell apart: {pq}");
        assert!(tv_q > tv_p + 0.05, "TV to the draft {tv_q}");
    }
}
