//! How big a run is: smoke (seconds, for tests and CI), quick (minutes on a 2-core CPU, the
//! default), full (hours on a CPU; meant for a GPU).

use serde::{Deserialize, Serialize};

/// Run size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Seconds: tiny shapes, for tests and CI.
    Smoke,
    /// Minutes on a 2-core CPU: real-model shapes at moderate context.
    Quick,
    /// Hours on a CPU: long contexts, for a GPU.
    Full,
}

impl Scale {
    /// All scales, smallest first.
    pub const ALL: [Scale; 3] = [Scale::Smoke, Scale::Quick, Scale::Full];

    /// Lower-case name as used on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Smoke => "smoke",
            Scale::Quick => "quick",
            Scale::Full => "full",
        }
    }

    /// One-line description for `infermark list`.
    pub fn describe(self) -> &'static str {
        match self {
            Scale::Smoke => "seconds; small shapes, for tests and CI",
            Scale::Quick => {
                "minutes on a 2-core CPU; real-model shapes, contexts up to 4096 (default)"
            }
            Scale::Full => "hours on a CPU; contexts up to 32768, meant for a GPU",
        }
    }
}

impl std::str::FromStr for Scale {
    type Err = crate::SuiteError;
    fn from_str(s: &str) -> crate::Result<Self> {
        Scale::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| crate::SuiteError::Unknown {
                kind: "scale",
                name: s.to_string(),
                known: "smoke, quick, full".into(),
            })
    }
}
