//! Parsing a GGUF header (v2, v3) from the file's mapped bytes: metadata, tensor infos, where the
//! data starts. Every count, length and offset is checked against what the file holds before
//! anything is allocated or read, so a truncated or crafted file is an error (a line saying what
//! is wrong), never a panic or a huge allocation.
//!
//! candle's `gguf_file::Content::read` bounds its counts too, but refuses a whole file over one
//! tensor of a type it does not know (so the error cannot name the tensor), panics on
//! `general.alignment = 0`, and multiplies dimensions unchecked.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use super::ggml_type::GgmlType;

/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: u64 = 4;
/// Nested arrays deeper than this are refused (ggml writes none nested at all).
const MAX_DEPTH: usize = 8;
const DEFAULT_ALIGNMENT: u64 = 32;

/// One tensor as the header describes it.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Row-major, as torch and candle see it (the reverse of ggml's `ne`).
    pub shape: Vec<usize>,
    pub ggml: GgmlType,
    /// Where its bytes start in the file.
    pub start: u64,
    /// How many bytes it stores.
    pub bytes: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// A parsed header.
#[derive(Debug)]
pub struct Header {
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    /// In the file's order.
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts (tensor offsets in the file are relative to it).
    pub data_start: u64,
}

/// Reads the header of `buf`, the whole file; the error says what is wrong, without the file name.
pub fn parse(buf: &[u8]) -> Result<Header, String> {
    let mut r = Reader { buf, pos: 0 };
    let magic = r
        .take(4)
        .map_err(|_| "too short to be a GGUF file".to_string())?;
    if magic != b"GGUF" {
        return Err("not a GGUF file (its first bytes are not `GGUF`)".to_string());
    }
    let version = r.u32()?;
    match version {
        2 | 3 => {}
        1 => return Err("GGUF version 1 is not supported (re-convert it with llama.cpp)".into()),
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err("a big-endian GGUF, which is not supported".into());
        }
        v => return Err(format!("unknown GGUF version {v}")),
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    // The smallest possible entries: a key (length + 1 byte), a type and a 1-byte value; a tensor
    // name (length + 1 byte), a dimension count, one dimension, a type and an offset.
    let least = kv_count
        .saturating_mul(8 + 1 + 4 + 1)
        .saturating_add(tensor_count.saturating_mul(8 + 1 + 4 + 8 + 4 + 8));
    if least > r.remaining() {
        return Err(format!(
            "the header declares {tensor_count} tensors and {kv_count} metadata entries, more \
             than the file's {} bytes can hold (truncated or corrupt)",
            buf.len()
        ));
    }
    let mut metadata = HashMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let kind = r.u32()?;
        let value = r
            .value(kind, 0)
            .map_err(|e| format!("metadata `{key}`: {e}"))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key `{key}` appears twice"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(other) => {
            return Err(format!(
                "general.alignment is {other:?}; it must be a power of two (u32)"
            ));
        }
    };
    let mut infos = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        infos.push(r.tensor_info()?);
    }
    let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
    let mut tensors = Vec::with_capacity(infos.len());
    let mut names = std::collections::HashSet::new();
    for (name, ne, id, offset) in infos {
        if !names.insert(name.clone()) {
            return Err(format!("tensor `{name}` appears twice"));
        }
        tensors.push(locate(
            name,
            &ne,
            id,
            offset,
            data_start,
            alignment,
            buf.len(),
        )?);
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        data_start,
    })
}

/// Checks one tensor's type, dimensions and byte range against the file.
fn locate(
    name: String,
    ne: &[u64],
    id: u32,
    offset: u64,
    data_start: u64,
    alignment: u64,
    file_len: usize,
) -> Result<TensorInfo, String> {
    let ggml = GgmlType::from_id(id).ok_or_else(|| {
        format!(
            "tensor `{name}` has type id {id}, which is no ggml type (a corrupt file, or a type \
             newer than pallaidium; supported: {})",
            GgmlType::supported_names()
        )
    })?;
    let elements = ne
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| format!("tensor `{name}` has absurd dimensions {ne:?}"))?;
    let row = ne.first().copied().unwrap_or(1);
    let bytes = ggml
        .size_of(elements)
        .filter(|_| row.is_multiple_of(ggml.block as u64))
        .ok_or_else(|| {
            format!(
                "tensor `{name}` ({ggml}, dimensions {ne:?}) has rows of {row} values, not a \
                 multiple of {ggml}'s block of {}",
                ggml.block
            )
        })?;
    if !offset.is_multiple_of(alignment) {
        return Err(format!(
            "tensor `{name}` starts at offset {offset}, not a multiple of the alignment {alignment}"
        ));
    }
    let start = data_start.checked_add(offset);
    let end = start.and_then(|s| s.checked_add(bytes));
    match (start, end) {
        (Some(start), Some(end)) if end <= file_len as u64 => Ok(TensorInfo {
            name,
            shape: ne.iter().rev().map(|&d| d as usize).collect(),
            ggml,
            start,
            bytes,
        }),
        _ => Err(format!(
            "tensor `{name}` ({bytes} bytes at data offset {offset}) ends past the end of the \
             file ({file_len} bytes): the file is truncated"
        )),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "the header runs past the end of the file ({} bytes; truncated?)",
                self.buf.len()
            ));
        }
        let n = n as usize;
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u64()?;
        let bytes = self.take(len)?;
        // Some writers add a trailing NUL; strings are UTF-8 but a few files are not (candle
        // reads them lossily too).
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, kind: u32, depth: usize) -> Result<Value, String> {
        Ok(match kind {
            0 => Value::U8(self.array::<1>()?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array()?)),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("a bool of value {b}")),
            },
            8 => Value::String(self.string()?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err("arrays nested too deep".into());
                }
                let inner = self.u32()?;
                let len = self.u64()?;
                let least = match inner {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 => 8,
                    9 => 12,
                    _ => 8,
                };
                if len.saturating_mul(least) > self.remaining() {
                    return Err(format!("an array of {len} values longer than the file"));
                }
                let mut values = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    values.push(self.value(inner, depth + 1)?);
                }
                Value::Array(values)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            k => return Err(format!("unknown value type {k}")),
        })
    }

    /// A tensor info: name, ggml dimensions (`ne`, innermost first), type id, data offset.
    fn tensor_info(&mut self) -> Result<(String, Vec<u64>, u32, u64), String> {
        let name = self.string()?;
        let dims = self.u32()?;
        if u64::from(dims) > MAX_DIMS {
            return Err(format!(
                "tensor `{name}` has {dims} dimensions (at most {MAX_DIMS})"
            ));
        }
        let mut ne = Vec::with_capacity(dims as usize);
        for _ in 0..dims {
            ne.push(self.u64()?);
        }
        let id = self.u32()?;
        let offset = self.u64()?;
        Ok((name, ne, id, offset))
    }
}
