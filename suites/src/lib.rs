//! infermark suites: each suite turns a scale into a grid of cases, runs model components on a
//! chosen backend, and emits tidy [`Record`]s (one metric per row). This is the only layer that
//! times, counts bytes and scores accuracy.

pub mod adacot;
pub mod attention;
pub mod backend;
pub mod env;
pub mod kv_cache;
pub mod lm;
pub mod machine;
pub mod measure;
pub mod metric;
pub mod quantization;
pub mod record;
pub mod recorder;
pub mod registry;
pub mod report;
pub mod scale;
pub mod shard;
pub mod speculative;
pub mod stepper;
pub mod suite;
pub mod zoo;

pub use backend::BackendKind;
pub use record::{Record, Stat};
pub use recorder::{Entry, Recorder};
pub use registry::find as find_suite;
pub use registry::registry;
pub use scale::Scale;
pub use suite::{
    About, Accuracy, Case, Experiment, MaturityInputs, Reference, RunCase, RunContext, Scaling,
    Suite, UserInputs,
};

/// Errors of the suites. Each names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A backend this build cannot run.
    #[error("backend `{name}` is not available in this build: {hint}")]
    BackendUnavailable { name: String, hint: String },
    /// A backend this build has, with no device to run on (no Vulkan driver for wgpu).
    #[error("backend `{backend}` has no device here: {reason}; {hint}")]
    NoDevice {
        backend: String,
        reason: String,
        hint: String,
    },
    /// An unknown name given on the command line.
    #[error("unknown {kind} `{name}`; known: {known}")]
    Unknown {
        kind: &'static str,
        name: String,
        known: String,
    },
    /// A model component refused its input.
    #[error("{context}: {error}")]
    Model {
        context: String,
        error: infermark_models::ModelError,
    },
    /// A malformed user input (trace file, ...): the message names the file and line.
    #[error("{0}")]
    Input(String),
    /// The backend failed while running.
    #[error("backend error: {0}")]
    Backend(String),
    /// A measured value that is not a finite number.
    #[error("{metric} for {variant} is not finite ({value})")]
    NotFinite {
        metric: String,
        variant: String,
        value: f64,
    },
}

impl SuiteError {
    /// Wraps a model component's error with what was being done:
    /// `.map_err(SuiteError::model("prefill"))`.
    pub fn model(
        context: impl Into<String>,
    ) -> impl FnOnce(infermark_models::ModelError) -> SuiteError {
        let context = context.into();
        move |error| SuiteError::Model { context, error }
    }
}

pub type Result<T> = std::result::Result<T, SuiteError>;
