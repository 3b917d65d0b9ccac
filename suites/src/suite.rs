//! The suite seam: a suite lists its cases for a scale and runs one case into records.

use std::collections::BTreeMap;

use crate::measure::Summary;
use crate::metric::Metric;
use crate::{BackendKind, Record, Result, Scale, Stat, SuiteError};

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
    /// Param that separates independent sweeps, e.g. `preset`.
    pub group_by: &'static str,
    /// Whose marginal cost S compares with.
    pub reference: Reference,
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

/// A suite of experiments over one technique family.
pub trait Suite: Sync {
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
    /// How long `case` takes relative to the suite's other cases at the same scale, in rough
    /// seconds on a 2-core CPU: what `run --shard` balances shards by. 1 by default.
    fn cost(&self, _case: &Case, _scale: Scale) -> f64 {
        1.0
    }
    /// Runs one case.
    fn run_case(&self, case: &Case, ctx: &RunContext) -> Result<Vec<Record>>;
    /// What a run at `scale` leaves out and why (e.g. the real model is not fetched), printed
    /// and kept in `run.json`; nothing by default.
    fn notices(&self, _scale: Scale) -> Vec<String> {
        Vec::new()
    }
    /// The records M(P) reads for this suite (none by default: M(P) then says what is missing).
    fn maturity(&self) -> MaturityInputs {
        MaturityInputs::default()
    }
}

/// Every suite this build has.
pub fn registry() -> Vec<Box<dyn Suite>> {
    vec![
        Box::new(crate::attention::AttentionSuite),
        Box::new(crate::kv_cache::KvCacheSuite),
        Box::new(crate::lm::eval::LmSuite),
        Box::new(crate::quantization::QuantizationSuite),
        Box::new(crate::speculative::SpeculativeSuite),
        Box::new(crate::adacot::AdacotSuite),
    ]
}

/// Looks a suite up by name.
pub fn find(name: &str) -> Result<Box<dyn Suite>> {
    let all = registry();
    let known = all.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    registry()
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or(SuiteError::Unknown {
            kind: "suite",
            name: name.into(),
            known,
        })
}

/// Collects the records of one case, filling in the run's context.
pub struct Recorder<'a> {
    ctx: &'a RunContext<'a>,
    suite: &'static str,
    variant: String,
    base: BTreeMap<String, String>,
    /// Records so far.
    pub records: Vec<Record>,
}

impl<'a> Recorder<'a> {
    /// A recorder for `variant` whose records all carry `base` params.
    pub fn new(
        ctx: &'a RunContext<'a>,
        suite: &'static str,
        variant: &str,
        base: BTreeMap<String, String>,
    ) -> Self {
        Self {
            ctx,
            suite,
            variant: variant.into(),
            base,
            records: Vec::new(),
        }
    }

    /// Starts a record of `metric` in `experiment`: `stat` exact and `n` 1 until said otherwise,
    /// the recorder's params plus any added; finished by [`Entry::value`].
    pub fn metric<'r>(&'r mut self, experiment: &str, metric: &'static Metric) -> Entry<'r, 'a> {
        Entry {
            rec: self,
            experiment: experiment.into(),
            metric,
            stat: Stat::Exact,
            n: 1,
            params: Vec::new(),
        }
    }

    /// Adds median, min and max of timed samples of `metric` (a time in ms), and p90 and p99
    /// where there were enough samples for them.
    pub fn timing(
        &mut self,
        experiment: &str,
        metric: &'static Metric,
        s: &Summary,
        extra: &[(&str, String)],
    ) -> Result<()> {
        debug_assert_eq!(metric.unit, "ms", "{} is not a time", metric.name);
        let stats = [
            (Stat::Median, Some(s.median)),
            (Stat::P90, s.p90),
            (Stat::P99, s.p99),
            (Stat::Min, Some(s.min)),
            (Stat::Max, Some(s.max)),
        ];
        for (stat, v) in stats.into_iter().filter_map(|(st, v)| v.map(|v| (st, v))) {
            self.metric(experiment, metric)
                .stat(stat, s.n)
                .params(extra)
                .value(v)?;
        }
        Ok(())
    }
}

/// One record being built:
/// `rec.metric("decode", &DECODE_LATENCY_MS).stat(Stat::Median, n).param("ctx", t).value(v)?`.
#[must_use = "a record is added only by `value`"]
pub struct Entry<'r, 'a> {
    rec: &'r mut Recorder<'a>,
    experiment: String,
    metric: &'static Metric,
    stat: Stat,
    n: usize,
    params: Vec<(String, String)>,
}

impl Entry<'_, '_> {
    /// Which statistic the value is, over how many samples.
    pub fn stat(mut self, stat: Stat, n: usize) -> Self {
        self.stat = stat;
        self.n = n;
        self
    }

    /// One more parameter.
    pub fn param(mut self, key: &str, value: impl ToString) -> Self {
        self.params.push((key.into(), value.to_string()));
        self
    }

    /// More parameters.
    pub fn params(mut self, extra: &[(&str, String)]) -> Self {
        self.params
            .extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self
    }

    /// Adds the record with `value`; refuses a value that is not finite.
    pub fn value(self, value: f64) -> Result<()> {
        let Entry {
            rec,
            experiment,
            metric,
            stat,
            n,
            params,
        } = self;
        if !value.is_finite() {
            return Err(SuiteError::NotFinite {
                metric: metric.name.into(),
                variant: rec.variant.clone(),
                value,
            });
        }
        let mut all = rec.base.clone();
        all.extend(params);
        rec.records.push(Record {
            run_id: rec.ctx.run_id.clone(),
            suite: rec.suite.into(),
            experiment,
            variant: rec.variant.clone(),
            backend: rec.ctx.backend.name().into(),
            device: rec.ctx.device.clone(),
            scale: rec.ctx.scale.name().into(),
            params: all,
            metric: metric.name.into(),
            value,
            unit: metric.unit.into(),
            stat,
            n: n as u64,
            git_rev: rec.ctx.git_rev.clone(),
            timestamp: crate::env::now_rfc3339(),
        });
        Ok(())
    }
}
