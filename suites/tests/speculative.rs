//! Greedy speculative decoding on the committed byte-level models gives plain greedy decoding's
//! tokens, for every drafter: the trained draft model, the target quantized to INT4 (g32), the
//! target's first two blocks (layer skip) and prompt lookup.

use burn::backend::Flex;
use infermark_models::generation::speculative::{
    speculative_generate, ModelDrafter, PromptLookup, Proposer,
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
        Box::new(ModelDrafter::new(m.clone(), m.contiguous_cache(1, 256, &dev), &dev).unwrap())
    };
    let drafters: Vec<(&str, Box<dyn Proposer>)> = vec![
        ("draft", drafter(&draft)),
        ("int4-self", drafter(&quantized)),
        ("layer-skip", drafter(&skip)),
        ("prompt-lookup", Box::new(PromptLookup { max_ngram: 3 })),
    ];
    let mut cache = target.contiguous_cache(1, 256, &dev);
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
        let (mut proposed, mut accepted) = (0, 0);
        for (p, want) in prompts.iter().zip(&plain) {
            let (got, stats) = speculative_generate(
                &target,
                &mut cache,
                p,
                d.as_mut(),
                3,
                &config,
                &mut greedy(),
                &dev,
            )
            .unwrap();
            assert_eq!(&got, want, "{name}");
            proposed += stats.proposed;
            accepted += stats.accepted;
        }
        assert!(accepted <= proposed, "{name}");
    }
}
