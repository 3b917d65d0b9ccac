//! Oracle labels (AdaCoT §2.1's "needs thinking"): every problem answered greedily in both
//! formats by the base `arith` model, each at batch 1 and timed, with whether it was right, how
//! many tokens it took, and the smallest probability the model gave a token of its direct answer
//! (what the confidence gate reads). A problem needs thinking when the direct answer is wrong.

use std::time::Instant;

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::attention::MlaPath;
use infermark_models::decoder::Decoder;
use infermark_models::generation::gate::Decision;
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kernels::AttentionBackend;

use crate::zoo::corpus::{check_answer, detokenize, tokenize, Format, Problem};
use crate::{Result, SuiteError};

/// Most tokens of one answer (the longest 4-digit scratchpad takes about 50).
pub const MAX_NEW: usize = 96;

/// One format's greedy answer to one problem.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The answer was right (the corpus checker, integer arithmetic on the prompt).
    pub correct: bool,
    /// Tokens generated, the closing newline included.
    pub tokens: usize,
    /// Wall time of the generation at batch 1 (prefill and decode), ms.
    pub ms: f64,
}

/// A problem with both formats' answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// The problem.
    pub problem: Problem,
    /// Its difficulty bucket: digits of the larger operand.
    pub digits: u32,
    /// The direct answer.
    pub direct: Answer,
    /// The scratchpad answer.
    pub think: Answer,
    /// The direct answer's tokens (a model output: what a gate that answers directly first
    /// reads).
    pub direct_answer: Vec<u32>,
    /// Smallest probability the model gave any token of its direct answer (newline included),
    /// from a teacher-forced forward over the prompt and the answer.
    pub direct_min_prob: f64,
}

impl Label {
    /// AdaCoT's positive class: the direct answer is wrong.
    pub fn needs_thinking(&self) -> bool {
        !self.direct.correct
    }
}

/// Digits of the larger operand.
pub fn digits(p: &Problem) -> u32 {
    p.a.max(p.b).to_string().len() as u32
}

/// The prompt ids of `p` in `format`, as the corpus lays lines out (after a newline).
pub fn prompt_ids(p: &Problem, format: Format) -> Vec<u32> {
    tokenize(&format!("\n{}", p.prompt(format)))
}

/// Greedy answers of `model` to every prompt, one at a time (batch 1), each timed.
pub fn answer_each<B: AttentionBackend>(
    model: &Decoder<B>,
    prompts: &[Vec<u32>],
    device: &B::Device,
) -> Result<Vec<(Vec<u32>, f64)>> {
    answer_each_upto(model, prompts, MAX_NEW, device)
}

/// [`answer_each`], stopping after at most `max_new` tokens.
pub fn answer_each_upto<B: AttentionBackend>(
    model: &Decoder<B>,
    prompts: &[Vec<u32>],
    max_new: usize,
    device: &B::Device,
) -> Result<Vec<(Vec<u32>, f64)>> {
    let mut cache = model.contiguous_cache(1, model.max_seq_len(), device);
    let config = GenerateConfig {
        max_new,
        stop: vec![b'\n' as u32],
    };
    let mut out = Vec::with_capacity(prompts.len());
    for (i, ids) in prompts.iter().enumerate() {
        let mut sampler = Sampler::new(SamplingConfig::greedy(), 0)
            .map_err(SuiteError::model(format!("sampler for prompt {i}")))?;
        let t0 = Instant::now();
        let gen = generate(
            model,
            &mut cache,
            std::slice::from_ref(ids),
            &config,
            &mut sampler,
            device,
        )
        .map_err(SuiteError::model(format!(
            "answering {}",
            detokenize(ids).trim()
        )))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let tokens = gen.tokens.into_iter().next().ok_or_else(|| {
            SuiteError::Input(format!(
                "generation returned no sequence for {}",
                detokenize(ids).trim()
            ))
        })?;
        out.push((tokens, ms));
    }
    Ok(out)
}

/// Greedy answers of `model` to every prompt, decoded together in batches of 64 (untimed: for
/// training tables).
pub fn answer_batched<B: AttentionBackend>(
    model: &Decoder<B>,
    prompts: &[Vec<u32>],
    device: &B::Device,
) -> Result<Vec<Vec<u32>>> {
    let config = GenerateConfig {
        max_new: MAX_NEW,
        stop: vec![b'\n' as u32],
    };
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(64) {
        let mut cache = model.contiguous_cache(chunk.len(), model.max_seq_len(), device);
        let mut sampler = Sampler::new(SamplingConfig::greedy(), 0)
            .map_err(SuiteError::model("greedy sampler"))?;
        let gen = generate(model, &mut cache, chunk, &config, &mut sampler, device)
            .map_err(SuiteError::model("answering a batch of problems"))?;
        out.extend(gen.tokens);
    }
    Ok(out)
}

/// Whether `completion` answers `p` correctly in `format`.
pub fn is_correct(p: &Problem, format: Format, completion: &[u32]) -> bool {
    check_answer(&p.prompt(format), &detokenize(completion)) == Some(true)
}

/// Smallest probability of each answer's tokens, teacher-forced: one forward over prompt and
/// answer per problem.
fn min_token_prob<B: AttentionBackend>(
    model: &Decoder<B>,
    prompt: &[u32],
    answer: &[u32],
    device: &B::Device,
) -> Result<f64> {
    if answer.is_empty() {
        return Ok(0.0);
    }
    let ids: Vec<i64> = prompt.iter().chain(answer).map(|&t| t as i64).collect();
    let n = ids.len();
    let x = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), device);
    let logits = model
        .forward_full(x)
        .map_err(SuiteError::model("scoring a direct answer"))?;
    let probs = softmax(logits, 2); // [1, n, vocab]
    let v = probs.dims()[2];
    let data = probs.reshape([n * v]).into_data().convert::<f32>();
    let p = data.as_slice::<f32>().expect("f32 probabilities");
    let mut worst = 1f64;
    for (k, &tok) in answer.iter().enumerate() {
        // Position prompt.len() - 1 + k predicts answer token k.
        let pos = prompt.len() - 1 + k;
        worst = worst.min(p[pos * v + tok as usize] as f64);
    }
    Ok(worst)
}

/// Labels every problem with the base model's answers in both formats (batch 1, timed).
pub fn label<B: AttentionBackend>(
    model: &Decoder<B>,
    problems: &[Problem],
    device: &B::Device,
) -> Result<Vec<Label>> {
    let model = model.clone().with_mla_path(MlaPath::Absorbed);
    let direct_prompts: Vec<_> = problems
        .iter()
        .map(|p| prompt_ids(p, Format::Direct))
        .collect();
    let think_prompts: Vec<_> = problems
        .iter()
        .map(|p| prompt_ids(p, Format::Think))
        .collect();
    let direct = answer_each(&model, &direct_prompts, device)?;
    let think = answer_each(&model, &think_prompts, device)?;
    let mut out = Vec::with_capacity(problems.len());
    for (i, p) in problems.iter().enumerate() {
        let (dt, dms) = &direct[i];
        let (tt, tms) = &think[i];
        out.push(Label {
            problem: *p,
            digits: digits(p),
            direct: Answer {
                correct: is_correct(p, Format::Direct, dt),
                tokens: dt.len(),
                ms: *dms,
            },
            think: Answer {
                correct: is_correct(p, Format::Think, tt),
                tokens: tt.len(),
                ms: *tms,
            },
            direct_answer: dt.clone(),
            direct_min_prob: min_token_prob(&model, &direct_prompts[i], dt, device)?,
        });
    }
    Ok(out)
}

/// One row of a training table: what each format gives on a problem (no timing, no
/// probabilities): the RL rewards and the SFT decision labels are read from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TableRow {
    /// The problem.
    pub problem: Problem,
    /// Direct answer right.
    pub direct_ok: bool,
    /// Direct answer tokens.
    pub direct_tokens: usize,
    /// Scratchpad answer right.
    pub think_ok: bool,
    /// Scratchpad answer tokens.
    pub think_tokens: usize,
}

impl TableRow {
    /// The oracle decision: think when the direct answer is wrong.
    pub fn oracle_decision(&self) -> Decision {
        if self.direct_ok {
            Decision::Direct
        } else {
            Decision::Think
        }
    }
}

/// The training table of `problems` (batched greedy decoding).
pub fn table<B: AttentionBackend>(
    model: &Decoder<B>,
    problems: &[Problem],
    device: &B::Device,
) -> Result<Vec<TableRow>> {
    let model = model.clone().with_mla_path(MlaPath::Absorbed);
    let mut answers = Vec::new();
    for f in Format::ALL {
        let prompts: Vec<_> = problems.iter().map(|p| prompt_ids(p, f)).collect();
        answers.push(answer_batched(&model, &prompts, device)?);
    }
    Ok(problems
        .iter()
        .enumerate()
        .map(|(i, p)| TableRow {
            problem: *p,
            direct_ok: is_correct(p, Format::Direct, &answers[0][i]),
            direct_tokens: answers[0][i].len(),
            think_ok: is_correct(p, Format::Think, &answers[1][i]),
            think_tokens: answers[1][i].len(),
        })
        .collect())
}
