//! A FLUX.1 diffusers folder (FluxPipeline): transformer/ instead of unet/, a 16-channel VAE,
//! CLIP-L in text_encoder/ and T5 in text_encoder_2/ with their tokenizers. Only configs are read.

use std::path::Path;

use serde_json::Value;

use super::entry::{Defaults, Family};
use super::layout::{ModelLayout, check_tokenizer, read_json};
use super::transformer_layout::transformer_layout;
use crate::{Error, Result};

/// transformer/config.json's `_class_name`, when the folder has one.
pub(super) fn transformer_class(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("transformer/config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("_class_name")?.as_str().map(str::to_owned))
}

/// A FLUX folder: model_index.json names a Flux pipeline, or transformer/config.json is a
/// FluxTransformer2DModel.
pub(super) fn is_flux(dir: &Path, pipeline_class: &str) -> bool {
    if pipeline_class.starts_with("Flux") {
        return true;
    }
    transformer_class(dir).is_some_and(|c| c.starts_with("FluxTransformer"))
}

pub(super) fn open(dir: &Path, pipeline_class: String) -> Result<ModelLayout> {
    let transformer = read_json(dir, "transformer/config.json")?;
    let vae = read_json(dir, "vae/config.json")?;
    read_json(dir, "text_encoder/config.json")?;
    read_json(dir, "text_encoder_2/config.json")?;
    read_json(dir, "scheduler/scheduler_config.json")?;
    check_tokenizer(dir, "tokenizer")?;
    let t5_tokenizer = dir.join("tokenizer_2/tokenizer.json");
    if !t5_tokenizer.is_file() {
        return Err(Error::bad_input(format!(
            "{}: FLUX's T5 tokenizer needs tokenizer_2/tokenizer.json (the file the real repos \
             ship beside spiece.model); fetch the model again",
            dir.display()
        )));
    }
    let embedded_guidance = transformer
        .get("guidance_embeds")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(transformer_layout(
        dir,
        Family::Flux,
        pipeline_class,
        &vae,
        Some(embedded_guidance),
    ))
}

/// A FLUX folder's defaults: dev's (28 steps, guidance 3.5, 512 T5 tokens) when the transformer
/// embeds guidance, schnell's (4 steps, guidance ignored, 256 tokens) otherwise.
pub(super) fn default_params(mut d: Defaults, embedded_guidance: Option<bool>) -> Defaults {
    if embedded_guidance == Some(false) {
        d.steps = 4;
        d.guidance = 0.0;
        d.max_sequence_length = Some(256);
        d.embedded_guidance = Some(false);
    }
    d
}
