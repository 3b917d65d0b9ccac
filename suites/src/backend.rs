//! Backends chosen at run time: `flex` (pure-Rust CPU, the default), `cuda` (with the `cuda`
//! feature) and `wgpu` (with the `wgpu` feature: Vulkan, Metal or DX12 through burn-wgpu, and in
//! CI Mesa's software Vulkan device, lavapipe). Suites are generic over the backend; [`run_on`]
//! picks the concrete type, and [`device_info`] says what it runs on.

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
    /// burn-wgpu (needs the `wgpu` feature and a Vulkan, Metal or DX12 device; a software one
    /// such as lavapipe runs the GPU code path, but its timings are not comparable).
    Wgpu,
}

impl BackendKind {
    /// All backends, whether or not this build has them.
    pub const ALL: [BackendKind; 3] = [BackendKind::Flex, BackendKind::Cuda, BackendKind::Wgpu];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Cuda => "cuda",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// Whether this build can run it.
    pub fn available(self) -> bool {
        match self {
            BackendKind::Flex => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// burn features this build was compiled with, for `run.json`.
    pub fn build_features() -> Vec<&'static str> {
        let mut f = vec!["std", "flex", "simd", "rayon"];
        if cfg!(feature = "cuda") {
            f.push("cuda");
        }
        if cfg!(feature = "wgpu") {
            f.push("wgpu");
        }
        f
    }

    /// Fails with a message naming the feature to enable when this build lacks the backend.
    pub fn check_available(self) -> Result<()> {
        if self.available() {
            return Ok(());
        }
        let name = self.name();
        Err(SuiteError::BackendUnavailable {
            name: name.into(),
            hint: format!(
                "rebuild with `--features {name}` (e.g. `cargo run --release --features {name} -- run --backend {name}`)"
            ),
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
                known: BackendKind::ALL.map(BackendKind::name).join(", "),
            })
    }
}

/// Ends the record `device` label of a software device (see [`DeviceInfo::label`]).
pub const SOFTWARE_DEVICE_MARK: &str = "[software device: timings not comparable]";

/// The device a run's backend ran on, as `run.json` records it (`device_info`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Backend name (`flex`, `cuda`, `wgpu`).
    pub backend: String,
    /// The adapter's name (wgpu: e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`; flex: the CPU model;
    /// cuda: `cuda:0`).
    pub adapter: String,
    /// wgpu's device type (`discrete-gpu`, `integrated-gpu`, `virtual-gpu`, `cpu`, `other`);
    /// `cpu` for flex, `gpu` for cuda.
    pub device_type: String,
    /// Graphics API and driver (wgpu: e.g. `vulkan, llvmpipe, Mesa 22.3.6`); empty otherwise.
    pub driver: String,
    /// A GPU API emulated on the CPU (wgpu's `DeviceType::Cpu`: Vulkan's
    /// `PHYSICAL_DEVICE_TYPE_CPU`, lavapipe, SwiftShader, WARP). It runs the GPU code path, so
    /// its deterministic records count, but its timings measure neither a GPU nor infermark's
    /// CPU kernels: claims and M(P) refuse them.
    pub software: bool,
}

impl DeviceInfo {
    /// The record `device` field: the adapter, its type and driver, and on a software device
    /// [`SOFTWARE_DEVICE_MARK`] at the end.
    pub fn label(&self) -> String {
        let mut s = match self.backend.as_str() {
            "flex" => format!("cpu: {}", self.adapter),
            "wgpu" => format!(
                "wgpu: {} ({}; {})",
                self.adapter, self.device_type, self.driver
            ),
            _ => self.adapter.clone(),
        };
        if self.software {
            s.push(' ');
            s.push_str(SOFTWARE_DEVICE_MARK);
        }
        s
    }
}

/// Whether a record's `device` label names a software device ([`DeviceInfo::label`]).
pub fn is_software_device(label: &str) -> bool {
    label.ends_with(SOFTWARE_DEVICE_MARK)
}

/// What `kind` runs on here (`cpu_model` names flex's device). wgpu asks for an adapter first,
/// once per process, so that a machine without a device gets [`SuiteError::NoDevice`] with how
/// to install one instead of a panic inside burn.
pub fn device_info(kind: BackendKind, cpu_model: &str) -> Result<DeviceInfo> {
    kind.check_available()?;
    match kind {
        BackendKind::Flex => Ok(DeviceInfo {
            backend: kind.name().into(),
            adapter: cpu_model.into(),
            device_type: "cpu".into(),
            driver: String::new(),
            software: false,
        }),
        BackendKind::Cuda => Ok(DeviceInfo {
            backend: kind.name().into(),
            adapter: "cuda:0".into(),
            device_type: "gpu".into(),
            driver: String::new(),
            software: false,
        }),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => wgpu_device::info(),
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => unreachable!("check_available refused wgpu"),
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
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            wgpu_device::info()?;
            Ok(job.run::<burn::backend::Wgpu>(Default::default()))
        }
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => unreachable!("check_available refused wgpu"),
    }
}

/// burn-wgpu's default device, set up once: an adapter is asked for through wgpu itself (the
/// same request burn makes), so that none found is an error rather than burn's panic.
#[cfg(feature = "wgpu")]
mod wgpu_device {
    use std::sync::OnceLock;

    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    use burn::backend::wgpu::{init_setup, RuntimeOptions, WgpuDevice};

    use super::DeviceInfo;
    use crate::{Result, SuiteError};

    /// How to get a device, for the error.
    const HINT: &str = "install a Vulkan driver: for a software device (slow; runs the GPU code \
        path on the CPU) `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu), or a GPU's \
        driver (NVIDIA, AMD or Intel); `vulkaninfo --summary` lists what Vulkan sees";

    static INFO: OnceLock<std::result::Result<DeviceInfo, String>> = OnceLock::new();

    /// The adapter burn-wgpu's default device runs on, set up on first use.
    pub(super) fn info() -> Result<DeviceInfo> {
        INFO.get_or_init(set_up)
            .clone()
            .map_err(|reason| SuiteError::NoDevice {
                backend: "wgpu".into(),
                reason,
                hint: HINT.into(),
            })
    }

    fn set_up() -> std::result::Result<DeviceInfo, String> {
        let api = AutoGraphicsApi::backend();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: api.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
        }))
        .map_err(|e| format!("no {api:?} adapter found ({e})"))?;
        // An adapter exists: burn sets up its default device on the adapter it picks (the same
        // request), and that one is the adapter recorded.
        let setup = std::panic::catch_unwind(|| {
            init_setup::<AutoGraphicsApi>(&WgpuDevice::DefaultDevice, RuntimeOptions::default())
        })
        .map_err(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("burn-wgpu could not set up the {api:?} device: {why}")
        })?;
        let a = setup.adapter.get_info();
        let device_type = match a.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
            wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
            wgpu::DeviceType::VirtualGpu => "virtual-gpu",
            wgpu::DeviceType::Cpu => "cpu",
            wgpu::DeviceType::Other => "other",
        };
        let driver = [
            format!("{:?}", a.backend).to_lowercase(),
            a.driver,
            a.driver_info,
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
        Ok(DeviceInfo {
            backend: "wgpu".into(),
            adapter: a.name,
            device_type: device_type.into(),
            driver,
            software: a.device_type == wgpu::DeviceType::Cpu,
        })
    }

    /// Polls `f` to completion: native wgpu's futures are ready when first polled.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(x) = f.as_mut().poll(&mut cx) {
                return x;
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(software: bool) -> DeviceInfo {
        DeviceInfo {
            backend: "wgpu".into(),
            adapter: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            device_type: if software { "cpu" } else { "discrete-gpu" }.into(),
            driver: "vulkan, llvmpipe, Mesa 22.3.6".into(),
            software,
        }
    }

    #[test]
    fn a_software_device_label_is_recognised_and_a_gpu_one_is_not() {
        assert_eq!(
            info(true).label(),
            "wgpu: llvmpipe (LLVM 15.0.6, 256 bits) (cpu; vulkan, llvmpipe, Mesa 22.3.6) \
             [software device: timings not comparable]"
        );
        assert!(is_software_device(&info(true).label()));
        assert!(!is_software_device(&info(false).label()));
        assert!(!is_software_device("cpu: Intel(R) Xeon(R) Processor"));
    }

    #[test]
    fn every_backend_name_parses_back() {
        for b in BackendKind::ALL {
            assert_eq!(b.name().parse::<BackendKind>().unwrap(), b);
        }
        let e = "metal".parse::<BackendKind>().unwrap_err().to_string();
        assert!(e.contains("flex, cuda, wgpu"), "{e}");
    }
}
