//! The KV cache suite's cases, and the one dispatch from a case to its experiment.

use std::collections::BTreeMap;

use infermark_models::kernels::AttentionBackend;

use super::about::{sizes, ABOUT, MAX_LEN};
use super::decode;
use super::equivalence::equivalence;
use super::overhead::overhead;
use super::real_model::real_model;
use super::sharing::sharing;
use super::trace_replay::{run_trace, traces};
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Suite, SuiteError};

/// The KV cache suite.
pub struct KvCacheSuite;

impl Suite for KvCacheSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn cost(&self, case: &Case, scale: Scale) -> f64 {
        let quick = scale != Scale::Smoke;
        match case.params.get("part").map(String::as_str) {
            Some("traces") => {
                if quick {
                    160.0
                } else {
                    2.0
                }
            }
            Some("overhead") => {
                if quick {
                    10.0
                } else {
                    0.1
                }
            }
            Some("model") => 0.8,
            _ => 0.05,
        }
    }

    fn report(&self) -> &'static crate::report::Section {
        &super::report::REPORT
    }

    fn variants(&self) -> Vec<&'static str> {
        vec!["contiguous", "orca-pow2", "orca-oracle", "paged"]
    }

    /// One case per trace (capacity, throughput and sharing), then overhead and equivalence.
    fn cases(&self, _scale: Scale) -> Vec<Case> {
        let case = |variant: &str, part: &str| Case {
            variant: variant.into(),
            params: BTreeMap::from([
                ("preset".to_string(), part.to_string()),
                ("part".to_string(), part.to_string()),
            ]),
        };
        let mut cases = vec![
            case("paged", "traces"),
            case("paged", "overhead"),
            case("paged", "equivalence"),
        ];
        if crate::zoo::gguf::smollm2().is_ok() {
            cases.push(case("paged", "model"));
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        crate::zoo::real::missing("real-model capacity")
    }

    /// - S: the marginal cost of one more token of context in the attention step over the
    ///   cache (`overhead`, `part = core`, over `ctx`, per block size) against the contiguous
    ///   cache's: what paging costs per token it reads through a block table. Contiguous is the
    ///   reference and gets no S.
    /// - C: the spread of that step at the longest context; retention = 1 − the largest
    ///   |paged − contiguous| attention output (outputs are O(1), so the absolute difference
    ///   reads as a relative one).
    /// - I: what the block-pool simulation and the equivalence check produce (fragmentation,
    ///   admitted sequences, peak bytes, preemptions, bytes saved by sharing, the paged
    ///   difference); not the model rows' bytes per token, a formula of the model's shape.
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::metric as m;
        use crate::suite::{Accuracy, MaturityInputs, Reference, Scaling};
        MaturityInputs {
            scaling: Some(Scaling {
                metric: &m::DECODE_LATENCY_MS,
                filter: &[("part", "core")],
                over: "ctx",
                group_by: "block_size",
                reference: Reference::Variant("contiguous"),
            }),
            accuracy: &[Accuracy {
                metric: &m::PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF,
                reference: Reference::Relative,
            }],
            outcomes: &[
                &m::KV_FRAGMENTATION,
                &m::MAX_CONCURRENT_SEQUENCES,
                &m::KV_BYTES_RESERVED_PEAK,
                &m::KV_BYTES_USED_PEAK,
                &m::PREEMPTIONS,
                &m::RECOMPUTED_TOKENS,
                &m::KV_BYTES_SAVED_BY_SHARING,
                &m::PAGED_VS_CONTIGUOUS_MAX_ABS_DIFF,
            ],
        }
    }
}

impl Experiment for KvCacheSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let part = case
            .params
            .get("part")
            .map(String::as_str)
            .unwrap_or_default();
        let s = sizes(ctx.scale);
        let mut records = Vec::new();
        match part {
            "traces" => {
                let cfg = decode::config(s.stack, MAX_LEN + 64);
                let model = cfg.init::<B>(device).map_err(|error| SuiteError::Model {
                    context: "throughput model".into(),
                    error,
                })?;
                let bpt = cfg.kv_elems_per_token() * cfg.n_layers * 4;
                for trace in traces(ctx, s.requests)? {
                    records.extend(run_trace(&trace, &model, bpt, &s, ctx, device)?);
                }
                for &block in s.block_sizes {
                    records.extend(sharing(ctx, block, bpt)?);
                }
            }
            "overhead" => records.extend(overhead::<B>(&s, ctx, device)?),
            "equivalence" => records.extend(equivalence::<B>(&s, ctx, device)?),
            "model" => records.extend(real_model::<B>(ctx, device)?),
            other => {
                return Err(SuiteError::Unknown {
                    kind: "kv_cache case",
                    name: other.into(),
                    known: "traces, overhead, equivalence, model".into(),
                })
            }
        }
        Ok(records)
    }
}
