//! Equivalence tests: modules against plain-loop references, cached decode against full forward,
//! absorbed MLA against naive MLA, and the fused flex kernel against the generic core.

use burn::backend::Flex;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use infermark_models::attention::reference::{gqa_forward, Dense, GqaShape};
use infermark_models::attention::{GqaConfig, MlaConfig, MlaPath};
use infermark_models::kernels::{grouped_attention_generic, AttentionBackend, Visibility};
use infermark_models::ModelError;

type B = Flex;

/// f32 summation-order differences between a loop reference and blocked kernels.
const ATOL_REFERENCE: f32 = 1e-4;
/// Two paths of the same maths in f32 (absorbed vs naive MLA, fused vs generic core).
const ATOL_PATHS: f32 = 1e-4;

fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

fn input(shape: [usize; 3], seed: u64) -> Tensor<B, 3> {
    B::seed(&dev(), seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev())
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn dense(l: &Linear<B>) -> Dense {
    let w = l.weight.val();
    let [d_in, d_out] = w.dims();
    Dense {
        data: values(w),
        d_in,
        d_out,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_against_reference(n_heads: usize, n_kv_heads: usize) {
    B::seed(&dev(), 7);
    let cfg = GqaConfig::new(32, n_heads, n_kv_heads, 8).with_max_seq_len(64);
    let layer = cfg.init::<B>(&dev()).unwrap();
    let (batch, s) = (2, 5);
    let x = input([batch, s, 32], 11);
    let mut cache = layer.new_cache(batch, 16, &dev());
    let got = values(layer.forward(x.clone(), &mut cache).unwrap());
    let w = [
        &dense(&layer.wq),
        &dense(&layer.wk),
        &dense(&layer.wv),
        &dense(&layer.wo),
    ];
    let shape = GqaShape {
        n_heads,
        n_kv_heads,
        d_head: 8,
        theta: 10000.0,
    };
    let want = gqa_forward(w, shape, &values(x), batch, s);
    let diff = max_abs_diff(&got, &want);
    assert!(
        diff < ATOL_REFERENCE,
        "n_heads {n_heads}, n_kv {n_kv_heads}: max diff {diff}"
    );
}

#[test]
fn mha_equals_loop_reference() {
    check_against_reference(4, 4);
}

#[test]
fn mqa_equals_loop_reference() {
    check_against_reference(4, 1);
}

#[test]
fn gqa_equals_loop_reference() {
    check_against_reference(8, 2);
}

#[test]
fn gqa_cached_decode_equals_full_forward() {
    B::seed(&dev(), 3);
    let layer = GqaConfig::new(32, 8, 2, 8)
        .with_max_seq_len(64)
        .init::<B>(&dev())
        .unwrap();
    let (batch, s, prefix) = (2, 9, 4);
    let x = input([batch, s, 32], 5);
    let full = layer
        .forward(x.clone(), &mut layer.new_cache(batch, s, &dev()))
        .unwrap();
    let mut cache = layer.new_cache(batch, s, &dev());
    let mut parts = vec![layer
        .forward(x.clone().narrow(1, 0, prefix), &mut cache)
        .unwrap()];
    for t in prefix..s {
        parts.push(
            layer
                .forward(x.clone().narrow(1, t, 1), &mut cache)
                .unwrap(),
        );
    }
    let diff = max_abs_diff(&values(full), &values(Tensor::cat(parts, 1)));
    assert!(diff < ATOL_PATHS, "max diff {diff}");
}

fn small_mla() -> MlaConfig {
    MlaConfig::new(48, 4, 8, 4, 16, 24).with_max_seq_len(64)
}

#[test]
fn mla_cached_decode_equals_full_forward_on_both_paths() {
    B::seed(&dev(), 9);
    let layer = small_mla().init::<B>(&dev()).unwrap();
    let (batch, s, prefix) = (2, 8, 3);
    let x = input([batch, s, 48], 1);
    for path in [MlaPath::Naive, MlaPath::Absorbed] {
        let full = layer
            .forward(x.clone(), &mut layer.new_cache(batch, s, &dev()), path)
            .unwrap();
        let mut cache = layer.new_cache(batch, s, &dev());
        let mut parts = vec![layer
            .forward(x.clone().narrow(1, 0, prefix), &mut cache, path)
            .unwrap()];
        for t in prefix..s {
            parts.push(
                layer
                    .forward(x.clone().narrow(1, t, 1), &mut cache, path)
                    .unwrap(),
            );
        }
        let diff = max_abs_diff(&values(full), &values(Tensor::cat(parts, 1)));
        assert!(diff < ATOL_PATHS, "{path:?}: max diff {diff}");
    }
}

#[test]
fn mla_absorbed_equals_naive() {
    B::seed(&dev(), 21);
    let layer = small_mla().init::<B>(&dev()).unwrap();
    let x = input([2, 6, 48], 2);
    let naive = layer
        .forward(
            x.clone(),
            &mut layer.new_cache(2, 6, &dev()),
            MlaPath::Naive,
        )
        .unwrap();
    let absorbed = layer
        .forward(x, &mut layer.new_cache(2, 6, &dev()), MlaPath::Absorbed)
        .unwrap();
    let diff = max_abs_diff(&values(naive), &values(absorbed));
    assert!(diff < ATOL_PATHS, "max diff {diff}");
}

#[test]
fn mla_cache_holds_only_latent_and_rope_key() {
    let cfg = small_mla();
    let layer = cfg.init::<B>(&dev()).unwrap();
    let mut cache = layer.new_cache(1, 32, &dev());
    layer
        .forward(input([1, 5, 48], 4), &mut cache, MlaPath::Absorbed)
        .unwrap();
    assert_eq!(cache.bytes_reserved(), 32 * cfg.kv_bytes_per_token(4));
    assert_eq!(cache.bytes_used(), 5 * (16 + 4) * 4);
}

#[test]
fn gqa_cache_bytes_match_closed_form() {
    let cfg = GqaConfig::new(32, 8, 2, 8).with_max_seq_len(64);
    let layer = cfg.init::<B>(&dev()).unwrap();
    let mut cache = layer.new_cache(3, 20, &dev());
    layer.forward(input([3, 6, 32], 4), &mut cache).unwrap();
    assert_eq!(cache.bytes_reserved(), 3 * 20 * cfg.kv_bytes_per_token(4));
    assert_eq!(cache.bytes_used(), 3 * 6 * 2 * 2 * 8 * 4);
}

#[test]
fn appending_past_capacity_is_an_error_not_a_panic() {
    let layer = GqaConfig::new(32, 4, 2, 8)
        .with_max_seq_len(64)
        .init::<B>(&dev())
        .unwrap();
    let mut cache = layer.new_cache(1, 4, &dev());
    layer.forward(input([1, 3, 32], 1), &mut cache).unwrap();
    let err = layer.forward(input([1, 2, 32], 1), &mut cache).unwrap_err();
    assert_eq!(
        err,
        ModelError::CacheFull {
            len: 3,
            adding: 2,
            capacity: 4
        }
    );
}

#[test]
fn invalid_head_counts_are_rejected() {
    let err = GqaConfig::new(32, 6, 4, 8).init::<B>(&dev()).unwrap_err();
    assert!(matches!(err, ModelError::InvalidConfig(m) if m.contains("n_kv_heads = 4")));
}

fn random4(shape: [usize; 4], seed: u64) -> Tensor<B, 4> {
    B::seed(&dev(), seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev())
}

#[test]
fn fused_flex_kernel_equals_generic_core() {
    // Strided views as the caches hand them out (narrowed capacity and width), a context long
    // enough to be split into chunks, decode and causal prefill rows.
    // 6 rows take the streaming kernel, 40 the strided-GEMM path.
    for rows in [6, 40] {
        fused_matches_generic(rows);
    }
}

fn fused_matches_generic(rows: usize) {
    let (b, h, t, cap, dk, dv) = (2, 3, 700, 800, 72, 64);
    let k = random4([b, h, cap, dk], 1).narrow(2, 0, t);
    let v = random4([b, h, cap, dk], 2).narrow(2, 0, t).narrow(3, 0, dv);
    let q = random4([b, h, rows, dk], 3);
    for vis in [
        Visibility::All,
        Visibility::Causal { s: 3, past: t - 3 },
        Visibility::Causal { s: 2, past: 100 },
    ] {
        let fused =
            <B as AttentionBackend>::grouped_attention(q.clone(), k.clone(), v.clone(), vis, 0.1);
        let generic = grouped_attention_generic(q.clone(), k.clone(), v.clone(), vis, 0.1);
        assert_eq!(fused.dims(), [b, h, rows, dv]);
        let diff = max_abs_diff(&values(fused), &values(generic));
        assert!(diff < ATOL_PATHS, "rows {rows}, {vis:?}: max diff {diff}");
    }
}

#[test]
fn visibility_counts_keys_per_row() {
    let vis = Visibility::Causal { s: 2, past: 5 };
    assert_eq!(
        (0..4).map(|r| vis.visible(r, 7)).collect::<Vec<_>>(),
        vec![6, 7, 6, 7]
    );
    assert_eq!(Visibility::All.visible(3, 7), 7);
}
