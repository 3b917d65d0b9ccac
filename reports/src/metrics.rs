//! The metric registry: defined once, beside `Record`, in [`infermark_suites::metric`] (name,
//! unit, direction, deterministic or noisy); report and gate read it from there.

pub use infermark_suites::metric::*;
