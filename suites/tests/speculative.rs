//! Greedy speculative decoding on the committed byte-level models gives plain greedy decoding's
//! tokens, for every drafter: the trained draft model, the target quantized to INT4 (g32), the
//! target's first two blocks (layer skip) and prompt lookup.

use burn::backend::Flex;
use infermark_models::generation::speculative::{
    speculative_generate, verify_sampled, Gamma, ModelDrafter, PromptLookup, Proposer,
};
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::quant::{quantize_decoder, Assignment, QuantFormat};
use infermark_suites::zoo::{checkpoint, corpus};

type B = Flex;

#[test]
fn greedy_speculative_output_equals_greedy_output_on_the_trained_models() {
    let dev = Default::default();
    let (target, _) = checkpoint::load::<B>(&checkpoint::committed("target"), &dev).unwrap();
    let (draft, _) = checkpoint::load::<B>(&checkpoint::committed("draft"), &dev).unwrap();
    let text = corpus::tokenize(&corpus::stories_split().valid);
    let prompts: Vec<Vec<u32>> = (0..3)
        .map(|i| text[i * 5000..i * 5000 + 48].to_vec())
        .collect();
    let config = GenerateConfig {
        max_new: 48,
        stop: vec![],
    };
    let greedy = || Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let int4 = Assignment::uniform(QuantFormat::Int4 {
        group: 32,
        asym: false,
    });
    let (quantized, _) = quantize_decoder(&target, int4).unwrap();
    let skip = target.first_blocks(2).unwrap();
    let drafter = |m: &infermark_models::decoder::Decoder<B>| -> Box<dyn Proposer> {
        Box::new(ModelDrafter::new(
            m.clone(),
            m.contiguous_cache(3, 256, &dev),
            &dev,
        ))
    };
    let drafters: Vec<(&str, Box<dyn Proposer>)> = vec![
        ("draft", drafter(&draft)),
        ("int4-self", drafter(&quantized)),
        ("layer-skip", drafter(&skip)),
        ("prompt-lookup", Box::new(PromptLookup { max_ngram: 3 })),
    ];
    let mut cache = target.contiguous_cache(3, 256, &dev);
    let plain: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            generate(
                &target,
                &mut cache,
                std::slice::from_ref(p),
                &config,
                &mut greedy(),
                &dev,
            )
            .unwrap()
            .tokens
            .remove(0)
        })
        .collect();
    for (name, mut d) in drafters {
        // One prompt at a time, then all three as one batch.
        for r in [0..1, 1..2, 2..3, 0..3] {
            let p = &prompts[r.clone()];
            let run = speculative_generate(
                &target,
                &mut cache,
                p,
                d.as_mut(),
                Gamma::Fixed(3),
                &config,
                &mut greedy(),
                &dev,
            )
            .unwrap();
            assert_eq!(run.tokens, &plain[r], "{name}");
            assert!(run.stats.accepted <= run.stats.proposed, "{name}");
        }
    }
}

/// Total variation distance between two count vectors.
fn tv(a: &[usize], b: &[usize]) -> f64 {
    let (na, nb) = (
        a.iter().sum::<usize>() as f64,
        b.iter().sum::<usize>() as f64,
    );
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 / na - y as f64 / nb).abs())
        .sum::<f64>()
        / 2.0
}

#[test]
fn sampled_speculation_with_the_trained_pair_draws_from_the_target_distribution() {
    // The trained target and draft on a fixed story prefix at T = 1: sample the next token
    // many times by the rule (draft from q, keep or draw from the residual) and plainly from p.
    let dev = Default::default();
    let (target, _) = checkpoint::load::<B>(&checkpoint::committed("target"), &dev).unwrap();
    let (draft, _) = checkpoint::load::<B>(&checkpoint::committed("draft"), &dev).unwrap();
    let text = corpus::tokenize(&corpus::stories_split().valid);
    let mut sampler = Sampler::new(SamplingConfig::with_temperature(1.0), 5).unwrap();
    let last = |m: &infermark_models::decoder::Decoder<B>, prefix: &[u32]| {
        let mut c = m.contiguous_cache(1, 256, &dev);
        let seq = c.add_sequence().unwrap();
        let x = burn::tensor::Tensor::<B, 2, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(
                prefix.iter().map(|&t| t as i64).collect(),
                [1, prefix.len()],
            ),
            &dev,
        );
        let l = infermark_models::generation::last_logits(m.forward(x, &[seq], &mut c).unwrap());
        sampler.probs(&l[0]).unwrap()
    };
    // A prefix where the two models disagree (the draft is the weaker model).
    let (p, q) = (0..64)
        .map(|i| {
            let prefix = &text[i * 97..i * 97 + 40];
            (last(&target, prefix), last(&draft, prefix))
        })
        .max_by(|a, b| dist(&a.0, &a.1).total_cmp(&dist(&b.0, &b.1)))
        .unwrap();
    let n = 40_000;
    let (mut spec, mut plain) = (vec![0usize; 256], vec![0usize; 256]);
    for _ in 0..n {
        let x = sampler.draw(&q);
        let o = verify_sampled(
            &[p.clone(), p.clone()],
            Some(std::slice::from_ref(&q)),
            &[x],
            &mut sampler,
        );
        spec[(if o.accepted == 1 { x } else { o.next_token }) as usize] += 1;
        plain[sampler.draw(&p) as usize] += 1;
    }
    let support = p
        .iter()
        .zip(&q)
        .filter(|(a, b)| **a > 1e-3 || **b > 1e-3)
        .count();
    // Two empirical distributions over k tokens at n = 40,000 each: TV ≈ 0.5·Σ|noise|, about
    // 0.004·√k; 0.03 allows k up to ~50.
    assert!(support <= 50, "support {support}");
    let q_counts: Vec<usize> = q
        .iter()
        .map(|&x| (x as f64 * n as f64).round() as usize)
        .collect();
    assert!(dist(&p, &q) > 0.1, "pair too alike: {}", dist(&p, &q));
    assert!(tv(&spec, &plain) < 0.03, "TV {}", tv(&spec, &plain));
    assert!(
        tv(&spec, &q_counts) > 0.08,
        "the draft's distribution would be caught"
    );
}

/// Total variation distance between two distributions.
fn dist(p: &[f32], q: &[f32]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / 2.0
}
