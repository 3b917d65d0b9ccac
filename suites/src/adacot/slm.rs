//! Selective loss masking (AdaCoT §2.2.3) measured: RL on a skewed set, mostly hard problems
//! whose best decision is nearly always `T`, can drag the decision boundary with it, so that the
//! model then thinks on easy traffic too (the paper's "decision boundary collapse"). The `slm`
//! case starts from the committed imitation checkpoint and runs the same GRPO steps on the
//! skewed set twice, with the decision's own loss and with it masked (the answer anchor trains
//! in both), and records the greedy trigger rate, accuracy and response tokens before and after
//! on the skewed set and on fresh easy-heavy traffic. Answers come from the base model's table
//! (as for `learned-route`), so the records isolate the decision.

use std::collections::BTreeMap;

use infermark_models::decoder::Decoder;
use infermark_models::kernels::AttentionBackend;

use super::finetune::IMITATE_NAME;
use super::labels::{self, TableRow};
use super::rl::{greedy_decisions, Algo, RlConfig, Trainer};
use super::workloads;
use crate::metric as m;
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::{Record, Result, RunContext, Stat};

/// The skewed RL set: hard-heavy's mix, its own seed.
pub const SKEWED_SEED: u64 = 1401;
/// Fresh easy-heavy problems for the trigger rate after training.
pub const EASY_SEED: u64 = 1402;
/// λ of the RL steps.
pub const LAMBDA: f64 = 0.5;

/// Greedy decisions of `model` on `table`, routed to the table's answers: (trigger rate,
/// accuracy, mean response tokens with the decision token). A token other than `D`/`T` is a
/// wrong answer of one token.
pub fn routed<B: AttentionBackend>(
    model: &Decoder<B>,
    table: &[TableRow],
    device: &B::Device,
) -> Result<(f64, f64, f64)> {
    let (mut think, mut right, mut tokens) = (0usize, 0usize, 0usize);
    for (row, a) in table.iter().zip(greedy_decisions(model, table, device)?) {
        tokens += 1;
        if a == u32::from(b'T') {
            think += 1;
            right += usize::from(row.think_ok);
            tokens += row.think_tokens;
        } else if a == u32::from(b'D') {
            right += usize::from(row.direct_ok);
            tokens += row.direct_tokens;
        }
    }
    let n = table.len().max(1) as f64;
    Ok((think as f64 / n, right as f64 / n, tokens as f64 / n))
}

/// The suite's `slm` case (nothing when the imitation checkpoint is not committed).
pub fn suite_case<B: AttentionBackend>(
    ctx: &RunContext,
    steps: usize,
    problems: usize,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let start = checkpoint::committed(IMITATE_NAME);
    if !checkpoint::paths(&start).1.exists() {
        return Ok(Vec::new());
    }
    (ctx.progress)("slm: skewed and easy tables");
    let (base, _) = checkpoint::load::<B>(&checkpoint::committed("arith"), device)?;
    let hard = workloads::find("hard-heavy").expect("hard-heavy mix").mix;
    let easy = workloads::find("easy-heavy").expect("easy-heavy mix").mix;
    let sets = [
        (
            "skewed",
            labels::table(
                &base,
                &workloads::sample(&hard, SKEWED_SEED, problems),
                device,
            )?,
        ),
        (
            "easy-heavy",
            labels::table(
                &base,
                &workloads::sample(&easy, EASY_SEED, problems),
                device,
            )?,
        ),
    ];
    let (policy, card) = checkpoint::load::<B>(&start, device)?;
    let mut models = vec![("before", policy.clone())];
    for (mask, name) in [(false, "off"), (true, "on")] {
        (ctx.progress)(&format!(
            "slm: {steps} GRPO steps on the skewed set, masking {name}"
        ));
        let cfg = RlConfig {
            algo: Algo::Grpo,
            lambda: LAMBDA,
            batch: 32,
            group: 8,
            lr: 3e-4,
            seed: ctx.seed,
            anchor: 8,
            mask_decision: mask,
        };
        let mut t = Trainer::<B>::new(policy.clone(), card.config.d_model, cfg, device);
        for _ in 0..steps {
            t.step(&sets[0].1, device)?;
        }
        models.push((name, t.policy()));
    }
    let mut out = Vec::new();
    for (mask, model) in &models {
        for (set, table) in &sets {
            let (rate, acc, tokens) = routed(model, table, device)?;
            let params = BTreeMap::from([
                ("mask".to_string(), mask.to_string()),
                ("set".to_string(), set.to_string()),
                ("lambda".to_string(), LAMBDA.to_string()),
                ("steps".to_string(), steps.to_string()),
            ]);
            let mut rec = Recorder::new(ctx, super::NAME, "slm", params);
            let n = table.len();
            rec.metric("slm", &m::COT_TRIGGER_RATE)
                .stat(Stat::Mean, n)
                .value(rate)?;
            rec.metric("slm", &m::ACCURACY)
                .stat(Stat::Mean, n)
                .value(acc)?;
            rec.metric("slm", &m::MEAN_RESPONSE_TOKENS)
                .stat(Stat::Mean, n)
                .value(tokens)?;
            out.extend(rec.records);
        }
    }
    Ok(out)
}
