//! The decoder LM: cached decoding equals the full causal forward, parameter counts match the
//! closed form, and the presets keep their budgets.

mod common;

use burn::module::Module;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use infermark_models::attention::MlaPath;
use infermark_models::decoder::{presets, AttentionKind, Decoder, DecoderConfig};
use infermark_models::diff::max_abs_diff;
use infermark_models::generation::{generate, GenerateConfig, Sampler, SamplingConfig};
use infermark_models::kv_cache::{KvCache, ModelCache};

use common::{tokens, values, B};

fn small(attention: AttentionKind) -> DecoderConfig {
    DecoderConfig::new(64, 32, 2, 4, 8, 48, attention).with_max_seq_len(64)
}

fn mla() -> AttentionKind {
    AttentionKind::Mla {
        d_latent_kv: 16,
        d_latent_q: 24,
        d_rope: 4,
    }
}

/// Every attention variant and MLA path the decoder runs.
fn variants() -> Vec<(DecoderConfig, MlaPath)> {
    let mut v: Vec<_> = [1, 2, 4]
        .into_iter()
        .map(|kv| (small(AttentionKind::Gqa { n_kv_heads: kv }), MlaPath::Naive))
        .collect();
    v.push((small(mla()), MlaPath::Naive));
    v.push((small(mla()), MlaPath::Absorbed));
    v
}

fn model(cfg: &DecoderConfig, path: MlaPath, seed: u64) -> Decoder<B> {
    let device = Default::default();
    B::seed(&device, seed);
    cfg.init::<B>(&device)
        .expect("valid config")
        .with_mla_path(path)
}

/// Prefill 5 tokens, then decode the rest one at a time; every position's logits must equal the
/// full forward's.
fn check_cached_decode(cfg: DecoderConfig, path: MlaPath) {
    let device = Default::default();
    let model = model(&cfg, path, 7);
    let ids: Vec<i64> = (0..12).map(|i| (i * 7 + 3) % 64).collect();
    let full = model.forward_full(tokens(&ids)).expect("forward");
    let mut cache = model.contiguous_cache(1, ids.len(), &device);
    let seq = cache.add_sequence().unwrap();
    let mut parts = vec![model
        .forward(tokens(&ids[..5]), &[seq], &mut cache)
        .expect("prefill")];
    for &t in &ids[5..] {
        parts.push(
            model
                .forward(tokens(&[t]), &[seq], &mut cache)
                .expect("decode"),
        );
    }
    let cached = Tensor::cat(parts, 1);
    let diff = max_abs_diff(&values(full), &values(cached)).unwrap();
    assert!(
        diff < 1e-4,
        "{cfg:?} {path:?}: cached decode differs by {diff}"
    );
}

#[test]
fn cached_decode_equals_full_forward_for_gqa_mha_and_mqa() {
    for kv in [1, 2, 4] {
        check_cached_decode(small(AttentionKind::Gqa { n_kv_heads: kv }), MlaPath::Naive);
    }
}

#[test]
fn cached_decode_equals_full_forward_for_mla_by_both_paths() {
    check_cached_decode(small(mla()), MlaPath::Naive);
    check_cached_decode(small(mla()), MlaPath::Absorbed);
}

/// Three sequences of different lengths (prefilled one by one), then decoded together for four
/// steps: each sequence's logits must equal those of the same sequence decoded alone.
fn check_batch_equals_alone<C: KvCache<B>>(
    model: &Decoder<B>,
    mut cache: ModelCache<B, C>,
    what: &str,
) {
    let prompts: [Vec<i64>; 3] = [
        (0..3).map(|i| (i * 5 + 1) % 64).collect(),
        (0..11).map(|i| (i * 7 + 2) % 64).collect(),
        (0..6).map(|i| (i * 3 + 9) % 64).collect(),
    ];
    let steps: Vec<[i64; 3]> = (0..4).map(|t| [t + 1, 2 * t + 5, 60 - t]).collect();
    // Alone: one sequence at a time, each in its own fresh sequence of the same cache.
    let mut alone = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let seq = cache.add_sequence().unwrap();
        let mut rows = vec![];
        model.forward(tokens(p), &[seq], &mut cache).unwrap();
        for st in &steps {
            rows.push(values(
                model.forward(tokens(&[st[i]]), &[seq], &mut cache).unwrap(),
            ));
        }
        cache.free(seq).unwrap();
        alone.push(rows);
    }
    // Together.
    let seqs: Vec<_> = prompts
        .iter()
        .map(|p| {
            let seq = cache.add_sequence().unwrap();
            model.forward(tokens(p), &[seq], &mut cache).unwrap();
            seq
        })
        .collect();
    for (t, st) in steps.iter().enumerate() {
        let batch = Tensor::<B, 2, Int>::from_data(
            TensorData::new(st.to_vec(), [3, 1]),
            &Default::default(),
        );
        let out = model.forward(batch, &seqs, &mut cache).unwrap();
        for (i, seq_alone) in alone.iter().enumerate() {
            let got = values(out.clone().narrow(0, i, 1));
            let diff = max_abs_diff(&got, &seq_alone[t]).unwrap();
            assert!(diff < 1e-4, "{what}: sequence {i}, step {t}: {diff}");
        }
    }
}

/// Runs `$check(model, cache, label)` for every variant on a contiguous cache (4 sequences of 32
/// tokens) and a paged one (32 blocks of 8), both fresh.
macro_rules! on_every_variant_and_cache {
    ($seed:expr, $check:ident) => {
        for (cfg, path) in variants() {
            let (m, device) = (model(&cfg, path, $seed), Default::default());
            let what = format!("{:?} {path:?}", cfg.attention);
            $check(
                &m,
                m.contiguous_cache(4, 32, &device),
                &format!("contiguous {what}"),
            );
            let paged = m.paged_cache(32, 8, &device).unwrap();
            $check(&m, paged, &format!("paged {what}"));
        }
    };
}

#[test]
fn a_batch_at_different_lengths_decodes_as_each_sequence_alone() {
    on_every_variant_and_cache!(5, check_batch_equals_alone);
}

/// Prefill 10 tokens, truncate to 6, decode 3 more; the logits must equal a fresh prefill of the
/// 6 kept tokens followed by the same 3.
fn check_truncate<C: KvCache<B>>(model: &Decoder<B>, mut cache: ModelCache<B, C>, what: &str) {
    let ids: Vec<i64> = (0..10).map(|i| (i * 11 + 4) % 64).collect();
    let more = [7i64, 19, 33];
    let other = cache.add_sequence().unwrap();
    let seq = cache.add_sequence().unwrap();
    model.forward(tokens(&ids), &[seq], &mut cache).unwrap();
    model.forward(tokens(&ids), &[other], &mut cache).unwrap();
    cache.truncate(seq, 6).unwrap();
    assert_eq!(cache.len(seq), Ok(6));
    assert_eq!(cache.len(other), Ok(10), "truncate is per sequence");
    let got: Vec<_> = more
        .iter()
        .map(|&t| values(model.forward(tokens(&[t]), &[seq], &mut cache).unwrap()))
        .collect();
    let fresh = cache.add_sequence().unwrap();
    model
        .forward(tokens(&ids[..6]), &[fresh], &mut cache)
        .unwrap();
    for (i, &t) in more.iter().enumerate() {
        let want = values(model.forward(tokens(&[t]), &[fresh], &mut cache).unwrap());
        let diff = max_abs_diff(&got[i], &want).unwrap();
        assert!(diff < 1e-5, "{what}: step {i}: {diff}");
    }
}

#[test]
fn truncate_then_decode_equals_a_fresh_prefill_of_the_kept_prefix() {
    on_every_variant_and_cache!(9, check_truncate);
}

#[test]
fn untied_head_is_counted_and_used() {
    let cfg = small(AttentionKind::Gqa { n_kv_heads: 2 }).with_tie_embeddings(false);
    let device = Default::default();
    let model = cfg.init::<B>(&device).expect("valid");
    assert!(model.lm_head.is_some());
    assert_eq!(model.num_params(), cfg.param_count());
}

#[test]
fn parameter_counts_match_the_closed_form_for_every_preset() {
    let device = Default::default();
    for p in presets() {
        let model = p.config.init::<B>(&device).expect("valid preset");
        assert_eq!(
            model.num_params(),
            p.config.param_count(),
            "preset {}",
            p.name
        );
    }
}

#[test]
fn attention_twins_keep_target_budget_and_draft_is_four_times_smaller() {
    let count = |n: &str| {
        infermark_models::decoder::preset(n)
            .expect("preset exists")
            .config
            .param_count() as f64
    };
    let target = count("target");
    for twin in ["target-mha", "target-mla"] {
        let r = count(twin) / target;
        assert!(
            (0.95..=1.05).contains(&r),
            "{twin} has {r:.3}× target's parameters"
        );
    }
    assert!(count("draft") * 4.0 <= target, "draft is not 4× smaller");
}

#[test]
fn out_of_vocabulary_tokens_are_refused() {
    let device = Default::default();
    let model = small(AttentionKind::Gqa { n_kv_heads: 2 })
        .init::<B>(&device)
        .expect("valid");
    let err = model
        .forward_full(tokens(&[1, 64]))
        .expect_err("64 is outside 0..64");
    assert!(err.to_string().contains("0..64"), "{err}");
    // A host prompt is checked before generation starts.
    let mut cache = model.contiguous_cache(1, 16, &device);
    let mut sampler = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let cfg = GenerateConfig {
        max_new: 4,
        stop: vec![],
    };
    let err = generate(
        &model,
        &mut cache,
        &[vec![3, 70]],
        &cfg,
        &mut sampler,
        &device,
    )
    .expect_err("70 is outside 0..64");
    assert!(err.to_string().contains("70"), "{err}");
}
