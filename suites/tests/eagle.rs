//! EAGLE head training on a tiny random target: the data file round-trips, the loss falls, and a
//! run stopped then resumed ends with the same losses and weights as one uninterrupted run.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::diff::max_abs_diff;
use infermark_models::generation::speculative::FrozenTarget;
use infermark_suites::zoo::eagle::{
    acceptance, load_data, load_head, make_data, save_data, train_eagle, DataCard, EagleData,
    EagleTrainOptions,
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
    make_data(t, &prompts(), 20, 3, &Default::default()).expect("data")
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
    let dir = scratch("data");
    let card = DataCard {
        target: "tiny".into(),
        source: "test".into(),
        seed: 1,
        sequences: 6,
        tokens: d.tokens.iter().map(Vec::len).sum(),
        new_tokens: 20,
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
    let (hw, _) = load_head::<B>(&dir.join("w"), &device).expect("loads");
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
    let s = acceptance(&t, hw, &prompts()[..2], 3, 10, &device).expect("speculates");
    assert!(s.steps > 0 && s.proposed > 0);
}

#[test]
fn no_prompts_or_an_empty_prompt_is_refused() {
    let _serial = serial();
    let t = target();
    let device = Default::default();
    for bad in [vec![], vec![vec![1, 2], vec![]]] {
        let e = make_data(&t, &bad, 4, 2, &device).expect_err("refused");
        assert!(e.to_string().contains("no empty prompt"), "{e}");
    }
}
