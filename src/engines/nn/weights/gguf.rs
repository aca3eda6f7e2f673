//! GGUF weight files (llama.cpp's format; FLUX transformers and T5 encoders come quantized in it):
//! the file memory-mapped, its header checked, each tensor dequantized when it is asked for and
//! never the whole file at once. `GgufWeights` (gguf/backend.rs) is the `VarBuilder` over it.
//!
//! Every failure a user can cause (not a GGUF, truncated, corrupt, another architecture, a type
//! we do not read, a tensor missing) is `Error::BadInput` naming the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

mod backend;
mod dequant;
mod ggml_type;
mod header;

pub use backend::{GgufWeights, NameMap};
pub use ggml_type::GgmlType;
pub use header::TensorInfo;

/// An open GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: memmap2::Mmap,
    version: u32,
    data_start: u64,
    metadata: HashMap<String, Value>,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    /// Tensors dequantized or handed out so far (how tests see that loading is lazy).
    reads: AtomicU64,
}

/// What a GGUF's weights take: at their stored precision, and once dequantized (for the memory
/// planner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgufFootprint {
    /// The tensors' stored bytes.
    pub stored: u64,
    /// Their values, all tensors together.
    pub elements: u64,
    /// The values of the largest tensor: the transient f32 buffer of a per-layer dequantization.
    pub largest_elements: u64,
}

impl GgufFootprint {
    /// Every tensor dequantized to `dtype`.
    pub fn dequantized(&self, dtype: DType) -> u64 {
        self.elements * dtype.size_in_bytes() as u64
    }

    /// The largest tensor dequantized to `dtype`.
    pub fn largest_dequantized(&self, dtype: DType) -> u64 {
        self.largest_elements * dtype.size_in_bytes() as u64
    }
}

impl GgufFile {
    /// Maps `path` and reads its header; nothing of the tensors' data is read.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it: {e}")))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < 24 {
            return Err(bad(format!(
                "{len} bytes, too short to be a GGUF file (truncated?)"
            )));
        }
        // SAFETY: a read-only mapping; a file changed while mapped is the user's doing, as with
        // every memory-mapped model loader (the safetensors one included).
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(format!("cannot map it: {e}")))?;
        let header = header::parse(&map).map_err(|why| {
            bad(format!(
                "not a valid GGUF file: {why}; download or convert it again"
            ))
        })?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        tracing::debug!(
            path = %path.display(),
            version = header.version,
            tensors = header.tensors.len(),
            "opened GGUF"
        );
        Ok(Self {
            path: path.to_path_buf(),
            map,
            version: header.version,
            data_start: header.data_start,
            metadata: header.metadata,
            tensors: header.tensors,
            index,
            reads: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.architecture` ("flux", "t5encoder", "qwen2", ...), when the file has one.
    pub fn architecture(&self) -> Option<&str> {
        self.metadata_str("general.architecture")
    }

    /// Refuses a file of another architecture than `expected`, naming both.
    pub fn expect_architecture(&self, expected: &str) -> Result<()> {
        match self.architecture() {
            Some(found) if found == expected => Ok(()),
            Some(found) => Err(self.bad(format!(
                "a GGUF of architecture `{found}`, but a `{expected}` model is needed here \
                 (the wrong file?)"
            ))),
            None => Err(self.bad(format!(
                "a GGUF without general.architecture, but a `{expected}` model is needed here"
            ))),
        }
    }

    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A string metadata value (None when absent or not a string).
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Every metadata key, sorted.
    pub fn metadata_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.metadata.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// The tensors, in the file's order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// How many numbered blocks the file holds: the largest N + 1 of tensors named
    /// `{prefix}N.*` (llama.cpp's `blk.`, a T5 encoder's `enc.blk.`), 0 when none.
    pub fn block_count(&self, prefix: &str) -> usize {
        self.tensors
            .iter()
            .filter_map(|t| t.name.strip_prefix(prefix)?.split_once('.'))
            .filter_map(|(n, _)| n.parse::<usize>().ok())
            .map(|n| n + 1)
            .max()
            .unwrap_or(0)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The tensor `name`, or BadInput naming the file.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| self.bad(format!("tensor `{name}` is missing")))
    }

    /// Refuses the file when any tensor is of a type pallaidium cannot dequantize, naming them
    /// all: what a loader calls before building a model from it.
    pub fn check_supported(&self) -> Result<()> {
        let bad: Vec<String> = self
            .tensors
            .iter()
            .filter(|t| !t.ggml.is_supported())
            .map(|t| format!("`{}` ({})", t.name, t.ggml))
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(self.bad(format!(
            "tensors of types pallaidium cannot read: {}; supported: {}",
            bad.join(", "),
            GgmlType::supported_names()
        )))
    }

    /// The stored bytes and dequantized sizes of the whole file.
    pub fn footprint(&self) -> GgufFootprint {
        let mut f = GgufFootprint {
            stored: 0,
            elements: 0,
            largest_elements: 0,
        };
        for t in &self.tensors {
            f.stored += t.bytes;
            f.elements += t.elements();
            f.largest_elements = f.largest_elements.max(t.elements());
        }
        f
    }

    /// How many tensors have been dequantized or handed out as `QTensor`s.
    pub fn tensors_read(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The stored bytes of `info` (one of this file's tensors).
    pub fn raw(&self, info: &TensorInfo) -> &[u8] {
        &self.map[info.start as usize..(info.start + info.bytes) as usize]
    }

    /// `name`'s values as f32, row-major.
    pub fn dequantize_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.supported(name)?;
        let mut out = vec![0f32; info.elements() as usize];
        if !dequant::to_f32(info.ggml, self.raw(info), &mut out) {
            return Err(self.unsupported(info));
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// `name` dequantized into a `dtype` tensor on `device` (F16/BF16 stored as such are copied
    /// exactly, other types go through f32 and are rounded to `dtype` as candle casts).
    pub fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let info = self.supported(name)?;
        let stored = match info.ggml.name {
            "F32" => Some(DType::F32),
            "F16" => Some(DType::F16),
            "BF16" => Some(DType::BF16),
            _ => None,
        };
        let cpu = if stored == Some(dtype) {
            self.reads.fetch_add(1, Ordering::Relaxed);
            Tensor::from_raw_buffer(self.raw(info), dtype, &info.shape, &Device::Cpu)?
        } else {
            let values = self.dequantize_f32(name)?;
            Tensor::from_vec(values, info.shape.as_slice(), &Device::Cpu)?.to_dtype(dtype)?
        };
        // The stored bytes are copied: drop their pages, as the safetensors loader does, so a
        // model is not held twice (file pages and tensors) while it loads.
        super::pages::release_pages(self.raw(info));
        Ok(cpu.to_device(device)?)
    }

    /// `name` as candle's quantized tensor on `device` (for `QMatMul`); its bytes are copied
    /// once, as they are stored.
    pub fn qtensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let info = self.supported(name)?;
        let Some(dtype) = info.ggml.candle() else {
            return Err(self.unsupported(info));
        };
        let data = self.raw(info);
        let storage = if (data.as_ptr() as usize).is_multiple_of(8) {
            QStorage::from_data(std::borrow::Cow::Borrowed(data), device, dtype)?
        } else {
            let copy = aligned_copy(data);
            // SAFETY: `copy` holds data.len() initialised bytes in u64 words.
            let bytes =
                unsafe { std::slice::from_raw_parts(copy.as_ptr().cast::<u8>(), data.len()) };
            QStorage::from_data(std::borrow::Cow::Borrowed(bytes), device, dtype)?
        };
        self.reads.fetch_add(1, Ordering::Relaxed);
        super::pages::release_pages(data);
        Ok(QTensor::new(storage, info.shape.as_slice())?)
    }

    /// `name` as a quantized matmul (candle dequantizes F32/F16/BF16 ones at once).
    pub fn qmatmul(&self, name: &str, device: &Device) -> Result<QMatMul> {
        Ok(QMatMul::from_qtensor(self.qtensor(name, device)?)?)
    }

    /// The header as candle's `gguf_file::Content`, for candle's quantized models
    /// (`quantized_llama::ModelWeights::from_gguf` and friends), which then read the tensors
    /// through a reader of this file: this file's checks, candle's model code. Refuses a file
    /// holding a type pallaidium cannot read.
    pub fn candle_content(&self) -> Result<gguf_file::Content> {
        self.check_supported()?;
        let mut tensor_infos = HashMap::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let Some(ggml_dtype) = t.ggml.candle() else {
                return Err(self.unsupported(t));
            };
            let info = gguf_file::TensorInfo {
                ggml_dtype,
                shape: candle_core::Shape::from(t.shape.clone()),
                offset: t.start - self.data_start,
            };
            tensor_infos.insert(t.name.clone(), info);
        }
        Ok(gguf_file::Content {
            magic: if self.version == 2 {
                gguf_file::VersionedMagic::GgufV2
            } else {
                gguf_file::VersionedMagic::GgufV3
            },
            metadata: self.metadata.clone(),
            tensor_infos,
            tensor_data_offset: self.data_start,
        })
    }

    fn supported(&self, name: &str) -> Result<&TensorInfo> {
        let info = self.tensor(name)?;
        if info.ggml.is_supported() {
            Ok(info)
        } else {
            Err(self.unsupported(info))
        }
    }

    fn unsupported(&self, info: &TensorInfo) -> Error {
        self.bad(format!(
            "tensor `{}` is stored as {}, which pallaidium cannot read; supported: {}",
            info.name,
            info.ggml,
            GgmlType::supported_names()
        ))
    }

    fn bad(&self, why: String) -> Error {
        Error::bad_input(format!("{}: {why}", self.path.display()))
    }
}

/// The stored bytes and dequantized sizes of the GGUF at `path` (its header only is read).
pub fn footprint(path: &Path) -> Result<GgufFootprint> {
    GgufFile::open(path).map(|f| f.footprint())
}

/// `bytes` copied into 8-byte aligned words (no ggml block needs more), for readers that cast.
fn aligned_copy(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: `words` has at least bytes.len() bytes; the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr().cast::<u8>(), bytes.len());
    }
    words
}

#[cfg(test)]
mod tests;
