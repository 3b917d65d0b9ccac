//! Backends chosen at run time: `flex` (pure-Rust CPU, the default) and `cuda` (with the `cuda`
//! feature). Suites are generic over the backend; [`run_on`] picks the concrete type.

use infermark_models::kernels::AttentionBackend;
use serde::{Deserialize, Serialize};

use crate::{Result, SuiteError};

/// A backend name as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex, the pure-Rust CPU backend.
    Flex,
    /// burn-cuda (needs the `cuda` feature and an NVIDIA GPU).
    Cuda,
}

impl BackendKind {
    /// All backends, whether or not this build has them.
    pub const ALL: [BackendKind; 2] = [BackendKind::Flex, BackendKind::Cuda];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this build can run it.
    pub fn available(self) -> bool {
        match self {
            BackendKind::Flex => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// burn features this build was compiled with, for `run.json`.
    pub fn build_features() -> Vec<&'static str> {
        let mut f = vec!["std", "flex", "simd", "rayon"];
        if cfg!(feature = "cuda") {
            f.push("cuda");
        }
        f
    }

    /// Fails with a message naming the feature to enable when this build lacks the backend.
    pub fn check_available(self) -> Result<()> {
        if self.available() {
            return Ok(());
        }
        Err(SuiteError::BackendUnavailable {
            name: self.name().into(),
            hint: "rebuild with `--features cuda` (e.g. `cargo run --release --features cuda -- run --backend cuda`)"
                .into(),
        })
    }
}

impl std::str::FromStr for BackendKind {
    type Err = SuiteError;
    fn from_str(s: &str) -> Result<Self> {
        BackendKind::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| SuiteError::Unknown {
                kind: "backend",
                name: s.into(),
                known: "flex, cuda".into(),
            })
    }
}

/// Work that is generic over the backend.
pub trait BackendJob {
    type Output;
    /// Runs on backend `B` and its default device.
    fn run<B: AttentionBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the backend `kind` names.
pub fn run_on<J: BackendJob>(kind: BackendKind, job: J) -> Result<J::Output> {
    kind.check_available()?;
    match kind {
        BackendKind::Flex => Ok(job.run::<burn::backend::Flex>(Default::default())),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(job.run::<burn::backend::Cuda>(Default::default())),
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => unreachable!("check_available refused cuda"),
    }
}
