//! *arith*: arithmetic accuracy of a model per answer format, and the tokens it generates.

use infermark_models::attention::MlaPath;
use infermark_models::decoder::Decoder;
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kernels::AttentionBackend;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::about::TEST_SEED;
use crate::zoo::corpus::{self, check_answer, detokenize, tokenize, Format, BUCKETS};
use crate::{Result, RunContext, SuiteError};

/// Per bucket and format: (bucket, format, accuracy, mean generated tokens), greedy decoding of
/// `problems` fresh problems per bucket (the same problems in both formats).
pub fn arith_eval<B: AttentionBackend>(
    model: &Decoder<B>,
    problems: usize,
    ctx: &RunContext,
    name: &str,
    device: &B::Device,
) -> Result<Vec<(u32, Format, f64, f64)>> {
    let mut rng = StdRng::seed_from_u64(TEST_SEED);
    let model = model.clone().with_mla_path(MlaPath::Absorbed);
    let mut out = Vec::new();
    for bucket in BUCKETS {
        let set: Vec<_> = (0..problems)
            .map(|_| corpus::problem(&mut rng, bucket))
            .collect();
        for format in Format::ALL {
            (ctx.progress)(&format!("{name}: arith {bucket}-digit {}", format.name()));
            // Training lines follow a newline; so do the prompts. All problems of a bucket
            // decode together, one token each per forward.
            let prompts: Vec<String> = set.iter().map(|p| p.prompt(format)).collect();
            let ids: Vec<Vec<u32>> = prompts
                .iter()
                .map(|p| tokenize(&format!("\n{p}")))
                .collect();
            let mut cache = model.contiguous_cache(ids.len(), model.max_seq_len(), device);
            let config = GenerateConfig {
                max_new: 96,
                stop: vec![b'\n' as u32],
            };
            let model_err = |error| SuiteError::Model {
                context: format!("generating arithmetic ({bucket} digits, {})", format.name()),
                error,
            };
            let mut sampler = Sampler::new(SamplingConfig::greedy(), 0).map_err(model_err)?;
            let gen = generate(&model, &mut cache, &ids, &config, &mut sampler, device)
                .map_err(model_err)?;
            let tokens: usize = gen.tokens.iter().map(Vec::len).sum();
            let right = prompts
                .iter()
                .zip(&gen.tokens)
                .filter(|(p, g)| check_answer(p, &detokenize(g)) == Some(true))
                .count();
            out.push((
                bucket,
                format,
                right as f64 / problems as f64,
                tokens as f64 / problems as f64,
            ));
        }
    }
    Ok(out)
}
