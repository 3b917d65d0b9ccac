//! The FP8-training row: the `target` recipe trained twice in one run from the same seed over the
//! same batches and steps, in FP32 and with simulated FP8 products (DeepSeek-V3 §3.3: E4M3
//! inputs with 1×128 activation tiles and 128×128 weight blocks, gradients E4M3 in 1×128 tiles,
//! FP32 master weights, AdamW state and accumulation;
//! [`infermark_models::quant::fp8_train`]), then both curves and the final validation-loss gap.
//!
//! Deviation from the preset: quick trains 150 steps, not 600, with the schedule (5% warm-up,
//! cosine to a tenth) compressed to those steps, and smoke 4 steps on 4 KiB of validation text;
//! `steps`, `schedule` and `valid_bytes` in the params say so. Full trains the whole recipe.

use std::collections::BTreeMap;

use infermark_models::decoder::preset;
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::{Fp8Kind, Fp8Training};

use super::about::{FP8_TRAINING, NAME};
use crate::metric::{TRAIN_LOSS, TRAIN_TOKENS_PER_S, VALID_LOSS, VALID_LOSS_GAP_PCT};
use crate::recorder::Recorder;
use crate::zoo::checkpoint::{Card, FP32_PRECISION};
use crate::zoo::corpus;
use crate::zoo::train::{train, TrainOptions};
use crate::{Record, Result, RunContext, Scale, Stat, SuiteError};

/// The preset trained.
const PRESET: &str = "target";

/// The FP8 recipe of the row: everything E4M3, as DeepSeek-V3.
pub const RECIPE: Fp8Training = Fp8Training {
    grad: Some(Fp8Kind::E4M3),
};

/// Steps, validation interval and validation bytes (`None`: the whole split) at `scale`.
fn plan(scale: Scale, recipe_steps: usize) -> (usize, usize, Option<usize>) {
    match scale {
        Scale::Smoke => (4, 2, Some(4 << 10)),
        Scale::Quick => (150, 25, None),
        Scale::Full => (recipe_steps, 50, None),
    }
}

/// `(fp8 − fp32) / fp32 × 100`.
pub fn gap_pct(fp32: f64, fp8: f64) -> f64 {
    (fp8 - fp32) / fp32 * 100.0
}

/// Trains both precisions and records curves, final losses, throughput and the gaps.
pub(super) fn run<B: AttentionBackend>(
    ctx: &RunContext,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let p = preset(PRESET).ok_or_else(|| SuiteError::Input(format!("no preset `{PRESET}`")))?;
    let (steps, eval_every, valid_bytes) = plan(ctx.scale, p.steps);
    let mut split = corpus::stories_split();
    if let Some(n) = valid_bytes {
        let cut = (0..=n.min(split.valid.len()))
            .rev()
            .find(|&i| split.valid.is_char_boundary(i))
            .unwrap_or(0);
        split.valid.truncate(cut);
    }
    let dir = std::env::temp_dir().join(format!(
        "infermark-fp8-training-{}-{}",
        std::process::id(),
        ctx.run_id
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| SuiteError::Input(format!("cannot create {}: {e}", dir.display())))?;
    let base = BTreeMap::from([
        ("model".to_string(), PRESET.to_string()),
        ("steps".to_string(), steps.to_string()),
        ("recipe_steps".to_string(), p.steps.to_string()),
        (
            "schedule".to_string(),
            format!(
                "AdamW, peak lr {}, 5% warm-up, cosine to a tenth over {steps} steps",
                p.lr
            ),
        ),
        ("seed".to_string(), ctx.seed.to_string()),
        ("batch".to_string(), format!("{}x{}", p.batch, p.seq_len)),
        ("valid_bytes".to_string(), split.valid.len().to_string()),
    ]);
    let mut rec = Recorder::new(ctx, NAME, FP8_TRAINING, base);
    let mut cards: Vec<Card> = Vec::new();
    let result = (|| {
        for (label, fp8) in [(FP32_PRECISION, None), ("fp8", Some(RECIPE))] {
            (ctx.progress)(&format!("{FP8_TRAINING}: training {PRESET} in {label}"));
            let opts = TrainOptions {
                preset: p.clone(),
                steps,
                seed: ctx.seed,
                split: split.clone(),
                out: dir.join(label),
                eval_every,
                resume: false,
                stop_after: None,
                machine: ctx.device.clone(),
                git_rev: ctx.git_rev.clone(),
                init_from: None,
                fp8,
            };
            cards.push(train::<B>(&opts, device, &mut |_| {})?);
        }
        Ok::<(), SuiteError>(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    const EXP: &str = "training";
    for card in &cards {
        let prec = [("precision", card.precision.clone())];
        for c in &card.curve {
            let at = [
                ("precision", card.precision.clone()),
                ("step", c.step.to_string()),
            ];
            rec.metric(EXP, &VALID_LOSS)
                .params(&at)
                .value(c.valid_loss)?;
            rec.metric(EXP, &TRAIN_LOSS)
                .params(&at)
                .value(c.train_loss)?;
        }
        rec.metric(EXP, &VALID_LOSS)
            .params(&prec)
            .value(card.valid_loss)?;
        rec.metric(EXP, &TRAIN_TOKENS_PER_S)
            .stat(Stat::Mean, card.steps)
            .params(&prec)
            .value(card.tokens_per_s)?;
    }
    let (a, b) = (&cards[0], &cards[1]);
    let fp8 = [("precision", b.precision.clone())];
    rec.metric(EXP, &VALID_LOSS_GAP_PCT)
        .params(&fp8)
        .value(gap_pct(a.valid_loss, b.valid_loss))?;
    if a.curve.len() != b.curve.len() || a.curve.iter().zip(&b.curve).any(|(x, y)| x.step != y.step)
    {
        return Err(SuiteError::Input(
            "FP32 and FP8 runs validated at different steps".into(),
        ));
    }
    let gaps: Vec<f64> = a
        .curve
        .iter()
        .zip(&b.curve)
        .map(|(x, y)| gap_pct(x.valid_loss, y.valid_loss))
        .collect();
    for (c, g) in a.curve.iter().zip(&gaps) {
        let at = [
            ("precision", b.precision.clone()),
            ("step", c.step.to_string()),
        ];
        rec.metric(EXP, &VALID_LOSS_GAP_PCT).params(&at).value(*g)?;
    }
    let (lo, hi) = gaps
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), g| {
            (l.min(*g), h.max(*g))
        });
    for (stat, v) in [(Stat::Max, hi), (Stat::Min, lo)] {
        rec.metric(EXP, &VALID_LOSS_GAP_PCT)
            .stat(stat, gaps.len())
            .params(&fp8)
            .param("over", "curve")
            .value(v)?;
    }
    Ok(rec.records)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gap_is_relative_to_fp32_in_percent() {
        assert_eq!(super::gap_pct(4.0, 5.0), 25.0);
        assert_eq!(super::gap_pct(4.0, 3.0), -25.0);
        assert_eq!(super::gap_pct(4.0, 4.0), 0.0);
    }
}
