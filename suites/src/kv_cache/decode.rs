//! Decoding with real caches: a GQA decoder stack (random weights; each block is attention and a
//! GELU MLP, both residual) runs a batch of sequences with contiguous or paged KV caches, so that
//! a throughput difference comes from running the model at the batch each policy admits: a
//! larger batch shares each weight read among more tokens.

use burn::nn::{Linear, LinearConfig};
use burn::tensor::{activation::gelu, backend::Backend, Distribution, Tensor};
use infermark_models::attention::{Gqa, GqaCache, GqaConfig};
use infermark_models::kernels::{AttentionBackend, Visibility};
use infermark_models::kv_cache::{KvCache, PagedCache, SeqId, Values};

use crate::measure::{self, Plan, Summary};
use crate::{Result, SuiteError};

/// How the stack's KV memory is held.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// One cache per sequence reserving `max_len` tokens.
    Contiguous { max_len: usize },
    /// One block pool per layer shared by all sequences.
    Paged { block_size: usize, n_blocks: usize },
}

enum Caches<B: Backend> {
    /// Per layer: one `[batch, kv, max_len, d]` reservation, a fixed slot per sequence.
    Contiguous(Vec<GqaCache<B>>),
    Paged(Vec<PagedCache<B>>, Vec<SeqId>),
}

fn pool_err(e: infermark_models::kv_cache::PoolError) -> SuiteError {
    SuiteError::Backend(format!("paged cache: {e}"))
}

fn model_err(e: infermark_models::ModelError) -> SuiteError {
    SuiteError::Model {
        context: "contiguous cache".into(),
        error: e,
    }
}

/// A stack of decoder blocks: GQA attention, then an MLP.
pub struct Stack<B: Backend> {
    layers: Vec<Gqa<B>>,
    mlps: Vec<(Linear<B>, Linear<B>)>,
    cfg: GqaConfig,
}

impl<B: AttentionBackend> Stack<B> {
    /// `n_layers` blocks of `cfg` attention and a `d_mlp`-wide MLP, with seeded random weights.
    pub fn new(cfg: GqaConfig, n_layers: usize, d_mlp: usize, device: &B::Device) -> Result<Self> {
        let layers = (0..n_layers)
            .map(|_| {
                cfg.init(device).map_err(|e| SuiteError::Model {
                    context: "stack init".into(),
                    error: e,
                })
            })
            .collect::<Result<_>>()?;
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        let mlps = (0..n_layers)
            .map(|_| (lin(cfg.d_model, d_mlp), lin(d_mlp, cfg.d_model)))
            .collect();
        Ok(Self { layers, mlps, cfg })
    }

    /// KV bytes per token over all layers (f32).
    pub fn kv_bytes_per_token(&self) -> usize {
        self.cfg.kv_bytes_per_token(4) * self.layers.len()
    }

    fn caches(
        &self,
        layout: Layout,
        batch: usize,
        ctx: usize,
        device: &B::Device,
    ) -> Result<Caches<B>> {
        let (kv, d) = (self.cfg.n_kv_heads, self.cfg.d_head);
        let rand = |n| Tensor::<B, 3>::random([kv, n, d], Distribution::Normal(0.0, 1.0), device);
        Ok(match layout {
            Layout::Contiguous { max_len } => {
                let mut all = Vec::new();
                for _ in &self.layers {
                    let mut c = self.cfg.new_cache::<B>(batch, max_len, device);
                    let fill = || {
                        Tensor::<B, 4>::random(
                            [batch, kv, ctx, d],
                            Distribution::Normal(0.0, 1.0),
                            device,
                        )
                    };
                    c.k.append(fill()).map_err(model_err)?;
                    c.v.append(fill()).map_err(model_err)?;
                    all.push(c);
                }
                Caches::Contiguous(all)
            }
            Layout::Paged {
                block_size,
                n_blocks,
            } => {
                let mut pools = Vec::new();
                let mut seqs = Vec::new();
                for _ in &self.layers {
                    let mut p =
                        PagedCache::new(n_blocks, block_size, kv, d, Values::Separate(d), device)
                            .map_err(pool_err)?;
                    seqs = (0..batch).map(|_| p.add_sequence()).collect();
                    for &s in &seqs {
                        p.append(s, rand(ctx), Some(rand(ctx))).map_err(pool_err)?;
                    }
                    pools.push(p);
                }
                Caches::Paged(pools, seqs)
            }
        })
    }

    /// One decode step for every sequence.
    ///
    /// # Shapes
    /// - `x`: `[batch, 1, d_model]` → `[batch, 1, d_model]`
    fn step(&self, x: Tensor<B, 3>, caches: &mut Caches<B>, pos: usize) -> Result<Tensor<B, 3>> {
        let [batch, _, d_model] = x.dims();
        let (h, kv, d) = (self.cfg.n_heads, self.cfg.n_kv_heads, self.cfg.d_head);
        let scale = 1.0 / (d as f32).sqrt();
        // [batch, d_model] rows: each projection is one GEMM over the batch, so a weight is read
        // once per step whatever the batch (a 3-D input would be a batch of matrix-vector products).
        let mut x = x.reshape([batch, d_model]);
        for (li, l) in self.layers.iter().enumerate() {
            let split = |t: Tensor<B, 2>, n| t.reshape([batch, n, 1, d]);
            let q = l.rope.apply(split(l.wq.forward(x.clone()), h), pos); // [batch, h, 1, d]
            let k = l.rope.apply(split(l.wk.forward(x.clone()), kv), pos); // [batch, kv, 1, d]
            let v = split(l.wv.forward(x.clone()), kv);
            let qg = q.reshape([batch, kv, h / kv, d]); // grouped query heads per sequence
            let o = match caches {
                Caches::Contiguous(c) => {
                    let c = &mut c[li];
                    c.k.append(k).map_err(model_err)?;
                    c.v.append(v).map_err(model_err)?;
                    B::grouped_attention(qg, c.k.view(), c.v.view(), Visibility::All, scale)
                }
                Caches::Paged(pools, seqs) => {
                    let p = &mut pools[li];
                    p.append_step(seqs, k, Some(v)).map_err(pool_err)?;
                    p.attend_batch(qg, seqs, scale).map_err(pool_err)?
                }
            };
            x = x.clone() + l.wo.forward(o.reshape([batch, h * d]));
            let (up, down) = &self.mlps[li];
            x = x.clone() + down.forward(gelu(up.forward(x)));
        }
        Ok(x.reshape([batch, 1, d_model]))
    }

    /// Times decode steps of `batch` sequences that start at `ctx` cached tokens; the summary is
    /// per step (ms), so tokens per second is `batch / median`.
    pub fn time_decode(
        &self,
        layout: Layout,
        batch: usize,
        ctx: usize,
        plan: Plan,
        device: &B::Device,
    ) -> Result<Summary> {
        let mut state = (self.caches(layout, batch, ctx, device)?, ctx);
        let x = Tensor::<B, 3>::random(
            [batch, 1, self.cfg.d_model],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        let mut failed = None;
        let summary = measure::time(
            plan,
            &mut state,
            |(c, pos)| match self.step(x.clone(), c, *pos) {
                Ok(y) => {
                    let _ = B::sync(device);
                    drop(y);
                }
                Err(e) => failed = Some(e),
            },
            |(_, pos)| *pos += 1,
        );
        match failed {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}
