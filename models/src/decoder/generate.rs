//! Greedy decoding with the KV cache: prefill the prompt once, then one token per step.

use burn::tensor::{Int, Tensor, TensorData};

use super::model::{Decoder, DecoderCache};
use crate::attention::MlaPath;
use crate::kernels::AttentionBackend;
use crate::ModelError;

/// Index of the largest logit of the last position.
///
/// # Shapes
/// - `logits`: `[1, s, vocab]`
pub fn argmax_last<B: AttentionBackend>(logits: Tensor<B, 3>) -> u32 {
    let [_, s, v] = logits.dims();
    let last = logits.narrow(1, s - 1, 1).reshape([v]);
    let data = last.into_data().convert::<f32>();
    let xs = data.as_slice::<f32>().expect("f32 logits");
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy continuation of `prompt`: at most `max_new` tokens, stopping after `stop` (included).
pub fn greedy<B: AttentionBackend>(
    model: &Decoder<B>,
    prompt: &[u32],
    max_new: usize,
    stop: Option<u32>,
    path: MlaPath,
    device: &B::Device,
) -> crate::Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidConfig("empty prompt".into()));
    }
    model.check_tokens(prompt)?;
    let capacity = (prompt.len() + max_new).min(model.max_seq_len());
    let mut cache: DecoderCache<B> = model.new_cache(1, capacity, path, device);
    let ids = |t: &[u32]| {
        let v: Vec<i64> = t.iter().map(|&x| x as i64).collect();
        Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, t.len()]), device)
    };
    let mut logits = model.forward(ids(prompt), &mut cache)?;
    let mut out = Vec::new();
    while out.len() < max_new && cache.len() < capacity {
        let next = argmax_last(logits);
        out.push(next);
        if Some(next) == stop || cache.len() == capacity {
            break;
        }
        logits = model.forward(ids(&[next]), &mut cache)?;
    }
    Ok(out)
}
