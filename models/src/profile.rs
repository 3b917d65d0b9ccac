//! Where a decode step's time goes: wall time per part of the decoder, accumulated while a
//! [`Profile`] is recording. Parts are timed where the decoder calls them, so the figures are
//! honest on host backends that compute eagerly (flex); on an asynchronous backend (CUDA) a part
//! would only time its launch, and suites record a profile on host backends only.
//!
//! The parts do not nest; what no part covers (embedding, residual adds, SwiGLU's product,
//! reshapes, cache bookkeeping) is the step's time minus their sum.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A part of a decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// Attention projections (GQA: q, k, v, o).
    AttnProj,
    /// MLP projections (gate, up, down).
    MlpProj,
    /// The LM head.
    Head,
    /// The attention core over the cache (scores, softmax, weighted sum) and the cache append.
    Attention,
    /// RMSNorms.
    Norm,
    /// Rotary position embedding.
    Rope,
}

impl Part {
    /// Every part, in the order records list them.
    pub const ALL: [Part; 6] = [
        Part::AttnProj,
        Part::MlpProj,
        Part::Head,
        Part::Attention,
        Part::Norm,
        Part::Rope,
    ];

    /// Name in records.
    pub fn name(self) -> &'static str {
        match self {
            Part::AttnProj => "attention-projections",
            Part::MlpProj => "mlp-projections",
            Part::Head => "head",
            Part::Attention => "attention",
            Part::Norm => "norms",
            Part::Rope => "rope",
        }
    }
}

static ON: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Runs `f`, adding its wall time to `part` while a profile is recording.
#[inline]
pub fn scope<R>(part: Part, f: impl FnOnce() -> R) -> R {
    if !ON.load(Ordering::Relaxed) {
        return f();
    }
    let t = Instant::now();
    let r = f();
    NANOS[part as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}

/// A recording: while it lives, [`scope`] accumulates. One at a time per process.
pub struct Profile(());

impl Profile {
    /// Starts recording from zero; `None` while another recording is live.
    pub fn start() -> Option<Self> {
        if ON.swap(true, Ordering::AcqRel) {
            return None;
        }
        for n in &NANOS {
            n.store(0, Ordering::Relaxed);
        }
        Some(Profile(()))
    }

    /// Seconds accumulated per part so far.
    pub fn seconds(&self) -> Vec<(Part, f64)> {
        Part::ALL
            .iter()
            .map(|&p| (p, NANOS[p as usize].load(Ordering::Relaxed) as f64 * 1e-9))
            .collect()
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        ON.store(false, Ordering::Release);
    }
}
