//! Decoding with real caches: the one decoder ([`Decoder`], a GQA preset with random weights)
//! runs a batch of sequences on contiguous or paged KV caches, so that a throughput difference
//! comes from running the model at the batch each policy admits: a larger batch shares each
//! weight read among more tokens.

use burn::tensor::{Distribution, Int, Tensor};
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::kernels::AttentionBackend;
use infermark_models::kv_cache::{KvCache, ModelCache, Values};

use crate::measure::{self, Plan, Summary};
use crate::{Result, SuiteError};

/// How the model's KV memory is held.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// One reservation of `max_len` tokens per sequence.
    Contiguous { max_len: usize },
    /// One block pool per layer shared by all sequences.
    Paged { block_size: usize, n_blocks: usize },
}

/// The throughput model: `(d_model, heads, kv_heads, d_head, layers, mlp)` as a byte-level GQA
/// decoder. The SwiGLU width is two thirds of `mlp` (rounded to 64), so the MLP costs what a
/// two-matrix MLP of width `mlp` would.
pub fn config(stack: (usize, usize, usize, usize, usize, usize), max_len: usize) -> DecoderConfig {
    let (d_model, h, kv, d, layers, mlp) = stack;
    let d_ff = (2 * mlp / 3) / 64 * 64;
    DecoderConfig::new(
        256,
        d_model,
        layers,
        h,
        d,
        d_ff.max(64),
        AttentionKind::Gqa { n_kv_heads: kv },
    )
    .with_max_seq_len(max_len)
}

fn model_err(context: &'static str) -> impl Fn(infermark_models::ModelError) -> SuiteError {
    move |error| SuiteError::Model {
        context: context.into(),
        error,
    }
}

fn pool_err(e: infermark_models::kv_cache::PoolError) -> SuiteError {
    SuiteError::Backend(format!("KV cache: {e}"))
}

/// Times decode steps of `batch` sequences that start at `ctx` cached tokens; the summary is per
/// step (ms), so tokens per second is `batch / median`.
pub fn time_decode<B: AttentionBackend>(
    model: &Decoder<B>,
    layout: Layout,
    batch: usize,
    ctx: usize,
    plan: Plan,
    device: &B::Device,
) -> Result<Summary> {
    match layout {
        Layout::Contiguous { max_len } => {
            let cache = model.contiguous_cache(batch, max_len, device);
            run(model, cache, batch, ctx, plan, device)
        }
        Layout::Paged {
            block_size,
            n_blocks,
        } => {
            let cache = model
                .paged_cache(n_blocks, block_size, device)
                .map_err(model_err("paged cache"))?;
            run(model, cache, batch, ctx, plan, device)
        }
    }
}

fn run<B: AttentionBackend, C: KvCache<B>>(
    model: &Decoder<B>,
    mut cache: ModelCache<B, C>,
    batch: usize,
    ctx: usize,
    plan: Plan,
    device: &B::Device,
) -> Result<Summary> {
    let seqs = (0..batch)
        .map(|_| cache.add_sequence())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pool_err)?;
    // `ctx` random cached tokens per sequence and layer (what a prefill would leave behind).
    let rand =
        |shape: [usize; 3]| Tensor::<B, 3>::random(shape, Distribution::Normal(0.0, 1.0), device);
    for layer in &mut cache.layers {
        let l = layer.layout();
        for &s in &seqs {
            let v = match l.values {
                Values::Separate(w) => Some(rand([l.heads, ctx, w])),
                Values::PrefixOfKeys(_) => None,
            };
            layer
                .append(s, rand([l.heads, ctx, l.k_width]), v)
                .map_err(pool_err)?;
        }
    }
    let tokens = Tensor::<B, 2, Int>::zeros([batch, 1], device);
    let mut failed = None;
    let summary = measure::time(
        plan,
        &mut cache,
        |c| match model.forward(tokens.clone(), &seqs, c) {
            Ok(y) => {
                let _ = B::sync(device);
                drop(y);
            }
            Err(e) => failed = Some(e),
        },
        |_| {},
    );
    match failed {
        Some(e) => Err(model_err("decode step")(e)),
        None => Ok(summary),
    }
}
