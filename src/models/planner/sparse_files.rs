//! Test support: model files whose headers are real and whose bodies are holes (sparse files),
//! so the planner can read full-size models' shapes without their weights, and the 16 GiB
//! unified-memory request the plans are judged against.

use std::io::Write;
use std::path::Path;

use super::{Overrides, PlanRequest};
use crate::device::DeviceMemory;
use crate::vocab::Backend;
use candle_core::DType;

pub const GIB: u64 = 1 << 30;

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A tensor to write: name, dims as ggml orders them, type.
pub type TensorRow = (String, Vec<u64>, (u32, u64, u64));

/// (ggml type id, block elements, block bytes)
pub const Q4_K: (u32, u64, u64) = (12, 256, 144);
pub const Q8_0: (u32, u64, u64) = (8, 32, 34);
pub const F32: (u32, u64, u64) = (0, 1, 4);

/// A GGUF v3 of `tensors` (name, dims as ggml orders them: fastest first, type) whose data is a
/// hole: the header is real, the file sparse.
pub fn sparse_gguf(path: &Path, arch: &str, tensors: &[TensorRow]) {
    let mut h = Vec::new();
    h.extend_from_slice(b"GGUF");
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes());
    gguf_string(&mut h, "general.architecture");
    h.extend_from_slice(&8u32.to_le_bytes());
    gguf_string(&mut h, arch);
    let mut offset = 0u64;
    for (name, dims, (ty, block, bytes)) in tensors {
        gguf_string(&mut h, name);
        h.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        let size = dims.iter().product::<u64>() / block * bytes;
        offset += size.div_ceil(32) * 32;
    }
    while h.len() % 32 != 0 {
        h.push(0);
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&h).unwrap();
    f.set_len(h.len() as u64 + offset).unwrap();
}

/// A safetensors file of bf16 `tensors` with a real header over a sparse body.
pub fn sparse_safetensors(path: &Path, tensors: &[(String, Vec<u64>)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * 2;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let text = serde_json::Value::Object(header).to_string();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(text.len() as u64).to_le_bytes()).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.set_len(8 + text.len() as u64 + offset).unwrap();
}

pub fn mac_16gib(dtype: DType) -> PlanRequest {
    PlanRequest {
        width: 1024,
        height: 1024,
        batch: 1,
        guided: false,
        img2img: false,
        dtype,
        device: Backend::Cpu,
        memory: DeviceMemory::Unified {
            total: 16 * GIB,
            budget: 16 * GIB,
            used: 0,
        },
        budget_cap: Some(16 * GIB),
        overrides: Overrides::default(),
        stock_kernels: false,
        lora: Default::default(),
    }
}
