//! Re-quantizing a GGUF file to another weight type or to llama.cpp's Q4_K_M mix
//! (`llama-quantize`, src/llama-quant.cpp, `llama_tensor_get_type`), with infermark's own
//! quantizers ([`infermark_models::quant::kquant`]) and GGUF writer ([`super::write`]).
//!
//! Each quantizable tensor (2-D or more, a name ending in `weight`, not a norm) is dequantized to
//! f32 and quantized to its new type; a tensor already of that type is copied as it is, and the
//! others (norms, 1-D tensors) are copied unchanged. When the source is itself quantized (the
//! SmolLM2 file is Q4_1 with a Q8_0 embedding), the result re-quantizes a quantized model: its
//! error adds to the source's, so it is not what llama.cpp makes from the BF16 original.
//!
//! Q4_K_M, for a dense Llama-like model without an importance matrix:
//! - `output.weight`, or the token embedding when the head is tied to it: Q6_K, or Q8_0 when
//!   its rows are not whole 256-weight blocks;
//! - `attn_v` and `ffn_down` of the layers where `use_more_bits(i, n)` (`i < n/8`,
//!   `i ≥ 7n/8`, or `(i − n/8) mod 3 = 2`): Q6_K;
//! - every other quantizable tensor: Q4_K;
//! - then the shape fallback: a tensor whose rows are not whole 256-weight blocks takes Q5_0
//!   for Q4_K and Q8_0 for Q6_K (SmolLM2's width 576 sends most of its tensors there; Q5_K's
//!   fallback Q5_1 is not implemented here and is refused), F16 if not even 32.
//!
//! The quantizers are ggml's reference ones (no importance matrix), as `llama-quantize` uses
//! without `--imatrix`; `general.file_type` is set to the target's llama.cpp file type and
//! `general.quantization_version` to 2, as llama.cpp does, and every other metadata key is
//! copied.

use std::fmt;
use std::path::Path;

use half::f16;
use infermark_models::quant::QuantizedTensor;
use rayon::prelude::*;

use super::write::{write, OutTensor};
use super::{GgmlType, GgufFile, Value};
use crate::{Result, SuiteError};

/// What a file is quantized to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// llama.cpp's Q4_K_M mix (Q4_K with Q6_K where it matters; see the module docs).
    Q4KM,
    /// Every quantizable tensor to one type, with the shape fallback (`llama-quantize --pure`).
    Pure(GgmlType),
}

impl Target {
    /// Every target, by name.
    pub fn all() -> Vec<Target> {
        // The quantized types (blocks of more than one weight) the reader supports.
        std::iter::once(Target::Q4KM)
            .chain(
                GgmlType::ALL
                    .into_iter()
                    .filter(|t| t.block_elems() > 1)
                    .map(Target::Pure),
            )
            .collect()
    }

    /// Name on the command line: `q4_k_m`, or a type's lower-case name (`q6_k`).
    pub fn name(self) -> String {
        match self {
            Target::Q4KM => "q4_k_m".into(),
            Target::Pure(t) => t.name().to_lowercase(),
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`) for the target.
    pub fn file_type(self) -> u32 {
        match self {
            Target::Q4KM => 15,
            Target::Pure(t) => match t {
                GgmlType::Q4_0 => 2,
                GgmlType::Q4_1 => 3,
                GgmlType::Q8_0 => 7,
                GgmlType::Q5_0 => 8,
                GgmlType::Q4K => 14,
                GgmlType::Q5K => 16,
                GgmlType::Q6K => 18,
                GgmlType::F16 => 1,
                GgmlType::BF16 => 32,
                GgmlType::F32 => 0,
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Target {
    type Err = SuiteError;
    fn from_str(s: &str) -> Result<Self> {
        Target::all()
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| SuiteError::Unknown {
                kind: "quantization target",
                name: s.to_string(),
                known: Target::all()
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Whether `llama-quantize` quantizes a tensor of this name and rank.
fn quantizable(name: &str, rank: usize) -> bool {
    rank >= 2 && name.ends_with("weight") && !name.contains("_norm.weight")
}

/// `llama_tensor_get_type`'s layer rule for Q4_K_M.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as i64 - (n / 8) as i64).rem_euclid(3) == 2
}

/// The type that fits rows of `ncols` weights (llama.cpp's `tensor_type_fallback`).
fn fallback(name: &str, ty: GgmlType, ncols: u64) -> Result<GgmlType> {
    if ncols.is_multiple_of(ty.block_elems()) {
        return Ok(ty);
    }
    let t = match ty {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q6K => GgmlType::Q8_0,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::F16,
        other => {
            return Err(SuiteError::Input(format!(
                "tensor `{name}`: rows of {ncols} are not whole {} blocks, and its fallback \
                 type (Q5_1 for Q5_K) is not implemented",
                other.name()
            )))
        }
    };
    Ok(if ncols.is_multiple_of(t.block_elems()) {
        t
    } else {
        GgmlType::F16
    })
}

/// The type of each tensor of `file` under `target`, in file order.
///
/// llama.cpp numbers the `attn_v` and `ffn_down` tensors for `use_more_bits` by counting them
/// in the order of its tensor map, sorted by name (`blk.0`, `blk.1`, `blk.10`, …, `blk.19`,
/// `blk.2`, …), not by layer; so does this (it changes which layers get Q6_K in models of
/// more than 10 layers).
pub fn plan(file: &GgufFile, target: Target) -> Result<Vec<GgmlType>> {
    let tied = !file.tensors.iter().any(|t| t.name == "output.weight");
    let sorted = |s: &str| {
        let mut v: Vec<&str> = file
            .tensors
            .iter()
            .filter(|t| t.name.contains(s) && quantizable(&t.name, t.dims.len()))
            .map(|t| t.name.as_str())
            .collect();
        v.sort_unstable();
        v
    };
    let (v_order, down_order) = (sorted("attn_v.weight"), sorted("ffn_down"));
    let more_bits = |order: &[&str], name: &str| {
        let i = order.iter().position(|n| *n == name).expect("listed");
        use_more_bits(i, order.len())
    };
    let mut out = Vec::with_capacity(file.tensors.len());
    for t in &file.tensors {
        if !quantizable(&t.name, t.dims.len()) {
            out.push(t.ty);
            continue;
        }
        let ncols = t.dims[0];
        let ty = match target {
            Target::Pure(ty) => ty,
            Target::Q4KM => {
                let head = t.name == "output.weight" || (tied && t.name == "token_embd.weight");
                if head {
                    if ncols.is_multiple_of(256) {
                        GgmlType::Q6K
                    } else {
                        GgmlType::Q8_0
                    }
                } else if (t.name.contains("attn_v.weight") && more_bits(&v_order, &t.name))
                    || (t.name.contains("ffn_down") && more_bits(&down_order, &t.name))
                {
                    GgmlType::Q6K
                } else {
                    GgmlType::Q4K
                }
            }
        };
        out.push(fallback(&t.name, ty, ncols)?);
    }
    Ok(out)
}

/// What [`quantize_file`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// Tensors per type, in order of first appearance: `("Q4_K", 30)`.
    pub types: Vec<(String, usize)>,
    /// Bytes of tensor data.
    pub data_bytes: u64,
    /// Tensors re-quantized (the rest were copied).
    pub requantized: usize,
}

/// `w` (rows of `cols`) in ggml type `ty`: whole blocks, rows one after another.
fn encode(name: &str, ty: GgmlType, w: &[f32], cols: usize) -> Result<Vec<u8>> {
    match ty {
        GgmlType::F32 => Ok(w.iter().flat_map(|x| x.to_le_bytes()).collect()),
        GgmlType::F16 => Ok(w
            .iter()
            .flat_map(|x| f16::from_f32(*x).to_le_bytes())
            .collect()),
        _ => {
            let format = ty.native_format().ok_or_else(|| {
                SuiteError::Input(format!("tensor `{name}`: no quantizer for {}", ty.name()))
            })?;
            // Rows in parallel, 64 at a time; each chunk's blocks are whole rows.
            let chunks: Vec<Vec<u8>> = w
                .par_chunks(64 * cols)
                .map(|c| {
                    QuantizedTensor::quantize(format, c, c.len() / cols, cols).map(|q| q.codes)
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(SuiteError::model(format!(
                    "quantizing `{name}` to {format}"
                )))?;
            Ok(chunks.concat())
        }
    }
}

/// Quantizes the GGUF at `src` to `target` and writes it to `out` (refusing an existing `out`
/// unless `force`; written atomically, see [`super::write`]).
pub fn quantize_file(src: &Path, target: Target, out: &Path, force: bool) -> Result<Written> {
    if out.exists() && !force {
        return Err(SuiteError::Input(format!(
            "{} exists; pass --force to replace it",
            out.display()
        )));
    }
    let file = GgufFile::open(src)?;
    let types = plan(&file, target)?;
    let mut tensors = Vec::with_capacity(file.tensors.len());
    let mut requantized = 0;
    for (t, &ty) in file.tensors.iter().zip(&types) {
        let bytes = if ty == t.ty {
            file.raw(t).to_vec()
        } else {
            requantized += 1;
            let cols = t.dims[0] as usize;
            let w = file.dequantize(t);
            encode(&t.name, ty, &w, cols)?
        };
        tensors.push(OutTensor {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty,
            bytes,
        });
    }
    let mut metadata: Vec<(String, Value)> = file
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // As llama.cpp: the file type of the target and ggml's quantization version (2).
    for (key, value) in [
        ("general.file_type", target.file_type()),
        ("general.quantization_version", 2),
    ] {
        match metadata.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = Value::U32(value),
            None => metadata.push((key.into(), Value::U32(value))),
        }
    }
    write(out, &metadata, &tensors, force)?;
    let mut counts: Vec<(String, usize)> = Vec::new();
    for t in &tensors {
        match counts.iter_mut().find(|(n, _)| n == t.ty.name()) {
            Some((_, c)) => *c += 1,
            None => counts.push((t.ty.name().to_string(), 1)),
        }
    }
    Ok(Written {
        types: counts,
        data_bytes: tensors.iter().map(|t| t.bytes.len() as u64).sum(),
        requantized,
    })
}
