//! The `lm` suite: evaluates the trained reference models (or a user's checkpoint) on their
//! validation split: perplexity against the unigram baseline, and for `arith` the per-bucket
//! accuracy and generated length of the direct and the step-by-step format.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use infermark_models::attention::MlaPath;
use infermark_models::decoder::{preset, CorpusKind, Decoder};
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kernels::AttentionBackend;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::metric::{
    ARITH_ACCURACY, ARITH_GENERATED_TOKENS, EVAL_TOKENS_PER_S, PARAM_COUNT, UNIGRAM_PERPLEXITY,
    VALID_PERPLEXITY,
};
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::zoo::corpus::{self, check_answer, detokenize, tokenize, Format, BUCKETS};
use crate::zoo::hf;
use crate::zoo::train::mean_nll;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Suite, SuiteError};

/// The suite's name on the command line and in records.
pub const NAME: &str = "lm";

/// The committed models, evaluated by `infermark run`.
pub const MODELS: [&str; 5] = ["target", "target-mha", "target-mla", "draft", "arith"];

/// Seed of the arithmetic test problems (disjoint from the training and validation streams).
pub const TEST_SEED: u64 = 3;

/// The trained-model evaluation suite.
pub struct LmSuite;

struct Sizes {
    /// Validation bytes scored (the whole split is 64 KiB).
    valid_bytes: usize,
    /// Arithmetic problems per bucket and format.
    problems: usize,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            valid_bytes: 4 << 10,
            problems: 4,
        },
        Scale::Quick => Sizes {
            valid_bytes: 64 << 10,
            problems: 50,
        },
        Scale::Full => Sizes {
            valid_bytes: 64 << 10,
            problems: 250,
        },
    }
}

/// What the suite is.
const ABOUT: About = About {
    name: NAME,
    description: "trained reference models: validation perplexity vs the unigram baseline, arithmetic accuracy direct vs step by step",
    experiments: &[
            (
                "perplexity",
                "valid_perplexity and unigram_perplexity on the validation split",
            ),
            (
                "arith",
                "arith_accuracy and arith_generated_tokens per bucket and format",
            ),
            (
                "speed",
                "real model: prefill/decode_tokens_per_s and weight_read_gbps, f32 and native weights, f32 and int8 activations (A/B pairs)",
            ),
            (
                "profile",
                "real model: step_time_share per part of a batch-1 decode step, and the step's decode_latency_ms",
            ),
        ],
};

impl Suite for LmSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn variants(&self) -> Vec<&'static str> {
        let mut v = MODELS.to_vec();
        v.push(crate::zoo::real::REAL);
        v
    }

    /// One case per committed model (smoke: `target`, `target-mla` (the MLA decoder, so its
    /// loading and decoding are gated too) and `arith`), and the real model
    /// when it has been fetched.
    fn cases(&self, scale: Scale) -> Vec<Case> {
        let models: &[&str] = match scale {
            Scale::Smoke => &["target", "target-mla", "arith"],
            _ => &MODELS,
        };
        let mut cases: Vec<Case> = models.iter().map(|m| model_case(m, None)).collect();
        if let Some(p) = crate::zoo::real::fetched() {
            cases.push(model_case(crate::zoo::real::REAL, Some(p)));
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        match crate::zoo::gguf::smollm2() {
            Ok(_) => Vec::new(),
            Err(why) => vec![format!("no {} rows: {why}", crate::zoo::real::REAL)],
        }
    }

    /// - S: nothing is swept over a size here (one prompt length), so S is not measured.
    /// - C: no spread of a swept cost, so predictability is not measured; retention is
    ///   validation perplexity against MHA trained on the same budget and recipe
    ///   (`target-mha`), for the GQA and MLA models, and a real model's native (quantized)
    ///   weights against the same file dequantized to FP32 (`weights = f32`).
    /// - I: what evaluating a model produces (validation perplexity, arithmetic accuracy and
    ///   answer length); not parameter counts, weight bytes or the unigram baseline, which do
    ///   not depend on the model's code.
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::metric as m;
        use crate::suite::{Accuracy, MaturityInputs, Reference};
        MaturityInputs {
            scaling: None,
            accuracy: &[
                Accuracy {
                    metric: &m::VALID_PERPLEXITY,
                    reference: Reference::Variant("target-mha"),
                },
                Accuracy {
                    metric: &m::VALID_PERPLEXITY,
                    reference: Reference::Param("weights", "f32"),
                },
            ],
            outcomes: &[
                &m::VALID_PERPLEXITY,
                &m::ARITH_ACCURACY,
                &m::ARITH_GENERATED_TOKENS,
            ],
        }
    }
}

/// The case evaluating model `name` from the committed checkpoint, or from `checkpoint` (a stem
/// written by `infermark train`, a Hugging Face Llama directory, or a GGUF file).
pub fn model_case(name: &str, checkpoint: Option<PathBuf>) -> Case {
    let mut params = BTreeMap::from([("preset".to_string(), name.to_string())]);
    if let Some(c) = checkpoint {
        params.insert("checkpoint".into(), c.display().to_string());
    }
    Case {
        variant: name.into(),
        params,
    }
}

impl Experiment for LmSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let name = case.variant.clone();
        let s = sizes(ctx.scale);
        let path = case.params.get("checkpoint").map(PathBuf::from);
        let mut rec = Recorder::new(ctx, NAME, &name, BTreeMap::new());
        (ctx.progress)(&format!("{name}: loading"));
        if let Some(file) = path.as_ref().filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        }) {
            super::real::run::<B>(&mut rec, file, ctx, device)?;
            return Ok(rec.records);
        }
        if let Some(dir) = path.as_ref().filter(|p| p.is_dir()) {
            let (model, tok) = hf::load_dir::<B>(dir, device)?;
            let split = corpus::stories_split();
            let ids = tok.encode(&split.valid[..s.valid_bytes.min(split.valid.len())])?;
            perplexity_records(&mut rec, &model, &ids, 128, None, device)?;
            return Ok(rec.records);
        }
        let stem = path.unwrap_or_else(|| checkpoint::committed(&name));
        let (model, card) = checkpoint::load::<B>(&stem, device)?;
        let kind = preset(&card.name).map(|p| p.corpus);
        let split = match kind {
            Some(CorpusKind::Arith) => corpus::arithmetic_split(),
            _ => corpus::stories_split(),
        };
        rec.metric("perplexity", &PARAM_COUNT)
            .stat(crate::Stat::Exact, 1)
            .value(card.param_count as f64)?;
        let n = s.valid_bytes.min(split.valid.len());
        let unigram = corpus::unigram_perplexity(&split.train, &split.valid[..n]);
        let ids = tokenize(&split.valid[..n]);
        (ctx.progress)(&format!("{name}: perplexity"));
        perplexity_records(&mut rec, &model, &ids, card.seq_len, Some(unigram), device)?;
        if kind == Some(CorpusKind::Arith) {
            for (bucket, format, acc, toks) in arith_eval(&model, s.problems, ctx, &name, device)? {
                let extra = [
                    ("bucket_digits", bucket.to_string()),
                    ("format", format.name().to_string()),
                ];
                rec.metric("arith", &ARITH_ACCURACY)
                    .stat(crate::Stat::Mean, s.problems)
                    .params(&extra)
                    .value(acc)?;
                rec.metric("arith", &ARITH_GENERATED_TOKENS)
                    .stat(crate::Stat::Mean, s.problems)
                    .params(&extra)
                    .value(toks)?;
            }
        }
        Ok(rec.records)
    }
}

fn perplexity_records<B: AttentionBackend>(
    rec: &mut Recorder,
    model: &Decoder<B>,
    ids: &[u32],
    seq_len: usize,
    unigram: Option<f64>,
    device: &B::Device,
) -> Result<()> {
    let t0 = Instant::now();
    let nll = mean_nll(model, ids, seq_len, 16, device)?;
    let scored = ids.len() / seq_len * (seq_len - 1);
    let extra = [("tokens", scored.to_string())];
    rec.metric("perplexity", &VALID_PERPLEXITY)
        .stat(crate::Stat::Exact, scored)
        .params(&extra)
        .value(nll.exp())?;
    if let Some(u) = unigram {
        rec.metric("perplexity", &UNIGRAM_PERPLEXITY)
            .stat(crate::Stat::Exact, scored)
            .params(&extra)
            .value(u)?;
    }
    // One timed pass: a single sample, not an exact value.
    rec.metric("perplexity", &EVAL_TOKENS_PER_S)
        .stat(crate::Stat::Median, 1)
        .params(&extra)
        .value(scored as f64 / t0.elapsed().as_secs_f64())?;
    Ok(())
}

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
