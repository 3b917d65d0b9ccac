//! AWQ: with α = 0 and no clipping it is round-to-nearest bit for bit; the folded f32 model
//! computes the original logits; the clipping search agrees with a plain search that sums each
//! candidate's squared output error over the tokens; with outlier channels, AWQ's logits are
//! closer to the f32 model's than round-to-nearest's; bad input is refused.

use burn::backend::Flex;
use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::diff::max_abs_diff;
use infermark_models::quant::awq::{awq_transform, clip_group, AwqConfig};
use infermark_models::quant::calibrate::{quantize_decoder_calibrated, Method};
use infermark_models::quant::grid::Grid;
use infermark_models::quant::{quantize_decoder, Assignment, Fp8Kind, Fp8Scaling, QuantFormat};

type B = Flex;

const G32: QuantFormat = QuantFormat::Int4 {
    group: 32,
    asym: false,
};

fn model() -> Decoder<B> {
    let cfg = DecoderConfig::new(64, 64, 2, 4, 16, 96, AttentionKind::Gqa { n_kv_heads: 2 })
        .with_max_seq_len(32);
    cfg.init::<B>(&Default::default()).unwrap()
}

/// The model with a few norm channels 20× larger: the outlier input channels AWQ protects.
fn with_outliers(mut m: Decoder<B>) -> Decoder<B> {
    let device = Default::default();
    let mut boost = vec![1f32; 64];
    for c in [3, 17, 40] {
        boost[c] = 20.0;
    }
    let boost = Tensor::<B, 1>::from_data(TensorData::new(boost, [64]), &device);
    for b in &mut m.blocks {
        b.attn_norm.gamma = Param::from_tensor(b.attn_norm.gamma.val() * boost.clone());
        b.mlp_norm.gamma = Param::from_tensor(b.mlp_norm.gamma.val() * boost.clone());
    }
    m
}

fn tokens(seed: i64) -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = (0..128).map(|i| (i * 29 + seed * 7 + 3) % 64).collect();
    Tensor::from_data(TensorData::new(ids, [8, 16]), &Default::default())
}

fn logits(m: &Decoder<B>, t: Tensor<B, 2, Int>) -> Vec<f32> {
    m.forward_full(t)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

fn projection_weights(m: &Decoder<B>) -> Vec<Vec<f32>> {
    let device = Default::default();
    let mut out = Vec::new();
    for b in &m.blocks {
        let infermark_models::attention::Attention::Gqa(a) = &b.attn else {
            panic!("GQA blocks")
        };
        for p in [
            &a.wq,
            &a.wk,
            &a.wv,
            &a.wo,
            &b.mlp.gate,
            &b.mlp.up,
            &b.mlp.down,
        ] {
            out.push(p.weight(&device).into_data().to_vec::<f32>().unwrap());
        }
    }
    out
}

#[test]
fn awq_with_alpha_zero_and_no_clipping_is_round_to_nearest() {
    let m = model();
    for f in [G32, QuantFormat::Q4_1] {
        let cfg = AwqConfig {
            alpha: Some(0.0),
            clip: false,
            ..AwqConfig::default()
        };
        let a = Assignment::uniform(f);
        let (q, bytes) = quantize_decoder_calibrated(&m, a, Method::Awq(cfg), tokens(0)).unwrap();
        let (r, want) = quantize_decoder(&m, a).unwrap();
        assert_eq!(bytes, want);
        assert_eq!(projection_weights(&q), projection_weights(&r), "{f}");
        assert_eq!(logits(&q, tokens(1)), logits(&r, tokens(1)), "{f}");
    }
}

#[test]
fn folded_awq_model_computes_the_original_logits() {
    let m = with_outliers(model());
    let want = logits(&m, tokens(1));
    for alpha in [Some(0.5), None] {
        let cfg = AwqConfig {
            alpha,
            clip: false,
            ..AwqConfig::default()
        };
        let (folded, alphas) =
            awq_transform(&m, Assignment::uniform(G32), tokens(0), &cfg).unwrap();
        assert_eq!(alphas.len(), 2);
        for a in &alphas {
            for x in [a.qkv, a.gate_up, a.down] {
                let x = x.expect("every group scaled");
                assert!((0.0..1.0).contains(&x) && (x * 20.0).fract() == 0.0, "{x}");
            }
        }
        let d = max_abs_diff(&logits(&folded, tokens(1)), &want).unwrap();
        assert!(d <= 1e-5, "α {alpha:?}: max |Δ logit| {d}");
        if alpha.is_some() {
            // The fold did move weights: the norms now carry 1 / s.
            let gamma = |d: &Decoder<B>| {
                let g = d.blocks[0].attn_norm.gamma.val();
                g.into_data().to_vec::<f32>().unwrap()
            };
            let (g0, g1) = (gamma(&m), gamma(&folded));
            assert!(max_abs_diff(&g0, &g1).unwrap() > 0.1);
        }
    }
}

#[test]
fn clipping_search_agrees_with_a_plain_search_over_tokens() {
    // Inputs x (n tokens × 40 channels), their Gram matrix, and groups of 32 and of 8 (a
    // partial group); the plain search clamps, rounds and sums (x·e)² over the tokens.
    let (n, d) = (64usize, 40usize);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let x: Vec<f32> = (0..n * d)
        .map(|i| next() * if i % d == 5 { 8.0 } else { 1.0 })
        .collect();
    let mut gram = vec![0f32; d * d];
    for a in 0..d {
        for b in 0..d {
            gram[a * d + b] = (0..n).map(|t| x[t * d + a] * x[t * d + b]).sum::<f32>() / n as f32;
        }
    }
    for f in [G32, QuantFormat::Q4_0, QuantFormat::Q4_1] {
        for trial in 0..20 {
            let mut w: Vec<f32> = (0..d).map(|_| next()).collect();
            w[trial % d] *= 6.0; // an outlier weight worth clipping
            for (start, len) in [(0usize, 32usize), (32, 8)] {
                let group = &w[start..start + len];
                let mut best = (f64::INFINITY, 0usize);
                for i in 0..10 {
                    let amax = group.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let max = amax * (1.0 - i as f32 / 20.0);
                    let mut padded = vec![0f32; 32];
                    for (p, v) in padded.iter_mut().zip(group) {
                        *p = v.clamp(-max, max);
                    }
                    let g = Grid::rtn(f, &padded).unwrap();
                    let err: f64 = (0..n)
                        .map(|t| {
                            let dot: f64 = (0..len)
                                .map(|k| {
                                    let e = group[k] as f64 - g.round(padded[k]) as f64;
                                    x[t * d + start + k] as f64 * e
                                })
                                .sum();
                            dot * dot
                        })
                        .sum::<f64>()
                        / n as f64;
                    if err < best.0 * (1.0 - 1e-9) {
                        best = (err, i);
                    }
                }
                let amax = group.iter().fold(0f32, |m, v| m.max(v.abs()));
                let max = amax * (1.0 - best.1 as f32 / 20.0);
                let want: Vec<f32> = group.iter().map(|v| v.clamp(-max, max)).collect();
                let mut got = group.to_vec();
                clip_group(f, &mut got, &gram[start * d + start..], d);
                assert_eq!(got, want, "{f}, trial {trial}, group at {start}");
            }
        }
    }
}

#[test]
fn awq_logits_are_closer_than_round_to_nearest_with_outlier_channels() {
    let m = with_outliers(model());
    let want = logits(&m, tokens(1));
    let mse = |q: &Decoder<B>| -> f64 {
        let got = logits(q, tokens(1));
        max_abs_diff(&got, &want).unwrap();
        got.iter()
            .zip(&want)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / got.len() as f64
    };
    for f in [G32, QuantFormat::Q4_1] {
        let a = Assignment::uniform(f);
        let (r, _) = quantize_decoder(&m, a).unwrap();
        let cfg = AwqConfig::default();
        let (q, _) = quantize_decoder_calibrated(&m, a, Method::Awq(cfg), tokens(0)).unwrap();
        let (e_rtn, e_awq) = (mse(&r), mse(&q));
        assert!(e_awq < e_rtn, "{f}: AWQ {e_awq} vs RTN {e_rtn}");
    }
}

#[test]
fn awq_refuses_bad_input_and_leaves_fp8_parts_to_round_to_nearest() {
    let m = model();
    let bad = |cfg: AwqConfig, a: Assignment| awq_transform(&m, a, tokens(0), &cfg).is_err();
    let u = Assignment::uniform(G32);
    assert!(bad(
        AwqConfig {
            grid: 0,
            ..AwqConfig::default()
        },
        u
    ));
    assert!(bad(
        AwqConfig {
            alpha: Some(f32::NAN),
            ..AwqConfig::default()
        },
        u
    ));
    assert!(bad(
        AwqConfig::default(),
        Assignment::uniform(QuantFormat::Int8)
    ));
    let out_of_vocab = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![64i64; 16], [1, 16]),
        &Default::default(),
    );
    assert!(awq_transform(&m, u, out_of_vocab, &AwqConfig::default()).is_err());
    // Mixed: FP8 attention stays round-to-nearest's, INT4 MLP is AWQ's.
    let mixed = Assignment {
        attention: QuantFormat::Fp8(Fp8Kind::E4M3, Fp8Scaling::Channel),
        mlp: G32,
    };
    let (q, bytes) =
        quantize_decoder_calibrated(&m, mixed, Method::Awq(AwqConfig::default()), tokens(0))
            .unwrap();
    let (r, want) = quantize_decoder(&m, mixed).unwrap();
    assert_eq!(bytes, want);
    let (wq, wr) = (projection_weights(&q), projection_weights(&r));
    for (i, (a, b)) in wq.iter().zip(&wr).enumerate() {
        // Per block: q, k, v, o (FP8) then gate, up, down (INT4).
        assert_eq!(i % 7 < 4, a == b, "projection {i}");
    }
}
