//! The suite's drafters, built from a variant name, and the cost ratios c and v measured
//! against one-token steps of the target.

use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::decoder::Decoder;
use infermark_models::generation::last_logits as host_last;
use infermark_models::generation::speculative::{
    prompt_lookup, ModelDrafter, PromptLookup, Proposer,
};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{ContiguousKv, ModelCache, SeqId};
use infermark_models::quant::{quantize_decoder, Assignment, QuantFormat};

use super::model_err;
use crate::measure::{time_pair, Plan};
use crate::zoo::checkpoint;
use crate::{Result, SuiteError};

/// Blocks of the target the layer-skip drafter keeps (of the committed targets' 4).
pub const LAYER_SKIP_BLOCKS: usize = 2;

/// Longest n-gram prompt lookup matches (Saxena 2023).
pub const LOOKUP_NGRAM: usize = 3;

/// What drafting costs, in one-token target steps.
#[derive(Clone, Copy, Debug)]
pub enum Cost {
    /// A model drafter: one forward per drafted token.
    PerToken(f64),
    /// Prompt lookup: one call per step, whatever it proposes.
    PerCall(f64),
}

/// A drafter of the suite.
pub enum Drafter<B: AttentionBackend> {
    /// A decoder drafting (draft model, INT4 self, layer skip); `adaptive` for HF's γ heuristic.
    Model {
        drafter: Box<ModelDrafter<B, ContiguousKv<B>>>,
        adaptive: bool,
    },
    /// Prompt lookup.
    Lookup(PromptLookup),
}

impl<B: AttentionBackend> Drafter<B> {
    /// The drafter `variant` for `target`, with room for `max_batch` sequences.
    pub fn build(
        variant: &str,
        target: &Decoder<B>,
        max_batch: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let model = match variant {
            "prompt-lookup" => {
                return Ok(Drafter::Lookup(PromptLookup {
                    max_ngram: LOOKUP_NGRAM,
                }))
            }
            "draft" | "draft-adaptive" => {
                checkpoint::load::<B>(&checkpoint::committed("draft"), device)?.0
            }
            "int4-self" => {
                let int4 = Assignment::uniform(QuantFormat::Int4 {
                    group: 32,
                    asym: false,
                });
                quantize_decoder(target, int4)
                    .map_err(model_err("INT4 self-drafter".into()))?
                    .0
            }
            "layer-skip" => target
                .first_blocks(LAYER_SKIP_BLOCKS)
                .map_err(model_err("layer-skip drafter".into()))?,
            other => {
                return Err(SuiteError::Unknown {
                    kind: "drafter",
                    name: other.into(),
                    known: super::DRAFTERS.join(", "),
                })
            }
        };
        let cache = model.contiguous_cache(max_batch, model.max_seq_len(), device);
        Ok(Drafter::Model {
            drafter: Box::new(ModelDrafter::new(model, cache, device)),
            adaptive: variant == "draft-adaptive",
        })
    }

    /// Whether γ adapts (HF's heuristic).
    pub fn adaptive(&self) -> bool {
        matches!(self, Drafter::Model { adaptive: true, .. })
    }

    /// The drafter as the speculative loop's seam.
    pub fn proposer(&mut self) -> &mut dyn Proposer {
        match self {
            Drafter::Model { drafter, .. } => drafter.as_mut(),
            Drafter::Lookup(l) => l,
        }
    }

    /// c: the median drafting step over the median one-token target step, timed alternately
    /// after a prefill of `prompt` (model drafters: one drafter token; prompt lookup: one
    /// lookup over the prompt proposing up to 8 tokens).
    pub fn cost(
        &self,
        target: &Decoder<B>,
        prompt: &[u32],
        plan: Plan,
        device: &B::Device,
    ) -> Result<Cost> {
        let mut t = Stepper::new(target, prompt, device)?;
        match self {
            Drafter::Model { drafter, .. } => {
                let mut d = Stepper::new(drafter.model(), prompt, device)?;
                let (a, b) = time_pair(plan, || d.step(1), || t.step(1));
                Ok(Cost::PerToken(a.median / b.median))
            }
            Drafter::Lookup(l) => {
                let (a, b) = time_pair(
                    plan,
                    || {
                        std::hint::black_box(prompt_lookup(
                            std::hint::black_box(prompt),
                            l.max_ngram,
                            8,
                        ));
                    },
                    || t.step(1),
                );
                Ok(Cost::PerCall(a.median / b.median))
            }
        }
    }
}

/// v(γ): the median target forward over γ + 1 tokens over the median one-token forward, same
/// context (the prompt prefilled), timed alternately.
pub fn verify_cost<B: AttentionBackend>(
    target: &Decoder<B>,
    prompt: &[u32],
    gamma: usize,
    plan: Plan,
    device: &B::Device,
) -> Result<f64> {
    let mut t = Stepper::new(target, prompt, device)?;
    let mut u = Stepper::new(target, prompt, device)?;
    let (a, b) = time_pair(plan, || t.step(gamma + 1), || u.step(1));
    Ok(a.median / b.median)
}

/// The last position's logits of `model` after `prompt` (a fresh cache).
pub fn last_logits<B: AttentionBackend>(
    model: &Decoder<B>,
    prompt: &[u32],
    device: &B::Device,
) -> Result<Vec<f32>> {
    let s = Stepper::new(model, prompt, device)?;
    Ok(s.logits)
}

/// A model with `prompt` prefilled, stepping forward and rolling back.
struct Stepper<'m, B: AttentionBackend> {
    model: &'m Decoder<B>,
    cache: ModelCache<B, ContiguousKv<B>>,
    seq: SeqId,
    len: usize,
    next: u32,
    logits: Vec<f32>,
    device: B::Device,
}

impl<'m, B: AttentionBackend> Stepper<'m, B> {
    fn new(model: &'m Decoder<B>, prompt: &[u32], device: &B::Device) -> Result<Self> {
        let mut cache = model.contiguous_cache(1, model.max_seq_len(), device);
        let seq = cache
            .add_sequence()
            .map_err(|e| SuiteError::Backend(e.to_string()))?;
        let y = model
            .forward(ids::<B>(prompt, device), &[seq], &mut cache)
            .map_err(model_err("prefill".into()))?;
        let logits = host_last(y).remove(0);
        Ok(Self {
            model,
            cache,
            seq,
            len: prompt.len(),
            next: *prompt.last().expect("non-empty prompt"),
            logits,
            device: device.clone(),
        })
    }

    /// One forward of `n` tokens (synced), then the cache rolled back.
    fn step(&mut self, n: usize) {
        let x = ids::<B>(&vec![self.next; n], &self.device);
        let y = self
            .model
            .forward(x, &[self.seq], &mut self.cache)
            .expect("a step within the model's length");
        B::sync(&self.device).expect("backend sync");
        drop(y);
        self.cache
            .truncate(self.seq, self.len)
            .expect("sequence held");
    }
}

fn ids<B: AttentionBackend>(t: &[u32], device: &B::Device) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = t.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [1, t.len()]), device)
}
