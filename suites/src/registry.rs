//! The suites this build has, looked up by name.

use crate::suite::Suite;
use crate::{Result, SuiteError};

/// Every suite this build has.
pub fn registry() -> Vec<Box<dyn Suite>> {
    vec![
        Box::new(crate::attention::AttentionSuite),
        Box::new(crate::kv_cache::KvCacheSuite),
        Box::new(crate::lm::LmSuite),
        Box::new(crate::quantization::QuantizationSuite),
        Box::new(crate::speculative::SpeculativeSuite),
        Box::new(crate::adacot::AdacotSuite),
    ]
}

/// Looks a suite up by name.
pub fn find(name: &str) -> Result<Box<dyn Suite>> {
    let all = registry();
    let known = all.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    registry()
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or(SuiteError::Unknown {
            kind: "suite",
            name: name.into(),
            known,
        })
}
