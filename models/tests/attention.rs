//! Equivalence tests: modules against plain-loop references, cached decode against full forward,
//! absorbed MLA against naive MLA, and the fused flex kernel against the generic core.

mod common;

use burn::tensor::{backend::Backend, Distribution, Tensor};
use infermark_models::attention::reference::{
    gqa_forward, mla_forward, Dense, GqaShape, MlaShape, MlaWeights,
};
use infermark_models::attention::{Attention, AttentionLayer, GqaConfig, MlaConfig, MlaPath};
use infermark_models::diff::max_abs_diff;
use infermark_models::kernels::isa::{self, Isa};
use infermark_models::kernels::{
    flex_grouped_attention_with, grouped_attention_generic, Prefetch, Visibility,
};
use infermark_models::kv_cache::{ContiguousKv, KvCache, PoolError};
use infermark_models::proj::Proj;
use infermark_models::ModelError;

use common::{dev, values, B};

/// f32 summation-order differences between a loop reference and blocked kernels.
const ATOL_REFERENCE: f32 = 1e-4;
/// Two paths of the same maths in f32 (absorbed vs naive MLA, fused vs generic core).
const ATOL_PATHS: f32 = 1e-4;

fn input(shape: [usize; 3], seed: u64) -> Tensor<B, 3> {
    B::seed(&dev(), seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev())
}

fn dense(l: &Proj<B>) -> Dense {
    let w = l.weight(&dev());
    let [d_in, d_out] = w.dims();
    Dense {
        data: values(w),
        d_in,
        d_out,
    }
}

fn check_against_reference(n_heads: usize, n_kv_heads: usize) {
    B::seed(&dev(), 7);
    let cfg = GqaConfig::new(32, n_heads, n_kv_heads, 8).with_max_seq_len(64);
    let layer = cfg.init::<B>(&dev()).unwrap();
    let (batch, s) = (2, 5);
    let x = input([batch, s, 32], 11);
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
    let want = gqa_forward(w, shape, &values(x.clone()), batch, s);
    // The full forward, and the cached forward of each sequence on its own.
    let full = values(layer.forward_full(x.clone()).unwrap());
    let mut cache = ContiguousKv::<B>::new(batch, 16, layer.cache_layout(), &dev());
    let cached: Vec<_> = (0..batch)
        .map(|i| {
            let seq = cache.add_sequence().unwrap();
            layer
                .forward(x.clone().narrow(0, i, 1), &[seq], &mut cache)
                .unwrap()
        })
        .collect();
    for (what, got) in [("full", full), ("cached", values(Tensor::cat(cached, 0)))] {
        let diff = max_abs_diff(&got, &want).unwrap();
        assert!(
            diff < ATOL_REFERENCE,
            "{what}: n_heads {n_heads}, n_kv {n_kv_heads}: max diff {diff}"
        );
    }
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

/// Prefills `prefix` tokens of each sequence on its own, then decodes the rest for all
/// sequences together (one token each per step); returns the outputs `[batch, s, d_model]`.
fn cached_run(layer: &Attention<B>, x: Tensor<B, 3>, prefix: usize) -> Tensor<B, 3> {
    let [batch, s, _] = x.dims();
    let mut cache = ContiguousKv::<B>::new(batch, s, layer.cache_layout(), &dev());
    let seqs: Vec<_> = (0..batch).map(|_| cache.add_sequence().unwrap()).collect();
    let pre: Vec<_> = (0..batch)
        .map(|i| {
            let xi = x.clone().narrow(0, i, 1).narrow(1, 0, prefix);
            layer.forward(xi, &seqs[i..=i], &mut cache).unwrap()
        })
        .collect();
    let mut parts = vec![Tensor::cat(pre, 0)];
    for t in prefix..s {
        parts.push(
            layer
                .forward(x.clone().narrow(1, t, 1), &seqs, &mut cache)
                .unwrap(),
        );
    }
    Tensor::cat(parts, 1)
}

#[test]
fn gqa_cached_decode_equals_full_forward() {
    B::seed(&dev(), 3);
    let layer = GqaConfig::new(32, 8, 2, 8)
        .with_max_seq_len(64)
        .init::<B>(&dev())
        .unwrap();
    let x = input([2, 9, 32], 5);
    let full = layer.forward_full(x.clone()).unwrap();
    let cached = cached_run(&Attention::Gqa(layer), x, 4);
    let diff = max_abs_diff(&values(full), &values(cached)).unwrap();
    assert!(diff < ATOL_PATHS, "max diff {diff}");
}

fn small_mla() -> MlaConfig {
    MlaConfig::new(48, 4, 8, 4, 16, 24).with_max_seq_len(64)
}

#[test]
fn mla_cached_decode_equals_full_forward_on_both_paths() {
    B::seed(&dev(), 9);
    let layer = small_mla().init::<B>(&dev()).unwrap();
    let x = input([2, 8, 48], 1);
    for path in [MlaPath::Naive, MlaPath::Absorbed] {
        let layer = layer.clone().with_path(path);
        let full = layer.forward_full(x.clone()).unwrap();
        let cached = cached_run(&Attention::Mla(layer), x.clone(), 3);
        let diff = max_abs_diff(&values(full), &values(cached)).unwrap();
        assert!(diff < ATOL_PATHS, "{path:?}: max diff {diff}");
    }
}

#[test]
fn mla_equals_loop_reference_on_both_paths() {
    B::seed(&dev(), 5);
    let cfg = small_mla();
    let layer = cfg.init::<B>(&dev()).unwrap();
    // Random norm gains, so a missing or misplaced latent norm shows.
    let gain = |n: usize, seed| input([1, 1, n], seed).reshape([n]).abs() + 0.5;
    let mut layer = layer;
    layer.q_norm.gamma = burn::module::Param::from_tensor(gain(cfg.d_latent_q, 31));
    layer.kv_norm.gamma = burn::module::Param::from_tensor(gain(cfg.d_latent_kv, 32));
    let w = MlaWeights {
        w_dq: dense(&layer.w_dq),
        q_norm: values(layer.q_norm.gamma.val()),
        w_uq: dense(&layer.w_uq),
        w_qr: dense(&layer.w_qr),
        w_dkv: dense(&layer.w_dkv),
        kv_norm: values(layer.kv_norm.gamma.val()),
        w_kr: dense(&layer.w_kr),
        w_uk: values(layer.w_uk.val()),
        w_uv: values(layer.w_uv.val()),
        w_o: dense(&layer.w_o),
    };
    let shape = MlaShape {
        n_heads: cfg.n_heads,
        d_head: cfg.d_head,
        d_rope: cfg.d_rope,
        d_latent_kv: cfg.d_latent_kv,
        theta: cfg.rope_theta,
        eps: 1e-5,
    };
    let (batch, s) = (2, 7);
    let x = input([batch, s, cfg.d_model], 12);
    let want = mla_forward(&w, shape, &values(x.clone()), batch, s);
    for path in [MlaPath::Naive, MlaPath::Absorbed] {
        let layer = layer.clone().with_path(path);
        let full = values(layer.forward_full(x.clone()).unwrap());
        let cached = values(cached_run(&Attention::Mla(layer), x.clone(), 3));
        for (what, got) in [("full", full), ("cached", cached)] {
            let diff = max_abs_diff(&got, &want).unwrap();
            assert!(diff < ATOL_REFERENCE, "{path:?} {what}: max diff {diff}");
        }
    }
}

#[test]
fn mla_absorbed_equals_naive() {
    B::seed(&dev(), 21);
    let layer = small_mla().init::<B>(&dev()).unwrap();
    let x = input([2, 6, 48], 2);
    let naive = layer
        .clone()
        .with_path(MlaPath::Naive)
        .forward_full(x.clone())
        .unwrap();
    let absorbed = layer.with_path(MlaPath::Absorbed).forward_full(x).unwrap();
    let diff = max_abs_diff(&values(naive), &values(absorbed)).unwrap();
    assert!(diff < ATOL_PATHS, "max diff {diff}");
}

#[test]
fn mla_cache_holds_only_latent_and_rope_key() {
    let cfg = small_mla();
    let layer = cfg.init::<B>(&dev()).unwrap().with_path(MlaPath::Absorbed);
    let mut cache = ContiguousKv::<B>::new(1, 32, layer.cache_layout(), &dev());
    let seq = cache.add_sequence().unwrap();
    layer
        .forward(input([1, 5, 48], 4), &[seq], &mut cache)
        .unwrap();
    assert_eq!(cache.bytes_reserved(), 32 * cfg.kv_bytes_per_token(4));
    assert_eq!(cache.bytes_used(), 5 * (16 + 4) * 4);
}

#[test]
fn gqa_cache_bytes_match_closed_form() {
    let cfg = GqaConfig::new(32, 8, 2, 8).with_max_seq_len(64);
    let layer = cfg.init::<B>(&dev()).unwrap();
    let mut cache = ContiguousKv::<B>::new(3, 20, layer.cache_layout(), &dev());
    for _ in 0..3 {
        let seq = cache.add_sequence().unwrap();
        layer
            .forward(input([1, 6, 32], 4), &[seq], &mut cache)
            .unwrap();
    }
    assert_eq!(cache.bytes_reserved(), 3 * 20 * cfg.kv_bytes_per_token(4));
    assert_eq!(cache.bytes_used(), 3 * 6 * 2 * 2 * 8 * 4);
}

#[test]
fn appending_past_capacity_is_an_error_not_a_panic() {
    let layer = GqaConfig::new(32, 4, 2, 8)
        .with_max_seq_len(64)
        .init::<B>(&dev())
        .unwrap();
    let mut cache = ContiguousKv::<B>::new(1, 4, layer.cache_layout(), &dev());
    let seq = cache.add_sequence().unwrap();
    layer
        .forward(input([1, 3, 32], 1), &[seq], &mut cache)
        .unwrap();
    let err = layer
        .forward(input([1, 2, 32], 1), &[seq], &mut cache)
        .unwrap_err();
    assert_eq!(
        err,
        ModelError::Cache(PoolError::Exhausted {
            need: 5,
            free: 1,
            total: 4
        })
    );
    assert_eq!(cache.len(seq), Ok(3), "a refused append changes nothing");
}

#[test]
fn several_sequences_of_several_tokens_are_refused_by_a_layer() {
    let layer = GqaConfig::new(32, 4, 2, 8)
        .with_max_seq_len(64)
        .init::<B>(&dev())
        .unwrap();
    let mut cache = ContiguousKv::<B>::new(2, 8, layer.cache_layout(), &dev());
    let seqs = [cache.add_sequence().unwrap(), cache.add_sequence().unwrap()];
    let err = layer
        .forward(input([2, 3, 32], 1), &seqs, &mut cache)
        .unwrap_err();
    assert!(matches!(err, ModelError::Shape { .. }), "{err}");
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
fn fused_flex_kernel_equals_generic_core_on_every_isa_path() {
    // Strided views as the caches hand them out (narrowed capacity and width), a context long
    // enough to be split into chunks, decode and causal prefill rows. Up to 8 rows take the
    // streaming kernel (1 and 5: a lone row beside row pairs), 40 the strided-GEMM path; widths
    // 72/64 exercise the tails of the SIMD forms, 128/128 their full-width blocks.
    for isa in isa::test_paths("fused flex attention") {
        for rows in [1, 5, 6, 40] {
            for (dk, dv) in [(72, 64), (128, 128)] {
                fused_matches_generic(isa, rows, dk, dv);
            }
        }
    }
}

fn fused_matches_generic(isa: Isa, rows: usize, dk: usize, dv: usize) {
    let (b, h, t, cap) = (2, 3, 700, 800);
    let k = random4([b, h, cap, dk], 1).narrow(2, 0, t);
    let v = random4([b, h, cap, dv.max(dk)], 2)
        .narrow(2, 0, t)
        .narrow(3, 0, dv);
    let q = random4([b, h, rows, dk], 3);
    for vis in [
        Visibility::All,
        Visibility::Causal { s: 3, past: t - 3 },
        Visibility::Causal { s: 2, past: 100 },
    ] {
        let fused = flex_grouped_attention_with(
            isa,
            Prefetch::Probe,
            q.clone(),
            k.clone(),
            v.clone(),
            vis,
            0.1,
        );
        let generic = grouped_attention_generic(q.clone(), k.clone(), v.clone(), vis, 0.1);
        assert_eq!(fused.dims(), [b, h, rows, dv]);
        let diff = max_abs_diff(&values(fused), &values(generic)).unwrap();
        assert!(
            diff < ATOL_PATHS,
            "{isa}, rows {rows}, d {dk}/{dv}, {vis:?}: max diff {diff}"
        );
    }
}

#[test]
fn prefetching_or_not_gives_the_same_bits_on_every_isa_path() {
    // A call prefetches K/V rows ahead or not depending on where a probe finds them; the
    // prefetches are hints and must not change a bit of the result. Llama-3 head shape, a
    // context split into several chunks, a causal tail.
    let (h, t, d) = (4, 1500, 128);
    let k = random4([1, h, t, d], 7);
    let v = random4([1, h, t, d], 8);
    let q = random4([1, h, 4, d], 9);
    for isa in isa::test_paths("fused flex attention, prefetch on or off") {
        for vis in [Visibility::All, Visibility::Causal { s: 4, past: t - 4 }] {
            let run = |p| {
                values(flex_grouped_attention_with(
                    isa,
                    p,
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    vis,
                    0.1,
                ))
            };
            let on = run(Prefetch::On);
            assert_eq!(on, run(Prefetch::Off), "{isa}, {vis:?}");
            assert_eq!(on, run(Prefetch::Probe), "{isa}, {vis:?}");
        }
    }
}

#[test]
fn a_query_row_attends_the_same_alone_or_beside_other_rows_on_every_isa_path() {
    // The SIMD forms share K and V loads between pairs of rows; each row's result must still be
    // bit-identical to that row computed alone (decode equals verification among γ + 1 rows).
    let (h, t, d) = (2, 300, 128);
    let k = random4([1, h, t, d], 4);
    let v = random4([1, h, t, d], 5);
    let q = random4([1, h, 5, d], 6);
    for isa in isa::test_paths("fused flex attention, row independence") {
        let all = values(flex_grouped_attention_with(
            isa,
            Prefetch::Probe,
            q.clone(),
            k.clone(),
            v.clone(),
            Visibility::All,
            0.1,
        ));
        for r in 0..5 {
            let one = values(flex_grouped_attention_with(
                isa,
                Prefetch::Probe,
                q.clone().narrow(2, r, 1),
                k.clone(),
                v.clone(),
                Visibility::All,
                0.1,
            ));
            for hi in 0..h {
                let got = &all[(hi * 5 + r) * d..(hi * 5 + r + 1) * d];
                assert_eq!(got, &one[hi * d..(hi + 1) * d], "{isa}, row {r}, head {hi}");
            }
        }
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
