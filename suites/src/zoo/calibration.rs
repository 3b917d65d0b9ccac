//! The calibration text that GPTQ and the importance matrix run the real model on: the Debian
//! Policy Manual 4.6.2.0 (plain text, from the Debian package `debian-policy` 4.6.2.0, licence
//! GPL-2+), fetched and checked by `ci/fetch-calibration.sh` (which `ci/fetch-models.sh`
//! calls). English technical prose of about 100K SmolLM2 tokens, disjoint from the evaluation
//! text (the Apache licence): `suites/tests/calibration.rs` checks that they share no 64-token
//! window.

use crate::zoo::gguf::{models_dir, tokenizer::GgufTokenizer};
use crate::{Result, SuiteError};

/// The calibration text's name in records.
pub const CALIBRATION: &str = "debian-policy-4.6.2.0";

/// Its file in the models folder.
pub const CALIBRATION_FILE: &str = "debian-policy-4.6.2.0.txt";

/// Where the body starts: the first chapter's heading, after the title and table of contents.
const BODY: &str = "\n1. About this manual\n";

/// The whole calibration text, or an error naming the script that fetches it.
pub fn calibration_text() -> Result<String> {
    let p = models_dir().join(CALIBRATION_FILE);
    std::fs::read_to_string(&p).map_err(|e| {
        SuiteError::Input(format!(
            "calibration text {}: {e} (run `ci/fetch-models.sh`, which calls `ci/fetch-calibration.sh`)",
            p.display()
        ))
    })
}

/// The calibration text's whole body (from its first chapter on), tokenized by `tok` without
/// special tokens.
pub fn all_calibration_tokens(tok: &GgufTokenizer) -> Result<Vec<u32>> {
    let text = calibration_text()?;
    tok.encode(body(&text), false)
}

fn body(text: &str) -> &str {
    &text[text.find(BODY).map_or(0, |i| i + 1)..]
}

/// The first `n` tokens of the calibration text's body (from its first chapter on), tokenized
/// by `tok` without special tokens; refuses a text that has fewer.
pub fn calibration_tokens(tok: &GgufTokenizer, n: usize) -> Result<Vec<u32>> {
    let text = calibration_text()?;
    let body = body(&text);
    // About 4.5 characters a token in this text: tokenize a prefix twice as long as needed.
    let mut end = body.len().min(n.saturating_mul(10));
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let mut ids = tok.encode(&body[..end], false)?;
    if ids.len() < n {
        return Err(SuiteError::Input(format!(
            "calibration text {CALIBRATION} has {} tokens, fewer than the {n} asked for",
            ids.len()
        )));
    }
    ids.truncate(n);
    Ok(ids)
}
