//! The lm suite's cases, and the one dispatch from a case to its experiments.

use std::collections::BTreeMap;
use std::path::PathBuf;

use infermark_models::decoder::{preset, CorpusKind};
use infermark_models::kernels::AttentionBackend;

use super::about::PERPLEXITY_EXPERIMENT;
use super::about::{sizes, ABOUT, MODELS, NAME};
use super::arith::arith_eval;
use super::perplexity::perplexity_records;
use crate::metric::{ARITH_ACCURACY, ARITH_GENERATED_TOKENS, PARAM_COUNT};
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::zoo::corpus::{self, tokenize};
use crate::zoo::hf;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Suite};

/// The trained-model evaluation suite.
pub struct LmSuite;

impl Suite for LmSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn report(&self) -> &'static crate::report::Section {
        &super::report::REPORT
    }

    fn cost(&self, case: &Case, scale: Scale) -> f64 {
        let real = case.variant == crate::zoo::real::REAL;
        match (scale, real) {
            (Scale::Smoke, true) => 11.0,
            (Scale::Smoke, false) => 0.3,
            (_, true) => 55.0,
            (_, false) => 2.5,
        }
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
        // The fetched real model by name only: its path is resolved when the case runs, so the
        // case list is the same on every machine (sharded runs compare case lists).
        if crate::zoo::real::fetched().is_some() {
            cases.push(model_case(crate::zoo::real::REAL, None));
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        crate::zoo::real::missing(crate::zoo::real::REAL)
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
        let path = case
            .params
            .get("checkpoint")
            .map(PathBuf::from)
            .or_else(|| (name == crate::zoo::real::REAL).then(crate::zoo::real::fetched)?);
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
        rec.metric(PERPLEXITY_EXPERIMENT, &PARAM_COUNT)
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
