//! The environment of a run, written to `run.json` so that runs can be compared honestly.

use serde::{Deserialize, Serialize};

/// Where and how a run happened.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunEnv {
    /// Identifies the run; also in every record.
    pub run_id: String,
    /// `git rev-parse HEAD` of the working tree, with `-dirty` when it has changes; `unknown`
    /// outside a git checkout.
    pub git_rev: String,
    /// Backend name.
    pub backend: String,
    /// burn features compiled in.
    pub burn_features: Vec<String>,
    /// burn version.
    pub burn_version: String,
    /// Device the backend ran on.
    pub device: String,
    /// CPU model name.
    pub cpu_model: String,
    /// SIMD-relevant CPU flags present (avx2, fma, avx512f, ...).
    pub cpu_flags: Vec<String>,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Scale of the run.
    pub scale: String,
    /// Seed of every random input and weight.
    pub seed: u64,
    /// Suites run.
    pub suites: Vec<String>,
    /// What the run left out and why (e.g. the real model was not fetched).
    #[serde(default)]
    pub notices: Vec<String>,
    /// How percentiles are computed.
    pub percentile_method: String,
    /// Start time (RFC 3339).
    pub started: String,
    /// End time (RFC 3339).
    pub ended: String,
    /// infermark version.
    pub infermark_version: String,
    /// SIMD path of the CPU kernels (absent in runs made before it was recorded).
    #[serde(default)]
    pub isa: IsaEnv,
    /// What quantized decode products multiplied (`int8` or `f32`; absent in runs made before
    /// it was recorded). Rows that compare the two name theirs in an `activations` param.
    #[serde(default)]
    pub activations: String,
    /// This machine's memory bandwidth, measured in the run (flex runs; `None` otherwise).
    #[serde(default)]
    pub machine: Option<crate::machine::Bandwidth>,
    /// The device the backend ran on: adapter, type, driver and whether it is a software
    /// device, whose timings are not comparable (absent in runs made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info: Option<crate::backend::DeviceInfo>,
}

/// Which SIMD path the CPU kernels took, and why.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IsaEnv {
    /// The path in force (`portable`, `avx2`, `avx512`).
    pub active: String,
    /// The widest path this CPU supports.
    pub detected: String,
    /// What forced a lower path (`--isa avx2`, `INFERMARK_ISA=avx2`); `None` when detected.
    pub forced_by: Option<String>,
    /// The path each CPU kernel ran (a kernel without a form at the active level takes its
    /// widest form below it).
    pub kernels: std::collections::BTreeMap<String, String>,
}

impl IsaEnv {
    /// The path in force now, with what forced it.
    pub fn current(forced_by: Option<String>) -> Self {
        use infermark_models::kernels::isa;
        let active = isa::active();
        IsaEnv {
            active: active.name().into(),
            detected: isa::detected().name().into(),
            forced_by,
            kernels: isa::kernel_paths(active)
                .into_iter()
                .map(|(k, i)| (k.to_string(), i.name().to_string()))
                .chain([(
                    "quant_int8".to_string(),
                    infermark_models::quant::int_dot::IntPath::for_isa(active)
                        .name()
                        .to_string(),
                )])
                .collect(),
        }
    }
}

pub use crate::record::now_rfc3339;

/// The git revision of the current directory's checkout.
pub fn git_rev() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".into(),
    }
}

/// CPU model name and the SIMD flags that matter for the kernels.
pub fn cpu_info() -> (String, Vec<String>) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags = field("flags").unwrap_or_default();
    let wanted = [
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
    ];
    let present = flags
        .split_whitespace()
        .filter(|f| wanted.contains(f))
        .map(String::from)
        .collect();
    (model, present)
}

/// Logical cores available.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
