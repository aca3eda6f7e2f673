//! A Wan text-to-video diffusers folder (WanPipeline): transformer/ (WanTransformer3DModel), the
//! Wan causal 3D VAE in vae/, the UMT5 encoder in text_encoder/ and its tokenizer in tokenizer/.
//! Only configs are read. A Wan 2.2 TI2V folder (`expand_timesteps`) also makes image-to-video;
//! a Wan 2.1 image-to-video folder (WanImageToVideoPipeline) makes image-to-video only and adds
//! image_encoder/ (CLIPVisionModel) and image_processor/ (CLIPImageProcessor).

use std::path::Path;

use super::entry::{Family, Kind};
use super::layout::{ComponentPaths, ModelLayout, PredictionType, folder_has_fp16, read_json};
use crate::{Error, Result};

/// Image-to-video for a Wan 2.2 TI2V folder (model_index.json's `expand_timesteps`; it makes
/// text-to-video too) and a WanImageToVideoPipeline folder, text-to-video for the others.
pub(super) fn kind(dir: &Path) -> Kind {
    let takes_images = read_json(dir, "model_index.json").is_ok_and(|index| {
        index.get("_class_name").and_then(serde_json::Value::as_str)
            == Some("WanImageToVideoPipeline")
            || index
                .get("expand_timesteps")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
    });
    if takes_images {
        Kind::Img2vid
    } else {
        Kind::Txt2vid
    }
}

/// model_index.json names a Wan pipeline.
pub(super) fn is_wan(pipeline_class: &str) -> bool {
    pipeline_class.starts_with("Wan")
}

pub(super) fn open(dir: &Path, pipeline_class: String) -> Result<ModelLayout> {
    if pipeline_class != "WanPipeline" && pipeline_class != "WanImageToVideoPipeline" {
        return Err(Error::bad_input(format!(
            "{}: `{pipeline_class}` is not supported yet; pallaidium runs Wan's WanPipeline and \
             WanImageToVideoPipeline folders",
            dir.display()
        )));
    }
    read_json(dir, "transformer/config.json")?;
    read_json(dir, "vae/config.json")?;
    read_json(dir, "text_encoder/config.json")?;
    read_json(dir, "scheduler/scheduler_config.json")?;
    let tokenizer = dir.join("tokenizer/tokenizer.json");
    if !tokenizer.is_file() {
        return Err(Error::bad_input(format!(
            "{}: Wan's UMT5 tokenizer needs tokenizer/tokenizer.json; fetch the model again",
            dir.display()
        )));
    }
    let paths = ComponentPaths::transformer_with_one_encoder(dir);
    Ok(ModelLayout {
        dir: dir.to_path_buf(),
        family: Family::Wan,
        inpainting: false,
        // Flow matching; the scheduler config says so, and no Wan code reads this.
        prediction_type: PredictionType::Epsilon,
        has_fp16_variants: folder_has_fp16(&paths.denoiser),
        paths,
        pipeline_class,
        // Wan 2.1's VAE: 8x spatial (and 4x temporal) compression.
        vae_scale_factor: 8,
        unet_sample_size: None,
        embedded_guidance: None,
    })
}
