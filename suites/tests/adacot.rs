//! The AdaCoT suite: gates against independent references, the RL rules, strict decision
//! parsing, and the committed learned gates' cards.

use std::sync::Mutex;

use burn::backend::Flex;
use infermark_models::decoder::preset;
use infermark_models::diff::max_abs_diff;
use infermark_suites::adacot::gate::{route, Decision};
use infermark_suites::adacot::labels::{self, Answer, Label, TableRow};
use infermark_suites::adacot::rl::{self, Algo, RlConfig, Trainer};
use infermark_suites::adacot::score::score;
use infermark_suites::adacot::{finetune, fixed, oracle, LAMBDAS};
use infermark_suites::lm::{arith_eval, TEST_SEED};
use infermark_suites::zoo::checkpoint;
use infermark_suites::zoo::corpus::{self, Format, Problem, BUCKETS};
use infermark_suites::{BackendKind, RunContext, Scale, UserInputs};
use rand::rngs::StdRng;
use rand::SeedableRng;

type B = Flex;

/// The backend RNG is global: tests that initialize weights take turns.
static RNG: Mutex<()> = Mutex::new(());

fn diff(a: &[f64], b: &[f64]) -> f32 {
    let f = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    max_abs_diff(&f(a), &f(b)).expect("comparable")
}

#[test]
fn never_and_always_reproduce_the_eval_accuracies() {
    let device = Default::default();
    let (model, _) =
        checkpoint::load::<B>(&checkpoint::committed("arith"), &device).expect("arith");
    let n = 6;
    let progress = |_: &str| {};
    let ctx = RunContext {
        backend: BackendKind::Flex,
        scale: Scale::Smoke,
        seed: 0,
        run_id: "test".into(),
        git_rev: "test".into(),
        device: "test".into(),
        inputs: UserInputs::default(),
        progress: &progress,
    };
    // `infermark eval --model arith`'s own code path (batched decoding).
    let eval = arith_eval(&model, n, &ctx, "arith", &device).expect("eval");
    // The same problems as it draws them, labelled at batch 1 by the suite.
    let mut rng = StdRng::seed_from_u64(TEST_SEED);
    for bucket in BUCKETS {
        let set: Vec<Problem> = (0..n).map(|_| corpus::problem(&mut rng, bucket)).collect();
        let l = labels::label(&model, &set, &device).expect("labels");
        let direct =
            score(&route(&mut fixed::Fixed(Decision::Direct), &l).unwrap()).expect("scored");
        let think = score(&route(&mut fixed::Fixed(Decision::Think), &l).unwrap()).expect("scored");
        let want = |f: Format| {
            eval.iter()
                .find(|(b, g, _, _)| *b == bucket && *g == f)
                .map(|&(_, _, acc, toks)| (acc, toks))
                .expect("eval row")
        };
        let (da, dt) = want(Format::Direct);
        let (ta, tt) = want(Format::Think);
        assert_eq!(
            diff(
                &[
                    direct.accuracy,
                    direct.mean_tokens,
                    think.accuracy,
                    think.mean_tokens
                ],
                &[da, dt, ta, tt]
            ),
            0.0,
            "bucket {bucket}: suite {:?} vs eval {:?}",
            (
                direct.accuracy,
                direct.mean_tokens,
                think.accuracy,
                think.mean_tokens
            ),
            (da, dt, ta, tt)
        );
        assert_eq!(direct.trigger_rate, 0.0);
        assert_eq!(think.trigger_rate, 1.0);
    }
}

fn label(digits: u32, direct_ok: bool, think_ok: bool) -> Label {
    let answer = |correct, tokens| Answer {
        correct,
        tokens,
        ms: 1.0,
    };
    Label {
        problem: Problem {
            a: 10u64.pow(digits - 1),
            // Distinct problems where the answer key differs.
            b: 1 + u64::from(direct_ok) + 2 * u64::from(think_ok),
            op: '+',
        },
        digits,
        direct: answer(direct_ok, digits as usize + 1),
        think: answer(think_ok, 12 * digits as usize + 2),
        direct_answer: vec![u32::from(b'7'); digits as usize + 1],
        direct_min_prob: if direct_ok { 0.99 } else { 0.4 },
    }
}

#[test]
fn the_oracle_matches_always_think_with_fewer_tokens_when_thinking_is_always_right() {
    let labels: Vec<Label> = [
        (1, true),
        (1, true),
        (2, true),
        (3, false),
        (4, false),
        (4, true),
    ]
    .iter()
    .map(|&(d, ok)| label(d, ok, true))
    .collect();
    let o = score(&route(&mut oracle::Oracle::new(&labels), &labels).unwrap()).expect("scored");
    let a = score(&route(&mut fixed::Fixed(Decision::Think), &labels).unwrap()).expect("scored");
    assert_eq!(o.accuracy, a.accuracy);
    assert_eq!(o.accuracy, 1.0);
    assert!(
        o.mean_tokens < a.mean_tokens,
        "{} vs {}",
        o.mean_tokens,
        a.mean_tokens
    );
    assert_eq!(
        (o.precision, o.recall, o.f1),
        (Some(1.0), Some(1.0), Some(1.0))
    );
    // Always-think thinks on everything: recall 1, precision the share that needed it.
    assert_eq!(a.recall, Some(1.0));
    assert_eq!(a.precision, Some(2.0 / 6.0));
    // Never thinks: no precision at all, recall 0.
    let n = score(&route(&mut fixed::Fixed(Decision::Direct), &labels).unwrap()).expect("scored");
    assert_eq!((n.precision, n.recall), (None, Some(0.0)));
}

#[test]
fn a_confidence_fallback_pays_for_both_attempts() {
    use infermark_suites::adacot::confidence::Confidence;
    use infermark_suites::adacot::gate::{DirectAttempt, FirstStep, Gate};
    let labels = vec![label(1, true, true), label(4, false, true)];
    let mut g = Confidence { tau: 0.9 };
    let step = FirstStep {
        prompt: &[],
        direct: Some(DirectAttempt {
            tokens: &labels[1].direct_answer,
            min_prob: labels[1].direct_min_prob,
        }),
    };
    assert_eq!(g.decide(&step).unwrap().decision, Some(Decision::Think));
    // Without the direct attempt it cannot decide: an error, not a guess.
    let blind = FirstStep {
        prompt: &[],
        direct: None,
    };
    assert!(g.decide(&blind).is_err());
    let o = route(&mut g, &labels).unwrap();
    assert_eq!(o[0].tokens, labels[0].direct.tokens);
    assert_eq!(
        o[1].tokens,
        labels[1].direct.tokens + labels[1].think.tokens
    );
    assert!(o[1].correct);
}

#[test]
fn one_grpo_step_moves_probability_toward_the_rewarded_decision() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 3);
    let p = preset("tiny").expect("tiny");
    let model = p.config.init::<B>(&device).expect("tiny model");
    // Thinking is right and direct is wrong on every problem: T earns more at λ = 0.1.
    let table: Vec<TableRow> = rl::problems(99, 16)
        .into_iter()
        .map(|problem| TableRow {
            problem,
            direct_ok: false,
            direct_tokens: 3,
            think_ok: true,
            think_tokens: 30,
        })
        .collect();
    let prompts: Vec<Vec<u32>> = table.iter().map(rl::prompt_of).collect();
    let p_t = |m: &infermark_models::decoder::Decoder<B>| {
        let lp = rl::decision_logp(m, &prompts, &device).expect("logp");
        let v = lp.dims()[1];
        let host = lp
            .exp()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap();
        (0..prompts.len())
            .map(|i| host[i * v + b'T' as usize] as f64)
            .sum::<f64>()
    };
    // Imitation moves toward the oracle decision, which is T here too.
    for algo in [Algo::Grpo, Algo::Ppo, Algo::Imitate] {
        let before = p_t(&model);
        let cfg = RlConfig {
            algo,
            lambda: 0.1,
            batch: 16,
            group: 64,
            lr: 1e-2,
            seed: 1,
            anchor: 0,
            mask_decision: false,
        };
        let mut t = Trainer::<B>::new(model.clone(), p.config.d_model, cfg, &device);
        t.step(&table, &device).expect("step");
        let after = p_t(&t.policy());
        assert!(after > before, "{algo:?}: P(T) {before} → {after}");
    }
}

#[test]
fn committed_learned_gates_reproduce_their_cards() {
    let device = Default::default();
    let mut checked = 0;
    // The imitation stage (its card's λ only scores its held-out curve) and every λ.
    let stems = std::iter::once((finetune::IMITATE_NAME.to_string(), None)).chain(
        LAMBDAS
            .iter()
            .map(|&l| (infermark_suites::adacot::adaptive_name(l), Some(l))),
    );
    for (name, lambda) in stems {
        let stem = checkpoint::committed(&name);
        if !checkpoint::paths(&stem).1.exists() {
            continue;
        }
        let card = finetune::read_adaptive_card(&stem).expect("adaptive card");
        if let Some(lambda) = lambda {
            assert_eq!(card.lambda, lambda);
        }
        let (model, _) = checkpoint::load::<B>(&stem, &device).expect("checkpoint");
        let (rate, acc, fmt) = finetune::card_eval(&model, &device).expect("eval");
        assert_eq!(
            diff(
                &[rate, acc, fmt],
                &[card.trigger_rate, card.accuracy, card.format_error_rate]
            ),
            0.0,
            "{}: measured ({rate}, {acc}, {fmt}) vs card",
            card.name
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "no committed arith-adaptive-l* checkpoint to check"
    );
}

#[test]
fn a_routed_decision_takes_the_base_answer_and_a_format_error_answers_nothing() {
    use infermark_suites::adacot::gate::{FirstStep, Gate, Verdict};
    use infermark_suites::adacot::learned::parse_decision;
    /// A learned gate whose model wrote `token` in 0.5 ms.
    struct Wrote(u32);
    impl Gate for Wrote {
        fn name(&self) -> &'static str {
            "wrote"
        }
        fn decide(&mut self, _: &FirstStep<'_>) -> infermark_models::Result<Verdict> {
            Ok(Verdict {
                decision: parse_decision(Some(self.0)).ok(),
                tokens: 1,
                ms: 0.5,
            })
        }
    }
    // 3 digits: direct wrong (4 tokens), thinking right (38 tokens), 1 ms each.
    let l = vec![label(3, false, true)];
    let t = route(&mut Wrote(u32::from(b'T')), &l).unwrap()[0];
    assert_eq!(
        (t.decision, t.correct, t.tokens, t.ms),
        (Some(Decision::Think), true, 1 + 38, 1.5)
    );
    let d = route(&mut Wrote(u32::from(b'D')), &l).unwrap()[0];
    assert_eq!(
        (d.decision, d.correct, d.tokens),
        (Some(Decision::Direct), false, 1 + 4)
    );
    let e = route(&mut Wrote(u32::from(b'7')), &l).unwrap()[0];
    assert_eq!(
        (e.decision, e.correct, e.tokens, e.ms),
        (None, false, 1, 0.5)
    );
    assert!(e.needs_thinking);
}

#[test]
fn selective_loss_masking_removes_the_decision_gradient() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 4);
    let p = preset("tiny").expect("tiny");
    let model = p.config.init::<B>(&device).expect("tiny model");
    let row = |problem, direct_ok| TableRow {
        problem,
        direct_ok,
        direct_tokens: 3,
        think_ok: true,
        think_tokens: 30,
    };
    let problems = rl::problems(98, 16);
    // Skewed: every direct answer is wrong (oracle decision T) ...
    let skewed: Vec<TableRow> = problems.iter().map(|&q| row(q, false)).collect();
    // ... a different one here, where direct answers are right too.
    let flat: Vec<TableRow> = problems.iter().map(|&q| row(q, true)).collect();
    // Imitation: the skewed table's target decision is T, the other's D.
    let cfg = |mask_decision| RlConfig {
        algo: Algo::Imitate,
        lambda: 0.0,
        batch: 8,
        group: 8,
        lr: 1e-2,
        seed: 1,
        anchor: 2,
        mask_decision,
    };
    let weights = |table: &[TableRow], mask| {
        let mut t = Trainer::<B>::new(model.clone(), p.config.d_model, cfg(mask), &device);
        t.step(table, &device).expect("step");
        let lp =
            rl::decision_logp(&t.policy(), &[rl::prompt_of(&table[0])], &device).expect("logp");
        lp.into_data().convert::<f32>().to_vec::<f32>().unwrap()
    };
    let masked = weights(&skewed, true);
    let masked_flat = weights(&flat, true);
    let unmasked = weights(&skewed, false);
    // Masked, the rewards of the decision no longer matter: the same update (the anchor's on
    // the same problems), bit for bit.
    assert_eq!(masked, masked_flat);
    let d =
        infermark_models::diff::max_abs_diff(&weights(&flat, false), &unmasked).expect("finite");
    assert!(
        d > 1e-4,
        "unmasked, the two tables should train differently ({d})"
    );
    let d = infermark_models::diff::max_abs_diff(&unmasked, &masked).expect("finite");
    assert!(
        d > 1e-4,
        "the unmasked decision gradient changed nothing ({d})"
    );
}

#[test]
fn the_difficulty_gate_reads_the_operands_and_refuses_a_problem_without_one() {
    use infermark_suites::adacot::difficulty::Difficulty;
    use infermark_suites::adacot::gate::{FirstStep, Gate};
    let mut g = Difficulty { k: 2 };
    fn step(p: &[u32]) -> FirstStep<'_> {
        FirstStep {
            prompt: p,
            direct: None,
        }
    }
    let three = corpus::tokenize("347+85=");
    let two = corpus::tokenize("34+85=");
    assert_eq!(
        g.decide(&step(&three)).unwrap().decision,
        Some(Decision::Think)
    );
    assert_eq!(
        g.decide(&step(&two)).unwrap().decision,
        Some(Decision::Direct)
    );
    assert!(g.decide(&step(&corpus::tokenize("+="))).is_err());
    assert!(g.decide(&step(&[])).is_err());
}
