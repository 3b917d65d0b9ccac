//! Writing GGUF version 3 files: the layout [`super`] reads (header, metadata, tensor table,
//! aligned data section), written through a temporary file in the target's folder that is
//! renamed over the target only when complete, so that a crash or an error never leaves a
//! half-written model under the requested name.
//!
//! Deviation from llama.cpp's writer: an empty metadata array is written as an array of u32
//! (the reader keeps no element type for an empty array); non-empty arrays keep the type of
//! their elements, which must all have one type.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{GgmlType, Value, DEFAULT_ALIGNMENT, MAGIC};
use crate::{Result, SuiteError};

/// One tensor to write: its ggml dimensions (innermost first), type and whole blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct OutTensor {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost (contiguous) first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// The data: whole blocks of `ty`, exactly `ty.bytes_for(elements)` bytes.
    pub bytes: Vec<u8>,
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::Str(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, key: &str, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::Str(s) => put_str(out, s),
        Value::Array(items) => {
            let inner = items.first().map_or(4, value_type);
            if let Some(odd) = items.iter().find(|i| value_type(i) != inner) {
                return Err(SuiteError::Input(format!(
                    "metadata `{key}`: an array mixes element types ({} and {odd})",
                    items[0]
                )));
            }
            out.extend(inner.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, key, i)?;
            }
        }
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
    }
    Ok(())
}

/// The alignment `metadata` asks for (`general.alignment`, a power of two), or 32.
pub fn alignment_of(metadata: &[(String, Value)]) -> Result<u64> {
    match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some((_, v)) => v.as_u64().filter(|a| a.is_power_of_two()).ok_or_else(|| {
            SuiteError::Input(format!("general.alignment {v} is not a power of two"))
        }),
    }
}

/// The header and tensor table of a file holding `tensors`, padded to the alignment, and the
/// data offset of each tensor. Checks each tensor's byte count against its type and shape.
fn header(metadata: &[(String, Value)], tensors: &[OutTensor]) -> Result<(Vec<u8>, Vec<u64>)> {
    let align = alignment_of(metadata)?;
    let mut out = Vec::new();
    out.extend(MAGIC.to_le_bytes());
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend(value_type(v).to_le_bytes());
        put_value(&mut out, k, v)?;
    }
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut at = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        if tensors[..i].iter().any(|u| u.name == t.name) {
            return Err(SuiteError::Input(format!("tensor `{}` twice", t.name)));
        }
        if !(1..=4).contains(&t.dims.len()) {
            return Err(SuiteError::Input(format!(
                "tensor `{}`: rank {} (1 to 4 allowed)",
                t.name,
                t.dims.len()
            )));
        }
        let elements: u64 = t.dims.iter().product();
        if t.ty.bytes_for(elements) != Some(t.bytes.len() as u64) {
            return Err(SuiteError::Input(format!(
                "tensor `{}`: {} bytes are not the {elements} elements of {:?} in whole {} blocks",
                t.name,
                t.bytes.len(),
                t.dims,
                t.ty.name()
            )));
        }
        put_str(&mut out, &t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.ty.code().to_le_bytes());
        out.extend(at.to_le_bytes());
        offsets.push(at);
        at = (at + t.bytes.len() as u64).div_ceil(align) * align;
    }
    out.resize(
        (out.len() as u64).div_ceil(align) as usize * align as usize,
        0,
    );
    Ok((out, offsets))
}

/// The temporary file a write to `path` goes through.
fn temporary(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| SuiteError::Input(format!("{}: not a file name", path.display())))?;
    let tmp = format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

/// Writes a GGUF v3 file at `path`: `metadata` in the given order, then `tensors` in order,
/// each at an offset aligned to `general.alignment` (or 32). Refuses an existing `path` unless
/// `force`; writes a temporary file beside it, syncs it and renames it over `path`.
pub fn write(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[OutTensor],
    force: bool,
) -> Result<()> {
    if path.exists() && !force {
        return Err(SuiteError::Input(format!(
            "{} exists; pass --force to replace it",
            path.display()
        )));
    }
    let (head, offsets) = header(metadata, tensors)?;
    let tmp = temporary(path)?;
    let io = |e: std::io::Error| SuiteError::Input(format!("{}: {e}", tmp.display()));
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(&head).map_err(io)?;
        let mut at = 0u64;
        for (t, &off) in tensors.iter().zip(&offsets) {
            w.write_all(&vec![0u8; (off - at) as usize]).map_err(io)?;
            w.write_all(&t.bytes).map_err(io)?;
            at = off + t.bytes.len() as u64;
        }
        let align = alignment_of(metadata)?;
        let end = at.div_ceil(align) * align;
        w.write_all(&vec![0u8; (end - at) as usize]).map_err(io)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| SuiteError::Input(format!("{}: {e}", path.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
