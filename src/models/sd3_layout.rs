//! A Stable Diffusion 3 / 3.5 diffusers folder (StableDiffusion3Pipeline): transformer/ instead of
//! unet/, a 16-channel VAE, CLIP-L in text_encoder/, OpenCLIP bigG in text_encoder_2/ and T5 in
//! text_encoder_3/ with their tokenizers. Only configs are read.

use std::path::Path;

use serde_json::Value;

use super::entry::{Defaults, Family};
use super::layout::{ModelLayout, check_tokenizer, read_json};
use super::transformer_layout::transformer_layout;
use crate::{Error, Result};

/// An SD 3 folder: model_index.json names a StableDiffusion3 pipeline, or transformer/config.json
/// is an SD3Transformer2DModel.
pub(super) fn is_sd3(dir: &Path, pipeline_class: &str) -> bool {
    if pipeline_class.starts_with("StableDiffusion3") {
        return true;
    }
    transformer_config(dir)
        .and_then(|v| v.get("_class_name")?.as_str().map(str::to_owned))
        .is_some_and(|c| c.starts_with("SD3Transformer"))
}

fn transformer_config(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("transformer/config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

pub(super) fn open(dir: &Path, pipeline_class: String) -> Result<ModelLayout> {
    read_json(dir, "transformer/config.json")?;
    let vae = read_json(dir, "vae/config.json")?;
    read_json(dir, "text_encoder/config.json")?;
    read_json(dir, "text_encoder_2/config.json")?;
    read_json(dir, "scheduler/scheduler_config.json")?;
    check_tokenizer(dir, "tokenizer")?;
    check_tokenizer(dir, "tokenizer_2")?;
    // T5 may be left out (`--no-t5`); when present its tokenizer must be readable.
    if dir.join("text_encoder_3").is_dir() && !dir.join("tokenizer_3/tokenizer.json").is_file() {
        return Err(Error::bad_input(format!(
            "{}: SD 3.5's T5 tokenizer needs tokenizer_3/tokenizer.json (the file the real repos \
             ship beside spiece.model); fetch the model again, or run with --no-t5",
            dir.display()
        )));
    }
    Ok(transformer_layout(
        dir,
        Family::Sd3,
        pipeline_class,
        &vae,
        None,
    ))
}

/// A folder's defaults: Medium's (40 steps, CFG 4.5) when the transformer has MMDiT-X blocks,
/// Large's (28 steps, CFG 3.5) otherwise (the family's).
pub(super) fn default_params(mut d: Defaults, dir: &Path) -> Defaults {
    let dual = transformer_config(dir)
        .and_then(|v| {
            v.get("dual_attention_layers")?
                .as_array()
                .map(|a| !a.is_empty())
        })
        .unwrap_or(false);
    if dual {
        d.steps = 40;
        d.guidance = 4.5;
    }
    d
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use crate::models::{Family, ModelLayout, Registry};
    use crate::vocab::Scheduler;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn an_sd3_folder_is_detected_with_medium_defaults() {
        let layout = ModelLayout::open(&fixture("sd3-tiny")).unwrap();
        assert_eq!(layout.family, Family::Sd3);
        assert_eq!(layout.vae_scale_factor, 8);
        let d = layout.default_params();
        // MMDiT-X blocks: Medium's 40 steps at CFG 4.5.
        assert_eq!((d.steps, d.guidance), (40, 4.5));
        assert_eq!(d.scheduler, Scheduler::FlowEuler);
        assert_eq!(d.max_sequence_length, Some(256));
        assert_eq!((d.width, d.height), (1024, 1024));
    }

    #[test]
    fn the_registry_has_the_three_sd35_models_gated_with_their_defaults() {
        let reg = Registry::shipped().unwrap();
        for (id, steps, guidance) in [
            ("sd35-medium", 40, 4.5),
            ("sd35-large", 28, 3.5),
            ("sd35-large-turbo", 4, 0.0),
        ] {
            let e = reg.get(id).unwrap();
            assert_eq!(e.family, Family::Sd3, "{id}");
            assert!(e.gated, "{id}");
            assert_eq!(e.license, "stabilityai-ai-community", "{id}");
            assert_eq!((e.defaults.steps, e.defaults.guidance), (steps, guidance));
            assert_eq!(e.defaults.scheduler, Scheduler::FlowEuler);
        }
    }
}
