//! Collecting a case's records: the run's context filled in, units from the metric registry,
//! values refused unless finite.

use std::collections::BTreeMap;

use crate::measure::Summary;
use crate::metric::Metric;
use crate::suite::RunContext;
use crate::{Record, Result, Stat, SuiteError};

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
            samples: Vec::new(),
        }
    }

    /// Adds median, min and max of timed samples of `metric` (a time in ms), and p90 and p99
    /// where there were enough samples for them; the median keeps the samples.
    pub fn timing(
        &mut self,
        experiment: &str,
        metric: &'static Metric,
        s: &Summary,
        extra: &[(&str, String)],
    ) -> Result<()> {
        debug_assert_eq!(metric.unit, "ms", "{} is not a time", metric.name);
        self.summary(experiment, metric, s, extra, true)
    }

    /// Adds median, min and max of a deterministic distribution of `metric` (e.g. tokens per
    /// problem), and p90 and p99 where there were enough values for them; no samples kept.
    pub fn distribution(
        &mut self,
        experiment: &str,
        metric: &'static Metric,
        s: &Summary,
        extra: &[(&str, String)],
    ) -> Result<()> {
        self.summary(experiment, metric, s, extra, false)
    }

    fn summary(
        &mut self,
        experiment: &str,
        metric: &'static Metric,
        s: &Summary,
        extra: &[(&str, String)],
        keep_samples: bool,
    ) -> Result<()> {
        let stats = [
            (Stat::Median, Some(s.median)),
            (Stat::P90, s.p90),
            (Stat::P99, s.p99),
            (Stat::Min, Some(s.min)),
            (Stat::Max, Some(s.max)),
        ];
        for (stat, v) in stats.into_iter().filter_map(|(st, v)| v.map(|v| (st, v))) {
            let kept = if keep_samples && stat == Stat::Median {
                s.samples.clone()
            } else {
                Vec::new()
            };
            self.metric(experiment, metric)
                .stat(stat, s.n)
                .params(extra)
                .samples(kept)
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
    samples: Vec<f64>,
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

    /// The samples behind the value (a median's, in the order taken), for confidence
    /// intervals; a sample that is not finite is refused with the value.
    pub fn samples(mut self, samples: Vec<f64>) -> Self {
        self.samples = samples;
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
            samples,
        } = self;
        if let Some(&bad) = samples.iter().find(|x| !x.is_finite()) {
            return Err(SuiteError::NotFinite {
                metric: metric.name.into(),
                variant: rec.variant.clone(),
                value: bad,
            });
        }
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
            timestamp: crate::record::now_rfc3339(),
            samples,
        });
        Ok(())
    }
}
