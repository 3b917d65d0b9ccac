//! `infermark eval`: evaluates one trained model (committed, trained with `infermark train`, or a
//! Hugging Face Llama directory) and writes the records as a run.

use std::path::PathBuf;

use anyhow::{bail, Result};
use infermark_suites::lm::{model_case, LmSuite};
use infermark_suites::metric::{self as metrics, Metric};
use infermark_suites::zoo::checkpoint;
use infermark_suites::{BackendKind, Record, Scale};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Model to evaluate: target, target-mha, target-mla, draft, arith (the committed
    /// checkpoints in suites/checkpoints/ or $INFERMARK_CHECKPOINTS), or a label for --checkpoint / --model-path.
    #[arg(long, value_name = "NAME", default_value = "target")]
    pub model: String,
    /// Checkpoint stem written by `infermark train` (STEM.safetensors + STEM.json).
    #[arg(long, value_name = "STEM", conflicts_with = "model_path")]
    pub checkpoint: Option<PathBuf>,
    /// A GGUF file (Llama architecture; F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K,
    /// Q6_K tensors) or a Hugging Face Llama directory (config.json, model.safetensors,
    /// tokenizer.json). Records are labelled with the model's own name.
    #[arg(long, value_name = "FILE.gguf|DIR")]
    pub model_path: Option<PathBuf>,
    /// Evaluation text (UTF-8) for a GGUF model. Default: the licence text `ci/fetch-models.sh`
    /// fetches with SmolLM2.
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// smoke: 4 KiB of validation text and 4 problems per bucket; quick: the whole 64 KiB
    /// validation split and 50 problems per bucket and format; full: 250 problems.
    #[arg(long, default_value = "quick", value_parser = crate::parse_scale)]
    pub scale: Scale,
    /// Backend: flex (CPU), cuda or wgpu (build with `--features cuda` or `--features wgpu`).
    #[arg(long, default_value = "flex", value_parser = crate::parse_backend)]
    pub backend: BackendKind,
    /// Output run directory; must not exist (see --force). Default: results/<timestamp>-eval-<model>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing output directory.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let source = match (&args.checkpoint, &args.model_path) {
        (Some(c), _) => Some(c.clone()),
        (_, Some(d)) => {
            let gguf = d
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
            if !(d.is_dir() || (gguf && d.is_file())) {
                bail!(
                    "--model-path {} is neither a GGUF file nor a Hugging Face directory",
                    d.display()
                );
            }
            if gguf {
                // Parse the header now: a malformed file stops before anything is written.
                infermark_suites::zoo::gguf::GgufFile::open(d)?;
            }
            Some(d.clone())
        }
        (None, None) => {
            let stem = checkpoint::committed(&args.model);
            if !checkpoint::paths(&stem).1.exists() {
                let known = infermark_suites::lm::MODELS.join(", ");
                bail!(
                    "no committed checkpoint `{}`; known: {known} (or pass --checkpoint / --model-path)",
                    args.model
                );
            }
            None
        }
    };
    let card = match (&args.checkpoint, &args.model_path) {
        (_, Some(_)) => None,
        (Some(c), _) => Some(checkpoint::read_card(c)?),
        _ => Some(checkpoint::read_card(&checkpoint::committed(&args.model))?),
    };
    if let Some(t) = &args.text {
        infermark_suites::zoo::corpus::read_text(t)?;
    }
    // A user's model is labelled with its own name.
    let label = match &args.model_path {
        Some(p) if p.is_file() => infermark_suites::zoo::real::gguf_label(p),
        Some(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| args.model.clone()),
        None => args.model.clone(),
    };
    let case = model_case(&label, source);
    let suite: std::sync::Arc<dyn infermark_suites::Suite> = std::sync::Arc::new(LmSuite);
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(format!("{stamp}-eval-{label}")));
    let records = crate::execute(
        vec![(suite, case)],
        args.scale,
        args.backend,
        1,
        &out,
        args.force,
        infermark_suites::UserInputs {
            trace: None,
            text: args.text.clone(),
        },
    )?;
    print_eval(&records, card.as_ref());
    println!("\n→ {}", out.display());
    Ok(())
}

fn value(records: &[Record], metric: &Metric, filter: &[(&str, &str)]) -> Option<f64> {
    records
        .iter()
        .find(|r| {
            r.metric == metric.name
                && filter
                    .iter()
                    .all(|(k, v)| r.params.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|r| r.value)
}

fn print_eval(records: &[Record], card: Option<&checkpoint::Card>) {
    let real: Vec<&Record> = records
        .iter()
        .filter(|r| r.params.contains_key("weights"))
        .collect();
    for w in ["f32", "native"] {
        let get = |m: &Metric| {
            real.iter().find(|r| {
                r.metric == m.name && r.params.get("weights").map(String::as_str) == Some(w)
            })
        };
        if let Some(p) = get(&metrics::VALID_PERPLEXITY) {
            println!(
                "{w:>6} weights: perplexity {:.3} on {} ({} tokens scored); decode {:.1} tokens/s, prefill {:.0} tokens/s, {:.1} MB of weights per token",
                p.value,
                p.params.get("text").map(String::as_str).unwrap_or("?"),
                p.n,
                get(&metrics::DECODE_TOKENS_PER_S).map_or(f64::NAN, |r| r.value),
                get(&metrics::PREFILL_TOKENS_PER_S).map_or(f64::NAN, |r| r.value),
                get(&metrics::WEIGHT_BYTES_PER_TOKEN).map_or(f64::NAN, |r| r.value / 1e6),
            );
        }
    }
    if !real.is_empty() {
        return;
    }
    if let Some(ppl) = value(records, &metrics::VALID_PERPLEXITY, &[]) {
        print!("validation perplexity {ppl:.4}");
        if let Some(u) = value(records, &metrics::UNIGRAM_PERPLEXITY, &[]) {
            print!(" (unigram baseline {u:.3})");
        }
        println!();
        if let Some(c) = card {
            let full = records
                .iter()
                .any(|r| r.metric == metrics::VALID_PERPLEXITY.name && r.scale != "smoke");
            let diff = (ppl.ln() - c.valid_loss) / c.valid_loss * 100.0;
            println!(
                "card: validation loss {:.4} nats (perplexity {:.4}); measured {:.4} nats, {diff:+.2}%{}",
                c.valid_loss,
                c.valid_perplexity,
                ppl.ln(),
                if full { "" } else { " (smoke scores a 4 KiB prefix, not the card's whole split)" }
            );
        }
    }
    let buckets: Vec<String> = {
        let mut b: Vec<String> = records
            .iter()
            .filter(|r| r.metric == metrics::ARITH_ACCURACY.name)
            .filter_map(|r| r.params.get("bucket_digits").cloned())
            .collect();
        b.sort();
        b.dedup();
        b
    };
    if buckets.is_empty() {
        return;
    }
    println!(
        "\n{:<8} {:>16} {:>16} {:>14} {:>14}",
        "digits", "direct accuracy", "think accuracy", "direct tokens", "think tokens"
    );
    for b in &buckets {
        let get = |m: &Metric, f: &str| {
            value(records, m, &[("bucket_digits", b), ("format", f)]).unwrap_or(f64::NAN)
        };
        println!(
            "{:<8} {:>15.1}% {:>15.1}% {:>14.1} {:>14.1}",
            b,
            100.0 * get(&metrics::ARITH_ACCURACY, "direct"),
            100.0 * get(&metrics::ARITH_ACCURACY, "think"),
            get(&metrics::ARITH_GENERATED_TOKENS, "direct"),
            get(&metrics::ARITH_GENERATED_TOKENS, "think"),
        );
    }
}
