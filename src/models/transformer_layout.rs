//! What every diffusers folder with a transformer/ instead of a unet/ shares (FLUX, SD 3.5): the
//! component paths, the VAE's scale factor from its blocks, the fp16 variants of the transformer.

use std::path::Path;

use serde_json::Value;

use super::entry::Family;
use super::layout::{ComponentPaths, ModelLayout, PredictionType, folder_has_fp16};

/// The layout of a transformer folder of `family` whose VAE config is `vae`.
pub(super) fn transformer_layout(
    dir: &Path,
    family: Family,
    pipeline_class: String,
    vae: &Value,
    embedded_guidance: Option<bool>,
) -> ModelLayout {
    let vae_blocks = vae
        .get("block_out_channels")
        .and_then(Value::as_array)
        .map_or(4, Vec::len)
        .clamp(1, 8);
    let paths = ComponentPaths {
        denoiser: dir.join("transformer"),
        vae: dir.join("vae"),
        text_encoder: dir.join("text_encoder"),
        text_encoder_2: Some(dir.join("text_encoder_2")),
        tokenizer: dir.join("tokenizer"),
        tokenizer_2: Some(dir.join("tokenizer_2")),
        scheduler: dir.join("scheduler"),
    };
    ModelLayout {
        dir: dir.to_path_buf(),
        family,
        inpainting: false,
        // Flow matching predicts a velocity; the UNet vocabulary has no word for it and no
        // transformer family reads this.
        prediction_type: PredictionType::Epsilon,
        has_fp16_variants: folder_has_fp16(&paths.denoiser),
        paths,
        pipeline_class,
        vae_scale_factor: 1u32 << (vae_blocks - 1),
        unet_sample_size: None,
        embedded_guidance,
    }
}
