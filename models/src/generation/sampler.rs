//! Token sampling from logits: argmax (temperature 0), or temperature, then top-k, then top-p
//! (nucleus, Holtzman et al. 2020), renormalised, as vLLM applies them; seeded, so the same seed
//! draws the same tokens. [`Sampler::probs`] returns the processed distribution itself, the `p`
//! and `q` of speculative rejection sampling (Leviathan et al. 2023).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ModelError;

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 picks the argmax (greedy).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`; 1 keeps all.
    pub top_p: f32,
}

impl SamplingConfig {
    /// Argmax decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }

    /// Sampling at `temperature` from the whole distribution.
    pub fn with_temperature(temperature: f32) -> Self {
        Self {
            temperature,
            ..Self::greedy()
        }
    }

    /// This config keeping only the `k` most likely tokens.
    pub fn with_top_k(self, k: usize) -> Self {
        Self { top_k: k, ..self }
    }

    /// This config keeping the nucleus of probability `p`.
    pub fn with_top_p(self, p: f32) -> Self {
        Self { top_p: p, ..self }
    }

    /// True for argmax decoding.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Refuses a negative or non-finite temperature and a `top_p` outside (0, 1].
    pub fn validate(&self) -> crate::Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "temperature must be finite and ≥ 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::InvalidConfig(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        Ok(())
    }
}

/// Index of the largest value; the lowest index among ties. The one argmax of the project.
///
/// # Panics
/// On an empty slice.
pub fn argmax(xs: &[f32]) -> u32 {
    assert!(!xs.is_empty(), "argmax of an empty slice");
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

pub(crate) fn check_logits(logits: &[f32]) -> crate::Result<()> {
    if logits.is_empty() {
        return Err(ModelError::InvalidConfig("empty logits".into()));
    }
    if let Some(i) = logits
        .iter()
        .position(|x| x.is_nan() || *x == f32::INFINITY)
    {
        return Err(ModelError::InvalidConfig(format!(
            "logits hold {} at token {i}: NaN and +inf have no distribution",
            logits[i]
        )));
    }
    if logits.iter().all(|x| x.is_infinite()) {
        return Err(ModelError::InvalidConfig(
            "every logit is -inf: no token can be drawn".into(),
        ));
    }
    Ok(())
}

/// A seeded sampler.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplingConfig,
    rng: StdRng,
}

impl Sampler {
    /// A sampler drawing from its own generator seeded with `seed`.
    pub fn new(config: SamplingConfig, seed: u64) -> crate::Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The configuration.
    pub fn config(&self) -> SamplingConfig {
        self.config
    }

    /// The distribution tokens are drawn from: one-hot at the argmax when greedy; otherwise
    /// softmax(logits / T), restricted to the top-k, then to the top-p nucleus, renormalised.
    /// Refuses NaN and +inf logits, and logits that are all -inf (masked tokens may be -inf).
    pub fn probs(&self, logits: &[f32]) -> crate::Result<Vec<f32>> {
        check_logits(logits)?;
        let mut p = vec![0f32; logits.len()];
        if self.config.is_greedy() {
            p[argmax(logits) as usize] = 1.0;
            return Ok(p);
        }
        let t = self.config.temperature;
        // The largest logit (finite: checked above), so every exponent is at most 0.
        let m = logits[argmax(logits) as usize];
        if self.config.top_k == 0 && self.config.top_p >= 1.0 {
            // Temperature alone: no order needed (sorting the vocabulary cost more than the
            // byte-level model's decode step).
            let e: Vec<f64> = logits
                .iter()
                .map(|&l| (((l - m) / t) as f64).exp())
                .collect();
            let z: f64 = e.iter().sum();
            for (pi, ei) in p.iter_mut().zip(&e) {
                *pi = (ei / z) as f32;
            }
            return Ok(p);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        // Most likely first; ties keep the lower index first.
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let k = match self.config.top_k {
            0 => order.len(),
            k => k.min(order.len()),
        };
        order.truncate(k);
        let e: Vec<f64> = order
            .iter()
            .map(|&i| (((logits[i] - m) / t) as f64).exp())
            .collect();
        let z: f64 = e.iter().sum();
        // The nucleus: the shortest most-likely prefix whose mass reaches top_p.
        let mut keep = 0;
        let mut mass = 0.0;
        while keep < e.len() {
            mass += e[keep] / z;
            keep += 1;
            if mass >= self.config.top_p as f64 {
                break;
            }
        }
        let zk: f64 = e[..keep].iter().sum();
        for (j, &i) in order[..keep].iter().enumerate() {
            p[i] = (e[j] / zk) as f32;
        }
        Ok(p)
    }

    /// Draws an index from a probability vector (which need not be normalised).
    pub fn draw(&mut self, probs: &[f32]) -> u32 {
        let total: f64 = probs.iter().map(|&p| p as f64).sum();
        let mut u = self.rng.random::<f64>() * total;
        let mut last = 0;
        for (i, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                last = i;
                u -= p as f64;
                if u < 0.0 {
                    return i as u32;
                }
            }
        }
        last as u32
    }

    /// A uniform number in [0, 1) from this sampler's generator (acceptance tests).
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// The next token: the argmax when greedy (no random draw), else a draw from
    /// [`Sampler::probs`].
    pub fn sample(&mut self, logits: &[f32]) -> crate::Result<u32> {
        if self.config.is_greedy() {
            check_logits(logits)?;
            return Ok(argmax(logits));
        }
        let p = self.probs(logits)?;
        Ok(self.draw(&p))
    }
}
