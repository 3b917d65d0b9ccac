//! The real model every suite's real rows use (SmolLM2-135M, a GGUF fetched by
//! `ci/fetch-models.sh`): its variant name, where it is, and how a user's GGUF is named.

use std::path::{Path, PathBuf};

use super::gguf::{self, GgufFile};

/// Variant name of the fetched real model.
pub const REAL: &str = "smollm2-135m";

/// A variant name for a GGUF file: `general.basename`-`general.size_label` in lower case, or the
/// file stem.
pub fn gguf_label(path: &Path) -> String {
    let from_meta = GgufFile::open(path).ok().and_then(|f| {
        let base = f.metadata.get("general.basename")?.as_str()?.to_string();
        let size = f
            .metadata
            .get("general.size_label")
            .and_then(|v| v.as_str())
            .map(|s| format!("-{s}"))
            .unwrap_or_default();
        Some(format!("{base}{size}").to_lowercase())
    });
    from_meta.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "model".into())
    })
}

/// The real model's path when fetched.
pub fn fetched() -> Option<PathBuf> {
    gguf::smollm2().ok()
}

/// What a suite leaves out when the real model is not fetched: `no <rows> rows: <how to get
/// it>`, or nothing.
pub fn missing(rows: &str) -> Vec<String> {
    match gguf::smollm2() {
        Ok(_) => Vec::new(),
        Err(why) => vec![format!("no {rows} rows: {why}")],
    }
}
