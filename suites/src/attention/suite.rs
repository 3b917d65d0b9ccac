//! The attention suite's cases, and the one dispatch from a case to its experiments.

use std::collections::BTreeMap;

use infermark_models::attention::{Attention, MlaPath};
use infermark_models::kernels::AttentionBackend;

use super::about::{sizes, ABOUT, NAME};
use super::decode::decode;
use super::equivalence::equivalence;
use super::kv_memory::kv_memory;
use super::prefill::prefill;
use super::presets;
use crate::metric::{
    DECODE_LATENCY_MS, FLOPS_PER_TOKEN, KV_CACHE_BYTES_PER_TOKEN,
    MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF,
};
use crate::recorder::Recorder;
use crate::Experiment;
use crate::{
    About, Case, MaturityInputs, Record, Result, RunContext, Scale, Scaling, Suite, SuiteError,
};

/// The attention suite.
pub struct AttentionSuite;

impl Suite for AttentionSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn cost(&self, case: &Case, scale: Scale) -> f64 {
        let preset = case.params.get("preset").map(String::as_str);
        match (scale, preset, case.variant.as_str()) {
            (Scale::Smoke, Some("tiny"), _) => 0.4,
            (Scale::Smoke, ..) => 0.01,
            // The naive MLA path re-expands the whole latent cache every step.
            (_, Some("deepseek-v2"), "mla-naive") => 190.0,
            (_, Some("deepseek-v2"), "mha") => 95.0,
            (_, Some("deepseek-v2"), _) => 30.0,
            _ => 7.0,
        }
    }

    fn report(&self) -> &'static crate::report::Section {
        &super::report::REPORT
    }

    fn variants(&self) -> Vec<&'static str> {
        presets::VARIANTS.to_vec()
    }

    /// Smoke: every experiment on the tiny presets, and memory and FLOPs (no timing) on the
    /// real-model shapes. Quick and full: every experiment on the real-model shapes.
    fn cases(&self, scale: Scale) -> Vec<Case> {
        let all = "kv_memory,flops,decode,prefill,equivalence";
        presets::all()
            .into_iter()
            .filter_map(|p| {
                let parts = match (scale, p.name) {
                    (Scale::Smoke, "tiny") => all,
                    (Scale::Smoke, _) => "kv_memory,flops",
                    (_, "tiny") => return None,
                    _ => all,
                };
                let params = BTreeMap::from([
                    ("preset".to_string(), p.name.to_string()),
                    ("parts".to_string(), parts.to_string()),
                ]);
                Some(Case {
                    variant: p.variant.into(),
                    params,
                })
            })
            .collect()
    }

    /// - S: the marginal cost of one more token of context, the slope of the whole layer's
    ///   decode step over `ctx` (per preset), against MHA's in the same preset: the KV cache a
    ///   step rereads is what these techniques shrink, and MHA is the design they are measured
    ///   against. MHA itself gets no S.
    /// - C: the spread of that step at the longest context, times the worst retention of:
    ///   MLA's absorbed path against the naive one (a relative deviation, 0 = identical), and
    ///   the validation perplexity of the lm suite's decoder trained alike with this attention
    ///   against the MHA one (twins: `target` is GQA, `target-mla` MLA). MQA has no trained
    ///   twin, so its C is not measured.
    /// - I: the cache bytes measured from the tensors and the absorbed-vs-naive deviation;
    ///   not the analytic bytes or FLOPs, which are formulas of the preset's shape.
    fn maturity(&self) -> MaturityInputs {
        MaturityInputs {
            scaling: Some(Scaling {
                metric: &DECODE_LATENCY_MS,
                filter: &[("part", "layer")],
                over: "ctx",
                group_by: "preset",
                reference: crate::suite::Reference::Variant("mha"),
            }),
            accuracy: &[
                crate::suite::Accuracy {
                    metric: &MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF,
                    reference: crate::suite::Reference::Relative,
                },
                // What the attention variant costs in model quality: validation perplexity of
                // the decoders trained alike with each attention (the lm suite's twins).
                crate::suite::Accuracy {
                    metric: &crate::metric::VALID_PERPLEXITY,
                    reference: crate::suite::Reference::Twins(&TWINS),
                },
            ],
            outcomes: &[
                &KV_CACHE_BYTES_PER_TOKEN,
                &MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF,
            ],
        }
    }
}

/// The lm suite's decoders trained with the same recipe and budget, one per attention.
const TWINS: crate::suite::Twins = crate::suite::Twins {
    suite: crate::lm::about::NAME,
    twins: &[
        ("mha", "target-mha"),
        ("gqa", "target"),
        ("mla-naive", "target-mla"),
        ("mla-absorbed", "target-mla"),
    ],
    reference: "mha",
};

impl Experiment for AttentionSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let name = case
            .params
            .get("preset")
            .map(String::as_str)
            .unwrap_or_default();
        let preset = presets::find(name, &case.variant).ok_or_else(|| SuiteError::Unknown {
            kind: "attention preset",
            name: format!("{name}/{}", case.variant),
            known: presets::all()
                .iter()
                .map(|p| format!("{}/{}", p.name, p.variant))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let parts = case.params.get("parts").cloned().unwrap_or_default();
        let sizes = sizes(ctx.scale);
        let base = BTreeMap::from([
            ("preset".to_string(), preset.name.to_string()),
            ("batch".to_string(), "1".to_string()),
        ]);
        let mut rec = Recorder::new(ctx, NAME, preset.variant, base);
        let has = |p: &str| parts.split(',').any(|x| x == p);
        let label = format!("{}/{}", preset.name, preset.variant);

        if has("kv_memory") {
            (ctx.progress)(&format!("{label}: KV memory"));
            kv_memory::<B>(&preset.shape, &mut rec, device)?;
        }
        if has("flops") {
            for &t in sizes.contexts {
                rec.metric("flops", &FLOPS_PER_TOKEN)
                    .params(&[("ctx", t.to_string())])
                    .value(preset.shape.decode_flops(t))?;
            }
        }
        if !(has("decode") || has("prefill") || has("equivalence")) {
            return Ok(rec.records);
        }
        (ctx.progress)(&format!("{label}: initialising weights"));
        let layer = preset
            .shape
            .init::<B>(device)
            .map_err(SuiteError::model("layer init"))?;
        if has("decode") {
            for &t in sizes.contexts {
                (ctx.progress)(&format!("{label}: decode at context {t}"));
                decode::<B>(&layer, &preset.shape, t, sizes.plan, &mut rec, device)?;
            }
        }
        if has("prefill") {
            (ctx.progress)(&format!("{label}: prefill of {} tokens", sizes.prefill));
            prefill::<B>(
                &layer,
                &preset.shape,
                sizes.prefill,
                sizes.plan,
                &mut rec,
                device,
            )?;
        }
        if has("equivalence") {
            if let Attention::Mla(mla) = &layer {
                if mla.path() == MlaPath::Absorbed {
                    (ctx.progress)(&format!("{label}: absorbed vs naive"));
                    let (prefix, steps) = sizes.equivalence;
                    equivalence::<B>(mla, preset.shape.d_model(), prefix, steps, &mut rec, device)?;
                }
            }
        }
        Ok(rec.records)
    }
}
