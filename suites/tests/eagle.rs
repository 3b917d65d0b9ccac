//! EAGLE head training on a tiny random target: the data file round-trips, the loss falls, and a
//! run stopped then resumed ends with the same losses and weights as one uninterrupted run.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::diff::max_abs_diff;
use infermark_models::generation::speculative::FrozenTarget;
use infermark_suites::zoo::eagle::{
    acceptance, draft_vocab, frozen_for, load_data, load_head, make_data, save_data, text_prompts,
    text_windows, train_eagle, vocab_coverage, DataCard, EagleData, EagleTrainOptions,
};

type B = Flex;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infermark-eagle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config() -> DecoderConfig {
    DecoderConfig::new(48, 32, 2, 4, 8, 64, AttentionKind::Gqa { n_kv_heads: 2 })
        .with_max_seq_len(128)
}

/// The backend's random generator is one per process and tests run in parallel: each test
/// holds this lock throughout, so that seeded weights and training are the same on every run.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn target() -> Decoder<B> {
    let device = Default::default();
    B::seed(&device, 21);
    config().init::<B>(&device).expect("tiny target")
}

fn prompts() -> Vec<Vec<u32>> {
    (0..6u32)
        .map(|i| (0..4 + i).map(|j| (7 * i + 5 * j + 1) % 48).collect())
        .collect()
}

fn data(t: &Decoder<B>) -> EagleData {
    make_data(t, &prompts(), 20, 3, 0.0, 0, &Default::default()).expect("data")
}

fn opts(out: PathBuf, steps: usize) -> EagleTrainOptions {
    EagleTrainOptions {
        name: "eagle-test".into(),
        config: config(),
        steps,
        batch: 4,
        seq_len: 8,
        lr: 3e-3,
        seed: 9,
        // A draft vocabulary of 40 of the 48 tokens: training's cross-entropy reads it.
        draft_vocab: (0..40).rev().collect(),
        cls_weight: infermark_suites::zoo::eagle::CLS_WEIGHT,
        noise: infermark_suites::zoo::eagle::FEATURE_NOISE,
        out,
        eval_every: 4,
        resume: false,
        stop_after: None,
        data: "test".into(),
        machine: "test".into(),
        git_rev: "test".into(),
    }
}

#[test]
fn the_data_file_round_trips_and_holds_the_targets_hidden_states() {
    let _serial = serial();
    let t = target();
    let d = data(&t);
    assert_eq!(d.tokens.len(), 6);
    for (i, (tok, h)) in d.tokens.iter().zip(&d.hidden).enumerate() {
        assert_eq!(tok.len(), prompts()[i].len() + 20);
        assert_eq!(h.len(), tok.len() * 32);
    }
    // The stored rows are the target's hidden states: its head on them gives its greedy tokens.
    let frozen = FrozenTarget::of(&t);
    let h = &d.hidden[0];
    let n = d.tokens[0].len();
    let rows =
        Tensor::<B, 3>::from_data(TensorData::new(h.clone(), [1, n, 32]), &Default::default());
    let logits = frozen.logits(rows).into_data().to_vec::<f32>().unwrap();
    let p = prompts()[0].len();
    for j in p - 1..n - 1 {
        let row = &logits[j * 48..(j + 1) * 48];
        let best = infermark_models::generation::argmax(row);
        assert_eq!(best, d.tokens[0][j + 1], "position {j}");
    }
    // Every row equals the target's uncached forward of the whole sequence (the data takes
    // them from the prefill and decode steps).
    for (tok, h) in d.tokens.iter().zip(&d.hidden) {
        let ids: Vec<i64> = tok.iter().map(|&x| i64::from(x)).collect();
        let x = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids, [1, tok.len()]),
            &Default::default(),
        );
        let want = t
            .hidden_full(x)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let err = max_abs_diff(h, &want).unwrap();
        assert!(err < 1e-4, "hidden rows vs uncached forward: {err}");
    }
    let dir = scratch("data");
    let card = DataCard {
        target: "tiny".into(),
        source: "test".into(),
        seed: 1,
        sequences: 6,
        tokens: d.tokens.iter().map(Vec::len).sum(),
        new_tokens: 20,
        temperatures: vec![0.0],
        text_windows: 0,
        d_model: 32,
        seconds: 0.0,
    };
    save_data(&d, &card, &dir.join("d")).expect("saves");
    let (back, back_card) = load_data(&dir.join("d")).expect("loads");
    assert_eq!(back, d);
    assert_eq!(back_card, card);
}

#[test]
fn training_resumes_exactly_and_the_loss_falls() {
    let _serial = serial();
    let device = Default::default();
    let t = target();
    let d = data(&t);
    let dir = scratch("resume");
    let whole =
        train_eagle(&t, &d, &opts(dir.join("w"), 24), &device, &mut |_, _| {}).expect("trains");
    let first = whole.curve.first().unwrap().loss;
    let last = whole.curve.last().unwrap().loss;
    assert!(last < first, "loss {first} → {last}");
    let mut a = opts(dir.join("r"), 24);
    a.stop_after = Some(10);
    let stopped = train_eagle(&t, &d, &a, &device, &mut |_, _| {}).expect("trains");
    assert_eq!(stopped.steps, 10);
    let mut b = opts(dir.join("r"), 24);
    b.resume = true;
    let resumed = train_eagle(&t, &d, &b, &device, &mut |_, _| {}).expect("resumes");
    assert_eq!(resumed.steps, 24);
    // Points after the stop cover the same steps in both runs.
    let tail = |c: &[infermark_suites::zoo::eagle::EaglePoint]| {
        c.iter()
            .filter(|p| p.step > 12)
            .map(|p| p.loss)
            .collect::<Vec<_>>()
    };
    assert_eq!(tail(&resumed.curve), tail(&whole.curve));
    let (hw, card) = load_head::<B>(&dir.join("w"), &device).expect("loads");
    assert_eq!(card.draft_vocab, (0..40).rev().collect::<Vec<u32>>());
    let (hr, _) = load_head::<B>(&dir.join("r"), &device).expect("loads");
    let frozen = FrozenTarget::of(&t);
    let x = || {
        (
            Tensor::<B, 3>::from_data(
                TensorData::new(d.hidden[1][..5 * 32].to_vec(), [1, 5, 32]),
                &device,
            ),
            Tensor::<B, 2, Int>::from_data(
                TensorData::new(vec![1i64, 2, 3, 4, 5], [1, 5]),
                &device,
            ),
        )
    };
    let out = |h: &infermark_models::generation::speculative::EagleHead<B>| {
        let (f, n) = x();
        h.forward(&frozen, f, n)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(max_abs_diff(&out(&hw), &out(&hr)).unwrap(), 0.0);
    // The trained head drafts and the target verifies.
    let s = acceptance(
        &t,
        hw,
        frozen_for(&t, &card.draft_vocab).unwrap(),
        &prompts()[..2],
        3,
        10,
        &device,
    )
    .expect("speculates");
    assert!(s.steps > 0 && s.proposed > 0);
}

#[test]
fn no_prompts_or_an_empty_prompt_is_refused() {
    let _serial = serial();
    let t = target();
    let device = Default::default();
    for bad in [vec![], vec![vec![1, 2], vec![]]] {
        let e = make_data(&t, &bad, 4, 2, 0.0, 0, &device).expect_err("refused");
        assert!(e.to_string().contains("no empty prompt"), "{e}");
    }
}

#[test]
fn the_draft_vocabulary_ranks_next_tokens_by_count_then_id() {
    let d = EagleData {
        d_model: 1,
        // First tokens (9, 8) are never a next token; counts after them: 5×3, 2×3, 7×2, 1×1.
        tokens: vec![vec![9, 5, 2, 5, 7], vec![8, 2, 7, 1, 5, 2]],
        hidden: vec![vec![0.0; 5], vec![0.0; 6]],
    };
    assert_eq!(draft_vocab(&d.tokens, 3, 12), vec![2, 5, 7]);
    // Then the tokens never seen, by id; 9 and 8 only ever start a sequence.
    assert_eq!(draft_vocab(&d.tokens, 7, 12), vec![2, 5, 7, 1, 0, 3, 4]);
    assert_eq!(draft_vocab(&d.tokens, 99, 8).len(), 8);
    // A token outside the vocabulary is not counted (7 is outside a vocabulary of 6).
    assert_eq!(draft_vocab(&d.tokens, 3, 6), vec![2, 5, 1]);
    // Coverage: the share of next tokens in the vocabulary, against a plain count.
    let cov = vocab_coverage(&d.tokens, &[2, 5, 7]).unwrap();
    let next: Vec<u32> = d.tokens.iter().flat_map(|s| s[1..].to_vec()).collect();
    let plain = next.iter().filter(|t| [2, 5, 7].contains(*t)).count() as f64 / next.len() as f64;
    assert_eq!(cov, plain);
    assert_eq!(vocab_coverage(&[vec![4]], &[2]), None);
}

#[test]
fn text_prompts_are_distinct_windows_in_a_seeded_order() {
    let ids: Vec<u32> = (0..100).collect();
    let a = text_prompts(&ids, 5, 16, 3).unwrap();
    assert_eq!(a, text_prompts(&ids, 5, 16, 3).unwrap());
    assert_ne!(a, text_prompts(&ids, 5, 16, 4).unwrap());
    let mut starts: Vec<u32> = a.iter().map(|p| p[0]).collect();
    for p in &a {
        assert_eq!(p.len(), 16);
        assert_eq!(p[0] % 16, 0);
        assert!(p.windows(2).all(|w| w[1] == w[0] + 1));
    }
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), 5);
    let e = text_prompts(&ids, 7, 16, 3).expect_err("only 6 windows");
    assert!(e.to_string().contains("6 passages"), "{e}");
    let w = text_windows(&ids, 6, 16).unwrap();
    assert_eq!(w.concat(), ids[..96].to_vec());
    assert!(text_windows(&ids, 7, 16).is_err());
}

#[test]
fn sampled_continuations_are_seeded_and_differ_from_greedy_ones() {
    let _serial = serial();
    let t = target();
    let device = Default::default();
    let go = |temp, seed| make_data(&t, &prompts(), 20, 3, temp, seed, &device).unwrap();
    let (a, b, c) = (go(0.7, 1), go(0.7, 1), go(0.7, 2));
    assert_eq!(a, b);
    assert_ne!(a.tokens, c.tokens);
    assert_ne!(a.tokens, data(&t).tokens);
    // Prompts are kept as they were.
    for (s, p) in a.tokens.iter().zip(prompts()) {
        assert_eq!(&s[..p.len()], &p[..]);
    }
    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        let e = make_data(&t, &prompts(), 4, 2, bad, 0, &device).expect_err("refused");
        assert!(e.to_string().contains("temperature"), "{e}");
    }
}

#[test]
fn the_curve_validates_on_held_out_sequences_as_a_plain_count_does() {
    let _serial = serial();
    let device = Default::default();
    let t = target();
    // 20 sequences: the 20th is held out (VALID_EVERY).
    let prompts: Vec<Vec<u32>> = (0..20u32)
        .map(|i| (0..3 + i % 4).map(|j| (11 * i + 3 * j + 2) % 48).collect())
        .collect();
    let d = make_data(&t, &prompts, 12, 5, 0.0, 0, &device).unwrap();
    let dir = scratch("valid");
    let mut o = opts(dir.join("v"), 8);
    o.draft_vocab = Vec::new();
    let card = train_eagle(&t, &d, &o, &device, &mut |_, _| {}).expect("trains");
    let (_, _, agree) = card.curve.last().unwrap().valid.expect("validated");
    // A plain recount with the saved head: it is stored in f16, so a near-tie may flip at
    // most one position.
    let (h, _) = load_head::<B>(&dir.join("v"), &device).unwrap();
    let frozen = FrozenTarget::of(&t);
    let i = infermark_suites::zoo::eagle::VALID_EVERY - 1;
    let (tok, hid) = (&d.tokens[i], &d.hidden[i]);
    let s = tok.len() - 1;
    let feats =
        Tensor::<B, 3>::from_data(TensorData::new(hid[..s * 32].to_vec(), [1, s, 32]), &device);
    let next = Tensor::<B, 2, Int>::from_data(
        TensorData::new(
            tok[1..].iter().map(|&x| i64::from(x)).collect::<Vec<_>>(),
            [1, s],
        ),
        &device,
    );
    let pred = frozen.logits(h.forward(&frozen, feats, next).unwrap());
    let truth = frozen.logits(Tensor::<B, 3>::from_data(
        TensorData::new(hid[32..].to_vec(), [1, s, 32]),
        &device,
    ));
    let (p, q) = (
        pred.into_data().to_vec::<f32>().unwrap(),
        truth.into_data().to_vec::<f32>().unwrap(),
    );
    let hits = (0..s)
        .filter(|&j| {
            infermark_models::generation::argmax(&p[j * 48..(j + 1) * 48])
                == infermark_models::generation::argmax(&q[j * 48..(j + 1) * 48])
        })
        .count();
    assert!(
        (agree * s as f64 - hits as f64).abs() <= 1.0,
        "curve {agree} vs plain count {hits} of {s}"
    );
}
