//! The lm suite's real-model rows: a GGUF model (SmolLM2-135M by default, fetched by
//! `ci/fetch-models.sh`) on real text, with its weights dequantized to f32 and held natively
//! (Q4_0/Q4_1/Q8_0 blocks read by the fused kernels), side by side: perplexity, prefill and
//! decode tokens per second (timed alternately), and the weight bytes a decode step reads.
//!
//! One more variant, `weights=q4_k_m`: the file re-quantized to llama.cpp's Q4_K_M mix by
//! infermark's own quantizers ([`crate::zoo::gguf::requant`]; made once into the temporary
//! folder and reused), held natively with int8 activations. It re-quantizes the file's 4-bit
//! weights (dequantized first), so its perplexity is that of a twice-quantized model.

use std::path::Path;

use infermark_models::decoder::Decoder;
use infermark_models::kernels::AttentionBackend;
use infermark_models::quant::{set_activations, Activations};

use super::about::PERPLEXITY_EXPERIMENT;
use crate::measure::{time_pair, Plan, Summary};
use crate::metric::{
    DECODE_LATENCY_MS, DECODE_TOKENS_PER_S, PARAM_COUNT, PREFILL_TOKENS_PER_S, STEP_TIME_SHARE,
    VALID_PERPLEXITY, WEIGHT_BYTES_PER_TOKEN, WEIGHT_READ_GBPS,
};
use crate::recorder::Recorder;
use crate::stepper::Stepper;
use crate::zoo::corpus::read_text;
use crate::zoo::gguf::{self, llama};
use crate::zoo::train::mean_nll;
use crate::{Result, RunContext, Scale, Stat, SuiteError};

struct Sizes {
    /// Most text tokens scored.
    tokens: usize,
    /// Window of the perplexity.
    window: usize,
    /// Prompt of the prefill and context of the decode timing.
    prompt: usize,
    plan: Plan,
}

fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            tokens: 256,
            window: 128,
            prompt: 32,
            plan: Plan::new(1, 3, 5, 100),
        },
        Scale::Quick => Sizes {
            tokens: 2048,
            window: 256,
            prompt: 128,
            plan: Plan::new(2, 10, 40, 2000),
        },
        Scale::Full => Sizes {
            tokens: usize::MAX,
            window: 512,
            prompt: 256,
            plan: Plan::new(3, 30, 100, 6000),
        },
    }
}

/// Bytes of weights one decode step reads: every projection and the head (the embedding row a
/// step looks up is negligible and not counted).
pub fn weight_bytes_per_token<B: AttentionBackend>(model: &Decoder<B>) -> usize {
    use infermark_models::decoder::Attention;
    let mut bytes = 0;
    for b in &model.blocks {
        if let Attention::Gqa(a) = &b.attn {
            bytes += a.wq.bytes() + a.wk.bytes() + a.wv.bytes() + a.wo.bytes();
        }
        bytes += b.mlp.gate.bytes() + b.mlp.up.bytes() + b.mlp.down.bytes();
    }
    bytes
        + match &model.lm_head {
            Some(h) => h.bytes(),
            None => {
                let [v, d] = model.embed.weight.dims();
                v * d * 4
            }
        }
}

/// Runs the real-model rows for the GGUF at `path` into `rec`.
pub fn run<B: AttentionBackend>(
    rec: &mut Recorder,
    path: &Path,
    ctx: &RunContext,
    device: &B::Device,
) -> Result<()> {
    let s = sizes(ctx.scale);
    (ctx.progress)("loading the GGUF (f32 and native weights)");
    let (dense, tokenizer, info) = llama::load::<B>(path, llama::Weights::F32, device)?;
    let (native, _, _) = llama::load::<B>(path, llama::Weights::Native, device)?;
    // The file's weights with each activation kind (int8: integer dot products on int8 blocks).
    let with_acts = |a: Activations| {
        let mut m = native.clone();
        set_activations(&mut m, a);
        m
    };
    let (native_f32, native_int8) = (with_acts(Activations::F32), with_acts(Activations::Int8));
    (ctx.progress)("re-quantizing the GGUF to Q4_K_M (cached in the temporary folder)");
    let q4km_path = q4_k_m_file(path)?;
    let (mut q4km, _, q4km_info) = llama::load::<B>(&q4km_path, llama::Weights::Native, device)?;
    set_activations(&mut q4km, Activations::Int8);
    let (text, text_name) = match &ctx.inputs.text {
        Some(p) => (read_text(p)?, p.display().to_string()),
        None => (gguf::real_text()?, gguf::REAL_TEXT_FILE.to_string()),
    };
    let ids = tokenizer.encode(&text, false)?;
    let n = ids.len().min(s.tokens) / s.window * s.window;
    if n == 0 {
        return Err(SuiteError::Input(format!(
            "text {text_name} has {} tokens, fewer than one window of {}",
            ids.len(),
            s.window
        )));
    }
    rec.metric(PERPLEXITY_EXPERIMENT, &PARAM_COUNT)
        .value(info.params as f64)?;
    let types: Vec<String> = info.types.iter().map(|(t, c)| format!("{t}x{c}")).collect();
    let file = [("file_types", types.join("+")), ("text", text_name.clone())];
    let models = [
        ("f32", "f32", &dense),
        ("native", "f32", &native_f32),
        ("native", "int8", &native_int8),
    ];
    let q4km_types: Vec<String> = q4km_info
        .types
        .iter()
        .map(|(t, c)| format!("{t}x{c}"))
        .collect();
    let q4km_file = [
        ("file_types", q4km_types.join("+")),
        ("text", text_name.clone()),
    ];
    let models = models
        .into_iter()
        .chain([("q4_k_m", "int8", &q4km)])
        .collect::<Vec<_>>();
    for (weights, acts, model) in models {
        (ctx.progress)(&format!(
            "perplexity, {weights} weights, {acts} activations, {n} tokens"
        ));
        let nll = mean_nll(model, &ids[..n], s.window, 1, device)?;
        let scored = n / s.window * (s.window - 1);
        let params = if weights == "q4_k_m" {
            &q4km_file
        } else {
            &file
        };
        rec.metric(PERPLEXITY_EXPERIMENT, &VALID_PERPLEXITY)
            .stat(Stat::Exact, scored)
            .params(params)
            .param("weights", weights)
            .param("activations", acts)
            .param("tokens", scored)
            .value(nll.exp())?;
        if acts == "f32" || weights == "q4_k_m" {
            rec.metric("speed", &WEIGHT_BYTES_PER_TOKEN)
                .param("weights", weights)
                .value(weight_bytes_per_token(model) as f64)?;
        }
    }
    (ctx.progress)("prefill and decode speed: f32, native with f32 and int8 activations");
    let prompt = &ids[..s.prompt.min(ids.len())];
    let mut a = Stepper::new(&dense, prompt, 1, device)?;
    let mut b = Stepper::new(&native_f32, prompt, 1, device)?;
    let mut c = Stepper::new(&native_int8, prompt, 1, device)?;
    let mut q = Stepper::new(&q4km, prompt, 1, device)?;
    let (pa, pb) = time_pair(s.plan, || a.prefill(), || b.prefill())?;
    // A/B pairs: the f32 model against the default native one (int8 activations), the native
    // weights with f32 against int8 activations (the kernels alone), and the Q4_K_M file
    // (int8 activations) against the f32 model and against the file's own native weights.
    let (da, dc) = time_pair(s.plan, || a.step(1), || c.step(1))?;
    let (db, dc2) = time_pair(s.plan, || b.step(1), || c.step(1))?;
    let (da2, dq) = time_pair(s.plan, || a.step(1), || q.step(1))?;
    let (dc3, dq2) = time_pair(s.plan, || c.step(1), || q.step(1))?;
    let rows = [
        ("f32", "f32", "native-int8", &dense, Some(&pa), &da),
        ("native", "int8", "f32", &native_int8, None, &dc),
        ("native", "f32", "native-int8", &native_f32, Some(&pb), &db),
        ("native", "int8", "native-f32", &native_int8, None, &dc2),
        ("f32", "f32", "q4_k_m-int8", &dense, None, &da2),
        ("q4_k_m", "int8", "f32", &q4km, None, &dq),
        ("native", "int8", "q4_k_m-int8", &native_int8, None, &dc3),
        ("q4_k_m", "int8", "native-int8", &q4km, None, &dq2),
    ];
    for (weights, acts, against, model, prefill, decode) in rows {
        speed_records(
            rec,
            (weights, acts, against),
            model,
            prefill,
            decode,
            prompt.len(),
        )?;
    }
    if B::host_tensors() {
        (ctx.progress)("profile of a decode step: f32 and native weights");
        for (weights, acts, model) in [("f32", "f32", &dense), ("native", "int8", &native_int8)] {
            profile_records(rec, (weights, acts), model, prompt, s.plan, device)?;
        }
    }
    Ok(())
}

/// Bumped when the quantizers change, so that a cached Q4_K_M file is made again.
const REQUANT_REVISION: u32 = 1;

/// The GGUF at `src` re-quantized to Q4_K_M: made once into the temporary folder (named by
/// the source's name, size and modification time) and reused by later runs.
fn q4_k_m_file(src: &Path) -> Result<std::path::PathBuf> {
    use crate::zoo::gguf::requant::{quantize_file, Target};
    let meta =
        std::fs::metadata(src).map_err(|e| SuiteError::Input(format!("{}: {e}", src.display())))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let stem = src
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy());
    let dir = std::env::temp_dir().join("infermark-cache");
    std::fs::create_dir_all(&dir)
        .map_err(|e| SuiteError::Input(format!("{}: {e}", dir.display())))?;
    let out = dir.join(format!(
        "{stem}-{}-{mtime}-r{REQUANT_REVISION}.q4_k_m.gguf",
        meta.len()
    ));
    if !out.exists() {
        quantize_file(src, Target::Q4KM, &out, true)?;
    }
    Ok(out)
}

/// Where a batch-1 decode step's time goes (`infermark_models::profile`): the share of each
/// part over `plan.min_samples` steps of the engine after the warm-up, sampling (greedy argmax of
/// read back to the host) timed here, and what no part covers as `other`.
fn profile_records<B: AttentionBackend>(
    rec: &mut Recorder,
    (weights, acts): (&str, &str),
    model: &Decoder<B>,
    prompt: &[u32],
    plan: Plan,
    device: &B::Device,
) -> Result<()> {
    use infermark_models::generation::{argmax, Logits, Session};
    use infermark_models::profile::Profile;
    use std::time::Instant;
    let err = |error| SuiteError::Model {
        context: "profiled decode step".into(),
        error,
    };
    let mut cache = model.contiguous_cache(1, prompt.len() + 1, device);
    let mut session = Session::new(model, &mut cache, device);
    let seq = session.add().map_err(err)?;
    session
        .step(&[(seq, &prompt[..prompt.len() - 1])], Logits::Last)
        .map_err(err)?;
    let last = &prompt[prompt.len() - 1..];
    let mut step = |sampling: &mut f64| -> Result<f64> {
        let t = Instant::now();
        let logits = session.step(&[(seq, last)], Logits::Last).map_err(err)?;
        let ts = Instant::now();
        std::hint::black_box(argmax(&logits[0][0]));
        *sampling += ts.elapsed().as_secs_f64();
        let total = t.elapsed().as_secs_f64();
        session.rollback(seq, prompt.len() - 1).map_err(err)?;
        Ok(total)
    };
    let mut unused = 0.0;
    for _ in 0..plan.warmup {
        step(&mut unused)?;
    }
    let profile = Profile::start().ok_or_else(|| {
        SuiteError::Backend("another decode-step profile is recording in this process".into())
    })?;
    let (mut total, mut sampling) = (0.0, 0.0);
    let n = plan.min_samples.max(1);
    for _ in 0..n {
        total += step(&mut sampling)?;
    }
    let parts = profile.seconds();
    drop(profile);
    let mut shares: Vec<(&str, f64)> = parts.iter().map(|(p, s)| (p.name(), s / total)).collect();
    shares.push(("sampling", sampling / total));
    // The parts are timed inside the steps and do not nest, so they cannot add up to more.
    let covered: f64 = shares.iter().map(|(_, x)| x).sum();
    if covered.is_nan() || covered > 1.0 {
        return Err(SuiteError::Backend(format!(
            "the profiled parts of a decode step add up to {covered} of it (overlapping or NaN)"
        )));
    }
    shares.push(("other", 1.0 - covered));
    for (part, share) in shares {
        rec.metric("profile", &STEP_TIME_SHARE)
            .stat(Stat::Mean, n)
            .param("weights", weights)
            .param("activations", acts)
            .param("part", part)
            .value(share)?;
    }
    rec.metric("profile", &DECODE_LATENCY_MS)
        .stat(Stat::Mean, n)
        .param("weights", weights)
        .param("activations", acts)
        .param("part", "step")
        .value(total * 1e3 / n as f64)?;
    Ok(())
}

/// Speed rows of one model: `(weights, activations, timed alongside)` name it and the model
/// it was timed against (A/B, same run); prefill only where it was timed.
fn speed_records<B: AttentionBackend>(
    rec: &mut Recorder,
    (weights, acts, against): (&str, &str, &str),
    model: &Decoder<B>,
    prefill: Option<&Summary>,
    decode: &Summary,
    prompt: usize,
) -> Result<()> {
    if let Some(prefill) = prefill {
        rec.metric("speed", &PREFILL_TOKENS_PER_S)
            .stat(Stat::Median, prefill.n)
            .param("weights", weights)
            .param("tokens", prompt)
            .value(prompt as f64 * 1e3 / prefill.median)?;
    }
    let tps = 1e3 / decode.median;
    let gbps = weight_bytes_per_token(model) as f64 * tps / 1e9;
    for (metric, value) in [(&DECODE_TOKENS_PER_S, tps), (&WEIGHT_READ_GBPS, gbps)] {
        rec.metric("speed", metric)
            .stat(Stat::Median, decode.n)
            .param("weights", weights)
            .param("activations", acts)
            .param("against", against)
            .param("ctx", prompt)
            .value(value)?;
    }
    Ok(())
}
