//! Trained reference models: corpora, training, checkpoints and Hugging Face loading.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use infermark_models::decoder::{preset, AttentionKind, Decoder, DecoderConfig};
use infermark_models::quant::{Fp8Kind, Fp8Training};
use infermark_suites::zoo::corpus::{self, check_answer, Format, BUCKETS};
use infermark_suites::zoo::train::{mean_nll, train, TrainOptions};
use infermark_suites::zoo::{checkpoint, hf};
use rand::rngs::StdRng;
use rand::SeedableRng;

type B = Flex;

/// The backend RNG is global: tests that initialize weights take turns.
static RNG: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("infermark-lm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn ids(text: &str) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = text.bytes().map(i64::from).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), &Default::default())
}

/// Largest |a − b| through the project's helper, which fails on NaN and on unequal lengths.
fn max_abs_diff(a: Tensor<B, 3>, b: Tensor<B, 3>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let host = |t: Tensor<B, 3>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    infermark_models::diff::max_abs_diff(&host(a), &host(b)).unwrap()
}

fn tiny_opts(out: PathBuf, steps: usize) -> TrainOptions {
    let split = corpus::Split {
        train: corpus::stories(11, 64 << 10),
        valid: corpus::stories(12, 4 << 10),
        source: "test".into(),
    };
    TrainOptions {
        preset: preset("tiny").expect("tiny preset"),
        steps,
        seed: 5,
        split,
        out,
        eval_every: 5,
        resume: false,
        stop_after: None,
        machine: "test".into(),
        git_rev: "test".into(),
        init_from: None,
        fp8: None,
    }
}

#[test]
fn corpus_generators_are_deterministic_for_a_seed() {
    assert_eq!(corpus::stories(9, 5000), corpus::stories(9, 5000));
    assert_ne!(corpus::stories(9, 5000), corpus::stories(10, 5000));
    assert_eq!(corpus::arithmetic(9, 5000), corpus::arithmetic(9, 5000));
}

#[test]
fn every_generated_arithmetic_answer_is_right() {
    let mut rng = StdRng::seed_from_u64(1);
    for bucket in BUCKETS {
        for _ in 0..2500 {
            let p = corpus::problem(&mut rng, bucket);
            for f in Format::ALL {
                let (prompt, completion) = (p.prompt(f), p.completion(f));
                assert_eq!(
                    check_answer(&prompt, &completion),
                    Some(true),
                    "{prompt}{completion}"
                );
            }
        }
    }
}

#[test]
fn the_checker_rejects_wrong_answers_and_a_missing_scratchpad_answer() {
    assert_eq!(check_answer("D:347+85=", "432\n"), Some(true));
    assert_eq!(check_answer("D:347+85=", "431\n"), Some(false));
    assert_eq!(check_answer("D:402-75=", "327\n"), Some(true));
    assert_eq!(
        check_answer("T:347+85=", "7+5+0=2c1:2 4+8+1=3c1:32\n"),
        Some(false)
    );
    assert_eq!(check_answer("T:9+9=", "9+9+0=8c1:8|18\n"), Some(true));
    assert_eq!(check_answer("X", "1"), None);
}

#[test]
fn scratchpad_lines_look_as_documented() {
    let p = corpus::Problem {
        a: 347,
        b: 85,
        op: '+',
    };
    assert_eq!(p.line(Format::Direct), "D:347+85=432\n");
    assert_eq!(
        p.line(Format::Think),
        "T:347+85=7+5+0=2c1:2 4+8+1=3c1:32 3+0+1=4c0:432|432\n"
    );
    let q = corpus::Problem {
        a: 402,
        b: 75,
        op: '-',
    };
    assert_eq!(
        q.line(Format::Think),
        "T:402-75=2-5-0=7b1:7 0-7-1=2b1:27 4-0-1=3b0:327|327\n"
    );
}

#[test]
fn tiny_model_loss_falls_and_training_is_deterministic() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("falls");
    let device = Default::default();
    let a = train::<B>(&tiny_opts(dir.join("a"), 20), &device, &mut |_| {}).expect("trains");
    let first = a.curve.first().expect("curve").valid_loss;
    let last = a.curve.last().expect("curve").valid_loss;
    assert!(last < first - 0.3, "validation loss {first} → {last}");
    assert!(a.valid_loss < (256f64).ln(), "not better than uniform");
    let b = train::<B>(&tiny_opts(dir.join("b"), 20), &device, &mut |_| {}).expect("trains");
    assert_eq!(a.curve, b.curve, "same seed, same backend, different curve");
}

#[test]
fn fp8_training_is_deterministic_recorded_and_not_fp32() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("fp8");
    let device = Default::default();
    let fp32 = train::<B>(&tiny_opts(dir.join("f"), 10), &device, &mut |_| {}).expect("trains");
    assert_eq!(fp32.precision, checkpoint::FP32_PRECISION);
    let fp8_opts = |name: &str| {
        let mut o = tiny_opts(dir.join(name), 10);
        o.fp8 = Some(Fp8Training {
            grad: Some(Fp8Kind::E5M2),
        });
        o
    };
    let a = train::<B>(&fp8_opts("a"), &device, &mut |_| {}).expect("trains");
    let b = train::<B>(&fp8_opts("b"), &device, &mut |_| {}).expect("trains");
    assert_eq!(a.curve, b.curve, "FP8 training is deterministic");
    assert_eq!(
        a.precision,
        "fp8-e4m3 (1x128 act, 128x128 weight tiles), grads e5m2"
    );
    assert_eq!(
        checkpoint::read_card(&dir.join("a"))
            .expect("card")
            .precision,
        a.precision
    );
    // A resumable FP32 run cannot be continued in FP8.
    let mut first = tiny_opts(dir.join("mixed"), 10);
    first.stop_after = Some(5);
    train::<B>(&first, &device, &mut |_| {}).expect("trains");
    let mut second = fp8_opts("mixed");
    second.resume = true;
    let e = train::<B>(&second, &device, &mut |_| {}).expect_err("mixed precisions");
    assert!(e.to_string().contains("fp32"), "{e}");
    let steps = |c: &checkpoint::Card| c.curve.iter().map(|p| p.step).collect::<Vec<_>>();
    assert_eq!(steps(&a), steps(&fp32));
    // The rounding is in effect, and close to FP32 this early.
    assert_ne!(a.valid_loss, fp32.valid_loss);
    let gap = (a.valid_loss - fp32.valid_loss).abs() / fp32.valid_loss;
    assert!(
        gap < 0.05,
        "FP8 {} vs FP32 {}",
        a.valid_loss,
        fp32.valid_loss
    );
}

#[test]
fn cards_without_a_precision_read_as_fp32() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("oldcard");
    let device = Default::default();
    train::<B>(&tiny_opts(dir.join("m"), 5), &device, &mut |_| {}).expect("trains");
    let path = checkpoint::paths(&dir.join("m")).1;
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("card")).expect("json");
    json.as_object_mut().expect("object").remove("precision");
    std::fs::write(&path, json.to_string()).expect("writes");
    let card = checkpoint::read_card(&dir.join("m")).expect("old card reads");
    assert_eq!(card.precision, checkpoint::FP32_PRECISION);
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("resume");
    let device = Default::default();
    let whole = train::<B>(&tiny_opts(dir.join("w"), 12), &device, &mut |_| {}).expect("trains");
    let mut first = tiny_opts(dir.join("r"), 12);
    first.stop_after = Some(7);
    let stopped = train::<B>(&first, &device, &mut |_| {}).expect("trains");
    assert_eq!(stopped.steps, 7);
    assert!(
        !checkpoint::paths(&dir.join("r")).0.exists(),
        "final checkpoint written early"
    );
    let mut second = tiny_opts(dir.join("r"), 12);
    second.resume = true;
    let resumed = train::<B>(&second, &device, &mut |_| {}).expect("resumes");
    assert_eq!(resumed.steps, 12);
    assert!(
        (resumed.valid_loss - whole.valid_loss).abs() < 1e-5,
        "resumed {} vs whole {}",
        resumed.valid_loss,
        whole.valid_loss
    );
}

#[test]
fn save_then_load_gives_identical_logits() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("roundtrip");
    let device = Default::default();
    let opts = tiny_opts(dir.join("m"), 5);
    let card = train::<B>(&opts, &device, &mut |_| {}).expect("trains");
    let (model, loaded_card) = checkpoint::load::<B>(&dir.join("m"), &device).expect("loads");
    assert_eq!(
        (
            &card.name,
            &card.config,
            card.steps,
            card.param_count,
            &card.curve
        ),
        (
            &loaded_card.name,
            &loaded_card.config,
            loaded_card.steps,
            loaded_card.param_count,
            &loaded_card.curve
        )
    );
    let (again, _) = checkpoint::load::<B>(&dir.join("m"), &device).expect("loads");
    let x = ids("Once upon a time, Lily");
    let diff = max_abs_diff(
        model.forward_full(x.clone()).expect("fwd"),
        again.forward_full(x).expect("fwd"),
    );
    assert_eq!(diff, 0.0);
    // The loaded weights reproduce the loss measured on the trained (in-memory) model.
    let valid = corpus::tokenize(&opts.split.valid);
    let nll = mean_nll(&model, &valid, card.seq_len, 16, &device).expect("nll");
    assert!(
        (nll - card.valid_loss).abs() < 1e-5,
        "{nll} vs card {}",
        card.valid_loss
    );
}

#[test]
fn bad_checkpoints_are_refused_with_the_file_and_the_problem() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("bad");
    let device = Default::default();
    let stem = dir.join("m");
    train::<B>(&tiny_opts(stem.clone(), 5), &device, &mut |_| {}).expect("trains");
    let (weights, card_path) = checkpoint::paths(&stem);

    // Truncated weights.
    let bytes = std::fs::read(&weights).expect("read");
    let cut = dir.join("cut");
    std::fs::copy(&card_path, checkpoint::paths(&cut).1).expect("copy");
    std::fs::write(checkpoint::paths(&cut).0, &bytes[..bytes.len() / 2]).expect("write");
    let err = checkpoint::load::<B>(&cut, &device)
        .expect_err("truncated")
        .to_string();
    assert!(err.contains("cut.safetensors"), "{err}");

    // A card whose architecture does not match the weights.
    let wrong = dir.join("wrong");
    std::fs::copy(&weights, checkpoint::paths(&wrong).0).expect("copy");
    let mut card = checkpoint::read_card(&stem).expect("card");
    card.config.d_ff += 8;
    std::fs::write(
        checkpoint::paths(&wrong).1,
        serde_json::to_string(&card).unwrap(),
    )
    .unwrap();
    let err = checkpoint::load::<B>(&wrong, &device)
        .expect_err("mismatch")
        .to_string();
    assert!(
        err.contains("wrong.safetensors") && err.contains("mlp"),
        "{err}"
    );

    // A malformed card.
    let junk = dir.join("junk");
    std::fs::write(checkpoint::paths(&junk).1, "{\"name\": 3").unwrap();
    let err = checkpoint::load::<B>(&junk, &device)
        .expect_err("junk")
        .to_string();
    assert!(
        err.contains("junk.json") && err.contains("malformed"),
        "{err}"
    );

    // Missing files.
    let err = checkpoint::load::<B>(&dir.join("none"), &device)
        .expect_err("none")
        .to_string();
    assert!(err.contains("none.json"), "{err}");
}

#[test]
fn committed_checkpoints_reproduce_their_cards() {
    let device = Default::default();
    for name in infermark_suites::lm::MODELS {
        let stem = checkpoint::committed(name);
        let (model, card) = checkpoint::load::<B>(&stem, &device)
            .unwrap_or_else(|e| panic!("committed checkpoint {name}: {e}"));
        let split = match preset(name).expect("preset").corpus {
            infermark_models::decoder::CorpusKind::Arith => corpus::arithmetic_split(),
            infermark_models::decoder::CorpusKind::Stories => corpus::stories_split(),
        };
        let nll = mean_nll(
            &model,
            &corpus::tokenize(&split.valid),
            card.seq_len,
            16,
            &device,
        )
        .expect("scores");
        let rel = (nll - card.valid_loss).abs() / card.valid_loss;
        assert!(
            rel < 0.01,
            "{name}: measured {nll}, card {}",
            card.valid_loss
        );
        assert!(
            card.valid_perplexity < 0.5 * card.unigram_perplexity,
            "{name}: perplexity {} vs unigram {}",
            card.valid_perplexity,
            card.unigram_perplexity
        );
        assert_eq!(card.param_count, model.num_params(), "{name}");
    }
}

/// Writes `model` as a Hugging Face Llama directory by hand (PyTorch `[out, in]` layout, the
/// half-split RoPE layout, Hugging Face names) with a character-level tokenizer.
fn write_hf_dir(model: &Decoder<B>, cfg: &DecoderConfig, dir: &Path, chars: &[char]) {
    let AttentionKind::Gqa { n_kv_heads } = cfg.attention else {
        panic!("GQA only")
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut push = |name: String, t: Tensor<B, 2>| {
        let dims = t.dims().to_vec();
        let v = t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        tensors.push((name, dims, v));
    };
    let lin = |w: Tensor<B, 2>| w.transpose(); // burn [in, out] → PyTorch [out, in]
    let vec1 = |g: Tensor<B, 1>| g.unsqueeze::<2>();
    push("model.embed_tokens.weight".into(), model.embed.weight.val());
    for (i, b) in model.blocks.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let infermark_models::decoder::Attention::Gqa(a) = &b.attn else {
            unreachable!()
        };
        let d = cfg.d_head;
        push(
            format!("{p}.self_attn.q_proj.weight"),
            lin(hf::pairs_to_halves(a.wq.weight(&Default::default()), d)),
        );
        push(
            format!("{p}.self_attn.k_proj.weight"),
            lin(hf::pairs_to_halves(a.wk.weight(&Default::default()), d)),
        );
        push(
            format!("{p}.self_attn.v_proj.weight"),
            lin(a.wv.weight(&Default::default())),
        );
        push(
            format!("{p}.self_attn.o_proj.weight"),
            lin(a.wo.weight(&Default::default())),
        );
        push(
            format!("{p}.mlp.gate_proj.weight"),
            lin(b.mlp.gate.weight(&Default::default())),
        );
        push(
            format!("{p}.mlp.up_proj.weight"),
            lin(b.mlp.up.weight(&Default::default())),
        );
        push(
            format!("{p}.mlp.down_proj.weight"),
            lin(b.mlp.down.weight(&Default::default())),
        );
        push(
            format!("{p}.input_layernorm.weight"),
            vec1(b.attn_norm.gamma.val()),
        );
        push(
            format!("{p}.post_attention_layernorm.weight"),
            vec1(b.mlp_norm.gamma.val()),
        );
    }
    push("model.norm.weight".into(), vec1(model.norm.gamma.val()));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, mut d, v)| {
            if n.ends_with("norm.weight") {
                d = vec![d[1]];
            }
            (n, d, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, d, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, d.clone(), b)
                .expect("view");
            (n.clone(), v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).expect("write");
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": n_kv_heads,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "max_position_embeddings": cfg.max_seq_len,
        "tie_word_embeddings": true,
        "torch_dtype": "float32"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> = chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
}

/// A Hugging Face directory written and scored by an independent script
/// (`fixtures/hf/make_fixture.py`: its own safetensors writer and a float64 NumPy forward with
/// `rotate_half` RoPE): the loader must give the script's token ids and logits.
#[test]
fn a_golden_hugging_face_directory_gives_the_numpy_logits() {
    let device = Default::default();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf");
    let (model, tok) = hf::load_dir::<B>(&fixtures.join("tiny-llama"), &device).expect("loads");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("expected.json")).unwrap())
            .unwrap();
    let ids = tok.encode(want["text"].as_str().unwrap()).expect("encodes");
    let want_ids: Vec<u32> = want["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, want_ids);
    let n = ids.len();
    let x = Tensor::<B, 2, Int>::from_data(
        TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, n]),
        &device,
    );
    let got = model
        .forward_full(x)
        .expect("forward")
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap();
    let expect: Vec<f32> = want["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let diff = infermark_models::diff::max_abs_diff(&got, &expect).unwrap();
    assert!(diff < 1e-4, "logits differ from NumPy's by {diff}");
}

#[test]
fn a_hugging_face_llama_directory_loads_into_the_same_decoder() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Default::default();
    let dir = scratch("hf");
    let chars: Vec<char> = (32u8..127).map(char::from).chain(['\n']).collect();
    let cfg = DecoderConfig::new(
        chars.len(),
        32,
        2,
        4,
        8,
        48,
        AttentionKind::Gqa { n_kv_heads: 2 },
    )
    .with_max_seq_len(128);
    B::seed(&device, 3);
    let model = cfg.init::<B>(&device).expect("valid");
    write_hf_dir(&model, &cfg, &dir, &chars);
    let (loaded, tok) = hf::load_dir::<B>(&dir, &device).expect("loads");
    let text = "Once upon a time, Lily found a key.";
    let ids_hf = tok.encode(text).expect("encodes");
    let expect: Vec<u32> = text
        .chars()
        .map(|c| chars.iter().position(|&x| x == c).unwrap() as u32)
        .collect();
    assert_eq!(ids_hf, expect);
    let n = ids_hf.len();
    let x = Tensor::<B, 2, Int>::from_data(
        TensorData::new(ids_hf.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, n]),
        &device,
    );
    let diff = max_abs_diff(
        model.forward_full(x.clone()).expect("fwd"),
        loaded.forward_full(x).expect("fwd"),
    );
    assert!(diff < 1e-5, "logits differ by {diff}");

    // A config that does not match the weights names the file and the tensor.
    let mut cfg_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg_json["intermediate_size"] = serde_json::json!(64);
    std::fs::write(dir.join("config.json"), cfg_json.to_string()).unwrap();
    let err = hf::load_dir::<B>(&dir, &device)
        .expect_err("mismatch")
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("mlp"),
        "{err}"
    );
    cfg_json["model_type"] = serde_json::json!("mamba");
    std::fs::write(dir.join("config.json"), cfg_json.to_string()).unwrap();
    let err = hf::load_dir::<B>(&dir, &device)
        .expect_err("unsupported")
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("mamba"),
        "{err}"
    );
}

#[test]
fn half_split_and_pair_layouts_are_inverse_permutations() {
    let device = Default::default();
    let w = Tensor::<B, 2>::from_data(
        TensorData::new((0..32).map(|x| x as f32).collect::<Vec<_>>(), [2, 16]),
        &device,
    );
    let p = hf::halves_to_pairs(w.clone(), 8);
    // Head 0, row 0: old columns 0..8 → pairs (0, 4), (1, 5), (2, 6), (3, 7).
    let row: Vec<f32> = p.clone().narrow(0, 0, 1).into_data().to_vec().unwrap();
    assert_eq!(&row[..8], &[0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]);
    let back = hf::pairs_to_halves(p, 8);
    let d: f32 = (back - w).abs().max().into_scalar();
    assert_eq!(d, 0.0);
}
