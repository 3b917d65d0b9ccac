//! The EAGLE head (Li et al. 2024) against a plain-loop reference written here from the paper's
//! equations (fc, RMSNorm, GQA with RoPE and a causal mask, SwiGLU), its cached drafting against
//! its uncached forward, and greedy speculation with the head against a plain greedy loop (full
//! forward of the whole text every step, argmax) at batch 1 and 4.

use burn::backend::Flex;
use burn::module::Param;
use burn::tensor::{backend::Backend, Distribution, Int, Tensor, TensorData};
use infermark_models::attention::Attention;
use infermark_models::decoder::{AttentionKind, Decoder, DecoderConfig};
use infermark_models::diff::max_abs_diff;
use infermark_models::generation::speculative::{
    speculative_generate, EagleDrafter, EagleHead, FrozenTarget, Gamma,
};
use infermark_models::generation::{
    argmax, last_logits, GenerateConfig, Logits, Sampler, SamplingConfig, Session,
};
use infermark_models::kv_cache::SeqId;
use infermark_models::proj::Proj;

type B = Flex;

/// Error budget of the head against the reference (f32, widths 32 and 64).
const TOL: f32 = 1e-5;

const THETA: f32 = 10000.0;
const EPS: f64 = 1e-5;

fn config() -> DecoderConfig {
    DecoderConfig::new(32, 32, 2, 4, 8, 48, AttentionKind::Gqa { n_kv_heads: 2 })
        .with_max_seq_len(64)
        .with_rope_theta(THETA)
        .with_norm_eps(EPS)
}

/// The backend's random generator is one per process and the tests run in parallel: seeding
/// and drawing under one lock makes every test's weights the same on every run.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn target() -> Decoder<B> {
    let device = Default::default();
    let _draws = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(&device, 5);
    config().init::<B>(&device).unwrap()
}

/// A random head whose norm gains are not all ones (so that the reference checks them).
fn head(seed: u64) -> EagleHead<B> {
    let device = Default::default();
    let _draws = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(&device, seed);
    let mut h = config().init_eagle::<B>(&device).unwrap();
    let gains = || {
        Param::from_tensor(Tensor::<B, 1>::random(
            [32],
            Distribution::Uniform(0.5, 1.5),
            &device,
        ))
    };
    h.block.attn_norm.gamma = gains();
    h.block.mlp_norm.gamma = gains();
    h
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// `x·W` for one row, `W` row-major `[d_in, d_out]`.
fn matvec(x: &[f32], w: &[f32], d_out: usize) -> Vec<f32> {
    let mut y = vec![0f32; d_out];
    for (i, xi) in x.iter().enumerate() {
        for (o, yo) in y.iter_mut().enumerate() {
            *yo += xi * w[i * d_out + o];
        }
    }
    y
}

fn rms_norm(x: &[f32], gain: &[f32]) -> Vec<f32> {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = (ms + EPS as f32).sqrt();
    x.iter().zip(gain).map(|(v, g)| v / r * g).collect()
}

/// RoPE on one head: pair `(2i, 2i+1)` turned by `pos·θ^(-2i/d)`.
fn rotate(x: &mut [f32], pos: usize) {
    let d = x.len();
    for i in 0..d / 2 {
        let angle = pos as f32 * THETA.powf(-((2 * i) as f32) / d as f32);
        let (sin, cos) = angle.sin_cos();
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        x[2 * i] = a * cos - b * sin;
        x[2 * i + 1] = a * sin + b * cos;
    }
}

/// The head's weights on the host.
struct Weights {
    fc: Vec<f32>,
    g1: Vec<f32>,
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    wo: Vec<f32>,
    g2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    embed: Vec<f32>,
}

fn weights(h: &EagleHead<B>, target: &Decoder<B>) -> Weights {
    let dev = Default::default();
    let Attention::Gqa(a) = &h.block.attn else {
        panic!("a GQA head")
    };
    Weights {
        fc: values(h.fc.weight(&dev)),
        g1: values(h.block.attn_norm.gamma.val()),
        wq: values(a.wq.weight(&dev)),
        wk: values(a.wk.weight(&dev)),
        wv: values(a.wv.weight(&dev)),
        wo: values(a.wo.weight(&dev)),
        g2: values(h.block.mlp_norm.gamma.val()),
        gate: values(h.block.mlp.gate.weight(&dev)),
        up: values(h.block.mlp.up.weight(&dev)),
        down: values(h.block.mlp.down.weight(&dev)),
        embed: values(target.embed.weight.val()),
    }
}

/// The head on one sequence, position by position: `feats[t]` (width 32) and `next[t]` →
/// `ĥ_{t+1}` per position.
fn reference(w: &Weights, feats: &[Vec<f32>], next: &[u32]) -> Vec<Vec<f32>> {
    let (d, n_heads, n_kv, dh, ff) = (32, 4, 2, 8, 48);
    let group = n_heads / n_kv;
    let s = feats.len();
    let mut xs = Vec::new();
    let (mut qs, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..s {
        let tok = next[t] as usize;
        let mut cat = feats[t].clone();
        cat.extend_from_slice(&w.embed[tok * d..(tok + 1) * d]);
        let x = matvec(&cat, &w.fc, d);
        let n = rms_norm(&x, &w.g1);
        let mut q = matvec(&n, &w.wq, n_heads * dh);
        let mut k = matvec(&n, &w.wk, n_kv * dh);
        for head in q.chunks_mut(dh).chain(k.chunks_mut(dh)) {
            rotate(head, t);
        }
        qs.push(q);
        ks.push(k);
        vs.push(matvec(&n, &w.wv, n_kv * dh));
        xs.push(x);
    }
    let mut out = Vec::new();
    for t in 0..s {
        let mut o = vec![0f32; n_heads * dh];
        for h in 0..n_heads {
            let g = h / group;
            let q = &qs[t][h * dh..(h + 1) * dh];
            let scores: Vec<f32> = (0..=t)
                .map(|u| {
                    let k = &ks[u][g * dh..(g + 1) * dh];
                    q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() / (dh as f32).sqrt()
                })
                .collect();
            let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = scores.iter().map(|x| (x - m).exp()).collect();
            let z: f32 = e.iter().sum();
            for (u, eu) in e.iter().enumerate() {
                for j in 0..dh {
                    o[h * dh + j] += eu / z * vs[u][g * dh + j];
                }
            }
        }
        let a = matvec(&o, &w.wo, d);
        let x2: Vec<f32> = xs[t].iter().zip(&a).map(|(x, a)| x + a).collect();
        let n2 = rms_norm(&x2, &w.g2);
        let gate = matvec(&n2, &w.gate, ff);
        let up = matvec(&n2, &w.up, ff);
        let hid: Vec<f32> = gate
            .iter()
            .zip(&up)
            .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
            .collect();
        let m = matvec(&hid, &w.down, d);
        out.push(x2.iter().zip(&m).map(|(x, m)| x + m).collect());
    }
    out
}

/// Fixed features (a smooth pattern, no RNG) for `s` positions of sequence `seq`.
fn fixed_feats(seq: usize, s: usize) -> Vec<Vec<f32>> {
    (0..s)
        .map(|t| {
            (0..32)
                .map(|j| (0.37 * (t * 32 + j) as f32 + seq as f32).sin())
                .collect()
        })
        .collect()
}

fn feats_tensor(rows: &[Vec<f32>]) -> Tensor<B, 3> {
    let s = rows.len();
    let flat: Vec<f32> = rows.concat();
    Tensor::from_data(TensorData::new(flat, [1, s, 32]), &Default::default())
}

fn ids(t: &[u32]) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = t.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [1, t.len()]), &Default::default())
}

#[test]
fn the_head_forward_equals_the_plain_loop_reference() {
    let (t, h) = (target(), head(11));
    let frozen = FrozenTarget::of(&t);
    let w = weights(&h, &t);
    // Two sequences in one batch, so that the batch rows are checked apart.
    let next = [[3u32, 17, 5, 30, 0, 9, 12], [1, 1, 2, 31, 8, 4, 22]];
    let mut got_all = Vec::new();
    let mut want_all = Vec::new();
    let mut flat = Vec::new();
    for (i, n) in next.iter().enumerate() {
        let f = fixed_feats(i, 7);
        want_all.extend(reference(&w, &f, n).concat());
        flat.extend(f.concat());
    }
    let feats = Tensor::<B, 3>::from_data(TensorData::new(flat, [2, 7, 32]), &Default::default());
    let toks: Vec<i64> = next.iter().flatten().map(|&x| x as i64).collect();
    let toks = Tensor::<B, 2, Int>::from_data(TensorData::new(toks, [2, 7]), &Default::default());
    got_all.extend(values(h.forward(&frozen, feats, toks).unwrap()));
    let err = max_abs_diff(&got_all, &want_all).unwrap();
    assert!(err < TOL, "head vs reference: {err}");
}

#[test]
fn cached_drafting_equals_the_uncached_forward_over_the_whole_sequence() {
    let device = Default::default();
    let (t, h) = (target(), head(12));
    let frozen = FrozenTarget::of(&t);
    let mut cache = h.contiguous_cache(2, 64, &device);
    let seq: SeqId = cache.add_sequence().unwrap();
    // Known features of 4 positions fed at once (the catch-up), then 5 drafted positions fed
    // one at a time, each reading the head's own last prediction and its argmax token.
    let mut feats = fixed_feats(0, 4);
    let mut next = vec![7u32, 2, 19, 4];
    let mut got: Vec<Vec<f32>> = Vec::new();
    let mut out = h
        .forward_ragged(
            &frozen,
            feats_tensor(&feats),
            ids(&next),
            &[seq],
            &[4],
            &mut cache,
        )
        .unwrap();
    for r in values(out.clone()).chunks(32) {
        got.push(r.to_vec());
    }
    for _ in 0..5 {
        let last = got.last().unwrap().clone();
        let logits = frozen.logits(feats_tensor(std::slice::from_ref(&last)));
        let tok = argmax(&values(logits)) as u32;
        feats.push(last.clone());
        next.push(tok);
        out = h
            .forward_ragged(
                &frozen,
                feats_tensor(&[last]),
                ids(&[tok]),
                &[seq],
                &[1],
                &mut cache,
            )
            .unwrap();
        got.push(values(out.clone()));
    }
    let whole = values(
        h.forward(&frozen, feats_tensor(&feats), ids(&next))
            .unwrap(),
    );
    let err = max_abs_diff(&got.concat(), &whole).unwrap();
    assert!(err < TOL, "cached drafting vs uncached forward: {err}");
    // And the independent reference agrees with both.
    let want = reference(&weights(&h, &t), &feats, &next).concat();
    let err = max_abs_diff(&whole, &want).unwrap();
    assert!(err < TOL, "uncached forward vs reference: {err}");
}

/// A head that predicts `ĥ_{t+1} = h_t` (`fc` copies the features, the block adds nothing): it
/// drafts the last token again and again, which a target that repeats tokens keeps, so both
/// acceptance and rejection are exercised.
fn copy_head() -> EagleHead<B> {
    let device = Default::default();
    let mut h = head(14);
    let eye = Tensor::<B, 2>::eye(32, &device);
    let fc = Tensor::cat(vec![eye, Tensor::zeros([32, 32], &device)], 0);
    h.fc = Proj::dense(Param::from_tensor(fc));
    let Attention::Gqa(a) = &mut h.block.attn else {
        panic!("a GQA head")
    };
    a.wo = Proj::dense(Param::from_tensor(Tensor::zeros([32, 32], &device)));
    h.block.mlp.down = Proj::dense(Param::from_tensor(Tensor::zeros([48, 32], &device)));
    h
}

/// The plain greedy loop: the full forward of the whole text for every new token, argmax.
fn reference_greedy(model: &Decoder<B>, prompt: &[u32], max_new: usize) -> Vec<u32> {
    let mut text = prompt.to_vec();
    let mut out = vec![];
    while out.len() < max_new {
        let next = argmax(&last_logits(model.forward_full(ids(&text)).unwrap())[0]);
        out.push(next);
        text.push(next);
    }
    out
}

/// Greedy speculation of `prompts` with `drafter` (γ 3): asserts that every output equals the
/// plain greedy loop's and that the drafter proposed something; returns the generation.
fn greedy_equals_plain(
    t: &Decoder<B>,
    drafter: &mut dyn infermark_models::generation::speculative::Proposer,
    prompts: &[Vec<u32>],
    max_new: usize,
) -> infermark_models::generation::speculative::SpecGeneration {
    let device = Default::default();
    let mut cache = t.contiguous_cache(prompts.len(), 64, &device);
    let mut sampler = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let config = GenerateConfig {
        max_new,
        stop: vec![],
    };
    let g = speculative_generate(
        t,
        &mut cache,
        prompts,
        drafter,
        Gamma::Fixed(3),
        &config,
        &mut sampler,
        &device,
    )
    .unwrap();
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(
            g.tokens[i],
            reference_greedy(t, p, max_new),
            "batch {}: prompt {i}",
            prompts.len()
        );
    }
    assert!(g.stats.proposed > 0, "the head drafted");
    g
}

#[test]
fn greedy_speculation_with_the_head_equals_plain_greedy_decoding_at_batch_1_and_4() {
    let device = Default::default();
    let t = target();
    let prompts: Vec<Vec<u32>> = vec![
        vec![1, 2, 3, 4, 5],
        vec![9, 8, 7],
        vec![30, 2, 30, 2, 30, 2, 30],
        vec![11, 12],
    ];
    let config = GenerateConfig {
        max_new: 14,
        stop: vec![],
    };
    for (batch, copy) in [(1, false), (4, false), (1, true), (4, true)] {
        let prompts = &prompts[..batch];
        let h = if copy { copy_head() } else { head(13) };
        let dcache = h.contiguous_cache(batch, 64, &device);
        let mut drafter = EagleDrafter::new(h, &t, dcache, &device);
        let g = greedy_equals_plain(&t, &mut drafter, prompts, config.max_new);
        if copy {
            let s = &g.stats;
            assert!(s.accepted > 0 && s.rejections > 0, "batch {batch}: {s:?}");
        }
        // Every step emits its kept drafts and one more token.
        assert_eq!(
            g.stats.accepted + g.stats.steps,
            g.tokens.iter().map(Vec::len).sum::<usize>()
        );
    }
}

#[test]
fn a_step_with_hidden_states_returns_the_steps_logits_and_the_uncached_hidden_states() {
    let device = Default::default();
    let t = target();
    let texts: [&[u32]; 2] = [&[1, 2, 3, 4, 5, 6], &[9, 8, 7]];
    let mut cache = t.contiguous_cache(2, 64, &device);
    let mut plain = t.contiguous_cache(2, 64, &device);
    let mut s = Session::new(&t, &mut cache, &device);
    let mut p = Session::new(&t, &mut plain, &device);
    let seqs = [s.add().unwrap(), s.add().unwrap()];
    let pseqs = [p.add().unwrap(), p.add().unwrap()];
    // A ragged prefill of both texts but their last two tokens, then a step of those two.
    for prefill in [true, false] {
        let span = |i: usize| {
            let n = texts[i].len();
            if prefill {
                0..n - 2
            } else {
                n - 2..n
            }
        };
        let feeds = [(seqs[0], &texts[0][span(0)]), (seqs[1], &texts[1][span(1)])];
        let pfeeds = [(pseqs[0], feeds[0].1), (pseqs[1], feeds[1].1)];
        let (logits, hidden) = s.step_with_hidden(&feeds, Logits::All).unwrap();
        let want = p.step(&pfeeds, Logits::All).unwrap();
        for i in 0..2 {
            let err = max_abs_diff(&logits[i].concat(), &want[i].concat()).unwrap();
            assert_eq!(err, 0.0, "logits of text {i}");
            let full = values(t.hidden_full(ids(texts[i])).unwrap());
            let r = span(i);
            let err = max_abs_diff(&hidden[i].concat(), &full[r.start * 32..r.end * 32]).unwrap();
            assert!(err < TOL, "hidden states of text {i}: {err}");
        }
    }
}

/// A draft vocabulary of the tiny target: 12 of its 32 tokens, in no particular order.
const VOCAB: [u32; 12] = [3, 17, 5, 30, 2, 9, 11, 20, 7, 28, 1, 4];

#[test]
fn a_restricted_head_scores_only_its_vocabulary_and_drafts_its_argmax() {
    let device = Default::default();
    let (t, h) = (target(), head(12));
    let full = FrozenTarget::of(&t);
    let small = FrozenTarget::of(&t).restrict(&VOCAB).unwrap();
    assert_eq!(small.draft_vocab_size(), VOCAB.len());
    assert_eq!(small.vocab_size(), 32);
    // Column j of the restricted logits is column VOCAB[j] of the full ones.
    let x = feats_tensor(&fixed_feats(3, 5));
    let (a, b) = (values(full.logits(x.clone())), values(small.logits(x)));
    let picked: Vec<f32> = a
        .chunks(32)
        .flat_map(|row| VOCAB.iter().map(|&t| row[t as usize]).collect::<Vec<_>>())
        .collect();
    // (Same products, another matrix shape: the sums may round differently.)
    assert!(max_abs_diff(&b, &picked).unwrap() < 1e-6);
    // The drafter's greedy tokens are the argmax over the vocabulary of a plain cached loop.
    let text: Vec<u32> = vec![7, 2, 19, 4, 9];
    let feats = fixed_feats(1, text.len());
    let mut dcache = h.contiguous_cache(1, 64, &device);
    let mut drafter = EagleDrafter::with_frozen(
        h.clone(),
        FrozenTarget::of(&t).restrict(&VOCAB).unwrap(),
        &t,
        h.contiguous_cache(1, 64, &device),
        &device,
    );
    use infermark_models::generation::speculative::Proposer;
    drafter.observe_hidden(0, 0, feats.clone()).unwrap();
    let mut sampler = Sampler::new(SamplingConfig::greedy(), 0).unwrap();
    let got = drafter.propose(&[&text], &[4], &mut sampler).unwrap();
    let seq = dcache.add_sequence().unwrap();
    let n = text.len() - 1;
    let mut out = h
        .forward_ragged(
            &full,
            feats_tensor(&feats[..n]),
            ids(&text[1..]),
            &[seq],
            &[n],
            &mut dcache,
        )
        .unwrap();
    let mut want = Vec::new();
    for _ in 0..4 {
        let rows = values(out.clone());
        let last = rows[rows.len() - 32..].to_vec();
        let logits = values(full.logits(feats_tensor(std::slice::from_ref(&last))));
        let tok = *VOCAB
            .iter()
            .max_by(|&&a, &&b| logits[a as usize].total_cmp(&logits[b as usize]))
            .unwrap();
        want.push(tok);
        out = h
            .forward_ragged(
                &full,
                feats_tensor(&[last]),
                ids(&[tok]),
                &[seq],
                &[1],
                &mut dcache,
            )
            .unwrap();
    }
    assert_eq!(got[0].tokens, want);
    assert!(got[0].tokens.iter().all(|t| VOCAB.contains(t)));
}

#[test]
fn sampled_drafts_over_a_vocabulary_carry_full_distributions_that_are_zero_outside_it() {
    let device = Default::default();
    let (t, h) = (target(), head(12));
    let mut drafter = EagleDrafter::with_frozen(
        h.clone(),
        FrozenTarget::of(&t).restrict(&VOCAB).unwrap(),
        &t,
        h.contiguous_cache(1, 64, &device),
        &device,
    );
    use infermark_models::generation::speculative::Proposer;
    let text: Vec<u32> = vec![7, 2, 19, 4, 9];
    drafter.observe_hidden(0, 0, fixed_feats(1, 5)).unwrap();
    let mut sampler = Sampler::new(SamplingConfig::with_temperature(1.0), 3).unwrap();
    let d = drafter.propose(&[&text], &[3], &mut sampler).unwrap();
    let probs = d[0].probs.as_ref().expect("sampled drafts carry q");
    assert_eq!(probs.len(), 3);
    for (q, &tok) in probs.iter().zip(&d[0].tokens) {
        assert_eq!(q.len(), 32);
        let sum: f32 = q.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "q sums to {sum}");
        for (i, &p) in q.iter().enumerate() {
            if !VOCAB.contains(&(i as u32)) {
                assert_eq!(p, 0.0, "token {i} outside the vocabulary");
            }
        }
        assert!(q[tok as usize] > 0.0, "the drawn token {tok} has mass");
    }
}

#[test]
fn greedy_speculation_with_a_restricted_quantized_head_equals_plain_greedy_decoding() {
    use infermark_models::quant::QuantFormat;
    let device = Default::default();
    let t = target();
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3, 4, 5], vec![9, 8, 7], vec![30, 2, 30, 2]];
    let config = GenerateConfig {
        max_new: 12,
        stop: vec![],
    };
    for batch in [1, 3] {
        let prompts = &prompts[..batch];
        let h = copy_head().quantize(QuantFormat::Int8).unwrap();
        let frozen = FrozenTarget::of(&t)
            .restrict(&VOCAB)
            .unwrap()
            .quantize(QuantFormat::Q8_0)
            .unwrap();
        let dcache = h.contiguous_cache(batch, 64, &device);
        let mut drafter = EagleDrafter::with_frozen(h, frozen, &t, dcache, &device);
        greedy_equals_plain(&t, &mut drafter, prompts, config.max_new);
    }
}

#[test]
fn a_bad_draft_vocabulary_is_refused() {
    let t = target();
    for (bad, says) in [
        (vec![], "no token"),
        (vec![3, 5, 3], "appears twice"),
        (vec![1, 32], "outside the target's 32 tokens"),
    ] {
        let e = FrozenTarget::of(&t).restrict(&bad).expect_err("refused");
        assert!(e.to_string().contains(says), "{bad:?}: {e}");
    }
    let once = FrozenTarget::of(&t).restrict(&[1, 2]).unwrap();
    let e = once.restrict(&[1]).expect_err("refused");
    assert!(e.to_string().contains("already restricted"), "{e}");
}
