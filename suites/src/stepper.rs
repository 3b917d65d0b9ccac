//! A model with a prompt prefilled in a cache of its own, for timing single steps: a forward of
//! `n` tokens after the prompt (then rolled back), or the prefill again. Each call syncs the
//! backend, so that asynchronous backends are timed honestly.

use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::decoder::Decoder;
use infermark_models::generation::last_logits;
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{ContiguousKv, ModelCache, SeqId};

use crate::{Result, SuiteError};

/// A model with `prompt` prefilled.
pub struct Stepper<'m, B: AttentionBackend> {
    model: &'m Decoder<B>,
    cache: ModelCache<B, ContiguousKv<B>>,
    seq: SeqId,
    prompt: Vec<u32>,
    /// The prompt's last-position logits.
    pub logits: Vec<f32>,
    device: B::Device,
}

/// Token ids as a `[1, len]` tensor.
pub(crate) fn ids<B: AttentionBackend>(t: &[u32], device: &B::Device) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = t.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [1, t.len()]), device)
}

impl<'m, B: AttentionBackend> Stepper<'m, B> {
    /// Prefills `prompt` (non-empty) with room for `extra` more tokens.
    pub fn new(
        model: &'m Decoder<B>,
        prompt: &[u32],
        extra: usize,
        device: &B::Device,
    ) -> Result<Self> {
        if prompt.is_empty() {
            return Err(SuiteError::Input(
                "an empty prompt cannot be prefilled".into(),
            ));
        }
        let mut cache = model.contiguous_cache(1, prompt.len() + extra, device);
        let seq = cache
            .add_sequence()
            .map_err(|e| SuiteError::Backend(e.to_string()))?;
        let y = model
            .forward(ids::<B>(prompt, device), &[seq], &mut cache)
            .map_err(|error| SuiteError::Model {
                context: "prefill".into(),
                error,
            })?;
        Ok(Self {
            model,
            cache,
            seq,
            prompt: prompt.to_vec(),
            logits: last_logits(y).remove(0),
            device: device.clone(),
        })
    }

    /// A forward of `n` copies of the prompt's last token after the prompt, then rolled back.
    ///
    /// # Panics
    /// When `n` exceeds the room asked for in [`Stepper::new`].
    pub fn step(&mut self, n: usize) {
        let last = *self.prompt.last().expect("non-empty prompt");
        let y = self
            .model
            .forward(
                ids::<B>(&vec![last; n], &self.device),
                &[self.seq],
                &mut self.cache,
            )
            .expect("a step within the cache");
        B::sync(&self.device).expect("backend sync");
        drop(y);
        self.cache
            .truncate(self.seq, self.prompt.len())
            .expect("sequence held");
    }

    /// The whole prompt again into the emptied sequence.
    pub fn prefill(&mut self) {
        self.cache.truncate(self.seq, 0).expect("sequence held");
        let y = self
            .model
            .forward(
                ids::<B>(&self.prompt, &self.device),
                &[self.seq],
                &mut self.cache,
            )
            .expect("prefill within the cache");
        B::sync(&self.device).expect("backend sync");
        drop(y);
    }
}
