//! The lm suite's part of the report: the generic per-metric tables, and its headline.

use crate::metric::DECODE_TOKENS_PER_S;
use crate::report::{Filter, Headline, Param, Pick, Section, Val};

/// Which weights a real-model row ran with (`f32` or `native`).
pub const WEIGHTS: Param = Param("weights");
/// Which activations its quantized products took (`f32` or `int8`).
pub const ACTIVATIONS: Param = Param("activations");

/// The lm suite's section.
pub const REPORT: Section = Section {
    headline: Some(Headline {
        label: "SmolLM2-135M decode, native 4-bit weights and int8 activations",
        pick: Pick::headline(
            &DECODE_TOKENS_PER_S,
            &[
                Filter::Variant("smollm2-135m"),
                Filter::Is(WEIGHTS, Val::Lit("native")),
                Filter::Is(ACTIVATIONS, Val::Lit("int8")),
            ],
        ),
    }),
    ..Section::EMPTY
};
