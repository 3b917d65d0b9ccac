//! Which SIMD path the CPU kernels take: decided once per process, as the widest path the CPU
//! has, or a lower one forced by the user (`infermark --isa`, or the environment variable
//! [`ENV_VAR`]), so that every path can be tested on any machine and timed on the one at hand.
//! Every kernel's dispatch asks [`active`] (or takes an explicit [`Isa`], for tests and
//! side-by-side benches); nothing else in the crate probes CPU features.
//!
//! Paths, lowest first:
//! - `portable`: plain Rust (x86-64 baseline SSE2, or any other architecture);
//! - `avx2`: AVX2 + FMA + F16C (x86-64-v3: Haswell, Zen 1–3 and later);
//! - `avx512`: the `avx2` set plus AVX-512 F, BW and VL (Skylake-X, Ice Lake, Zen 4 and later;
//!   VL lets 256-bit operations use all 32 vector registers, which the reductions need).
//!
//! A kernel without a path at some level takes its widest one below it (the attention kernel has
//! no AVX-512 form and runs its AVX2 form on `avx512`); [`kernel_paths`] says which each took.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Environment variable that forces a path, read once when no explicit choice was made.
pub const ENV_VAR: &str = "INFERMARK_ISA";

/// A SIMD path, ordered from lowest to widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust loops.
    Portable,
    /// AVX2 + FMA + F16C, 256-bit vectors.
    Avx2,
    /// AVX-512 F + BW + VL on top of the AVX2 set, 512-bit vectors.
    Avx512,
}

/// A path that cannot be used: an unknown name, or one the CPU lacks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IsaError {
    /// The name is none of `portable`, `avx2`, `avx512`.
    #[error("unknown ISA path {0:?}: expected portable, avx2 or avx512")]
    Unknown(String),
    /// The CPU does not have the features of the requested path.
    #[error("ISA path {requested} forced ({origin}), but this CPU only supports up to {detected} (it lacks {missing})")]
    Unsupported {
        requested: Isa,
        detected: Isa,
        missing: String,
        origin: String,
    },
    /// The path was already decided (kernels ran) and differs from the one asked for now.
    #[error("ISA path already fixed to {fixed}; cannot switch to {requested} within a process")]
    AlreadyFixed { fixed: Isa, requested: Isa },
}

impl Isa {
    /// Every path, lowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name used on the command line, in `run.json` and in records.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        self <= detected()
    }

    /// The CPU features the path needs.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Isa::Portable => &[],
            Isa::Avx2 => &["avx2", "fma", "f16c"],
            Isa::Avx512 => &["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"],
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = IsaError;

    fn from_str(s: &str) -> Result<Self, IsaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" => Ok(Isa::Portable),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            _ => Err(IsaError::Unknown(s.to_string())),
        }
    }
}

/// Whether the CPU has `feature` (one of the names in [`Isa::features`]).
fn has(feature: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "f16c" => std::arch::is_x86_feature_detected!("f16c"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512vnni" => std::arch::is_x86_feature_detected!("avx512vnni"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        false
    }
}

/// Whether the CPU has AVX-512 VNNI (`vpdpbusd`): the integer quantized kernels take it on the
/// `avx512` path when it is there, and their AVX2 form otherwise (Skylake-X has AVX-512 without
/// VNNI; Ice Lake, Sapphire Rapids and Zen 4 have it).
pub fn has_vnni() -> bool {
    has("avx512vnni")
}

/// The widest path this CPU supports.
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.features().iter().all(|f| has(f)))
            .unwrap_or(Isa::Portable)
    })
}

/// `requested` if this CPU supports it; otherwise an error naming what is missing. `source`
/// says where the request came from (e.g. `--isa avx512`), for the message.
pub fn check(requested: Isa, source: &str) -> Result<Isa, IsaError> {
    if requested.supported() {
        return Ok(requested);
    }
    let missing: Vec<&str> = requested
        .features()
        .iter()
        .copied()
        .filter(|f| !has(f))
        .collect();
    Err(IsaError::Unsupported {
        requested,
        detected: detected(),
        missing: missing.join(", "),
        origin: source.to_string(),
    })
}

static ACTIVE: OnceLock<Isa> = OnceLock::new();

/// The path in force for this process: the one set by [`force`], else [`ENV_VAR`] when set,
/// else [`detected`].
///
/// # Panics
/// When [`ENV_VAR`] holds an unknown name or a path the CPU lacks (the `infermark` binary checks
/// it with [`from_env`] first and exits with the message instead).
pub fn active() -> Isa {
    *ACTIVE.get_or_init(|| match from_env() {
        Ok(Some(isa)) => isa,
        Ok(None) => detected(),
        Err(e) => panic!("{e}"),
    })
}

/// The path [`ENV_VAR`] asks for, checked against the CPU; `None` when it is unset or empty.
pub fn from_env() -> Result<Option<Isa>, IsaError> {
    match std::env::var(ENV_VAR) {
        Ok(v) if !v.trim().is_empty() => {
            let isa: Isa = v.parse()?;
            check(isa, &format!("{ENV_VAR}={v}")).map(Some)
        }
        _ => Ok(None),
    }
}

/// Fixes the process's path to `isa` (checked against the CPU). Call it before any kernel runs;
/// asking again for the same path is fine, for another one an error.
pub fn force(isa: Isa, source: &str) -> Result<Isa, IsaError> {
    let isa = check(isa, source)?;
    let fixed = *ACTIVE.get_or_init(|| isa);
    if fixed != isa {
        return Err(IsaError::AlreadyFixed {
            fixed,
            requested: isa,
        });
    }
    Ok(isa)
}

/// The paths this CPU can run, lowest first (what tests iterate over).
pub fn supported() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.supported()).collect()
}

/// The paths a test should run `what` on: every supported one. Each path this CPU lacks is
/// announced on the process's stderr (written directly, so `cargo test` shows it even while it
/// captures test output), never dropped silently.
pub fn test_paths(what: &str) -> Vec<Isa> {
    use std::io::Write;
    for isa in Isa::ALL.into_iter().filter(|i| !i.supported()) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {what} on ISA path {isa}: this CPU lacks {}",
            isa.features()
                .iter()
                .filter(|f| !has(f))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    supported()
}

/// The path each CPU kernel takes under `isa`: its widest form at or below `isa`.
pub fn kernel_paths(isa: Isa) -> Vec<(&'static str, Isa)> {
    vec![("attention", isa), ("few_rows", isa), ("quant_matvec", isa)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused_by_name() {
        for isa in Isa::ALL {
            assert_eq!(isa.name().parse::<Isa>(), Ok(isa));
        }
        assert_eq!("AVX2".parse::<Isa>(), Ok(Isa::Avx2));
        let e = "sse9".parse::<Isa>().unwrap_err();
        assert_eq!(e, IsaError::Unknown("sse9".into()));
        assert!(e.to_string().contains("\"sse9\""), "{e}");
    }

    #[test]
    fn portable_is_always_supported_and_paths_above_detection_are_refused() {
        assert!(Isa::Portable.supported());
        assert_eq!(check(Isa::Portable, "test"), Ok(Isa::Portable));
        for isa in Isa::ALL {
            let r = check(isa, "--isa x");
            if isa <= detected() {
                assert_eq!(r, Ok(isa));
            } else {
                let e = r.unwrap_err();
                assert!(e.to_string().contains("--isa x"), "{e}");
                assert!(matches!(e, IsaError::Unsupported { .. }));
            }
        }
        assert_eq!(supported().first(), Some(&Isa::Portable));
        assert_eq!(supported().last(), Some(&detected()));
    }
}
