//! The AdaCoT suite's cases, and the one dispatch from a case to its experiment.

use std::collections::BTreeMap;

use infermark_models::kernels::AttentionBackend;

use super::about::{adaptive_name, sizes, ABOUT, LAMBDAS};
use super::gates_case::gates_case;
use super::{rl_case, slm, workloads};
use crate::metric as m;
use crate::zoo::checkpoint;
use crate::{About, Case, Experiment, Record, Result, RunContext, Scale, Suite, SuiteError};

/// The adacot suite.
pub struct AdacotSuite;

impl Suite for AdacotSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn cost(&self, case: &Case, scale: Scale) -> f64 {
        let quick = scale != Scale::Smoke;
        match case.variant.as_str() {
            "slm" => {
                if quick {
                    28.0
                } else {
                    2.8
                }
            }
            "rl" => {
                if quick {
                    9.0
                } else {
                    1.5
                }
            }
            _ => {
                if quick {
                    12.0
                } else {
                    0.8
                }
            }
        }
    }

    fn report(&self) -> &'static crate::report::Section {
        &super::report::REPORT
    }

    fn variants(&self) -> Vec<&'static str> {
        vec!["gates", "rl", "slm"]
    }

    /// One case per workload (every gate on the same problems), and the RL comparison.
    fn cases(&self, _scale: Scale) -> Vec<Case> {
        let mut cases: Vec<Case> = workloads::WORKLOADS
            .iter()
            .map(|w| Case {
                variant: "gates".into(),
                params: BTreeMap::from([
                    ("preset".to_string(), "arith".to_string()),
                    ("workload".to_string(), w.name.to_string()),
                ]),
            })
            .collect();
        for variant in ["rl", "slm"] {
            cases.push(Case {
                variant: variant.into(),
                params: BTreeMap::from([("preset".to_string(), "arith".to_string())]),
            });
        }
        cases
    }

    fn notices(&self, _scale: Scale) -> Vec<String> {
        let missing: Vec<String> = LAMBDAS
            .iter()
            .map(|&l| adaptive_name(l))
            .filter(|n| !checkpoint::paths(&checkpoint::committed(n)).1.exists())
            .collect();
        if missing.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "no learned-gate rows for {} (not trained; `infermark train --model arith-adaptive --lambda L`)",
                missing.join(", ")
            )]
        }
    }

    /// - S: the marginal response tokens per problem as problems get one digit harder, on the
    ///   balanced mix, against always-think's (each gate setting its own sweep).
    /// - C: predictability of response tokens at the hardest bucket (1 − (p90 − min) / median
    ///   over its problems: a gate that thinks on some and not others is less predictable)
    ///   times accuracy retention of every gate against always-think on the same problems
    ///   (`accuracy`, reference variant `always`).
    /// - I: the deterministic outcomes of gating: accuracy, trigger rate, tokens, precision and
    ///   recall, format errors.
    fn maturity(&self) -> crate::suite::MaturityInputs {
        use crate::suite::{Accuracy, MaturityInputs, Reference, Scaling};
        MaturityInputs {
            // Response tokens per problem as problems get harder (digits of the larger
            // operand), on the balanced mix, against always thinking; each gate setting is
            // its own sweep.
            scaling: Some(Scaling {
                metric: &m::RESPONSE_TOKENS,
                filter: &[("workload", "balanced")],
                over: "digits",
                group_by: Scaling::EVERY_OTHER_PARAM,
                reference: Reference::Variant("always"),
            }),
            accuracy: &[Accuracy {
                metric: &m::ACCURACY,
                reference: Reference::Variant("always"),
            }],
            outcomes: &[
                &m::ACCURACY,
                &m::COT_TRIGGER_RATE,
                &m::MEAN_RESPONSE_TOKENS,
                &m::RESPONSE_TOKENS,
                &m::GATE_PRECISION,
                &m::GATE_RECALL,
                &m::FORMAT_ERROR_RATE,
            ],
        }
    }
}

impl Experiment for AdacotSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let s = sizes(ctx.scale);
        match case.variant.as_str() {
            "rl" => return rl_case::run::<B>(ctx, s.rl_steps, device),
            "slm" => return slm::suite_case::<B>(ctx, s.slm_steps, s.slm_problems, device),
            _ => {}
        }
        let w = case
            .params
            .get("workload")
            .and_then(|w| workloads::find(w))
            .ok_or_else(|| {
                SuiteError::Input(format!("case {} has no known workload", case.label()))
            })?;
        gates_case::<B>(ctx, &w, device)
    }
}
