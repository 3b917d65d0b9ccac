//! The calibration text (the Debian Policy Manual, `ci/fetch-calibration.sh`) is real English of
//! at least 20K SmolLM2 tokens and shares no 64-token window with the evaluation text (the
//! Apache licence shipped with the model), so calibrated rows are not scored on what they were
//! calibrated on.

use std::collections::HashSet;

use infermark_suites::zoo::calibration::{calibration_text, calibration_tokens};
use infermark_suites::zoo::gguf::{self, tokenizer::GgufTokenizer, GgufFile};

/// The tokenizer of the fetched real model, or `None` with a notice (a panic where models are
/// required: CI).
fn tokenizer() -> Option<GgufTokenizer> {
    let path = match gguf::smollm2() {
        Ok(p) => p,
        Err(why) if std::env::var_os("INFERMARK_REQUIRE_MODELS").is_some() => {
            panic!("INFERMARK_REQUIRE_MODELS is set but {why}")
        }
        Err(why) => {
            eprintln!("NOT RUN: {why}");
            return None;
        }
    };
    let file = GgufFile::open(&path).unwrap();
    Some(GgufTokenizer::from_gguf(&file).unwrap())
}

#[test]
fn calibration_and_evaluation_texts_share_no_64_token_window() {
    let Some(tok) = tokenizer() else { return };
    let calib = tok.encode(&calibration_text().unwrap(), false).unwrap();
    assert!(calib.len() >= 20_000, "{} calibration tokens", calib.len());
    let eval = tok.encode(&gguf::real_text().unwrap(), false).unwrap();
    assert!(eval.len() >= 512, "{} evaluation tokens", eval.len());
    let windows: HashSet<&[u32]> = eval.windows(64).collect();
    let shared = calib.windows(64).filter(|w| windows.contains(w)).count();
    assert_eq!(shared, 0, "calibration windows also in the evaluation text");
    // The suite's calibration tokens are a stretch of the same text.
    let used = calibration_tokens(&tok, 4096).unwrap();
    assert_eq!(used.len(), 4096);
    assert!(calib.windows(64).any(|w| w == &used[1000..1064]));
    assert!(calibration_tokens(&tok, 10_000_000).is_err());
}
