//! The suite's `rl` case: GRPO against PPO from the committed SFT checkpoint.

use std::collections::BTreeMap;
use std::time::Instant;

use infermark_models::kernels::AttentionBackend;

use super::finetune::SFT_NAME;
use super::labels;
use super::rl::{greedy_reward, problems, Algo, RlConfig, Trainer, EVAL_SEED, TRAIN_SEED};
use crate::measure::Summary;
use crate::metric as m;
use crate::recorder::Recorder;
use crate::zoo::checkpoint;
use crate::{Record, Result, RunContext, Stat};

/// The suite's `rl` case: GRPO and PPO from the committed SFT checkpoint, step by step in
/// alternation (A B B A ...), timed, with the greedy reward on held-out problems before and
/// after.
pub fn run<B: AttentionBackend>(
    ctx: &RunContext,
    steps: usize,
    device: &B::Device,
) -> Result<Vec<Record>> {
    let sft = checkpoint::committed(SFT_NAME);
    if !checkpoint::paths(&sft).1.exists() {
        return Ok(Vec::new());
    }
    (ctx.progress)("rl: reward table");
    let (base, _) = checkpoint::load::<B>(&checkpoint::committed("arith"), device)?;
    let n_train = if steps <= 4 { 128 } else { 512 };
    let table = labels::table(&base, &problems(TRAIN_SEED, n_train), device)?;
    let held = labels::table(&base, &problems(EVAL_SEED, 64), device)?;
    let (policy, card) = checkpoint::load::<B>(&sft, device)?;
    let lambda = 0.5;
    let cfg = |algo| RlConfig {
        algo,
        lambda,
        batch: 32,
        group: 8,
        lr: 3e-4,
        seed: ctx.seed,
        anchor: 0,
        mask_decision: false,
    };
    let before = greedy_reward(&policy, &held, lambda, device)?;
    let d = card.config.d_model;
    let mut trainers = [
        Trainer::<B>::new(policy.clone(), d, cfg(Algo::Grpo), device),
        Trainer::<B>::new(policy, d, cfg(Algo::Ppo), device),
    ];
    let mut ms = [Vec::new(), Vec::new()];
    (ctx.progress)("rl: GRPO and PPO steps");
    for s in 0..steps {
        let order = if s % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let t0 = Instant::now();
            trainers[k].step(&table, device)?;
            crate::measure::sync::<B>(device)?;
            ms[k].push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut out = Vec::new();
    for (k, t) in trainers.iter().enumerate() {
        let algo = t.cfg.algo.name();
        let base = BTreeMap::from([
            ("lambda".to_string(), lambda.to_string()),
            ("batch".to_string(), "32".to_string()),
            ("group".to_string(), "8".to_string()),
            ("steps".to_string(), steps.to_string()),
        ]);
        let mut rec = Recorder::new(ctx, super::NAME, algo, base);
        rec.timing("rl", &m::RL_STEP_MS, &Summary::of(&ms[k]), &[])?;
        rec.metric("rl", &m::RL_PEAK_BYTES)
            .param("source", "analytic")
            .value(t.state_bytes() as f64)?;
        let after = greedy_reward(&t.policy(), &held, lambda, device)?;
        rec.metric("rl", &m::RL_REWARD)
            .stat(Stat::Mean, held.len())
            .value(after)?;
        let seconds: f64 = ms[k].iter().sum::<f64>() / 1e3;
        rec.metric("rl", &m::RL_REWARD_PER_S)
            .stat(Stat::Mean, steps)
            .value((after - before) / seconds)?;
        out.extend(rec.records);
    }
    Ok(out)
}
