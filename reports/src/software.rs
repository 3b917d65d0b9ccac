//! Timings from a software device (wgpu on Mesa's lavapipe, `DeviceType::Cpu`): the run keeps
//! them, but they measure neither a GPU nor infermark's CPU kernels, so claims and M(P) refuse
//! them (fail closed) instead of turning them into a verdict or a score. The record's `device`
//! label says so ([`infermark_suites::backend::DeviceInfo::label`]).

use infermark_suites::backend::is_software_device;
use infermark_suites::Record;

use crate::metrics::{self, Kind};

/// The verdict or reason given for a refused timing.
pub const NOT_COMPARABLE: &str = "not comparable: software device";

/// Whether `r` is a timing (a noisy metric) measured on a software device.
pub fn software_timing(r: &Record) -> bool {
    is_software_device(&r.device)
        && metrics::lookup(&r.metric).is_some_and(|m| m.kind == Kind::Noisy)
}

/// The refusal of the first software timing among `records`, naming it and its device.
pub fn refusal<'a>(records: impl IntoIterator<Item = &'a Record>) -> Option<String> {
    records.into_iter().find(|r| software_timing(r)).map(|r| {
        format!(
            "{NOT_COMPARABLE} ({} {} on {})",
            r.variant, r.metric, r.device
        )
    })
}
