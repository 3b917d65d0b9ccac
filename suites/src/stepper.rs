//! A model with a prompt prefilled in a cache of its own, for timing single steps of the
//! decoding engine ([`Session`]): a step of `n` tokens after the prompt (then rolled back), or the
//! prefill again. Each call syncs the backend, so that asynchronous backends are timed honestly,
//! and returns the engine's error: a failed forward ends the measurement, it is never skipped.

use infermark_models::decoder::Decoder;
use infermark_models::generation::{Logits, Session};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{ContiguousKv, KvCache, ModelCache, SeqId};

use crate::{Result, SuiteError};

/// A model with `prompt` prefilled.
pub struct Stepper<'m, B: AttentionBackend, C: KvCache<B> = ContiguousKv<B>> {
    model: &'m Decoder<B>,
    cache: ModelCache<B, C>,
    seq: SeqId,
    prompt: Vec<u32>,
    /// The prompt's last-position logits.
    pub logits: Vec<f32>,
    device: B::Device,
}

fn engine(context: &str) -> impl Fn(infermark_models::ModelError) -> SuiteError + '_ {
    move |error| SuiteError::Model {
        context: context.into(),
        error,
    }
}

impl<'m, B: AttentionBackend> Stepper<'m, B> {
    /// Prefills `prompt` (non-empty) into a contiguous cache with room for `extra` more tokens.
    pub fn new(
        model: &'m Decoder<B>,
        prompt: &[u32],
        extra: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let cache = model.contiguous_cache(1, prompt.len() + extra, device);
        Stepper::with_cache(model, cache, prompt, device)
    }
}

impl<'m, B: AttentionBackend, C: KvCache<B>> Stepper<'m, B, C> {
    /// Prefills `prompt` (non-empty) into `cache`.
    pub fn with_cache(
        model: &'m Decoder<B>,
        mut cache: ModelCache<B, C>,
        prompt: &[u32],
        device: &B::Device,
    ) -> Result<Self> {
        if prompt.is_empty() {
            return Err(SuiteError::Input(
                "an empty prompt cannot be prefilled".into(),
            ));
        }
        let mut s = Session::new(model, &mut cache, device);
        let seq = s.add().map_err(engine("admission"))?;
        let logits = s
            .step(&[(seq, prompt)], Logits::Last)
            .map_err(engine("prefill"))?
            .remove(0)
            .remove(0);
        Ok(Self {
            model,
            cache,
            seq,
            prompt: prompt.to_vec(),
            logits,
            device: device.clone(),
        })
    }

    /// A step of `n` copies of the prompt's last token after the prompt, then rolled back.
    pub fn step(&mut self, n: usize) -> Result<()> {
        let last = *self.prompt.last().expect("non-empty prompt");
        let tokens = vec![last; n];
        let mut s = Session::new(self.model, &mut self.cache, &self.device);
        let stepped = s.step(&[(self.seq, &tokens)], Logits::All);
        let back = s.rollback(self.seq, self.prompt.len());
        stepped.map_err(engine("step"))?;
        back.map_err(engine("rollback"))?;
        crate::measure::sync::<B>(&self.device)
    }

    /// The whole prompt again into the emptied sequence.
    pub fn prefill(&mut self) -> Result<()> {
        let mut s = Session::new(self.model, &mut self.cache, &self.device);
        s.rollback(self.seq, 0).map_err(engine("rollback"))?;
        s.step(&[(self.seq, &self.prompt)], Logits::Last)
            .map_err(engine("prefill"))?;
        crate::measure::sync::<B>(&self.device)
    }
}
