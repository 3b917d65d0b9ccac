//! The suite seam: a suite lists its cases for a scale and runs one case into records.

use std::collections::BTreeMap;

use crate::measure::Summary;
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
    /// A user trace file for the KV cache suite (`--trace`); built-in traces when `None`.
    pub trace: Option<std::path::PathBuf>,
    /// Reports what a case is doing right now (shown beside the progress bar).
    pub progress: &'a (dyn Fn(&str) + Sync),
}

/// A suite of experiments over one technique family.
pub trait Suite: Sync {
    /// Name used on the command line and in records.
    fn name(&self) -> &'static str;
    /// One line for `infermark list`.
    fn description(&self) -> &'static str;
    /// Experiments and what each measures.
    fn experiments(&self) -> Vec<(&'static str, &'static str)>;
    /// Variants compared.
    fn variants(&self) -> Vec<&'static str>;
    /// The cases a run at `scale` consists of.
    fn cases(&self, scale: Scale) -> Vec<Case>;
    /// Runs one case.
    fn run_case(&self, case: &Case, ctx: &RunContext) -> Result<Vec<Record>>;
}

/// Every suite this build has.
pub fn registry() -> Vec<Box<dyn Suite>> {
    vec![
        Box::new(crate::attention::AttentionSuite),
        Box::new(crate::kv_cache::KvCacheSuite),
        Box::new(crate::lm::eval::LmSuite),
        Box::new(crate::quantization::QuantizationSuite),
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

    /// Adds one record; refuses a value that is not finite.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        experiment: &str,
        metric: &str,
        value: f64,
        unit: &str,
        stat: Stat,
        n: usize,
        extra: &[(&str, String)],
    ) -> Result<()> {
        if !value.is_finite() {
            return Err(SuiteError::NotFinite {
                metric: metric.into(),
                variant: self.variant.clone(),
                value,
            });
        }
        let mut params = self.base.clone();
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.records.push(Record {
            run_id: self.ctx.run_id.clone(),
            suite: self.suite.into(),
            experiment: experiment.into(),
            variant: self.variant.clone(),
            backend: self.ctx.backend.name().into(),
            device: self.ctx.device.clone(),
            scale: self.ctx.scale.name().into(),
            params,
            metric: metric.into(),
            value,
            unit: unit.into(),
            stat,
            n: n as u64,
            git_rev: self.ctx.git_rev.clone(),
            timestamp: crate::env::now_rfc3339(),
        });
        Ok(())
    }

    /// Adds median, p90, p99, min and max of timed samples (ms).
    pub fn timing(
        &mut self,
        experiment: &str,
        metric: &str,
        s: &Summary,
        extra: &[(&str, String)],
    ) -> Result<()> {
        for (stat, v) in [
            (Stat::Median, s.median),
            (Stat::P90, s.p90),
            (Stat::P99, s.p99),
            (Stat::Min, s.min),
            (Stat::Max, s.max),
        ] {
            self.push(experiment, metric, v, "ms", stat, s.n, extra)?;
        }
        Ok(())
    }
}
