//! The quantization suite's cases, and the one dispatch from a case to its experiments.

use std::collections::BTreeMap;

use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::int_dot::{self};
use infermark_models::quant::{Assignment, QuantFormat};

use super::about::{mixed, sizes, variant_names, ABOUT, FP8_TRAINING, MIXED, NAME};
use super::decode_speed::decode_records;
use super::fp8_training;
use super::layer_speed::{activation_records, speed_records};
use super::model_accuracy::model_records;
use super::real;
use super::tensor::tensor_records;
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::zoo::real::REAL;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Suite, SuiteError};

/// The quantization suite.
pub struct QuantizationSuite;

impl Suite for QuantizationSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn cost(&self, case: &Case, scale: Scale) -> f64 {
        let quick = scale != Scale::Smoke;
        match case.variant.as_str() {
            // The calibrated rows (imatrix, GPTQ: a pass over the calibration text and a solve
            // per projection; AWQ: 20 trial passes per block) dominate: up to two minutes each
            // at quick.
            REAL => {
                if quick {
                    1300.0
                } else {
                    90.0
                }
            }
            MIXED => {
                if quick {
                    2.5
                } else {
                    0.3
                }
            }
            // Two trainings of target: 150 steps each at quick, 4 at smoke.
            FP8_TRAINING => {
                if quick {
                    250.0
                } else {
                    8.0
                }
            }
            _ => {
                if quick {
                    9.5
                } else {
                    0.4
                }
            }
        }
    }

    fn report(&self) -> &'static crate::report::Section {
        &super::report::REPORT
    }

    fn variants(&self) -> Vec<&'static str> {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        NAMES
            .get_or_init(|| {
                let mut v = variant_names();
                v.extend([
                    REAL.to_string(),
                    real::NATIVE.to_string(),
                    FP8_TRAINING.to_string(),
                ]);
                v
            })
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// One case per format (the mixed assignment has no tensor or speed part of its own), one
    /// for FP8 training against FP32, and one for the real model's rows when it has been
    /// fetched.
    fn cases(&self, _scale: Scale) -> Vec<Case> {
        let mut cases: Vec<Case> = variant_names()
            .into_iter()
            .map(|v| Case {
                params: BTreeMap::from([("preset".to_string(), "target".to_string())]),
                variant: v,
            })
            .collect();
        cases.push(Case {
            params: BTreeMap::from([("preset".to_string(), "target".to_string())]),
            variant: FP8_TRAINING.into(),
        });
        if crate::zoo::gguf::smollm2().is_ok() {
            cases.push(Case {
                params: BTreeMap::from([("preset".to_string(), REAL.to_string())]),
                variant: REAL.into(),
            });
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        crate::zoo::real::missing(REAL)
    }

    /// - S: the marginal cost of one more weight in a one-row product (decode, `rows = 1`) over
    ///   the weight matrix's elements, against burn's FP32 product timed alternately beside it
    ///   (`baseline = burn-f32`): what a format costs per weight it reads and decodes.
    /// - C: the spread of that product at the largest shape; retention = FP32 perplexity /
    ///   the variant's perplexity on the same model and tokens (capped at 1). FP32 is the
    ///   reference and gets no retention.
    /// - I: what quantizing and evaluating produce (weight errors, SQNR, exact round trips,
    ///   perplexity, KL, top-1 agreement); not bits per weight, model bytes or compression,
    ///   formulas of the format and shapes.
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::metric as m;
        use crate::suite::{Accuracy, MaturityInputs, Reference, Scaling};
        MaturityInputs {
            scaling: Some(Scaling {
                metric: &m::MATVEC_LATENCY_MS,
                filter: &[("rows", "1")],
                over: "shape",
                group_by: "rows",
                reference: Reference::Param("baseline", "burn-f32"),
            }),
            accuracy: &[Accuracy {
                metric: &m::PERPLEXITY,
                reference: Reference::Variant("f32"),
            }],
            outcomes: &[
                &m::WEIGHT_RMSE,
                &m::WEIGHT_MAX_ABS_ERR,
                &m::SQNR_DB,
                &m::EXACT_ROUNDTRIP,
                &m::PERPLEXITY,
                &m::PERPLEXITY_DELTA_PCT,
                &m::KL_DIVERGENCE_MEAN,
                &m::KL_DIVERGENCE_P99,
                &m::TOP1_AGREEMENT,
                &m::VALID_LOSS,
                &m::VALID_LOSS_GAP_PCT,
            ],
        }
    }
}

impl Experiment for QuantizationSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let variant = case.variant.as_str();
        if variant == REAL {
            return real::run::<B>(ctx, device);
        }
        if variant == FP8_TRAINING {
            return fp8_training::run::<B>(ctx, device);
        }
        let s = sizes(ctx.scale);
        let mut rec = Recorder::new(ctx, NAME, variant, BTreeMap::new());
        let (assign, format) = if variant == MIXED {
            (mixed(), None)
        } else {
            let f: QuantFormat = variant.parse().map_err(|e| SuiteError::Model {
                context: "quantization variant".into(),
                error: e,
            })?;
            (Assignment::uniform(f), Some(f))
        };
        (ctx.progress)(&format!("{variant}: loading target"));
        let (model, card) = checkpoint::load::<B>(&checkpoint::committed("target"), device)?;
        if let Some(f) = format {
            (ctx.progress)(&format!("{variant}: tensor error"));
            tensor_records::<B>(&mut rec, f, &model, &s, ctx.seed, device)?;
        }
        (ctx.progress)(&format!("{variant}: model accuracy"));
        model_records(&mut rec, &model, assign, card.seq_len, &s, device)?;
        // FP32 runs burn's own product and decoder on both sides of each pair (the baseline
        // against itself: a check on the pairing, speedup ≈ 1).
        if let Some(f) = format {
            (ctx.progress)(&format!("{variant}: layer speed"));
            speed_records::<B>(&mut rec, f, &model, &s, device)?;
            if int_dot::supports(f) {
                (ctx.progress)(&format!("{variant}: f32 against int8 activations"));
                activation_records::<B>(&mut rec, f, &s, device)?;
            }
        }
        (ctx.progress)(&format!("{variant}: decode speed"));
        decode_records::<B>(&mut rec, &model, assign, &s, device)?;
        Ok(rec.records)
    }
}
