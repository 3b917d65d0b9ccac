//! `learned` (AdaCoT proper): the fine-tuned `arith-adaptive` model reads `A:<problem>=` and
//! writes its own decision token, `D` (answer now) or `T` (scratchpad, `|`, answer), then the
//! answer in that format. The decision is parsed strictly: anything else as the first generated
//! token is a format error (AdaCoT's P_fmt), counted as a wrong answer and reported, never read
//! as a direct answer.
//!
//! `learned-route` ([`LearnedRoute`], a [`Gate`]) runs the same model for its decision token only and
//! sends the problem to the base model's answer in that format, the answers every other gate is
//! scored on: it measures the decision alone, apart from how well the fine-tuned model answers.

use infermark_models::attention::MlaPath;
use infermark_models::decoder::Decoder;
use infermark_models::kernels::AttentionBackend;

use super::gate::{Decision, FirstStep, Gate, Outcome, Verdict};
use super::labels::{answer_each, digits, Label};
use crate::zoo::corpus::{check_answer, detokenize, tokenize, Format, Problem};
use crate::Result;

/// The marker that asks the model to decide: the line starts `A:`.
pub const MARKER: char = 'A';

/// The adaptive prompt of `p`: `A:347+85=`.
pub fn prompt(p: &Problem) -> String {
    format!("{MARKER}:{}{}{}=", p.a, p.op, p.b)
}

/// The adaptive training line of `p` with decision `d`: `A:347+85=D432` or
/// `A:347+85=T7+5+0=2c1:2 …|432`, newline-terminated.
pub fn line(p: &Problem, d: Decision) -> String {
    let f = format_of(d);
    format!("{}{}{}", prompt(p), f.control(), p.completion(f))
}

/// The format a decision answers in.
pub fn format_of(d: Decision) -> Format {
    match d {
        Decision::Direct => Format::Direct,
        Decision::Think => Format::Think,
    }
}

/// A decision token that is neither `D` nor `T`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// What the model wrote instead (lossy text of the first token; empty when it wrote
    /// nothing).
    pub got: String,
}

/// The decision token: exactly `D` or `T`, nothing else.
pub fn parse_decision(first: Option<u32>) -> std::result::Result<Decision, FormatError> {
    match first {
        Some(t) if t == u32::from(b'D') => Ok(Decision::Direct),
        Some(t) if t == u32::from(b'T') => Ok(Decision::Think),
        Some(t) => Err(FormatError {
            got: detokenize(&[t]),
        }),
        None => Err(FormatError { got: String::new() }),
    }
}

/// Scores one adaptive completion of `p`: the decision (or a format error) and whether the
/// answer after it is right.
pub fn judge(p: &Problem, completion: &[u32]) -> (Option<Decision>, bool) {
    match parse_decision(completion.first().copied()) {
        Ok(d) => {
            let f = format_of(d);
            let ok = check_answer(&p.prompt(f), &detokenize(&completion[1..])) == Some(true);
            (Some(d), ok)
        }
        Err(_) => (None, false),
    }
}

/// The model on its absorbed path (a no-op for GQA) and the adaptive prompt of every problem,
/// each on a new line.
fn adaptive_inputs<B: AttentionBackend>(
    model: &Decoder<B>,
    labels: &[Label],
) -> (Decoder<B>, Vec<Vec<u32>>) {
    let prompts = labels
        .iter()
        .map(|l| tokenize(&format!("\n{}", prompt(&l.problem))))
        .collect();
    (model.clone().with_mla_path(MlaPath::Absorbed), prompts)
}

/// Runs the adaptive model on every labelled problem at batch 1, timed.
pub fn run<B: AttentionBackend>(
    model: &Decoder<B>,
    labels: &[Label],
    device: &B::Device,
) -> Result<Vec<Outcome>> {
    let (model, prompts) = adaptive_inputs(model, labels);
    let answers = answer_each(&model, &prompts, device)?;
    Ok(labels
        .iter()
        .zip(answers)
        .map(|(l, (toks, ms))| {
            let (decision, correct) = judge(&l.problem, &toks);
            Outcome {
                digits: digits(&l.problem),
                decision,
                correct,
                tokens: toks.len(),
                ms,
                needs_thinking: l.needs_thinking(),
            }
        })
        .collect())
}

/// `learned-route` as a [`Gate`]: the adaptive model reads `A:<problem>=` and writes its
/// decision token (timed, one generated token on the engine); the router then takes the base
/// model's measured answer in that format, a format error is wrong at the cost of the decision
/// alone.
pub struct LearnedRoute<B: AttentionBackend> {
    model: Decoder<B>,
    lambda: f64,
    device: B::Device,
}

impl<B: AttentionBackend> LearnedRoute<B> {
    /// The gate of the adaptive model `model`, trained at token cost `lambda`.
    pub fn new(model: &Decoder<B>, lambda: f64, device: &B::Device) -> Self {
        Self {
            model: model.clone().with_mla_path(MlaPath::Absorbed),
            lambda,
            device: device.clone(),
        }
    }
}

impl<B: AttentionBackend> Gate for LearnedRoute<B> {
    fn name(&self) -> &'static str {
        "learned-route"
    }
    fn setting(&self) -> Option<(&'static str, String)> {
        Some(("lambda", self.lambda.to_string()))
    }
    fn decide(&mut self, step: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
        let mut prompt = tokenize(&format!("\n{MARKER}:"));
        prompt.extend_from_slice(step.prompt);
        let (first, ms) = first_tokens(&self.model, &prompt, &self.device)?;
        Ok(Verdict {
            decision: parse_decision(first.first().copied()).ok(),
            tokens: first.len(),
            ms,
        })
    }
}

/// The greedy first generated token of `model` after `prompt` (none when it stops at once),
/// timed.
fn first_tokens<B: AttentionBackend>(
    model: &Decoder<B>,
    prompt: &[u32],
    device: &B::Device,
) -> infermark_models::Result<(Vec<u32>, f64)> {
    use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
    let mut cache = model.contiguous_cache(1, prompt.len() + 1, device);
    let config = GenerateConfig {
        max_new: 1,
        stop: vec![u32::from(b'\n')],
    };
    let mut sampler = Sampler::new(SamplingConfig::greedy(), 0)?;
    let t0 = std::time::Instant::now();
    let g = generate(
        model,
        &mut cache,
        &[prompt.to_vec()],
        &config,
        &mut sampler,
        device,
    )?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let first = g.tokens.into_iter().next().ok_or_else(|| {
        infermark_models::ModelError::InvalidConfig(
            "generation returned no sequence for the decision prompt".into(),
        )
    })?;
    Ok((first, ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_d_and_t_are_decisions() {
        assert_eq!(parse_decision(Some(u32::from(b'D'))), Ok(Decision::Direct));
        assert_eq!(parse_decision(Some(u32::from(b'T'))), Ok(Decision::Think));
        for bad in [b'd', b't', b'4', b':', b'\n', b' '] {
            assert!(parse_decision(Some(u32::from(bad))).is_err(), "{bad}");
        }
        assert!(parse_decision(None).is_err());
    }

    #[test]
    fn a_format_error_is_wrong_even_when_the_answer_follows() {
        let p = Problem {
            a: 3,
            b: 4,
            op: '+',
        };
        // "7" right after `=` is the right number but no decision token: not a direct answer.
        let (d, ok) = judge(&p, &tokenize("7\n"));
        assert_eq!((d, ok), (None, false));
        assert_eq!(judge(&p, &tokenize("D7\n")), (Some(Decision::Direct), true));
        assert_eq!(
            judge(&p, &tokenize("D8\n")),
            (Some(Decision::Direct), false)
        );
        let think = format!("T{}", p.completion(Format::Think));
        assert_eq!(judge(&p, &tokenize(&think)), (Some(Decision::Think), true));
        // A scratchpad after `D` is not a direct answer.
        let mixed = format!("D{}", p.completion(Format::Think));
        assert!(!judge(&p, &tokenize(&mixed)).1);
    }

    #[test]
    fn training_lines_put_the_decision_after_the_marker_and_problem() {
        let p = Problem {
            a: 347,
            b: 85,
            op: '+',
        };
        assert_eq!(line(&p, Decision::Direct), "A:347+85=D432\n");
        assert!(line(&p, Decision::Think).starts_with("A:347+85=T7+5+0=2c1:2 "));
        assert!(line(&p, Decision::Think).ends_with("|432\n"));
    }
}
