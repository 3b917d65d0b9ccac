//! The suite's drafters, built from a variant name, and the cost ratios c and v measured
//! against one-token steps of the target.

use infermark_models::decoder::Decoder;
use infermark_models::generation::speculative::{
    prompt_lookup, EagleDrafter, ModelDrafter, PromptLookup, Proposer,
};
use infermark_models::generation::{Sampler, SamplingConfig};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::ContiguousKv;
use infermark_models::quant::{quantize_decoder, quantize_head, Assignment, QuantFormat};

use crate::measure::{time_pair, Plan, Summary};
use crate::stepper::Stepper;
use crate::zoo::checkpoint;
use crate::zoo::eagle::{self, EAGLE_SMOLLM2};
use crate::{Result, SuiteError};
use burn::tensor::{Int, Tensor, TensorData};

/// The layer-skip drafter keeps the first half of the target's blocks (2 of the committed
/// targets' 4, 15 of SmolLM2's 30).
pub fn layer_skip_blocks(n_blocks: usize) -> usize {
    (n_blocks / 2).max(1)
}

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
    /// The committed EAGLE head of the real model, chain drafting.
    Eagle(Box<EagleDrafter<B, ContiguousKv<B>>>),
}

/// The weight format of the EAGLE drafter's block and of its (draft-vocabulary) LM head, as
/// int4-self keeps its head: Q8_0 on the fused int8 kernels.
pub const EAGLE_FORMAT: QuantFormat = QuantFormat::Q8_0;

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
                // The head as deployed 4-bit files keep it (Q8_0): an f32 head would be most
                // of what a SmolLM2 draft step reads (113 of 173 MB).
                let mut m = quantize_decoder(target, int4)
                    .map_err(SuiteError::model("INT4 self-drafter"))?
                    .0;
                quantize_head(&mut m, QuantFormat::Q8_0)
                    .map_err(SuiteError::model("INT4 self-drafter head"))?;
                m
            }
            "layer-skip" => target
                .first_blocks(layer_skip_blocks(target.blocks.len()))
                .map_err(SuiteError::model("layer-skip drafter"))?,
            "eagle" => {
                let (head, card) =
                    eagle::load_head::<B>(&checkpoint::committed(EAGLE_SMOLLM2), device)?;
                let frozen = eagle::frozen_for(target, &card.draft_vocab)?
                    .quantize(EAGLE_FORMAT)
                    .map_err(SuiteError::model("EAGLE drafter head"))?;
                let head = head
                    .quantize(EAGLE_FORMAT)
                    .map_err(SuiteError::model("EAGLE drafter"))?;
                let cache = head.contiguous_cache(max_batch, target.max_seq_len(), device);
                return Ok(Drafter::Eagle(Box::new(EagleDrafter::with_frozen(
                    head, frozen, target, cache, device,
                ))));
            }
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
            Drafter::Eagle(e) => e.as_mut(),
        }
    }

    /// c: the median drafting step over the median one-token target step, timed alternately
    /// after a prefill of `prompt` (model drafters: one drafter token; EAGLE: one proposal of
    /// one token after the head has read the prompt's features, i.e. one head step and its LM
    /// head; prompt lookup: one lookup over the prompt proposing up to 8 tokens).
    pub fn cost(
        &mut self,
        target: &Decoder<B>,
        prompt: &[u32],
        plan: Plan,
        device: &B::Device,
    ) -> Result<Cost> {
        let mut t = Stepper::new(target, prompt, 16, device)?;
        match self {
            Drafter::Model { drafter, .. } => {
                let mut d = Stepper::new(drafter.model(), prompt, 1, device)?;
                let (a, b) = time_pair(plan, || d.step(1), || t.step(1))?;
                Ok(Cost::PerToken(a.median / b.median))
            }
            Drafter::Eagle(e) => {
                let rows = hidden_rows(target, prompt, device)?;
                e.observe_hidden(0, 0, rows)
                    .map_err(SuiteError::model("EAGLE features"))?;
                let mut sampler = Sampler::new(SamplingConfig::greedy(), 0)
                    .map_err(SuiteError::model("sampler"))?;
                let (a, b) = time_pair(
                    plan,
                    || {
                        e.propose(&[prompt], &[1], &mut sampler)
                            .map_err(SuiteError::model("EAGLE draft step"))?;
                        Ok(())
                    },
                    || t.step(1),
                )?;
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
                        Ok(())
                    },
                    || t.step(1),
                )?;
                Ok(Cost::PerCall(a.median / b.median))
            }
        }
    }
}

/// v(γ): the median target forward over γ + 1 tokens over the median one-token forward, same
/// context (the prompt prefilled), timed alternately; with the summary of each pair's ratio.
pub fn verify_cost<B: AttentionBackend>(
    target: &Decoder<B>,
    prompt: &[u32],
    gamma: usize,
    plan: Plan,
    device: &B::Device,
) -> Result<(f64, Summary)> {
    let mut t = Stepper::new(target, prompt, gamma + 1, device)?;
    let mut u = Stepper::new(target, prompt, 1, device)?;
    let (a, b) = time_pair(plan, || t.step(gamma + 1), || u.step(1))?;
    let pairs: Vec<f64> = a
        .samples
        .iter()
        .zip(&b.samples)
        .map(|(x, y)| x / y)
        .collect();
    Ok((a.median / b.median, Summary::of(&pairs)))
}

/// The target's final hidden states (what its LM head reads) of every token of `prompt`, one
/// row each.
fn hidden_rows<B: AttentionBackend>(
    target: &Decoder<B>,
    prompt: &[u32],
    device: &B::Device,
) -> Result<Vec<Vec<f32>>> {
    let ids: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
    let n = ids.len();
    let x = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), device);
    let h = target
        .hidden_full(x)
        .map_err(SuiteError::model("target hidden states"))?;
    let d = h.dims()[2];
    let v = h
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| SuiteError::Input(format!("hidden states to the host: {e:?}")))?;
    Ok(v.chunks(d).map(<[f32]>::to_vec).collect())
}

/// The last position's logits of `model` after `prompt` (a fresh cache).
pub fn last_logits<B: AttentionBackend>(
    model: &Decoder<B>,
    prompt: &[u32],
    device: &B::Device,
) -> Result<Vec<f32>> {
    Ok(Stepper::new(model, prompt, 0, device)?.logits)
}
