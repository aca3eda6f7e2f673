//! What every parity test needs: reference files, a relative difference, id lists from JSON.
//! Included with `#[path = "../support/parity.rs"] mod parity;` in a test binary\'s main.rs; not every test uses every helper.
//! Every difference here is infinite when either side holds a NaN or an infinity
//! (`pallaidium::engines::nn::compare`), so no tolerance passes a broken output.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::nn::compare;

/// Mean |diff| on the 0-255 scale a whole image may differ from diffusers' by (parity_pipeline,
/// cli_parity).
pub const IMAGE_TOL_255: f64 = 1.0;
/// max |diff| / max |reference| a network's output may differ from the reference's by.
pub const TENSOR_REL_TOL: f32 = 1e-4;

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

/// A reference JSON written by Python's json, which writes -Infinity/NaN (e.g. a scheduler's
/// lambda_min_clipped): those values read as null; the tests need other keys.
pub fn reference_json_lenient(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reference {}: {e}", path.display()));
    let text = text
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("reference {}: {e}", path.display()))
}

pub fn get<'a>(map: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    map.get(key)
        .unwrap_or_else(|| panic!("reference tensor {key} missing"))
}

/// max |ours - reference| / max |reference|, in f32 whatever either is stored in; infinite on
/// any NaN or infinity.
pub fn rel_diff(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.dims(), reference.dims(), "shapes differ");
    compare::max_rel_diff(ours, reference).unwrap()
}

/// Fails unless the relative difference is within `tol`; prints it either way (`--nocapture`).
pub fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, tol: f32) {
    let d = rel_diff(ours, reference);
    eprintln!("{what}: relative difference {d:e}");
    assert!(d <= tol, "{what}: relative difference {d:e} > {tol:e}");
}

/// Mean |a - b| over two float images in [0, 1], on the 0-255 scale; infinite on any NaN or
/// infinity.
pub fn mean_abs_diff_255(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "image sizes differ");
    let mut total = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        if !(x.is_finite() && y.is_finite()) {
            return f64::INFINITY;
        }
        total += (f64::from(x) - f64::from(y)).abs();
    }
    total * 255.0 / a.len().max(1) as f64
}

/// Our 8-bit RGB pixels against diffusers' float image (..., h, w, 3) in [0, 1]: mean |diff| on
/// the 0-255 scale, infinite on any NaN or infinity in the reference.
pub fn image_mean_abs_diff(ours: &[u8], reference: &Tensor) -> f64 {
    let ours: Vec<f32> = ours.iter().map(|&v| f32::from(v) / 255.0).collect();
    mean_abs_diff_255(&ours, &image_values(reference))
}

/// A reference tensor's values in f32, flattened.
pub fn image_values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an id list: {v}"))
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

/// The first word of a reference JSON string (a file name followed by how it was made).
pub fn first_word(v: &serde_json::Value) -> Option<String> {
    v.as_str()?.split_whitespace().next().map(str::to_owned)
}

/// Every `reference/pipeline_NAME.json` of a fixture model folder, by NAME, sorted.
pub fn pipeline_references(model_dir: &Path) -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(model_dir.join("reference"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name
                .strip_prefix("pipeline_")?
                .strip_suffix(".json")?
                .to_owned();
            Some((stem, reference_json_lenient(&e.path())))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The image (h, w, 3) of `reference/pipeline_NAME.safetensors`.
pub fn pipeline_image(model_dir: &Path, name: &str) -> Tensor {
    let path = model_dir.join(format!("reference/pipeline_{name}.safetensors"));
    get(&reference_tensors(&path), "image").clone()
}

/// A copy of a fixture model folder (links to its components) whose scheduler config is the one
/// a reference overrode, written as diffusers used it.
pub fn with_scheduler(
    model_dir: &Path,
    config: &serde_json::Value,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(model_dir.file_name().unwrap());
    std::fs::create_dir_all(dir.join("scheduler")).unwrap();
    for entry in std::fs::read_dir(model_dir).unwrap().flatten() {
        let name = entry.file_name();
        if name != "scheduler" {
            std::os::unix::fs::symlink(entry.path(), dir.join(&name)).unwrap();
        }
    }
    std::fs::write(
        dir.join("scheduler/scheduler_config.json"),
        config.to_string(),
    )
    .unwrap();
    (tmp, dir)
}

/// Engine switches for parity with diffusers' GGUF loads: quantized matrices dequantized with
/// diffusers' own arithmetic (`PALLAIDIUM_GGUF_MATMUL=dequant`), not the CPU's 8-bit default.
pub fn exact_gguf_switches() -> pallaidium::engines::EngineSwitches {
    pallaidium::engines::EngineSwitches {
        gguf_matmul: Some(pallaidium::engines::flux::transformer::GgufMatmul::Dequant),
        ..Default::default()
    }
}

/// Mean |a - b| over every 8-bit value of two images of the same size and colour type, in levels
/// (1 = 1/255).
pub fn image_levels_diff(a: &image::DynamicImage, b: &image::DynamicImage) -> f64 {
    assert_eq!(
        (a.width(), a.height(), a.color()),
        (b.width(), b.height(), b.color())
    );
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .sum();
    sum / a.len() as f64
}
