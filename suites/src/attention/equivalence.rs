//! *equivalence*: MLA's absorbed path against its naive path over a decode run.

use burn::tensor::{Distribution, Tensor};
use infermark_models::attention::{Attention, Mla, MlaPath};
use infermark_models::diff::{max_abs, max_abs_diff};
use infermark_models::kernels::AttentionBackend;

use super::cache::new_cache;
use crate::metric::MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF;
use crate::recorder::Recorder;
use crate::{Result, Stat, SuiteError};

/// Largest |absorbed − naive| over a prefill and a decode run on the same weights and inputs,
/// divided by the largest |naive| output.
pub(super) fn mla_path_difference<B: AttentionBackend>(
    mla: &Mla<B>,
    d_model: usize,
    prefix: usize,
    steps: usize,
    device: &B::Device,
) -> Result<f64> {
    let x = Tensor::<B, 3>::random(
        [1, prefix + steps, d_model],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let run = |path| -> Result<Vec<f32>> {
        let layer = Attention::Mla(mla.clone().with_path(path));
        let (mut cache, seq) = new_cache(layer.cache_layout(), prefix + steps, device)?;
        let mut outs = vec![layer
            .forward(x.clone().narrow(1, 0, prefix), &[seq], &mut cache)
            .map_err(SuiteError::model("MLA prefill"))?];
        for i in prefix..prefix + steps {
            outs.push(
                layer
                    .forward(x.clone().narrow(1, i, 1), &[seq], &mut cache)
                    .map_err(SuiteError::model("MLA decode"))?,
            );
        }
        Tensor::cat(outs, 1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| SuiteError::Backend(format!("MLA output: {e:?}")))
    };
    let (naive, absorbed) = (run(MlaPath::Naive)?, run(MlaPath::Absorbed)?);
    let scale = max_abs(&naive).map_err(SuiteError::model("MLA naive output"))?;
    let diff =
        max_abs_diff(&naive, &absorbed).map_err(SuiteError::model("MLA absorbed vs naive"))?;
    Ok((diff / scale.max(f32::MIN_POSITIVE)) as f64)
}

/// Records the largest absorbed-vs-naive difference over `prefix` prompt tokens and `steps`
/// decode steps.
pub fn equivalence<B: AttentionBackend>(
    mla: &Mla<B>,
    d_model: usize,
    prefix: usize,
    steps: usize,
    rec: &mut Recorder,
    device: &B::Device,
) -> Result<()> {
    let diff = mla_path_difference::<B>(mla, d_model, prefix, steps, device)?;
    rec.metric("equivalence", &MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF)
        .stat(Stat::Max, prefix + steps)
        .params(&[
            ("prefix", prefix.to_string()),
            ("decode_steps", steps.to_string()),
        ])
        .value(diff)
}
