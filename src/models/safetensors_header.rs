//! Reading a safetensors file's tensor names, dtypes and shapes from its header alone: the 8-byte
//! little-endian header length, then that many bytes of JSON. The tensor data is never read, so the
//! memory planner can size a multi-GB model in microseconds. The file's length is still checked
//! against the header's offsets, so a truncated download is caught here, naming the file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// The safetensors crate's own limit; a larger "header" means the file is not safetensors.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Extensions of pickled PyTorch weights: loading them can run arbitrary code.
pub const PICKLE_EXTENSIONS: [&str; 4] = ["bin", "ckpt", "pt", "pth"];

/// The one-line conversion users are told about when a pickle is refused.
pub const CONVERT_HINT: &str = "convert it once with diffusers: `python -c \"from diffusers import DiffusionPipeline; \
DiffusionPipeline.from_pretrained('IN').save_pretrained('OUT', safe_serialization=True)\"` \
(or for one file: `safetensors.torch.save_file(torch.load('x.bin', weights_only=True), 'x.safetensors')`)";

/// Element types a safetensors header may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum StoredDtype {
    F64,
    F32,
    F16,
    Bf16,
    F8,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
}

impl StoredDtype {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F64" => Self::F64,
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::Bf16,
            "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => Self::F8,
            "I64" => Self::I64,
            "I32" => Self::I32,
            "I16" => Self::I16,
            "I8" => Self::I8,
            "U64" => Self::U64,
            "U32" => Self::U32,
            "U16" => Self::U16,
            "U8" => Self::U8,
            "BOOL" => Self::Bool,
            _ => return None,
        })
    }

    pub fn size_in_bytes(self) -> u64 {
        match self {
            Self::F64 | Self::I64 | Self::U64 => 8,
            Self::F32 | Self::I32 | Self::U32 => 4,
            Self::F16 | Self::Bf16 | Self::I16 | Self::U16 => 2,
            Self::F8 | Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Floating-point weights are converted to the run dtype when loaded; integers keep theirs.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Self::F64 | Self::F32 | Self::F16 | Self::Bf16 | Self::F8
        )
    }
}

/// One tensor as the header declares it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TensorInfo {
    pub dtype: StoredDtype,
    pub shape: Vec<u64>,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Bytes once loaded at `run_bytes` per element (floats) or as stored (integers).
    pub fn bytes_at(&self, run_bytes_per_float: u64) -> u64 {
        let per = if self.dtype.is_float() {
            run_bytes_per_float
        } else {
            self.dtype.size_in_bytes()
        };
        self.elements() * per
    }
}

/// A file's header: every tensor by name, and the file's size on disk.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SafetensorsHeader {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub tensors: BTreeMap<String, TensorInfo>,
}

impl SafetensorsHeader {
    /// Bytes of all tensors once loaded with floats at `run_bytes_per_float` bytes each.
    pub fn bytes_at(&self, run_bytes_per_float: u64) -> u64 {
        self.tensors
            .values()
            .map(|t| t.bytes_at(run_bytes_per_float))
            .sum()
    }

    pub fn parameter_count(&self) -> u64 {
        self.tensors.values().map(TensorInfo::elements).sum()
    }
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// Refuses pickled weights by extension, saying why and how to convert them.
pub fn refuse_pickle(path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.is_some_and(|e| PICKLE_EXTENSIONS.contains(&e.as_str())) {
        return Err(Error::bad_input(format!(
            "{} is a pickled PyTorch file, which is refused: unpickling can run arbitrary code. \
             Only safetensors (and GGUF) weights load; {CONVERT_HINT}",
            path.display()
        )));
    }
    Ok(())
}

/// Reads the header of `path` without reading tensor data. Errors (exit 2) name the file: a
/// pickle, a file too short for its header, a header that is not safetensors JSON, offsets that
/// disagree with shapes, or a body shorter than the header declares (an interrupted download).
pub fn read_header(path: &Path) -> Result<SafetensorsHeader> {
    refuse_pickle(path)?;
    let corrupt = |why: String| {
        Error::bad_input(format!(
            "{} is not a valid safetensors file ({why}); it is truncated or corrupt: delete it and \
             download it again (`pallaidium fetch MODEL`)",
            path.display()
        ))
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes).map_err(|_| {
        corrupt(format!(
            "only {file_bytes} bytes, shorter than the 8-byte header length"
        ))
    })?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(corrupt(format!("declares a {header_len}-byte header")));
    }
    if 8 + header_len > file_bytes {
        return Err(corrupt(format!(
            "the header needs {} bytes but the file has {file_bytes}",
            8 + header_len
        )));
    }
    let mut json = vec![0u8; header_len as usize];
    file.read_exact(&mut json)
        .map_err(|e| corrupt(format!("cannot read the header: {e}")))?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&json)
        .map_err(|e| corrupt(format!("the header is not JSON: {e}")))?;

    let mut tensors = BTreeMap::new();
    let mut data_end = 0u64;
    for (name, value) in raw {
        if name == "__metadata__" {
            continue;
        }
        let t: RawTensor = serde_json::from_value(value)
            .map_err(|e| corrupt(format!("tensor `{name}` has a malformed entry: {e}")))?;
        let dtype = StoredDtype::parse(&t.dtype)
            .ok_or_else(|| corrupt(format!("tensor `{name}` has unknown dtype {}", t.dtype)))?;
        let info = TensorInfo {
            dtype,
            shape: t.shape,
        };
        let [begin, end] = t.data_offsets;
        let declared = info
            .shape
            .iter()
            .try_fold(dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d));
        if end < begin || declared != Some(end - begin) {
            return Err(corrupt(format!(
                "tensor `{name}` of shape {:?} does not fit its offsets {begin}..{end}",
                info.shape
            )));
        }
        data_end = data_end.max(end);
        tensors.insert(name, info);
    }
    let needed = 8 + header_len + data_end;
    if file_bytes < needed {
        return Err(corrupt(format!(
            "the header declares {needed} bytes but the file has {file_bytes}"
        )));
    }
    Ok(SafetensorsHeader {
        path: path.to_path_buf(),
        file_bytes,
        tensors,
    })
}

/// Writes a safetensors file declaring `tensors` (name, dtype name, shape) whose data is a hole:
/// the file is extended with `set_len`, so it is valid and full-length but takes no disk on
/// filesystems with sparse files. For planner tests and sizing, never for loading real weights.
pub fn write_sparse(path: &Path, tensors: &[(&str, &str, &[u64])]) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let size = StoredDtype::parse(dtype)
            .ok_or_else(|| Error::bad_input(format!("unknown safetensors dtype {dtype}")))?
            .size_in_bytes()
            * shape.iter().product::<u64>();
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
        );
        offset += size;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    // Pad to 8 bytes as the safetensors writer does, so the data is aligned for mmap.
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    std::fs::write(path, &bytes).map_err(|e| Error::io(path, e))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(bytes.len() as u64 + offset)
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shapes_without_the_data_and_sizes_at_the_run_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        // 1 GiB of declared f16 data that is never written.
        write_sparse(
            &path,
            &[("w", "F16", &[16384, 32768]), ("ids", "I64", &[1, 77])],
        )
        .unwrap();
        let h = read_header(&path).unwrap();
        assert_eq!(h.tensors["w"].shape, vec![16384, 32768]);
        assert_eq!(h.tensors["w"].dtype, StoredDtype::F16);
        assert_eq!(h.parameter_count(), 16384 * 32768 + 77);
        assert_eq!(h.bytes_at(2), (1 << 30) + 77 * 8);
        assert_eq!(
            h.bytes_at(4),
            (2 << 30) + 77 * 8,
            "floats convert, integers keep their size"
        );
    }

    #[test]
    fn matches_files_written_by_candle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let t =
            candle_core::Tensor::zeros((3, 5), candle_core::DType::BF16, &candle_core::Device::Cpu)
                .unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([("a.b".to_string(), t)]),
            &path,
        )
        .unwrap();
        let h = read_header(&path).unwrap();
        assert_eq!(
            h.tensors["a.b"],
            TensorInfo {
                dtype: StoredDtype::Bf16,
                shape: vec![3, 5]
            }
        );
        assert_eq!(h.file_bytes, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn truncated_and_corrupt_files_are_bad_input_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unet.safetensors");
        write_sparse(&path, &[("w", "F32", &[4, 4])]).unwrap();
        let full = std::fs::read(&path).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            full[..full.len() - 1].to_vec(),
            full[..5].to_vec(),
            b"\xff\xff\xff\xff\xff\xff\xff\x7f{}".to_vec(),
            b"\x08\x00\x00\x00\x00\x00\x00\x00not json".to_vec(),
            br#"0       {"w":{"dtype":"F32","shape":[4,4],"data_offsets":[0,60]}}"#.to_vec(),
        ];
        for (i, bytes) in cases.into_iter().enumerate() {
            let mut bytes = bytes;
            if i == 4 {
                let json_len = (bytes.len() - 8) as u64;
                bytes[..8].copy_from_slice(&json_len.to_le_bytes());
                bytes.extend_from_slice(&[0u8; 64]);
            }
            std::fs::write(&path, &bytes).unwrap();
            let err = read_header(&path).err().unwrap();
            assert_eq!(err.exit_code(), 2, "case {i}");
            let msg = err.to_string();
            assert!(
                msg.contains("unet.safetensors") && msg.contains("truncated or corrupt"),
                "case {i}: {msg}"
            );
        }
    }

    #[test]
    fn pickles_are_refused_with_the_conversion_command() {
        for name in ["diffusion_pytorch_model.bin", "v1-5.ckpt", "x.pt", "y.PTH"] {
            let err = refuse_pickle(Path::new(name)).err().unwrap();
            assert_eq!(err.exit_code(), 2);
            let msg = err.to_string();
            assert!(
                msg.contains("arbitrary code") && msg.contains("safe_serialization=True"),
                "{msg}"
            );
        }
        assert!(refuse_pickle(Path::new("model.safetensors")).is_ok());
        assert!(read_header(Path::new("weights.ckpt")).is_err());
    }
}
