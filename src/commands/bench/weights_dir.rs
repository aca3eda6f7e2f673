//! The on-disk random-weight models `bench image` loads: full-size configurations in diffusers
//! layout under `PALLAIDIUM_HOME/bench-models/<id>/`, written once (atomically: a temporary
//! folder renamed into place) so load time can be measured on real memory-mapped files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::configs::BenchModel;
use super::random::build_recorded;
use crate::engines::nn::text::clip::TextEncoder;
use crate::engines::sd::config::{TextEncoderConfig, UNetConfig, VaeConfig};
use crate::engines::sd::unet::UNet;
use crate::engines::sd::vae::Vae;
use crate::{Error, Result};

/// Written last; its presence means the folder is complete.
const MARKER: &str = "bench-model.json";

/// The real CLIP BPE vocabulary (the test fixture), so tokenization costs what it really costs.
const TOKENIZER: [(&str, &str); 4] = [
    (
        "vocab.json",
        include_str!("../../../tests/fixtures/clip-tokenizer/vocab.json"),
    ),
    (
        "merges.txt",
        include_str!("../../../tests/fixtures/clip-tokenizer/merges.txt"),
    ),
    (
        "tokenizer_config.json",
        include_str!("../../../tests/fixtures/clip-tokenizer/tokenizer_config.json"),
    ),
    (
        "special_tokens_map.json",
        include_str!("../../../tests/fixtures/clip-tokenizer/special_tokens_map.json"),
    ),
];

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::bad_input(format!("cannot write {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| io(path, e))
}

fn bad_config(id: &str, e: String) -> Error {
    Error::bad_input(format!("bench config for {id}: {e}"))
}

fn save(tensors: Vec<(String, Tensor)>, path: &Path) -> Result<u64> {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    let bytes = map.values().map(|t| t.elem_count() as u64 * 4).sum();
    candle_core::safetensors::save(&map, path)?;
    Ok(bytes)
}

/// The model folder, written first if missing. Returns it and whether it was written now.
pub fn ensure(model: &BenchModel, home: &Path) -> Result<(PathBuf, bool)> {
    let dir = home.join("bench-models").join(model.id);
    if dir.join(MARKER).is_file() {
        return Ok((dir, false));
    }
    let tmp =
        home.join("bench-models")
            .join(format!(".{}.partial-{}", model.id, std::process::id()));
    let _span = tracing::info_span!("write_bench_model", dir = %dir.display()).entered();
    let result = write_all(model, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        // An incomplete earlier attempt (no marker): ours to replace.
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    Ok((dir, true))
}

fn write_all(model: &BenchModel, dir: &Path) -> Result<()> {
    let id = model.id;
    write(&dir.join("model_index.json"), model.model_index)?;
    write(
        &dir.join("scheduler/scheduler_config.json"),
        model.scheduler,
    )?;
    let mut encoders = vec![("text_encoder", "tokenizer", model.text_encoder)];
    if let Some(t2) = model.text_encoder_2 {
        encoders.push(("text_encoder_2", "tokenizer_2", t2));
    }
    let mut total = 0u64;
    for (folder, tok, text) in encoders {
        write(&dir.join(folder).join("config.json"), text)?;
        for (name, body) in TOKENIZER {
            write(&dir.join(tok).join(name), body)?;
        }
        let config = TextEncoderConfig::from_json(text).map_err(|e| bad_config(id, e))?;
        let projection = config
            .architectures
            .iter()
            .any(|a| a.ends_with("WithProjection"));
        let absent: &[&str] = if projection {
            &[]
        } else {
            &["text_projection.weight"]
        };
        let tensors = build_recorded(absent, |vb| TextEncoder::new(vb, config))?;
        total += save(tensors, &dir.join(folder).join("model.safetensors"))?;
    }
    write(&dir.join("vae/config.json"), model.vae)?;
    let vae = VaeConfig::from_json(model.vae).map_err(|e| bad_config(id, e))?;
    let tensors = build_recorded(&[], |vb| Vae::new(vb, vae, Default::default()))?;
    total += save(
        tensors,
        &dir.join("vae/diffusion_pytorch_model.safetensors"),
    )?;
    write(&dir.join("unet/config.json"), model.unet)?;
    let unet = UNetConfig::from_json(model.unet).map_err(|e| bad_config(id, e))?;
    let tensors = build_recorded(&[], |vb| UNet::new(vb, unet, Default::default()))?;
    total += save(
        tensors,
        &dir.join("unet/diffusion_pytorch_model.safetensors"),
    )?;
    let marker = serde_json::json!({
        "model": id,
        "weights": "random (layer init hints), f32",
        "bytes": total,
        "written_by": format!("pallaidium {}", env!("CARGO_PKG_VERSION")),
    });
    write(&dir.join(MARKER), &marker.to_string())
}
