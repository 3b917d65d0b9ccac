//! The decoding engine: a ragged step of several sequences equals each sequence stepped alone
//! (the independent reference: one sequence, one forward, nothing beside it), on both cache
//! kinds, GQA and MLA (both paths), small layers (burn's GEMM) and wide ones (the few-rows
//! kernel); and a step that fails leaves every sequence as it was.

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use infermark_models::attention::MlaPath;
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::diff::max_abs_diff;
use infermark_models::generation::{argmax, Logits, Session};
use infermark_models::kv_cache::{KvCache, ModelCache};

type B = Flex;

/// Prompts of four sequences and the lengths each feeds in the step under test.
const LENS: [usize; 4] = [0, 1, 3, 8];

fn prompt(i: usize) -> Vec<u32> {
    (0..5 + 4 * i)
        .map(|j| ((7 * i + 3 * j) % 31) as u32)
        .collect()
}

fn step_tokens(i: usize) -> Vec<u32> {
    (0..LENS[i])
        .map(|j| ((11 * i + 5 * j + 1) % 31) as u32)
        .collect()
}

fn models() -> Vec<(String, Decoder<B>)> {
    let device = Default::default();
    let mut out = Vec::new();
    for d in [32, 256] {
        B::seed(&device, d as u64);
        let gqa = DecoderConfig::new(
            32,
            d,
            2,
            4,
            d / 4,
            2 * d,
            AttentionKind::Gqa { n_kv_heads: 2 },
        )
        .with_max_seq_len(64)
        .init::<B>(&device)
        .unwrap();
        out.push((format!("gqa d{d}"), gqa));
        let mla = DecoderConfig::new(
            32,
            d,
            2,
            4,
            d / 4,
            2 * d,
            AttentionKind::Mla {
                d_latent_kv: d / 2,
                d_latent_q: d / 2,
                d_rope: 8,
            },
        )
        .with_max_seq_len(64)
        .init::<B>(&device)
        .unwrap();
        out.push((format!("mla-naive d{d}"), mla.clone()));
        out.push((
            format!("mla-absorbed d{d}"),
            mla.with_mla_path(MlaPath::Absorbed),
        ));
    }
    out
}

/// Prefills the four prompts (each alone), then either one ragged step of all four, or each
/// sequence's tokens alone; returns each sequence's logits rows.
fn run<C: KvCache<B>>(
    model: &Decoder<B>,
    mut cache: ModelCache<B, C>,
    together: bool,
) -> Vec<Vec<Vec<f32>>> {
    let device = Default::default();
    let mut s = Session::new(model, &mut cache, &device);
    let seqs: Vec<_> = (0..4).map(|_| s.add().unwrap()).collect();
    for (i, &q) in seqs.iter().enumerate() {
        s.step(&[(q, &prompt(i))], Logits::Last).unwrap();
    }
    let toks: Vec<Vec<u32>> = (0..4).map(step_tokens).collect();
    if together {
        let feeds: Vec<_> = seqs
            .iter()
            .zip(&toks)
            .map(|(&q, t)| (q, t.as_slice()))
            .collect();
        s.step(&feeds, Logits::All).unwrap()
    } else {
        seqs.iter()
            .zip(&toks)
            .map(|(&q, t)| s.step(&[(q, t.as_slice())], Logits::All).unwrap().remove(0))
            .collect()
    }
}

fn check(name: &str, alone: &[Vec<Vec<f32>>], together: &[Vec<Vec<f32>>]) {
    for (i, (a, t)) in alone.iter().zip(together).enumerate() {
        assert_eq!(a.len(), LENS[i], "{name}: rows of sequence {i}");
        assert_eq!(t.len(), LENS[i], "{name}: rows of sequence {i}");
        for (j, (ra, rt)) in a.iter().zip(t).enumerate() {
            let d = max_abs_diff(ra, rt).unwrap();
            assert!(d <= 1e-5, "{name}: sequence {i} row {j}: {d}");
            assert_eq!(argmax(ra), argmax(rt), "{name}: sequence {i} row {j}");
        }
    }
}

#[test]
fn a_ragged_step_equals_each_sequence_alone_on_both_caches() {
    let device = Default::default();
    for (name, m) in models() {
        let alone = run(&m, m.contiguous_cache(4, 64, &device), false);
        let together = run(&m, m.contiguous_cache(4, 64, &device), true);
        check(&format!("{name} contiguous"), &alone, &together);
        let paged = run(&m, m.paged_cache(64, 8, &device).unwrap(), true);
        check(&format!("{name} paged"), &alone, &paged);
    }
}

#[test]
fn last_logits_are_the_last_rows_of_all() {
    let device = Default::default();
    let (_, m) = models().remove(0);
    let all = run(&m, m.contiguous_cache(4, 64, &device), true);
    let mut cache = m.contiguous_cache(4, 64, &device);
    let mut s = Session::new(&m, &mut cache, &device);
    let seqs: Vec<_> = (0..4).map(|_| s.add().unwrap()).collect();
    for (i, &q) in seqs.iter().enumerate() {
        s.step(&[(q, &prompt(i))], Logits::Last).unwrap();
    }
    let toks: Vec<Vec<u32>> = (0..4).map(step_tokens).collect();
    let feeds: Vec<_> = seqs
        .iter()
        .zip(&toks)
        .map(|(&q, t)| (q, t.as_slice()))
        .collect();
    let last = s.step(&feeds, Logits::Last).unwrap();
    for i in 0..4 {
        assert_eq!(last[i].len(), usize::from(LENS[i] > 0));
        if let Some(row) = all[i].last() {
            // The head then sees 4 rows instead of 12: within burn's GEMM (small layers) a
            // row's sum may be ordered by the shape of the whole product.
            let d = max_abs_diff(row, &last[i][0]).unwrap();
            assert!(d <= 1e-6, "sequence {i}: {d}");
            assert_eq!(argmax(row), argmax(&last[i][0]), "sequence {i}");
        }
    }
}

#[test]
fn a_step_that_fails_leaves_every_sequence_at_its_length() {
    let device = Default::default();
    let (_, m) = models().remove(0);
    // Room for 12 tokens per sequence: the second sequence's 8 new tokens do not fit.
    let mut cache = m.contiguous_cache(2, 12, &device);
    let mut s = Session::new(&m, &mut cache, &device);
    let a = s.add().unwrap();
    let b = s.add().unwrap();
    s.step(&[(a, &[1, 2, 3]), (b, &[4, 5, 6, 7, 8])], Logits::Last)
        .unwrap();
    let err = s.step(&[(a, &[9, 9]), (b, &[1; 8])], Logits::All);
    assert!(err.is_err(), "a step past the cache's room is an error");
    assert_eq!((s.len(a).unwrap(), s.len(b).unwrap()), (3, 5));
    // Out-of-vocabulary ids and a sequence fed twice are refused before any forward.
    assert!(s.step(&[(a, &[99])], Logits::Last).is_err());
    assert!(s.step(&[(a, &[1]), (a, &[2])], Logits::Last).is_err());
    assert_eq!((s.len(a).unwrap(), s.len(b).unwrap()), (3, 5));
    // The session goes on after the failures.
    let rows = s.step(&[(a, &[9, 9]), (b, &[1])], Logits::All).unwrap();
    assert_eq!((rows[0].len(), rows[1].len()), (2, 1));
    s.close().unwrap();
}

/// The decode-step profile covers the head and the final norm on the engine's path (a ragged
/// step), not only on `forward`: every part a step runs accumulates time.
#[test]
fn a_profiled_engine_step_records_every_part_it_runs() {
    use infermark_models::profile::{Part, Profile};
    let (_, model) = models().remove(0);
    let device = Default::default();
    let mut cache = model.contiguous_cache(1, 32, &device);
    let mut s = Session::new(&model, &mut cache, &device);
    let q = s.add().unwrap();
    s.step(&[(q, &prompt(1))], Logits::Last).unwrap();
    let profile = Profile::start().expect("no other recording");
    s.step(&[(q, &[3])], Logits::Last).unwrap();
    let parts = profile.seconds();
    drop(profile);
    for part in Part::ALL {
        let t = parts.iter().find(|(p, _)| *p == part).unwrap().1;
        assert!(t > 0.0, "{part:?} recorded no time: {parts:?}");
    }
}
