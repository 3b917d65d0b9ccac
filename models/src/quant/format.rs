//! Weight formats: what a code means, how many bits it costs, and the names used on the command
//! line and in records.

use std::fmt;

/// The two OCP 8-bit floating-point encodings (OCP "8-bit Floating Point Specification", 2023).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fp8Kind {
    /// 4 exponent bits, 3 mantissa bits, bias 7; no infinities; largest finite 448; NaN is
    /// `S.1111.111` (0x7F, 0xFF).
    E4M3,
    /// 5 exponent bits, 2 mantissa bits, bias 15; IEEE-like infinities and NaNs; largest finite
    /// 57344.
    E5M2,
}

impl Fp8Kind {
    /// Largest finite value.
    pub fn max(self) -> f32 {
        match self {
            Fp8Kind::E4M3 => 448.0,
            Fp8Kind::E5M2 => 57344.0,
        }
    }

    /// Value of a code (the spec's decoding; NaN codes give NaN).
    pub fn decode(self, code: u8) -> f32 {
        match self {
            Fp8Kind::E4M3 => float8::F8E4M3::from_bits(code).to_f32(),
            Fp8Kind::E5M2 => float8::F8E5M2::from_bits(code).to_f32(),
        }
    }

    /// Nearest code, ties to even, saturating to ±max (infinities too); NaN stays NaN.
    pub fn encode(self, x: f32) -> u8 {
        match self {
            Fp8Kind::E4M3 => float8::F8E4M3::from_f32(x).to_bits(),
            Fp8Kind::E5M2 => float8::F8E5M2::from_f32(x).to_bits(),
        }
    }
}

/// How an FP8 tensor is scaled before encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fp8Scaling {
    /// One f32 scale for the whole tensor: `max |w| / max_fp8`.
    Tensor,
    /// One f32 scale per output channel (row).
    Channel,
}

/// A weight format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    /// The reference: 32-bit floats.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16 (f32 with the low 16 mantissa bits rounded off).
    Bf16,
    /// 8-bit float with a scale.
    Fp8(Fp8Kind, Fp8Scaling),
    /// Signed 8-bit integers, symmetric, one f32 scale per output channel.
    Int8,
    /// 4-bit integers in groups of `group` weights along the input dimension, each group with an
    /// f16 scale (and, when `asym`, a zero point); two codes per byte.
    Int4 {
        /// Weights per group (32, 64 or 128).
        group: usize,
        /// Asymmetric (min/max with a zero point) instead of symmetric (max |w|).
        asym: bool,
    },
    /// llama.cpp's Q4_0 block: 32 weights, one f16 scale, 16 bytes of codes (18 bytes a block).
    Q4_0,
    /// llama.cpp's Q4_1 block: 32 weights, an f16 scale and an f16 minimum, 16 bytes of codes
    /// (20 bytes a block); `w = d·q + m`.
    Q4_1,
    /// llama.cpp's Q8_0 block: 32 weights, one f16 scale, 32 signed bytes (34 bytes a block).
    Q8_0,
    /// llama.cpp's Q5_0 block: 32 weights, one f16 scale, 4 bytes of fifth bits and 16 bytes
    /// of nibbles (22 bytes a block); `w = d·(q − 16)`. In [`QuantFormat::ggml_extra`].
    Q5_0,
    /// llama.cpp's Q4_K super-block: 256 weights in 8 sub-blocks of 32 with 6-bit scales and
    /// mins, f16 `d` and `dmin` (144 bytes a block; see [`super::kquant`]). Read from GGUF files
    /// and produced by `quantize`; in [`QuantFormat::ggml_extra`], not in [`QuantFormat::all`].
    Q4K,
    /// llama.cpp's Q5_K super-block: Q4_K with 5-bit codes (a bit plane of 32 bytes more; 176
    /// bytes a block).
    Q5K,
    /// llama.cpp's Q6_K super-block: 256 weights of 6 bits (`q − 32`), an i8 scale per 16 and
    /// an f16 `d` (210 bytes a block).
    Q6K,
}

impl QuantFormat {
    /// Every format the suite compares, reference first.
    pub fn all() -> Vec<QuantFormat> {
        use Fp8Kind::*;
        use Fp8Scaling::*;
        let mut v = vec![
            QuantFormat::F32,
            QuantFormat::F16,
            QuantFormat::Bf16,
            QuantFormat::Fp8(E4M3, Tensor),
            QuantFormat::Fp8(E4M3, Channel),
            QuantFormat::Fp8(E5M2, Tensor),
            QuantFormat::Fp8(E5M2, Channel),
            QuantFormat::Int8,
        ];
        for group in [32, 64, 128] {
            for asym in [false, true] {
                v.push(QuantFormat::Int4 { group, asym });
            }
        }
        v.extend([QuantFormat::Q4_0, QuantFormat::Q4_1, QuantFormat::Q8_0]);
        v
    }

    /// llama.cpp block formats that `quantize` produces and GGUF files hold but that the
    /// quantization suite does not compare: Q5_0 and the K-quants.
    pub fn ggml_extra() -> Vec<QuantFormat> {
        vec![
            QuantFormat::Q5_0,
            QuantFormat::Q4K,
            QuantFormat::Q5K,
            QuantFormat::Q6K,
        ]
    }

    /// Every format with a name: [`QuantFormat::all`] then [`QuantFormat::ggml_extra`].
    pub fn known() -> Vec<QuantFormat> {
        let mut v = Self::all();
        v.extend(Self::ggml_extra());
        v
    }

    /// Bytes of a llama.cpp block, when codes and scales sit together in such blocks (of
    /// [`QuantFormat::group`] weights: 32, or 256 for the K formats).
    pub fn ggml_block(&self) -> Option<usize> {
        match self {
            QuantFormat::Q4_0 => Some(18),
            QuantFormat::Q4_1 => Some(20),
            QuantFormat::Q8_0 => Some(34),
            QuantFormat::Q5_0 => Some(super::kquant::Q5_0_BYTES),
            QuantFormat::Q4K => Some(super::kquant::Q4_K_BYTES),
            QuantFormat::Q5K => Some(super::kquant::Q5_K_BYTES),
            QuantFormat::Q6K => Some(super::kquant::Q6_K_BYTES),
            _ => None,
        }
    }

    /// Name used on the command line and in records, e.g. `fp8-e4m3-channel`, `int4-g32-asym`.
    pub fn name(&self) -> String {
        match self {
            QuantFormat::F32 => "f32".into(),
            QuantFormat::F16 => "f16".into(),
            QuantFormat::Bf16 => "bf16".into(),
            QuantFormat::Fp8(k, s) => {
                let k = match k {
                    Fp8Kind::E4M3 => "e4m3",
                    Fp8Kind::E5M2 => "e5m2",
                };
                match s {
                    Fp8Scaling::Tensor => format!("fp8-{k}"),
                    Fp8Scaling::Channel => format!("fp8-{k}-channel"),
                }
            }
            QuantFormat::Int8 => "int8".into(),
            QuantFormat::Int4 { group, asym } => {
                format!("int4-g{group}{}", if *asym { "-asym" } else { "" })
            }
            QuantFormat::Q4_0 => "q4_0".into(),
            QuantFormat::Q4_1 => "q4_1".into(),
            QuantFormat::Q8_0 => "q8_0".into(),
            QuantFormat::Q5_0 => "q5_0".into(),
            QuantFormat::Q4K => "q4_k".into(),
            QuantFormat::Q5K => "q5_k".into(),
            QuantFormat::Q6K => "q6_k".into(),
        }
    }

    /// Weights per scale group along the input dimension (rows are padded to a multiple).
    pub fn group(&self) -> usize {
        match self {
            QuantFormat::Int4 { group, .. } => *group,
            QuantFormat::Q4_0 | QuantFormat::Q4_1 | QuantFormat::Q8_0 | QuantFormat::Q5_0 => 32,
            QuantFormat::Q4K | QuantFormat::Q5K | QuantFormat::Q6K => super::kquant::QK_K,
            _ => 1,
        }
    }

    /// Storage bits per weight for a `[rows, cols]` matrix: codes plus scales and zero points,
    /// padding included.
    pub fn bits_per_weight(&self, rows: usize, cols: usize) -> f64 {
        self.bytes(rows, cols) as f64 * 8.0 / (rows * cols) as f64
    }

    /// Storage bytes of a `[rows, cols]` matrix (what [`super::QuantizedTensor`] holds).
    pub fn bytes(&self, rows: usize, cols: usize) -> usize {
        let padded = cols.div_ceil(self.group()) * self.group();
        let groups = rows * padded / self.group();
        match self {
            QuantFormat::F32 => rows * cols * 4,
            QuantFormat::F16 | QuantFormat::Bf16 => rows * cols * 2,
            QuantFormat::Fp8(_, Fp8Scaling::Tensor) => rows * cols + 4,
            QuantFormat::Fp8(_, Fp8Scaling::Channel) | QuantFormat::Int8 => rows * cols + 4 * rows,
            QuantFormat::Int4 { asym, .. } => {
                rows * padded / 2 + groups * if *asym { 3 } else { 2 }
            }
            QuantFormat::Q4_0
            | QuantFormat::Q4_1
            | QuantFormat::Q8_0
            | QuantFormat::Q5_0
            | QuantFormat::Q4K
            | QuantFormat::Q5K
            | QuantFormat::Q6K => groups * self.ggml_block().expect("a block format"),
        }
    }
}

impl fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for QuantFormat {
    type Err = crate::ModelError;
    fn from_str(s: &str) -> crate::Result<Self> {
        QuantFormat::known()
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let known: Vec<String> = QuantFormat::known().iter().map(|f| f.name()).collect();
                crate::ModelError::InvalidConfig(format!(
                    "unknown weight format `{s}`; known: {}",
                    known.join(", ")
                ))
            })
    }
}
