//! An LTX-Video 0.9.x diffusers folder (LTXPipeline, or LTXImageToVideoPipeline over the same
//! components): transformer/ (LTXVideoTransformer3DModel), vae/ (AutoencoderKLLTXVideo),
//! text_encoder/ (T5 v1.1 encoder) with tokenizer/, scheduler/ (FlowMatchEulerDiscreteScheduler).
//! Only configs are read. The same weights make text-to-video and image-to-video.

use std::path::Path;

use super::entry::Family;
use super::layout::{ComponentPaths, ModelLayout, PredictionType, folder_has_fp16, read_json};
use crate::{Error, Result};

/// model_index.json names an LTX-Video pipeline.
pub(super) fn is_ltx(pipeline_class: &str) -> bool {
    pipeline_class.starts_with("LTX")
}

pub(super) fn open(dir: &Path, pipeline_class: String) -> Result<ModelLayout> {
    if pipeline_class != "LTXPipeline" && pipeline_class != "LTXImageToVideoPipeline" {
        return Err(Error::bad_input(format!(
            "{}: `{pipeline_class}` is not supported yet; pallaidium runs LTX-Video's LTXPipeline \
             and LTXImageToVideoPipeline folders (0.9.0 to 0.9.5: Lightricks/LTX-Video, \
             Lightricks/LTX-Video-0.9.1)",
            dir.display()
        )));
    }
    read_json(dir, "transformer/config.json")?;
    read_json(dir, "vae/config.json")?;
    read_json(dir, "text_encoder/config.json")?;
    read_json(dir, "scheduler/scheduler_config.json")?;
    if !dir.join("tokenizer/tokenizer.json").is_file() {
        return Err(Error::bad_input(format!(
            "{}: LTX-Video's T5 tokenizer needs tokenizer/tokenizer.json; fetch the model again \
             (or write it with transformers: T5TokenizerFast.from_pretrained(dir).save_pretrained(dir))",
            dir.display()
        )));
    }
    let paths = ComponentPaths::transformer_with_one_encoder(dir);
    Ok(ModelLayout {
        dir: dir.to_path_buf(),
        family: Family::Ltx,
        inpainting: false,
        // Flow matching; the scheduler config says so, and no LTX code reads this.
        prediction_type: PredictionType::Epsilon,
        has_fp16_variants: folder_has_fp16(&paths.denoiser),
        paths,
        pipeline_class,
        // LTX-Video's VAE: 32x spatial (and 8x temporal) compression.
        vae_scale_factor: 32,
        unet_sample_size: None,
        embedded_guidance: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn an_ltx_folder_opens_as_image_and_text_to_video() {
        let layout = ModelLayout::open(&fixture("ltx-tiny")).unwrap();
        assert_eq!(layout.family, Family::Ltx);
        assert_eq!(layout.kind(), super::super::entry::Kind::Img2vid);
        let d = layout.default_params();
        assert_eq!((d.frames, d.fps, d.guidance), (Some(161), Some(25), 3.0));
    }

    #[test]
    fn other_ltx_pipelines_are_refused_by_name() {
        let err = open(Path::new("/x"), "LTXConditionPipeline".into()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("LTXConditionPipeline"), "{err}");
    }
}
