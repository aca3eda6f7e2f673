//! A Z-Image diffusers folder (ZImagePipeline): transformer/ (ZImageTransformer2DModel), FLUX's
//! 16-channel VAE, the Qwen3 text encoder in text_encoder/ and its tokenizer (tokenizer.json and
//! the chat template) in tokenizer/. Only configs are read.

use std::path::Path;

use serde_json::Value;

use super::entry::Family;
use super::layout::{ComponentPaths, ModelLayout, PredictionType, folder_has_fp16, read_json};
use crate::{Error, Result};

/// A Z-Image folder: model_index.json names a ZImage pipeline, or transformer/config.json is a
/// ZImageTransformer2DModel.
pub(super) fn is_zimage(dir: &Path, pipeline_class: &str) -> bool {
    if pipeline_class.starts_with("ZImage") {
        return true;
    }
    super::flux_layout::transformer_class(dir).is_some_and(|c| c.starts_with("ZImageTransformer"))
}

pub(super) fn open(dir: &Path, pipeline_class: String) -> Result<ModelLayout> {
    read_json(dir, "transformer/config.json")?;
    let vae = read_json(dir, "vae/config.json")?;
    read_json(dir, "text_encoder/config.json")?;
    read_json(dir, "scheduler/scheduler_config.json")?;
    let tokenizer = dir.join("tokenizer/tokenizer.json");
    if !tokenizer.is_file() {
        return Err(Error::bad_input(format!(
            "{}: Z-Image's Qwen3 tokenizer needs tokenizer/tokenizer.json; fetch the model again",
            dir.display()
        )));
    }
    let vae_blocks = vae
        .get("block_out_channels")
        .and_then(Value::as_array)
        .map_or(4, Vec::len)
        .clamp(1, 8);
    let paths = ComponentPaths::transformer_with_one_encoder(dir);
    Ok(ModelLayout {
        dir: dir.to_path_buf(),
        family: Family::ZImage,
        inpainting: false,
        // Flow matching; no Z-Image code reads this.
        prediction_type: PredictionType::Epsilon,
        has_fp16_variants: folder_has_fp16(&paths.denoiser),
        paths,
        pipeline_class,
        vae_scale_factor: 1u32 << (vae_blocks - 1),
        unet_sample_size: None,
        embedded_guidance: None,
    })
}
