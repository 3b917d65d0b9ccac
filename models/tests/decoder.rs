//! The decoder LM: cached decoding equals the full causal forward, parameter counts match the
//! closed form, and the presets keep their budgets.

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use infermark_models::attention::MlaPath;
use infermark_models::decoder::{presets, AttentionKind, DecoderConfig};

type B = Flex;

fn tokens(ids: &[i64]) -> Tensor<B, 2, Int> {
    Tensor::from_data(
        TensorData::new(ids.to_vec(), [1, ids.len()]),
        &Default::default(),
    )
}

fn max_abs_diff(a: Tensor<B, 3>, b: Tensor<B, 3>) -> f32 {
    (a - b).abs().max().into_scalar()
}

fn small(attention: AttentionKind) -> DecoderConfig {
    DecoderConfig::new(64, 32, 2, 4, 8, 48, attention).with_max_seq_len(64)
}

/// Prefill 5 tokens, then decode the rest one at a time; every position's logits must equal the
/// full forward's.
fn check_cached_decode(cfg: DecoderConfig, path: MlaPath) {
    let device = Default::default();
    B::seed(&device, 7);
    let model = cfg.init::<B>(&device).expect("valid config");
    let ids: Vec<i64> = (0..12).map(|i| (i * 7 + 3) % 64).collect();
    let full = model.forward_full(tokens(&ids)).expect("forward");
    let mut cache = model.new_cache(1, ids.len(), path, &device);
    let mut parts = vec![model
        .forward(tokens(&ids[..5]), &mut cache)
        .expect("prefill")];
    for &t in &ids[5..] {
        parts.push(model.forward(tokens(&[t]), &mut cache).expect("decode"));
    }
    let cached = Tensor::cat(parts, 1);
    let diff = max_abs_diff(full, cached);
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
    let mla = AttentionKind::Mla {
        d_latent_kv: 16,
        d_latent_q: 24,
        d_rope: 4,
    };
    check_cached_decode(small(mla.clone()), MlaPath::Naive);
    check_cached_decode(small(mla), MlaPath::Absorbed);
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
    let err = infermark_models::decoder::generate::greedy(
        &model,
        &[3, 70],
        4,
        None,
        MlaPath::Naive,
        &device,
    )
    .expect_err("70 is outside 0..64");
    assert!(err.to_string().contains("70"), "{err}");
}
