//! The attention suite: MHA, GQA and MQA (the GQA family) against MLA's naive and absorbed paths,
//! at real-model shapes, for KV cache memory, decode and prefill latency, KV read bandwidth,
//! analytic FLOPs, and the numerical agreement of MLA's two paths.
//!
//! Decode is timed twice per context length: the whole layer step (projections, RoPE, cache
//! append, attention, output projection) and the attention core alone (what reads the cache).
//! `kv_read_gbps` divides the cache bytes one step must read by the core's median time. The cache
//! is filled with random rows before timing: decode cost does not depend on the values, and it
//! keeps a 4096-token prefill out of every decode measurement.

pub mod presets;

use std::collections::BTreeMap;

use burn::tensor::{Distribution, Tensor};
use infermark_models::attention::{Attention, Mla, MlaPath};
use infermark_models::diff::{max_abs, max_abs_diff};
use infermark_models::kernels::{prefetch_calls, AttentionBackend};
use infermark_models::kv_cache::{
    stored_bytes, CacheLayout, ContiguousKv, KvCache, PoolError, SeqId, Values,
};

use crate::measure::{self, sync_keep, Plan};
use crate::metric::{
    DECODE_LATENCY_MS, FLOPS_PER_TOKEN, KV_CACHE_BYTES_PER_TOKEN, KV_PREFETCH_SHARE, KV_READ_GBPS,
    MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF, PREFILL_LATENCY_MS,
};
use crate::recorder::Recorder;
use crate::Experiment;
use crate::{
    About, Case, MaturityInputs, Record, Result, RunContext, Scale, Scaling, Stat, Suite,
    SuiteError,
};
use presets::Shape;

/// Suite name.
pub const NAME: &str = "attention";

/// The attention suite.
pub struct AttentionSuite;

const EXPERIMENTS: [(&str, &str); 5] = [
    (
        "kv_memory",
        "kv_cache_bytes_per_token, analytic and measured from the cache tensors",
    ),
    (
        "flops",
        "flops_per_token of one decode step, analytic, per context length",
    ),
    (
        "decode",
        "decode_latency_ms (layer and core) and kv_read_gbps over context lengths",
    ),
    ("prefill", "prefill_latency_ms of a causal prompt"),
    (
        "equivalence",
        "mla_absorbed_vs_naive_max_abs_diff over a decode run, relative to output scale",
    ),
];

/// What a scale runs.
struct Sizes {
    contexts: &'static [usize],
    prefill: usize,
    equivalence: (usize, usize),
    plan: Plan,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            contexts: &[64, 128, 256],
            prefill: 64,
            equivalence: (8, 8),
            plan: Plan::new(10, 5, 200, 150),
        },
        Scale::Quick => Sizes {
            contexts: &[256, 512, 1024, 2048, 4096],
            prefill: 256,
            equivalence: (16, 16),
            plan: Plan::new(3, 7, 60, 1200),
        },
        Scale::Full => Sizes {
            contexts: &[512, 1024, 2048, 4096, 8192, 16384, 32768],
            prefill: 2048,
            equivalence: (64, 32),
            plan: Plan::new(5, 10, 200, 5000),
        },
    }
}

/// What the suite is.
const ABOUT: About = About {
    name: NAME,
    description: "MLA (naive, absorbed) vs the GQA family (MHA, GQA, MQA): KV memory, decode/prefill latency, KV read bandwidth, FLOPs",
    experiments: &EXPERIMENTS,
};

impl Suite for AttentionSuite {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn variants(&self) -> Vec<&'static str> {
        presets::VARIANTS.to_vec()
    }

    /// Smoke: every experiment on the tiny presets, and memory and FLOPs (no timing) on the
    /// real-model shapes. Quick and full: every experiment on the real-model shapes.
    fn cases(&self, scale: Scale) -> Vec<Case> {
        let all = "kv_memory,flops,decode,prefill,equivalence";
        presets::all()
            .into_iter()
            .filter_map(|p| {
                let parts = match (scale, p.name) {
                    (Scale::Smoke, "tiny") => all,
                    (Scale::Smoke, _) => "kv_memory,flops",
                    (_, "tiny") => return None,
                    _ => all,
                };
                let params = BTreeMap::from([
                    ("preset".to_string(), p.name.to_string()),
                    ("parts".to_string(), parts.to_string()),
                ]);
                Some(Case {
                    variant: p.variant.into(),
                    params,
                })
            })
            .collect()
    }

    /// - S: the marginal cost of one more token of context, the slope of the whole layer's
    ///   decode step over `ctx` (per preset), against MHA's in the same preset: the KV cache a
    ///   step rereads is what these techniques shrink, and MHA is the design they are measured
    ///   against. MHA itself gets no S.
    /// - C: the spread of that step at the longest context; retention from MLA's absorbed path
    ///   against the naive one (a relative deviation, 0 = identical). The GQA family and the
    ///   naive path record no accuracy against a reference here (random weights), so their C is
    ///   not measured.
    /// - I: the cache bytes measured from the tensors and the absorbed-vs-naive deviation;
    ///   not the analytic bytes or FLOPs, which are formulas of the preset's shape.
    fn maturity(&self) -> MaturityInputs {
        MaturityInputs {
            scaling: Some(Scaling {
                metric: &DECODE_LATENCY_MS,
                filter: &[("part", "layer")],
                over: "ctx",
                group_by: "preset",
                reference: crate::suite::Reference::Variant("mha"),
            }),
            accuracy: &[crate::suite::Accuracy {
                metric: &MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF,
                reference: crate::suite::Reference::Relative,
            }],
            outcomes: &[
                &KV_CACHE_BYTES_PER_TOKEN,
                &MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF,
            ],
        }
    }
}

impl Experiment for AttentionSuite {
    fn run<B: AttentionBackend>(
        &self,
        case: &Case,
        ctx: &RunContext,
        device: &B::Device,
    ) -> Result<Vec<Record>> {
        let name = case
            .params
            .get("preset")
            .map(String::as_str)
            .unwrap_or_default();
        let preset = presets::find(name, &case.variant).ok_or_else(|| SuiteError::Unknown {
            kind: "attention preset",
            name: format!("{name}/{}", case.variant),
            known: presets::all()
                .iter()
                .map(|p| format!("{}/{}", p.name, p.variant))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let parts = case.params.get("parts").cloned().unwrap_or_default();
        let sizes = sizes(ctx.scale);
        let base = BTreeMap::from([
            ("preset".to_string(), preset.name.to_string()),
            ("batch".to_string(), "1".to_string()),
        ]);
        let mut rec = Recorder::new(ctx, NAME, preset.variant, base);
        let has = |p: &str| parts.split(',').any(|x| x == p);
        let label = format!("{}/{}", preset.name, preset.variant);

        if has("kv_memory") {
            (ctx.progress)(&format!("{label}: KV memory"));
            kv_memory::<B>(&preset.shape, &mut rec, device)?;
        }
        if has("flops") {
            for &t in sizes.contexts {
                rec.metric("flops", &FLOPS_PER_TOKEN)
                    .params(&[("ctx", t.to_string())])
                    .value(preset.shape.decode_flops(t))?;
            }
        }
        if !(has("decode") || has("prefill") || has("equivalence")) {
            return Ok(rec.records);
        }
        (ctx.progress)(&format!("{label}: initialising weights"));
        let layer = preset
            .shape
            .init::<B>(device)
            .map_err(SuiteError::model("layer init"))?;
        if has("decode") {
            for &t in sizes.contexts {
                (ctx.progress)(&format!("{label}: decode at context {t}"));
                decode::<B>(&layer, &preset.shape, t, sizes.plan, &mut rec, device)?;
            }
        }
        if has("prefill") {
            (ctx.progress)(&format!("{label}: prefill of {} tokens", sizes.prefill));
            let s = sizes.prefill;
            let x = Tensor::<B, 3>::random(
                [1, s, preset.shape.d_model()],
                Distribution::Normal(0.0, 1.0),
                device,
            );
            let (mut cache, seq) = new_cache(layer.cache_layout(), s, device)?;
            let summary = measure::time(
                sizes.plan,
                &mut cache,
                |cache| {
                    let y = layer
                        .forward(x.clone(), &[seq], cache)
                        .map_err(SuiteError::model("prefill"))?;
                    sync_keep(device, y)
                },
                |cache| cache.truncate(seq, 0).map_err(cache_err),
            )?;
            rec.timing(
                "prefill",
                &PREFILL_LATENCY_MS,
                &summary,
                &[("tokens", s.to_string())],
            )?;
        }
        if has("equivalence") {
            if let Attention::Mla(mla) = &layer {
                if mla.path() != MlaPath::Absorbed {
                    return Ok(rec.records);
                }
                (ctx.progress)(&format!("{label}: absorbed vs naive"));
                let (prefix, steps) = sizes.equivalence;
                let diff =
                    mla_path_difference::<B>(mla, preset.shape.d_model(), prefix, steps, device)?;
                rec.metric("equivalence", &MLA_ABSORBED_VS_NAIVE_MAX_ABS_DIFF)
                    .stat(Stat::Max, prefix + steps)
                    .params(&[
                        ("prefix", prefix.to_string()),
                        ("decode_steps", steps.to_string()),
                    ])
                    .value(diff)?;
            }
        }
        Ok(rec.records)
    }
}

/// A contiguous cache for `layer` with one sequence of up to `capacity` tokens.
fn new_cache<B: AttentionBackend>(
    layout: CacheLayout,
    capacity: usize,
    device: &B::Device,
) -> Result<(ContiguousKv<B>, SeqId)> {
    let mut cache = ContiguousKv::new(1, capacity, layout, device);
    let seq = cache.add_sequence().map_err(cache_err)?;
    Ok((cache, seq))
}

/// Appends `n` random rows to `seq` (decode cost does not depend on the values).
fn fill<B: AttentionBackend>(
    cache: &mut ContiguousKv<B>,
    seq: SeqId,
    n: usize,
    device: &B::Device,
) -> Result<()> {
    let l = cache.layout();
    let rand = |w| Tensor::random([l.heads, n, w], Distribution::Normal(0.0, 1.0), device);
    let v = match l.values {
        Values::Separate(w) => Some(rand(w)),
        Values::PrefixOfKeys(_) => None,
    };
    cache.append(seq, rand(l.k_width), v).map_err(cache_err)
}

fn cache_err(e: PoolError) -> SuiteError {
    SuiteError::Backend(format!("KV cache: {e}"))
}

/// Analytic bytes per token (from the shape's formula), and bytes per token measured from what
/// a filled cache holds: its stored rows read back (element type as stored), which must equal
/// the rows written.
fn kv_memory<B: AttentionBackend>(
    shape: &Shape,
    rec: &mut Recorder,
    device: &B::Device,
) -> Result<()> {
    const FILLED: usize = 10;
    let layout = shape.cache_layout();
    let (mut cache, seq) = new_cache::<B>(layout, 16, device)?;
    let rows = |w| {
        Tensor::<B, 3>::random(
            [layout.heads, FILLED, w],
            Distribution::Normal(0.0, 1.0),
            device,
        )
    };
    let k = rows(layout.k_width);
    let v = match layout.values {
        Values::Separate(w) => Some(rows(w)),
        Values::PrefixOfKeys(_) => None,
    };
    cache.append(seq, k.clone(), v.clone()).map_err(cache_err)?;
    let (k_back, v_back) = cache.stored(seq).map_err(cache_err)?;
    let host = |t: Tensor<B, 3>| {
        t.into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default()
    };
    let same =
        |a: Tensor<B, 3>, b: Tensor<B, 3>| max_abs_diff(&host(a), &host(b)).is_ok_and(|d| d == 0.0);
    let back = |t: Tensor<B, 4>| t.squeeze_dim::<3>(0);
    let written = same(back(k_back), k)
        && match (v, v_back) {
            (Some(v), Some(vb)) => same(back(vb), v),
            (None, None) => true,
            _ => false,
        };
    if !written {
        return Err(SuiteError::Backend(
            "KV cache: the rows read back differ from the rows written".into(),
        ));
    }
    let measured = stored_bytes(&cache, seq).map_err(cache_err)? as f64 / FILLED as f64;
    rec.metric("kv_memory", &KV_CACHE_BYTES_PER_TOKEN)
        .params(&[("source", "analytic".into()), ("dtype", "f32".into())])
        .value(shape.kv_bytes_per_token() as f64)?;
    rec.metric("kv_memory", &KV_CACHE_BYTES_PER_TOKEN)
        .params(&[("source", "measured".into()), ("dtype", "f32".into())])
        .value(measured)?;
    Ok(())
}

/// Times one decode step at context `t`: the whole layer, and the attention core alone.
fn decode<B: AttentionBackend>(
    layer: &Attention<B>,
    shape: &Shape,
    t: usize,
    plan: Plan,
    rec: &mut Recorder,
    device: &B::Device,
) -> Result<()> {
    let d_model = shape.d_model();
    let (mut cache, seq) = new_cache(layer.cache_layout(), t + 1, device)?;
    fill(&mut cache, seq, t, device)?;
    let x = Tensor::<B, 3>::random([1, 1, d_model], Distribution::Normal(0.0, 1.0), device);
    let whole = measure::time(
        plan,
        &mut cache,
        |cache| {
            let y = layer
                .forward(x.clone(), &[seq], cache)
                .map_err(SuiteError::model("decode step"))?;
            sync_keep(device, y)
        },
        |cache| cache.truncate(seq, t).map_err(cache_err),
    )?;
    // The core alone: prepare the decode token once (appending it), then time what reads the
    // cache.
    let p = layer
        .prepare(x, &[seq], &mut cache)
        .map_err(SuiteError::model("decode prepare"))?;
    let calls_before = prefetch_calls();
    let core = measure::time(
        plan,
        &mut cache,
        |c| {
            let o = layer
                .attend_core(&p, &[seq], c)
                .map_err(SuiteError::model("decode core"))?;
            sync_keep(device, o)
        },
        |_| Ok(()),
    )?;
    let ctx = ("ctx", t.to_string());
    rec.timing(
        "decode",
        &DECODE_LATENCY_MS,
        &whole,
        &[ctx.clone(), ("part", "layer".into())],
    )?;
    rec.timing(
        "decode",
        &DECODE_LATENCY_MS,
        &core,
        &[ctx.clone(), ("part", "core".into())],
    )?;
    let kv_bytes = (shape.kv_bytes_per_token() * (t + 1)) as f64;
    let gbps = kv_bytes / (core.median * 1e-3) / 1e9;
    rec.metric("decode", &KV_READ_GBPS)
        .stat(Stat::Median, core.n)
        .params(&[ctx.clone(), ("part", "core".into())])
        .value(gbps)?;
    // Which regime that was: the flex kernel prefetches only when K/V come from DRAM. Other
    // backends (and the generic core) make no such calls.
    let after = prefetch_calls();
    let [off, on] = [0, 1].map(|i| after[i] - calls_before[i]);
    if off + on > 0 {
        rec.metric("decode", &KV_PREFETCH_SHARE)
            .stat(Stat::Mean, (off + on) as usize)
            .params(&[ctx, ("part", "core".into())])
            .value(on as f64 / (off + on) as f64)?;
    }
    Ok(())
}

/// Largest |absorbed − naive| over a prefill and a decode run on the same weights and inputs,
/// divided by the largest |naive| output.
fn mla_path_difference<B: AttentionBackend>(
    mla: &Mla<B>,
    d_model: usize,
    prefix: usize,
    steps: usize,
    device: &B::Device,
) -> Result<f64> {
    let x = Tensor::<B, 3>::random(
        [1, prefix + steps, d_model],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let run = |path| -> Result<Vec<f32>> {
        let layer = Attention::Mla(mla.clone().with_path(path));
        let (mut cache, seq) = new_cache(layer.cache_layout(), prefix + steps, device)?;
        let mut outs = vec![layer
            .forward(x.clone().narrow(1, 0, prefix), &[seq], &mut cache)
            .map_err(SuiteError::model("MLA prefill"))?];
        for i in prefix..prefix + steps {
            outs.push(
                layer
                    .forward(x.clone().narrow(1, i, 1), &[seq], &mut cache)
                    .map_err(SuiteError::model("MLA decode"))?,
            );
        }
        Tensor::cat(outs, 1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| SuiteError::Backend(format!("MLA output: {e:?}")))
    };
    let (naive, absorbed) = (run(MlaPath::Naive)?, run(MlaPath::Absorbed)?);
    let scale = max_abs(&naive).map_err(SuiteError::model("MLA naive output"))?;
    let diff =
        max_abs_diff(&naive, &absorbed).map_err(SuiteError::model("MLA absorbed vs naive"))?;
    Ok((diff / scale.max(f32::MIN_POSITIVE)) as f64)
}
