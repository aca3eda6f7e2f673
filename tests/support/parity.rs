//! What every parity test needs: reference files, a relative difference, id lists from JSON.
//! Included with `#[path = "support/parity.rs"] mod parity;`; not every test uses every helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

/// Tensors of a reference safetensors file (f32, on the CPU).
pub fn reference_tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("reference {}: {e}", path.display()))
}

pub fn reference_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reference {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("reference {}: {e}", path.display()))
}

pub fn get<'a>(map: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    map.get(key)
        .unwrap_or_else(|| panic!("reference tensor {key} missing"))
}

/// max |ours - reference| / max |reference|, ours converted to f32 first.
pub fn rel_diff(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.dims(), reference.dims(), "shapes differ");
    let ours = ours.to_dtype(DType::F32).unwrap();
    let reference = reference.to_dtype(DType::F32).unwrap();
    let diff = (&ours - &reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    let scale = reference.abs().unwrap().max_all().unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.to_scalar::<f32>().unwrap().max(1e-12)
}

/// Fails unless the relative difference is within `tol`; prints it either way (`--nocapture`).
pub fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, tol: f32) {
    let d = rel_diff(ours, reference);
    eprintln!("{what}: relative difference {d:e}");
    assert!(d <= tol, "{what}: relative difference {d:e} > {tol:e}");
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an id list: {v}"))
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}
