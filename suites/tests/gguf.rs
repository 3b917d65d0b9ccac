//! GGUF: a file written here reads back exactly; each malformed variant is refused with an error
//! that names the problem; dequantization of every type equals golden values from llama.cpp's
//! own Python reader; and, where the real model has been fetched (`ci/fetch-models.sh`; CI does),
//! SmolLM2-135M's logits and tokenization equal golden outputs of independent implementations
//! (`tests/fixtures/gguf/make_fixtures.py`).

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use infermark_models::quant::Activations;
use infermark_suites::zoo::gguf::{self, dequant, GgmlType, GgufFile, Value};
use serde_json::Value as Json;

type B = Flex;

fn fixture(name: &str) -> Json {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_type_dequantizes_bit_for_bit_like_the_gguf_package() {
    let cases = fixture("dequant.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), GgmlType::ALL.len());
    for c in cases {
        let name = c["type"].as_str().unwrap();
        let ty = GgmlType::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("type {name}"));
        let got = dequant::dequantize(ty, &hex(c["bytes"].as_str().unwrap()));
        let want: Vec<u32> = c["bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                *w,
                "{name} element {i}: {g} vs {}",
                f32::from_bits(*w)
            );
        }
    }
}

/// A minimal GGUF writer for the tests.
struct Writer {
    head: Vec<u8>,
    kv: Vec<u8>,
    n_kv: u64,
    table: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
}

impl Writer {
    fn new() -> Self {
        Self {
            head: Vec::new(),
            kv: Vec::new(),
            n_kv: 0,
            table: Vec::new(),
            n_tensors: 0,
            data: Vec::new(),
        }
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    fn value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U8(x) => out.push(*x),
            Value::I8(x) => out.push(*x as u8),
            Value::U16(x) => out.extend(x.to_le_bytes()),
            Value::I16(x) => out.extend(x.to_le_bytes()),
            Value::U32(x) => out.extend(x.to_le_bytes()),
            Value::I32(x) => out.extend(x.to_le_bytes()),
            Value::F32(x) => out.extend(x.to_le_bytes()),
            Value::Bool(x) => out.push(*x as u8),
            Value::Str(s) => Self::string(out, s),
            Value::Array(items) => {
                out.extend(Self::code(&items[0]).to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for i in items {
                    Self::value(out, i);
                }
            }
            Value::U64(x) => out.extend(x.to_le_bytes()),
            Value::I64(x) => out.extend(x.to_le_bytes()),
            Value::F64(x) => out.extend(x.to_le_bytes()),
        }
    }

    fn code(v: &Value) -> u32 {
        match v {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    fn kv(&mut self, key: &str, v: Value) -> &mut Self {
        Self::string(&mut self.kv, key);
        self.kv.extend(Self::code(&v).to_le_bytes());
        Self::value(&mut self.kv, &v);
        self.n_kv += 1;
        self
    }

    fn tensor(&mut self, name: &str, dims: &[u64], code: u32, bytes: &[u8]) -> &mut Self {
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        Self::string(&mut self.table, name);
        self.table.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.table.extend(d.to_le_bytes());
        }
        self.table.extend(code.to_le_bytes());
        self.table.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend(bytes);
        self.n_tensors += 1;
        self
    }

    fn bytes(&self, version: u32) -> Vec<u8> {
        let mut out = self.head.clone();
        out.extend(b"GGUF");
        out.extend(version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.table);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend(&self.data);
        out
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("infermark-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("a.u8", Value::U8(200)),
        ("a.i8", Value::I8(-5)),
        ("a.u16", Value::U16(60000)),
        ("a.i16", Value::I16(-30000)),
        ("a.u32", Value::U32(4_000_000_000)),
        ("a.i32", Value::I32(-2_000_000_000)),
        ("a.f32", Value::F32(1.5e-5)),
        ("a.bool", Value::Bool(true)),
        ("a.str", Value::Str("grüße".into())),
        (
            "a.arr",
            Value::Array(vec![Value::Str("x".into()), Value::Str("yz".into())]),
        ),
        ("a.u64", Value::U64(u64::MAX - 1)),
        ("a.i64", Value::I64(i64::MIN + 3)),
        ("a.f64", Value::F64(-2.25e300)),
    ]
}

#[test]
fn a_written_file_reads_back_exactly_and_malformed_files_are_refused() {
    let dir = tmp();
    let cases = fixture("dequant.json");
    let mut w = Writer::new();
    for (k, v) in every_value() {
        w.kv(k, v);
    }
    let mut want = Vec::new();
    for c in cases.as_array().unwrap() {
        let name = c["type"].as_str().unwrap();
        let ty = GgmlType::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .unwrap();
        let bytes = hex(c["bytes"].as_str().unwrap());
        let n = bytes.len() as u64 / ty.block_bytes() * ty.block_elems();
        w.tensor(&format!("t.{name}"), &[n], ty.code(), &bytes);
        want.push((format!("t.{name}"), ty, bytes));
    }
    let good = w.bytes(3);
    let path = write(&dir, "good.gguf", &good);
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version, 3);
    for (k, v) in every_value() {
        assert_eq!(f.metadata.get(k), Some(&v), "{k}");
    }
    for (name, ty, bytes) in &want {
        let t = f.tensor(name).unwrap();
        assert_eq!(t.ty, *ty);
        assert_eq!(f.raw(t), &bytes[..], "{name}");
    }
    assert!(GgufFile::open(&write(&dir, "v2.gguf", &w.bytes(2))).is_ok());

    let refuse = |name: &str, bytes: &[u8], says: &str| {
        let e = GgufFile::open(&write(&dir, name, bytes))
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains(says), "{name}: {e}");
    };
    let mut bad = good.clone();
    bad[0] = b'X';
    refuse("magic.gguf", &bad, "bad magic");
    refuse("v1.gguf", &w.bytes(1), "version 1 is not supported");
    refuse(
        "cut.gguf",
        &good[..good.len() - 7],
        "past the end of the file",
    );
    refuse("header.gguf", &good[..30], "truncated");
    let mut unknown = Writer::new();
    unknown.tensor("t.q5_1", &[32], 7, &[0; 24]);
    refuse(
        "type.gguf",
        &unknown.bytes(3),
        "ggml type 7 is not supported",
    );
    let mut past = Writer::new();
    past.tensor("t.big", &[64], 0, &[0; 16]);
    refuse("past.gguf", &past.bytes(3), "tensor `t.big` ends at byte");
    let mut partial = Writer::new();
    partial.tensor("t.part", &[40], 2, &[0; 36]);
    refuse("partial.gguf", &partial.bytes(3), "not whole Q4_0 blocks");
    std::fs::remove_dir_all(&dir).ok();
}

/// The fetched real model, or `None` with a notice (an error where models are required: CI).
fn real_model() -> Option<PathBuf> {
    match gguf::smollm2() {
        Ok(p) => Some(p),
        Err(why) if std::env::var_os("INFERMARK_REQUIRE_MODELS").is_some() => {
            panic!("INFERMARK_REQUIRE_MODELS is set but {why}")
        }
        Err(why) => {
            eprintln!("NOT RUN: {why}");
            None
        }
    }
}

#[test]
fn smollm2_tokenizes_like_an_independent_byte_level_bpe() {
    let Some(path) = real_model() else { return };
    let file = GgufFile::open(&path).unwrap();
    let tok = gguf::tokenizer::GgufTokenizer::from_gguf(&file).unwrap();
    for case in fixture("smollm2_tokens.json").as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text, true).unwrap(), want, "{text:?}");
        assert_eq!(tok.decode(&want).unwrap(), text);
    }
    let chat = tok.chat_prompt(&[("user", "What is 12+30?")]).unwrap();
    assert!(
        chat.ends_with("<|im_start|>user\nWhat is 12+30?<|im_end|>\n<|im_start|>assistant\n"),
        "{chat:?}"
    );
}

#[test]
fn smollm2_logits_equal_an_independent_float64_forward() {
    let Some(path) = real_model() else { return };
    let dev = Default::default();
    let (model, _, info) = gguf::llama::load::<B>(&path, gguf::llama::Weights::F32, &dev).unwrap();
    assert_eq!(info.config.n_layers, 30);
    let golden = fixture("smollm2_logits.json");
    let ids: Vec<i64> = golden["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    let n = ids.len();
    let x = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &dev);
    let logits = model.forward_full(x).unwrap();
    let rows = infermark_models::generation::generate::host_rows(logits);
    let mut worst = 0f64;
    for p in golden["positions"].as_array().unwrap() {
        let row = &rows[p["pos"].as_u64().unwrap() as usize];
        let cols: Vec<usize> = p["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap() as usize)
            .collect();
        let want: Vec<f32> = p["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got: Vec<f32> = cols.iter().map(|&c| row[c]).collect();
        let d = infermark_models::diff::max_abs_diff(&got, &want).unwrap();
        worst = worst.max(d as f64);
        // Log-probabilities too (the whole row's normaliser against the reference's).
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        let want_lse = p["logsumexp"].as_f64().unwrap();
        assert!(
            (lse - want_lse).abs() < 1e-4,
            "logsumexp {lse} vs {want_lse}"
        );
    }
    eprintln!("SmolLM2 logits: max |f32 − float64 reference| = {worst:.2e}");
    // Measured: 3.2e-5 (f32 accumulation over 30 blocks).
    assert!(worst < 1e-4, "max abs logit difference {worst}");
}

#[test]
fn native_llama_cpp_blocks_multiply_like_the_gguf_packages_dequantized_weights() {
    use infermark_models::quant::{QuantFormat, QuantLinear, QuantizedTensor};
    let dev = Default::default();
    let mut checked = Vec::new();
    for c in fixture("dequant.json").as_array().unwrap() {
        let format = match c["type"].as_str().unwrap() {
            "Q4_0" => QuantFormat::Q4_0,
            "Q4_1" => QuantFormat::Q4_1,
            "Q5_0" => QuantFormat::Q5_0,
            "Q8_0" => QuantFormat::Q8_0,
            "Q4_K" => QuantFormat::Q4K,
            "Q5_K" => QuantFormat::Q5K,
            "Q6_K" => QuantFormat::Q6K,
            _ => continue,
        };
        // Two blocks: a [2 out, block in] matrix whose golden values the gguf package computed.
        let w: Vec<f32> = c["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let cols = w.len() / 2;
        let q =
            QuantizedTensor::from_ggml_blocks(format, hex(c["bytes"].as_str().unwrap()), 2, cols)
                .unwrap();
        let x: Vec<f32> = (0..3 * cols)
            .map(|i| ((i * 29 % 17) as f32 - 8.0) / 7.0)
            .collect();
        let xt = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [3, cols]), &dev);
        let want: Vec<f32> = (0..3)
            .flat_map(|i| (0..2).map(move |o| (i, o)))
            .map(|(i, o)| {
                (0..cols)
                    .map(|k| w[o * cols + k] as f64 * x[i * cols + k] as f64)
                    .sum::<f64>() as f32
            })
            .collect();
        // f32 activations: the same products up to summation order. int8 activations: within
        // the rounding of the inputs to int8 blocks (max|x|/254 a value), relative to Σ|w·x|.
        for acts in Activations::ALL {
            let layer = QuantLinear::new(q.clone()).with_activations(acts);
            let got = layer
                .forward_fused(xt.clone())
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap();
            let d = infermark_models::diff::max_abs_diff(&got, &want).unwrap();
            let scale: f32 = (0..2 * cols).map(|k| w[k].abs()).sum::<f32>() * 8.0 / 7.0;
            let budget = match acts {
                Activations::F32 => 1e-4,
                Activations::Int8 => 1e-2 * scale,
            };
            assert!(d < budget, "{format} {acts}: {d} (budget {budget})");
        }
        checked.push(format);
    }
    assert_eq!(
        checked.len(),
        7,
        "Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K fixtures"
    );
}

#[test]
fn smollm2_with_native_4_bit_weights_decodes_like_the_f32_model() {
    let Some(path) = real_model() else { return };
    let dev = Default::default();
    let (dense, _, _) = gguf::llama::load::<B>(&path, gguf::llama::Weights::F32, &dev).unwrap();
    let (mut native, _, _) =
        gguf::llama::load::<B>(&path, gguf::llama::Weights::Native, &dev).unwrap();
    // f32 activations: the same arithmetic as the f32 model up to summation order.
    infermark_models::quant::set_activations(&mut native, Activations::F32);
    assert!(
        native.lm_head.is_some(),
        "the tied Q8_0 head is held as blocks"
    );
    let ids = [1u32, 504, 3458, 314, 260, 1122];
    let step = |m: &infermark_models::decoder::Decoder<B>| {
        let mut cache = m.contiguous_cache(1, 64, &dev);
        let seq = cache.add_sequence().unwrap();
        let x = |t: &[u32]| {
            Tensor::<B, 2, Int>::from_data(
                TensorData::new(t.iter().map(|&v| v as i64).collect(), [1, t.len()]),
                &dev,
            )
        };
        m.forward(x(&ids[..5]), &[seq], &mut cache).unwrap();
        // One decode row: the fused kernels.
        infermark_models::generation::last_logits(
            m.forward(x(&ids[5..]), &[seq], &mut cache).unwrap(),
        )
        .remove(0)
    };
    let (a, b) = (step(&dense), step(&native));
    let d = infermark_models::diff::max_abs_diff(&a, &b).unwrap();
    eprintln!("SmolLM2 native vs f32 decode logits: max diff {d:.2e}");
    assert!(d < 1e-3, "{d}");
}

/// SmolLM2 re-quantized to Q4_K_M: llama.cpp's types for a width of 576 (rows of 576 are not
/// whole 256-blocks, so Q4_K falls back to Q5_0 and Q6_K to Q8_0; only `ffn_down`, rows of
/// 1536, keeps K-quants: Q6_K for 14 of 30, counted in name order as llama.cpp does: blk.3 is
/// the 24th name), and the file decodes natively (Q5_0, Q4_K, Q6_K, Q8_0 kernels, f32
/// activations) like its own f32 dequantization.
#[test]
fn smollm2_q4_k_m_has_llama_cpps_types_and_decodes_natively_like_its_dequantization() {
    let Some(path) = real_model() else { return };
    let out = std::env::temp_dir().join(format!(
        "infermark-smollm2-q4km-{}.gguf",
        std::process::id()
    ));
    let w = gguf::requant::quantize_file(&path, gguf::requant::Target::Q4KM, &out, true).unwrap();
    let mut types = w.types.clone();
    types.sort();
    let want = [
        ("F32", 61),
        ("Q4_K", 16),
        ("Q5_0", 166),
        ("Q6_K", 14),
        ("Q8_0", 15),
    ];
    assert_eq!(types, want.map(|(t, n)| (t.to_string(), n)));
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.tensor("token_embd.weight").unwrap().ty, GgmlType::Q8_0);
    assert_eq!(f.tensor("blk.0.ffn_down.weight").unwrap().ty, GgmlType::Q6K);
    assert_eq!(f.tensor("blk.2.ffn_down.weight").unwrap().ty, GgmlType::Q4K); // 13th
    assert_eq!(f.tensor("blk.3.ffn_down.weight").unwrap().ty, GgmlType::Q6K); // 24th
    assert_eq!(f.tensor("blk.3.attn_v.weight").unwrap().ty, GgmlType::Q8_0);
    assert_eq!(f.tensor("blk.4.attn_v.weight").unwrap().ty, GgmlType::Q5_0);
    let dev = Default::default();
    let (dense, _, _) = gguf::llama::load::<B>(&out, gguf::llama::Weights::F32, &dev).unwrap();
    let (mut native, _, _) =
        gguf::llama::load::<B>(&out, gguf::llama::Weights::Native, &dev).unwrap();
    std::fs::remove_file(&out).ok();
    infermark_models::quant::set_activations(&mut native, Activations::F32);
    let ids = [1u32, 504, 3458, 314, 260, 1122];
    let step = |m: &infermark_models::decoder::Decoder<B>| {
        let mut cache = m.contiguous_cache(1, 64, &dev);
        let seq = cache.add_sequence().unwrap();
        let x = |t: &[u32]| {
            Tensor::<B, 2, Int>::from_data(
                TensorData::new(t.iter().map(|&v| v as i64).collect(), [1, t.len()]),
                &dev,
            )
        };
        m.forward(x(&ids[..5]), &[seq], &mut cache).unwrap();
        infermark_models::generation::last_logits(
            m.forward(x(&ids[5..]), &[seq], &mut cache).unwrap(),
        )
        .remove(0)
    };
    let d = infermark_models::diff::max_abs_diff(&step(&dense), &step(&native)).unwrap();
    eprintln!("SmolLM2 Q4_K_M native vs its f32 dequantization, decode logits: max diff {d:.2e}");
    assert!(d < 1e-3, "{d}");
}

/// Budgets of int8 activations (W4A8 integer kernels) against f32 activations on the same
/// native weights, decoding the real text token by token: the largest logit difference at any
/// position, and the mean over positions of KL(p_f32 ‖ p_int8) of the next-token distributions.
/// Measured on the `avx512-vnni` path (48 steps of the licence text): 1.24 and 6.7e-3.
const INT8_ACT_MAX_ABS_LOGIT: f32 = 2.0;
const INT8_ACT_MEAN_KL: f64 = 1e-2;

#[test]
fn smollm2_with_int8_activations_stays_within_its_budget_of_f32_activations() {
    let Some(path) = real_model() else { return };
    let dev = Default::default();
    let (mut f32_acts, tok, _) =
        gguf::llama::load::<B>(&path, gguf::llama::Weights::Native, &dev).unwrap();
    let mut int8_acts = f32_acts.clone();
    infermark_models::quant::set_activations(&mut f32_acts, Activations::F32);
    infermark_models::quant::set_activations(&mut int8_acts, Activations::Int8);
    let text = gguf::real_text().unwrap();
    let ids = tok.encode(&text, false).unwrap();
    let ids: Vec<i64> = ids[..48].iter().map(|&v| v as i64).collect();
    let decode = |m: &infermark_models::decoder::Decoder<B>| -> Vec<Vec<f32>> {
        let mut cache = m.contiguous_cache(1, ids.len(), &dev);
        let seq = cache.add_sequence().unwrap();
        ids.iter()
            .map(|&t| {
                let x = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![t], [1, 1]), &dev);
                infermark_models::generation::last_logits(m.forward(x, &[seq], &mut cache).unwrap())
                    .remove(0)
            })
            .collect()
    };
    let (a, b) = (decode(&f32_acts), decode(&int8_acts));
    let log_softmax = |l: &[f32]| -> Vec<f64> {
        let m = l.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) as f64;
        let z = l.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln();
        l.iter().map(|v| *v as f64 - m - z).collect()
    };
    let (mut max_abs, mut kl) = (0f32, 0f64);
    for (la, lb) in a.iter().zip(&b) {
        max_abs = max_abs.max(infermark_models::diff::max_abs_diff(la, lb).unwrap());
        let (pa, pb) = (log_softmax(la), log_softmax(lb));
        kl += pa
            .iter()
            .zip(&pb)
            .map(|(x, y)| x.exp() * (x - y))
            .sum::<f64>();
    }
    let kl = kl / a.len() as f64;
    eprintln!(
        "SmolLM2 int8 vs f32 activations over {} decode steps: max |Δlogit| {max_abs:.3e}, mean KL {kl:.3e}",
        a.len()
    );
    assert!(max_abs <= INT8_ACT_MAX_ABS_LOGIT, "max |Δlogit| {max_abs}");
    assert!(kl <= INT8_ACT_MEAN_KL, "mean KL {kl}");
}

fn out_tensor(name: &str, dims: &[u64], ty: GgmlType, bytes: Vec<u8>) -> gguf::write::OutTensor {
    gguf::write::OutTensor {
        name: name.into(),
        dims: dims.to_vec(),
        ty,
        bytes,
    }
}

#[test]
fn the_gguf_writer_round_trips_metadata_and_tensors_at_the_files_alignment() {
    use gguf::write::write;
    let dir = std::env::temp_dir().join(format!("infermark-gguf-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut meta: Vec<(String, Value)> = every_value()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    meta.push(("general.alignment".into(), Value::U32(64)));
    let mut tensors = Vec::new();
    for c in fixture("dequant.json").as_array().unwrap() {
        let name = c["type"].as_str().unwrap();
        let ty = GgmlType::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .unwrap();
        let bytes = hex(c["bytes"].as_str().unwrap());
        let n = bytes.len() as u64 / ty.block_bytes() * ty.block_elems();
        tensors.push(out_tensor(&format!("t.{name}"), &[n / 2, 2], ty, bytes));
    }
    let path = dir.join("w.gguf");
    write(&path, &meta, &tensors, false).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata.len(), meta.len());
    for (k, v) in &meta {
        assert_eq!(f.metadata.get(k), Some(v), "{k}");
    }
    assert_eq!(f.tensors.len(), tensors.len());
    for (t, want) in f.tensors.iter().zip(&tensors) {
        assert_eq!((&t.name, &t.dims, t.ty), (&want.name, &want.dims, want.ty));
        assert_eq!(t.offset % 64, 0, "{}", t.name);
        assert_eq!(f.raw(t), &want.bytes[..], "{}", t.name);
    }
    // No overwriting without force; with it, the new file replaces the old whole.
    let e = write(&path, &meta, &tensors[..1], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists") && e.contains("--force"), "{e}");
    write(&path, &meta, &tensors[..1], true).unwrap();
    assert_eq!(GgufFile::open(&path).unwrap().tensors.len(), 1);
    // Bad tensors are refused by name, and no temporary file is left behind.
    let short = out_tensor("t.short", &[64], GgmlType::Q4_0, vec![0; 35]);
    let e = write(&dir.join("bad.gguf"), &meta, &[short], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.short") && e.contains("Q4_0"), "{e}");
    let twice = [tensors[0].clone(), tensors[0].clone()];
    let e = write(&dir.join("bad.gguf"), &meta, &twice, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("twice"), "{e}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["w.gguf"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// A small tied-embedding Llama-like file of f32 tensors: 8 layers, so that llama.cpp's
/// `use_more_bits` picks layers 0, 3, 6 and 7; attn_q rows of 96 (not whole 256-blocks).
fn llama_like_source(path: &Path) -> Vec<(String, Vec<u64>, Vec<f32>)> {
    let mut state = 1u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
    };
    let mut t = vec![("token_embd.weight".to_string(), vec![256, 8])];
    for i in 0..8 {
        t.push((format!("blk.{i}.attn_norm.weight"), vec![256]));
        t.push((format!("blk.{i}.attn_q.weight"), vec![96, 4]));
        t.push((format!("blk.{i}.attn_v.weight"), vec![256, 4]));
        t.push((format!("blk.{i}.ffn_down.weight"), vec![512, 4]));
    }
    let t: Vec<(String, Vec<u64>, Vec<f32>)> = t
        .into_iter()
        .map(|(n, d)| {
            let w = (0..d.iter().product::<u64>()).map(|_| next()).collect();
            (n, d, w)
        })
        .collect();
    let tensors: Vec<_> = t
        .iter()
        .map(|(n, d, w)| {
            let bytes = w.iter().flat_map(|x: &f32| x.to_le_bytes()).collect();
            out_tensor(n, d, GgmlType::F32, bytes)
        })
        .collect();
    let meta = vec![
        (
            "general.architecture".to_string(),
            Value::Str("llama".into()),
        ),
        ("general.file_type".to_string(), Value::U32(0)),
        ("llama.block_count".to_string(), Value::U32(8)),
        (
            "tokenizer.ggml.tokens".to_string(),
            Value::Array(vec![Value::Str("a".into()), Value::Str("b".into())]),
        ),
    ];
    gguf::write::write(path, &meta, &tensors, true).unwrap();
    t
}

#[test]
fn q4_k_m_follows_llama_cpps_mix_and_reads_back_as_what_was_quantized() {
    use gguf::requant::{quantize_file, Target};
    use infermark_models::quant::QuantizedTensor;
    let dir = std::env::temp_dir().join(format!("infermark-requant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, out) = (dir.join("src.gguf"), dir.join("q4km.gguf"));
    let source = llama_like_source(&src);
    let written = quantize_file(&src, Target::Q4KM, &out, false).unwrap();
    assert_eq!(written.requantized, 25, "every tensor but the 8 norms");
    let f = GgufFile::open(&out).unwrap();
    let more_bits = |n: &str| {
        ["blk.0.", "blk.3.", "blk.6.", "blk.7."]
            .iter()
            .any(|p| n.starts_with(p))
    };
    for ((name, dims, w), t) in source.iter().zip(&f.tensors) {
        assert_eq!((name, dims), (&t.name, &t.dims));
        let want = match name.as_str() {
            "token_embd.weight" => GgmlType::Q6K, // the tied head, rows of 256
            n if n.contains("norm") => GgmlType::F32,
            n if n.contains("attn_q") => GgmlType::Q5_0, // Q4_K's fallback for rows of 96
            n if more_bits(n) => GgmlType::Q6K,
            _ => GgmlType::Q4K,
        };
        assert_eq!(t.ty, want, "{name}");
        let cols = dims[0] as usize;
        let bytes = match want.native_format() {
            Some(format) => {
                QuantizedTensor::quantize(format, w, w.len() / cols, cols)
                    .unwrap()
                    .codes
            }
            None => w.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        assert_eq!(f.raw(t), &bytes[..], "{name}");
    }
    let src_file = GgufFile::open(&src).unwrap();
    for (k, v) in &src_file.metadata {
        let got = f.metadata.get(k).unwrap();
        if k == "general.file_type" {
            assert_eq!(got, &Value::U32(15), "LLAMA_FTYPE_MOSTLY_Q4_K_M");
        } else {
            assert_eq!(got, v, "{k}");
        }
    }
    assert_eq!(
        f.metadata.get("general.quantization_version"),
        Some(&Value::U32(2))
    );
    assert_eq!(f.metadata.len(), src_file.metadata.len() + 1);
    let e = quantize_file(&src, Target::Q4KM, &out, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists"), "{e}");
    let e = "q4_k_x".parse::<Target>().unwrap_err().to_string();
    assert!(e.contains("`q4_k_x`") && e.contains("q4_k_m"), "{e}");
    // A pure Q5_K target has no fallback for rows of 96 here: refused, naming the tensor.
    let e = quantize_file(
        &src,
        Target::Pure(GgmlType::Q5K),
        &dir.join("q5k.gguf"),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("blk.0.attn_q.weight") && e.contains("Q5_1"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
