//! The suite seam: a suite lists its cases for a scale ([`Suite`]) and runs one case into
//! records on any backend ([`Experiment`], written once, generic); [`RunCase`] is the one adapter
//! from a run's backend name to the concrete backend type.

use std::collections::BTreeMap;

use infermark_models::kernels::AttentionBackend;

use crate::backend::{run_on, BackendJob};
use crate::metric::Metric;
use crate::report::Section;
use crate::{BackendKind, Record, Result, Scale};

/// One unit of work of a suite (one progress step).
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// Technique variant, e.g. `gqa`.
    pub variant: String,
    /// What the suite needs to run it (preset name, experiments, ...).
    pub params: BTreeMap<String, String>,
}

impl Case {
    /// Short label for progress output.
    pub fn label(&self) -> String {
        let preset = self.params.get("preset").map(String::as_str).unwrap_or("-");
        format!("{preset}/{}", self.variant)
    }
}

/// Files a user passes to a run.
#[derive(Clone, Debug, Default)]
pub struct UserInputs {
    /// A request trace for the KV cache suite (`--trace`); built-in traces when `None`.
    pub trace: Option<std::path::PathBuf>,
    /// An evaluation text for the real-model rows (`--text`); the fetched licence text when
    /// `None`.
    pub text: Option<std::path::PathBuf>,
}

/// Everything a case needs to know about the run it belongs to.
pub struct RunContext<'a> {
    /// Backend to run on.
    pub backend: BackendKind,
    /// Run size.
    pub scale: Scale,
    /// Seed of weights and inputs.
    pub seed: u64,
    /// Run identifier, copied into each record.
    pub run_id: String,
    /// Git revision, copied into each record.
    pub git_rev: String,
    /// Device description, copied into each record.
    pub device: String,
    /// Files the user passed (`--trace`, `--text`).
    pub inputs: UserInputs,
    /// Reports what a case is doing right now (shown beside the progress bar).
    pub progress: &'a (dyn Fn(&str) + Sync),
}

/// The records M(P) = w1·S + w2·C + w3·I reads for a suite's techniques (see the reports crate's
/// `maturity` module); a suite names them, so the score knows no suite by name. A part whose
/// records a suite does not name is shown as not measured, and M(P) is then not shown.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaturityInputs {
    /// The cost that S (its marginal growth) and C's predictability (its spread) read.
    pub scaling: Option<Scaling>,
    /// What C's accuracy retention reads; the worst retention over all of them counts.
    pub accuracy: &'static [Accuracy],
    /// The deterministic metrics that I compares with the baseline: outcomes of running the
    /// technique's code, which a change to it could move. Closed-form values (analytic FLOPs,
    /// bytes from shapes, records with `source = analytic`) are left out: compared with
    /// themselves they are always identical and would make I = 1 by construction.
    pub outcomes: &'static [&'static Metric],
}

/// Whose value a technique is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// The metric is already measured against the suite's reference. For a cost: in units of
    /// the reference's cost per unit of work, so the reference's marginal cost is 1. For an
    /// accuracy in [0, 1]: a deviation (lower is better; retention = 1 − value) or an agreement
    /// share (higher is better; retention = value).
    Relative,
    /// The same metric of this variant, joined on every parameter both records carry; the
    /// variant itself is the reference and gets no score from it.
    Variant(&'static str),
    /// The same metric of the same variant recorded with this parameter set to this value (a
    /// reference timed or evaluated beside it, e.g. `baseline = burn-f32`, `weights = f32`);
    /// the technique's own records are those without it.
    Param(&'static str, &'static str),
    /// The same metric of models trained alike that differ only in this technique (twins):
    /// each variant is scored by its twin's value against the reference twin's. For accuracy
    /// only.
    Twins(&'static Twins),
}

/// Models of another suite that differ only in one technique, e.g. decoders trained with the
/// same recipe and budget with MHA, GQA and MLA attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Twins {
    /// The suite whose records hold the twins' metric.
    pub suite: &'static str,
    /// Each variant of this suite with its twin (a variant of `suite`).
    pub twins: &'static [(&'static str, &'static str)],
    /// The variant of this suite whose twin the others are compared with.
    pub reference: &'static str,
}

impl Twins {
    /// The twin of `variant`, if it has one.
    pub fn of(&self, variant: &str) -> Option<&'static str> {
        self.twins
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, t)| *t)
    }
}

/// A cost metric swept over a size.
#[derive(Clone, Copy, Debug)]
pub struct Scaling {
    /// The cost (a time or a cost ratio: median recorded, with min and p90 for the spread).
    pub metric: &'static Metric,
    /// Params the records must have, e.g. `part = layer`.
    pub filter: &'static [(&'static str, &'static str)],
    /// The swept param, the unit of work: a number (e.g. `ctx`), or a shape whose last `RxC`
    /// is read as R·C elements (e.g. `shape = 512x512`).
    pub over: &'static str,
    /// Param that separates independent sweeps, e.g. `preset`, or
    /// [`Scaling::EVERY_OTHER_PARAM`] where each setting of every other param is its own sweep.
    pub group_by: &'static str,
    /// Whose marginal cost S compares with.
    pub reference: Reference,
}

impl Scaling {
    /// `group_by` for "every param but the swept one and the filter's": variants whose
    /// settings have different names (a gate's `lambda`, another's `tau`) each sweep alone.
    pub const EVERY_OTHER_PARAM: &'static str = "*";
}

/// An accuracy metric and the reference it is compared with.
#[derive(Clone, Copy, Debug)]
pub struct Accuracy {
    /// The metric; its direction (registry) says whether lower or higher is better.
    pub metric: &'static Metric,
    /// What it is compared with.
    pub reference: Reference,
}

/// What a suite is: its name, one line about it, and its experiments.
#[derive(Clone, Copy, Debug)]
pub struct About {
    /// Name used on the command line and in records.
    pub name: &'static str,
    /// One line for `infermark list`.
    pub description: &'static str,
    /// Experiments and what each measures.
    pub experiments: &'static [(&'static str, &'static str)],
}

/// What a suite runs: one case on backend `B`, written once for every backend.
pub trait Experiment: Sync {
    /// Runs `case` on `device`; the backend is already seeded with the run's seed.
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>>;
}

/// Runs a case on the backend the run names: implemented once, for every [`Experiment`].
pub trait RunCase {
    /// Runs `case` on `ctx.backend`.
    fn run_case(&self, case: &Case, ctx: &RunContext) -> Result<Vec<Record>>;
}

impl<E: Experiment> RunCase for E {
    fn run_case(&self, case: &Case, ctx: &RunContext) -> Result<Vec<Record>> {
        struct Job<'a, E> {
            experiment: &'a E,
            case: &'a Case,
            ctx: &'a RunContext<'a>,
        }
        impl<E: Experiment> BackendJob for Job<'_, E> {
            type Output = Result<Vec<Record>>;
            fn run<B: AttentionBackend>(self, device: B::Device) -> Self::Output {
                B::seed(&device, self.ctx.seed);
                self.experiment.run::<B>(self.case, self.ctx, &device)
            }
        }
        run_on(
            ctx.backend,
            Job {
                experiment: self,
                case,
                ctx,
            },
        )?
    }
}

/// A suite of experiments over one technique family: what it is and which cases a run has;
/// running a case comes from its [`Experiment`] through [`RunCase`].
pub trait Suite: RunCase + Sync {
    /// Name, description and experiments.
    fn about(&self) -> &'static About;
    /// Name used on the command line and in records.
    fn name(&self) -> &'static str {
        self.about().name
    }
    /// One line for `infermark list`.
    fn description(&self) -> &'static str {
        self.about().description
    }
    /// Experiments and what each measures.
    fn experiments(&self) -> Vec<(&'static str, &'static str)> {
        self.about().experiments.to_vec()
    }
    /// Variants compared.
    fn variants(&self) -> Vec<&'static str>;
    /// The cases a run at `scale` consists of.
    fn cases(&self, scale: Scale) -> Vec<Case>;
    /// How long `case` takes at `scale`, in rough seconds on a 2-core CPU: what `run --shard`
    /// balances shards by, so only the ratios between all suites' cases matter. The suites give
    /// figures measured in smoke and quick runs (full scale is taken as quick); 1 by default.
    fn cost(&self, _case: &Case, _scale: Scale) -> f64 {
        1.0
    }
    /// What a run at `scale` leaves out and why (e.g. the real model is not fetched), printed
    /// and kept in `run.json`; nothing by default.
    fn notices(&self, _scale: Scale) -> Vec<String> {
        Vec::new()
    }
    /// The records M(P) reads for this suite (none by default: M(P) then says what is missing).
    fn maturity(&self) -> MaturityInputs {
        MaturityInputs::default()
    }
    /// The suite's own part of the report, as data (nothing beyond the generic tables and
    /// sweep charts by default).
    fn report(&self) -> &'static Section {
        &Section::EMPTY
    }
}
