//! RL on the decision token. The policy is the adaptive model's next-token distribution right
//! after `A:<problem>=`; an action is the token it samples there (`D`, `T`, or anything else, a
//! format error). The answer that follows a decision is the base model's greedy answer in that
//! format, so the reward comes from a precomputed table (AdaCoT's R = correct − λ·cost, with
//! cost = response tokens / [`NORMALISER`]) and each step is one forward over the prompts.
//!
//! - **GRPO** (Shao et al. 2024, DeepSeekMath): `group` decisions sampled per prompt; advantage
//!   = r − group mean (Dr. GRPO's unscaled form, see [`grpo_advantages`]), zero when the group
//!   agrees; loss −mean(A · log π(a)). No value model.
//! - **PPO** (Schulman et al. 2017) as in RLHF: a critic of the policy's size (a copy of the
//!   policy's trunk, initialised from it, with a scalar head on the last hidden state),
//!   advantage r − V(prompt), value loss (V − r)². The same sampled decisions as GRPO, so the
//!   two differ only in how they get their baseline. One epoch per batch, so PPO's clipped
//!   ratio is 1 and its surrogate's gradient is the plain policy gradient.

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder as _};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::decoder::Decoder;
use infermark_models::kernels::AttentionBackend;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::gate::Decision;
use super::labels::TableRow;
use super::learned;
use crate::zoo::corpus::tokenize;
use crate::{Result, SuiteError};

/// Response tokens that cost one unit of reward at λ = 1 (about a 4-digit scratchpad).
pub const NORMALISER: f64 = 50.0;
/// Reward of a format error (neither `D` nor `T`).
pub const FORMAT_PENALTY: f64 = -1.0;
const D: u32 = b'D' as u32;
const T: u32 = b'T' as u32;

/// The reward of writing decision token `token` on a problem: correct − λ·tokens/normaliser,
/// the decision token counted; a format error gets [`FORMAT_PENALTY`].
pub fn reward(row: &TableRow, token: u32, lambda: f64) -> f64 {
    let (ok, tokens) = match token {
        D => (row.direct_ok, row.direct_tokens),
        T => (row.think_ok, row.think_tokens),
        _ => return FORMAT_PENALTY,
    };
    f64::from(u8::from(ok)) - lambda * (tokens + 1) as f64 / NORMALISER
}

/// GRPO's group-relative advantages, r − group mean (zero when every reward in the group is
/// equal), not divided by the group's standard deviation, as in Dr. GRPO (Liu et al. 2025).
/// Divided, a prompt where both decisions are right and differ by 0.03 in token cost pushes
/// the decision as hard as one where the wrong decision loses the whole reward: λ then barely
/// sets the trade-off (measured: GRPO at λ = 0.1 thought less than its starting point, and
/// every λ lowered the AUC of the decision on easy-heavy from 0.974 to 0.93–0.966).
pub fn grpo_advantages(rewards: &[f64]) -> Vec<f64> {
    if rewards.is_empty() {
        return Vec::new();
    }
    let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
    rewards.iter().map(|r| r - mean).collect()
}

/// Which RL algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Group-relative advantages, no value model.
    Grpo,
    /// A learned value baseline (critic of the policy's size).
    Ppo,
    /// Not RL: cross-entropy on the oracle decision (`T` when the direct answer is wrong), the
    /// decision token alone, on a larger table than the SFT lines: AdaCoT's stage-1 labels,
    /// with the decision's share of the loss no longer diluted by the answer tokens. The same
    /// step as the policy gradient with the oracle token as the only action and advantage 1.
    Imitate,
}

impl Algo {
    /// Name in records and cards.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Grpo => "grpo",
            Algo::Ppo => "ppo",
            Algo::Imitate => "imitate",
        }
    }
}

/// PPO's critic: the policy's trunk (a copy, initialised from it) and a scalar head on the last
/// hidden state.
#[derive(Module, Debug)]
pub struct Critic<B: Backend> {
    /// Trunk, same architecture and initial weights as the policy.
    pub trunk: Decoder<B>,
    /// `[d_model, 1]`
    pub head: Linear<B>,
}

impl<B: AttentionBackend> Critic<B> {
    /// A critic initialised from `policy`.
    pub fn from_policy(policy: &Decoder<B>, d_model: usize, device: &B::Device) -> Self {
        Critic {
            trunk: policy.clone(),
            head: LinearConfig::new(d_model, 1).init(device),
        }
    }

    /// Value of each prompt (at its last token).
    ///
    /// # Shapes
    /// - output: `[n]`
    pub fn values(&self, prompts: &[Vec<u32>], device: &B::Device) -> Result<Tensor<B, 1>> {
        let (x, idx) = padded(prompts, 1, device);
        let h = self.trunk.hidden_full(x).map_err(|e| SuiteError::Model {
            context: "critic forward".into(),
            error: e,
        })?; // [n, s, d]
        let d = h.dims()[2];
        let n = prompts.len();
        let idx = idx.expand([n, 1, d]);
        let last = h.gather(1, idx); // [n, 1, d]
        Ok(self.head.forward(last).reshape([n]))
    }
}

/// Marks every float parameter as trainable.
struct RequireGrad;

impl<B: Backend> burn::module::ModuleMapper<B> for RequireGrad {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<B, D>>,
    ) -> burn::module::Param<Tensor<B, D>> {
        param.set_require_grad(true)
    }
}

/// Prompts right-padded with newlines into `[n, s]`, and each prompt's last position as an
/// index `[n, 1, width]` (causal attention: padding after a position cannot change it).
fn padded<B: Backend>(
    prompts: &[Vec<u32>],
    width: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 3, Int>) {
    let s = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let n = prompts.len();
    let mut ids = Vec::with_capacity(n * s);
    let mut last = Vec::with_capacity(n * width);
    for p in prompts {
        ids.extend(p.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(b'\n' as i64, s - p.len()));
        last.extend(std::iter::repeat_n(p.len() as i64 - 1, width));
    }
    (
        Tensor::from_data(TensorData::new(ids, [n, s]), device),
        Tensor::from_data(TensorData::new(last, [n, 1, width]), device),
    )
}

/// Log-probabilities of the decision token for each prompt.
///
/// # Shapes
/// - output: `[n, vocab]`
pub fn decision_logp<B: AttentionBackend>(
    model: &Decoder<B>,
    prompts: &[Vec<u32>],
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    let v = model.vocab_size();
    let (x, idx) = padded(prompts, v, device);
    let logits = model.forward_full(x).map_err(|e| SuiteError::Model {
        context: "policy forward".into(),
        error: e,
    })?;
    let n = prompts.len();
    Ok(log_softmax(logits.gather(1, idx).reshape([n, v]), 1))
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32")
}

/// Mean next-token loss over the answer part of adaptive lines (after the decision token),
/// the decision token itself and the padding masked out.
pub fn anchor_loss<B: AttentionBackend>(
    model: &Decoder<B>,
    lines: &[Vec<u32>],
    device: &B::Device,
) -> Result<Tensor<B, 1>> {
    let s = lines.iter().map(Vec::len).max().unwrap_or(2);
    let n = lines.len();
    let mut ids = Vec::with_capacity(n * s);
    let mut mask = vec![0f32; n * (s - 1)];
    for (i, l) in lines.iter().enumerate() {
        ids.extend(l.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(b'\n' as i64, s - l.len()));
        // The decision token follows the first `=`; position t predicts token t + 1.
        let eq = l.iter().position(|&t| t == u32::from(b'=')).unwrap_or(0);
        for t in (eq + 1)..(l.len() - 1) {
            mask[i * (s - 1) + t] = 1.0;
        }
    }
    let x = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, s]), device);
    let logits = model
        .forward_full(x.clone())
        .map_err(|e| SuiteError::Model {
            context: "answer anchor forward".into(),
            error: e,
        })?;
    let nll = infermark_models::decoder::next_token_nll(logits, x); // [n, s - 1]
    let count: f32 = mask.iter().sum();
    let m = Tensor::<B, 2>::from_data(TensorData::new(mask, [n, s - 1]), device);
    Ok((nll * m).sum() / count.max(1.0))
}

/// The adaptive prompt ids of a table row.
pub fn prompt_of(row: &TableRow) -> Vec<u32> {
    tokenize(&format!("\n{}", learned::prompt(&row.problem)))
}

/// The greedy decision token (the argmax after `A:<problem>=`) of `model` for each row, in
/// batches of 64.
pub fn greedy_decisions<B: AttentionBackend>(
    model: &Decoder<B>,
    rows: &[TableRow],
    device: &B::Device,
) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(64) {
        let prompts: Vec<_> = chunk.iter().map(prompt_of).collect();
        let lp = host(decision_logp(model, &prompts, device)?);
        let v = lp.len() / chunk.len();
        out.extend(
            lp.chunks_exact(v)
                .map(infermark_models::generation::sampler::argmax),
        );
    }
    Ok(out)
}

/// Mean reward of the greedy decision (the argmax token) over `rows`.
pub fn greedy_reward<B: AttentionBackend>(
    model: &Decoder<B>,
    rows: &[TableRow],
    lambda: f64,
    device: &B::Device,
) -> Result<f64> {
    let decisions = greedy_decisions(model, rows, device)?;
    let total: f64 = rows
        .iter()
        .zip(decisions)
        .map(|(row, a)| reward(row, a, lambda))
        .sum();
    Ok(total / rows.len().max(1) as f64)
}

/// What an RL run does per step.
#[derive(Clone, Copy, Debug)]
pub struct RlConfig {
    /// Algorithm.
    pub algo: Algo,
    /// Cost weight λ.
    pub lambda: f64,
    /// Prompts per step.
    pub batch: usize,
    /// Sampled decisions per prompt.
    pub group: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// Seed of prompt choice and sampling.
    pub seed: u64,
    /// Answer anchor: for this many of the step's prompts, the gold `D` and `T` lines are
    /// teacher-forced with the decision token's own loss masked out (AdaCoT's selective loss
    /// masking), so the answers after a decision are not forgotten while the decision moves;
    /// 0 trains the decision token alone.
    pub anchor: usize,
    /// Selective loss masking (AdaCoT §2.2.3) of the decision itself: the decision's policy
    /// gradient is dropped and only the answer anchor trains, so a skewed set (mostly one
    /// decision) cannot pull the decision boundary with it. Needs `anchor > 0`.
    pub mask_decision: bool,
}

/// AdamW over module `M` on the autodiff backend of `B`.
type AdamWOf<M, B> = burn::optim::adaptor::OptimizerAdaptor<burn::optim::AdamW, M, Autodiff<B>>;

/// PPO's critic and its optimizer.
type CriticState<B> = (Critic<Autodiff<B>>, AdamWOf<Critic<Autodiff<B>>, B>);

/// An RL trainer's state: the policy, its optimizer, and for PPO the critic and its optimizer.
pub struct Trainer<B: AttentionBackend> {
    /// The policy being trained.
    pub policy: Decoder<Autodiff<B>>,
    optim: AdamWOf<Decoder<Autodiff<B>>, B>,
    critic: Option<CriticState<B>>,
    /// What it trains with.
    pub cfg: RlConfig,
    /// Steps done.
    pub step: usize,
}

impl<B: AttentionBackend> Trainer<B> {
    /// A trainer starting from `policy` (for PPO, with a critic initialised from it).
    pub fn new(policy: Decoder<B>, d_model: usize, cfg: RlConfig, device: &B::Device) -> Self {
        // Weights loaded from a checkpoint come back without `require_grad`: switch it on.
        let policy: Decoder<Autodiff<B>> = Decoder::from_inner(policy).map(&mut RequireGrad);
        let critic = (cfg.algo == Algo::Ppo).then(|| {
            B::seed(device, cfg.seed);
            (
                Critic::from_policy(&policy, d_model, device),
                AdamWConfig::new().init(),
            )
        });
        Trainer {
            policy,
            optim: AdamWConfig::new().init(),
            critic,
            cfg,
            step: 0,
        }
    }

    /// Bytes of training state: weights, gradients and the two AdamW moments of every trained
    /// model (f32).
    pub fn state_bytes(&self) -> usize {
        let mut params = self.policy.num_params();
        if let Some((c, _)) = &self.critic {
            params += c.num_params();
        }
        params * 4 * 4
    }

    /// One update on a batch drawn from `table`; returns the mean sampled reward.
    pub fn step(&mut self, table: &[TableRow], device: &B::Device) -> Result<f64> {
        let cfg = self.cfg;
        let mut rng =
            StdRng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.step as u64);
        let rows: Vec<&TableRow> = (0..cfg.batch)
            .map(|_| &table[rng.random_range(0..table.len())])
            .collect();
        let prompts: Vec<Vec<u32>> = rows.iter().map(|r| prompt_of(r)).collect();
        let lp = decision_logp(&self.policy, &prompts, device)?; // [n, V]
        let [n, v] = lp.dims();
        let probs: Vec<f64> = host(lp.clone().exp()).into_iter().map(f64::from).collect();
        // Sample `group` decisions per prompt from the policy's own distribution (imitation:
        // the oracle's decision, once).
        let mut actions = vec![Vec::with_capacity(cfg.group); n];
        let mut rewards = vec![Vec::with_capacity(cfg.group); n];
        for i in 0..n {
            if cfg.algo == Algo::Imitate {
                let a = match rows[i].oracle_decision() {
                    Decision::Direct => D,
                    Decision::Think => T,
                };
                actions[i].push(a);
                rewards[i].push(reward(rows[i], a, cfg.lambda));
                continue;
            }
            let p = &probs[i * v..(i + 1) * v];
            for _ in 0..cfg.group {
                let mut x = rng.random::<f64>() * p.iter().sum::<f64>();
                let mut a = (v - 1) as u32;
                for (t, &pt) in p.iter().enumerate() {
                    if x < pt {
                        a = t as u32;
                        break;
                    }
                    x -= pt;
                }
                actions[i].push(a);
                rewards[i].push(reward(rows[i], a, cfg.lambda));
            }
        }
        let advantages: Vec<Vec<f64>> = match &self.critic {
            None if cfg.algo == Algo::Imitate => {
                actions.iter().map(|a| vec![1.0; a.len()]).collect()
            }
            None => rewards.iter().map(|r| grpo_advantages(r)).collect(),
            Some((critic, _)) => {
                let values = host(critic.values(&prompts, device)?);
                rewards
                    .iter()
                    .zip(&values)
                    .map(|(r, &b)| r.iter().map(|x| x - f64::from(b)).collect())
                    .collect()
            }
        };
        // Policy gradient: −Σ A·log π(a) / (n·group), as a weighted sum over the vocabulary.
        let mut w = vec![0f32; n * v];
        for i in 0..n {
            let per = actions[i].len().max(1);
            for (a, adv) in actions[i].iter().zip(&advantages[i]) {
                w[i * v + *a as usize] += (adv / (n * per) as f64) as f32;
            }
        }
        if cfg.mask_decision {
            w.iter_mut().for_each(|x| *x = 0.0);
        }
        let w = Tensor::<Autodiff<B>, 2>::from_data(TensorData::new(w, [n, v]), device);
        let mut loss = (lp * w).sum().neg();
        if cfg.anchor > 0 {
            let lines: Vec<Vec<u32>> = rows
                .iter()
                .take(cfg.anchor)
                .flat_map(|r| {
                    [Decision::Direct, Decision::Think]
                        .map(|d| tokenize(&format!("\n{}", learned::line(&r.problem, d))))
                })
                .collect();
            loss = loss + anchor_loss(&self.policy, &lines, device)?;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.policy);
        self.policy = self.optim.step(cfg.lr, self.policy.clone(), grads);
        if let Some((critic, optim)) = self.critic.take() {
            let targets: Vec<f32> = rewards
                .iter()
                .map(|r| (r.iter().sum::<f64>() / r.len() as f64) as f32)
                .collect();
            let t = Tensor::<Autodiff<B>, 1>::from_data(TensorData::new(targets, [n]), device);
            // Mean over the group of (V − r)² equals (V − mean r)² plus a constant.
            let vloss = (critic.values(&prompts, device)? - t).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(vloss.backward(), &critic);
            let mut optim = optim;
            let critic = optim.step(cfg.lr, critic, grads);
            self.critic = Some((critic, optim));
        }
        self.step += 1;
        let all: Vec<f64> = rewards.into_iter().flatten().collect();
        Ok(all.iter().sum::<f64>() / all.len() as f64)
    }

    /// The policy without autodiff.
    pub fn policy(&self) -> Decoder<B> {
        self.policy.valid()
    }

    pub(super) fn save_optim(
        &self,
        recorder: &BinFileRecorder<FullPrecisionSettings>,
        dir: &Path,
    ) -> std::result::Result<(), String> {
        let err = |e: burn::record::RecorderError| e.to_string();
        recorder
            .record(self.optim.to_record(), dir.join("optim"))
            .map_err(err)?;
        if let Some((c, o)) = &self.critic {
            recorder
                .record(c.clone().into_record(), dir.join("critic"))
                .map_err(err)?;
            recorder
                .record(o.to_record(), dir.join("critic-optim"))
                .map_err(err)?;
        }
        Ok(())
    }

    pub(super) fn load_optim(
        &mut self,
        recorder: &BinFileRecorder<FullPrecisionSettings>,
        dir: &Path,
        device: &B::Device,
    ) -> std::result::Result<(), String> {
        let err = |e: burn::record::RecorderError| e.to_string();
        let o = recorder.load(dir.join("optim"), device).map_err(err)?;
        self.optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init()).load_record(o);
        if let Some((c, o)) = self.critic.take() {
            let cr = recorder.load(dir.join("critic"), device).map_err(err)?;
            let or = recorder
                .load(dir.join("critic-optim"), device)
                .map_err(err)?;
            self.critic = Some((c.load_record(cr), o.load_record(or)));
        }
        Ok(())
    }
}

/// Seeds of the RL problem sets.
pub const TRAIN_SEED: u64 = 11;
/// Held-out problems for the greedy reward.
pub const EVAL_SEED: u64 = 13;

/// Uniform-bucket problems from `seed` (training and held-out RL sets).
pub fn problems(seed: u64, n: usize) -> Vec<crate::zoo::corpus::Problem> {
    super::workloads::sample(&[0.25; 4], seed, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::corpus::Problem;

    #[test]
    fn group_advantages_are_mean_centred_and_keep_the_reward_scale() {
        let a = grpo_advantages(&[1.0, 0.0, 0.0, 1.0]);
        // mean 0.5: ±0.5.
        let want = [0.5f32, -0.5, -0.5, 0.5];
        let got: Vec<f32> = a.iter().map(|&x| x as f32).collect();
        let d = infermark_models::diff::max_abs_diff(&got, &want).expect("finite");
        assert!(d < 1e-7, "{a:?}");
        assert!(a.iter().sum::<f64>().abs() < 1e-12);
        // A small reward gap gives a small advantage (no division by the group's spread).
        let small = grpo_advantages(&[0.99, 0.96]);
        let got: Vec<f32> = small.iter().map(|&x| x as f32).collect();
        let d = infermark_models::diff::max_abs_diff(&got, &[0.015, -0.015]).expect("finite");
        assert!(d < 1e-6, "{small:?}");
    }

    #[test]
    fn equal_rewards_give_zero_advantage() {
        assert_eq!(grpo_advantages(&[0.3; 5]), vec![0.0; 5]);
        assert!(grpo_advantages(&[]).is_empty());
    }

    #[test]
    fn rewards_charge_tokens_and_punish_format_errors() {
        let row = TableRow {
            problem: Problem {
                a: 1,
                b: 2,
                op: '+',
            },
            direct_ok: false,
            direct_tokens: 2,
            think_ok: true,
            think_tokens: 9,
        };
        assert_eq!(reward(&row, D, 0.5), 0.0 - 0.5 * 3.0 / NORMALISER);
        assert_eq!(reward(&row, T, 0.5), 1.0 - 0.5 * 10.0 / NORMALISER);
        assert_eq!(reward(&row, b'7' as u32, 0.5), FORMAT_PENALTY);
    }
}
