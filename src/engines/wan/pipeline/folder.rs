//! What a Wan folder is, read from its configs before any weights: model_index.json's switches
//! (`expand_timesteps`; two-transformer Wan 2.2 A14B refused), the transformer's channels against
//! the VAE's (text-to-video, TI2V's first frame, or Wan 2.1 I2V's extra channels), the scheduler
//! config, and the image encoder's for I2V.

use std::path::Path;

use super::conditioning;
use crate::engines::wan::schedule::WanSchedulerConfig;
use crate::engines::wan::transformer::WanTransformerConfig;
use crate::engines::wan::vae::WanVaeConfig;
use crate::error::{Error, Result};

/// model_index.json's Wan switches: `expand_timesteps` (Wan 2.2 TI2V); a second transformer
/// (Wan 2.2 A14B's `transformer_2` with `boundary_ratio`) is refused.
pub fn expands_timesteps(dir: &Path) -> Result<bool> {
    let path = dir.join("model_index.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let index: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(format!("{}: not valid JSON: {e}", path.display())))?;
    let second = index
        .get("transformer_2")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|a| a.iter().any(|v| !v.is_null()));
    let boundary = index.get("boundary_ratio").is_some_and(|v| !v.is_null());
    if second || boundary {
        return Err(Error::bad_input(format!(
            "{}: a two-transformer Wan 2.2 pipeline (transformer_2, boundary_ratio) is not \
             supported yet; Wan 2.1 T2V and Wan 2.2 TI2V folders are",
            path.display()
        )));
    }
    Ok(index
        .get("expand_timesteps")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false))
}

/// How a Wan model takes an init image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageInput {
    /// None: text-to-video only (Wan 2.1 T2V).
    None,
    /// Wan 2.2 TI2V: the image's latent frame stands for the first; text-to-video without one.
    FirstFrame,
    /// Wan 2.1 I2V: the image's latents and a mask as extra input channels, with the CLIP image
    /// features (`image_dim`); it needs an image.
    Channels,
}

/// Reads the configs a Wan job needs before its weights, with the engine's checks.
pub fn check_configs(dir: &Path) -> Result<()> {
    read_configs(dir).map(|_| ())
}

/// What the folder at `dir` does with an init image (its configs read and checked).
pub fn image_input(dir: &Path) -> Result<ImageInput> {
    read_configs(dir)
}

/// A text-to-video job on the folder at `dir`: refused for Wan 2.1 image-to-video models,
/// which make video from an image only.
pub fn check_text_to_video(dir: &Path) -> Result<()> {
    if image_input(dir)? == ImageInput::Channels {
        return Err(Error::bad_input(format!(
            "{}: this Wan 2.1 image-to-video model makes video from an image only: pass \
             --init-image PATH (img2vid)",
            dir.display()
        )));
    }
    Ok(())
}

/// Why a model that is not first-last-frame refuses a last image.
pub(super) const NO_LAST_FRAME: &str = "this Wan model takes no last frame: --last-image needs a \
     Wan 2.1 first-last-frame model (FLF2V, e.g. Wan2.1-FLF2V-14B-720P-diffusers, whose \
     transformer has pos_embed_seq_len); Wan 2.1 I2V and Wan 2.2 TI2V start from --init-image \
     only";
/// Why a first-last-frame model refuses a job without a last image.
pub(super) const NEEDS_LAST_FRAME: &str = "this Wan 2.1 first-last-frame model (FLF2V) makes a \
     clip between two images: pass --last-image PATH with --init-image";

/// An img2vid job's frames on the folder at `dir`: a first-last-frame model (FLF2V: Wan 2.1
/// I2V channels and an image embedder over two images' CLIP tokens, `pos_embed_seq_len`) needs
/// the last image (`last`), the others take none.
pub fn check_image_frames(dir: &Path, last: bool) -> Result<()> {
    let pairs = read_configs(dir)? == ImageInput::Channels
        && WanTransformerConfig::load(&dir.join("transformer/config.json"))?
            .pos_embed_seq_len
            .is_some();
    let why = match (last, pairs) {
        (true, false) => NO_LAST_FRAME,
        (false, true) => NEEDS_LAST_FRAME,
        _ => return Ok(()),
    };
    Err(Error::bad_input(format!("{}: {why}", dir.display())))
}

fn read_configs(dir: &Path) -> Result<ImageInput> {
    let expand = expands_timesteps(dir)?;
    let transformer = WanTransformerConfig::load(&dir.join("transformer/config.json"))?;
    let vae = WanVaeConfig::read(&dir.join("vae"))?;
    let input = check_channels(dir, &transformer, &vae, expand)?;
    WanSchedulerConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
    if input == ImageInput::Channels {
        conditioning::check_image_configs(dir, &transformer)?;
    }
    Ok(input)
}

/// The transformer takes the VAE's channels (text-to-video, TI2V), or those plus the mask's
/// (one a frame of a latent frame) and the image's latents (Wan 2.1 I2V).
pub(super) fn check_channels(
    dir: &Path,
    t: &WanTransformerConfig,
    vae: &WanVaeConfig,
    expand: bool,
) -> Result<ImageInput> {
    let z = vae.z_dim;
    let input = match t.in_channels {
        n if n == z && expand => Some(ImageInput::FirstFrame),
        n if n == z => Some(ImageInput::None),
        n if n == 2 * z + vae.temporal_ratio() && !expand => Some(ImageInput::Channels),
        _ => None,
    };
    match input {
        Some(input) if t.out_channels == z => Ok(input),
        _ => Err(Error::bad_input(format!(
            "{}: the VAE has {z} latent channels but the transformer takes {} and makes {}; the \
             folder mixes models",
            dir.display(),
            t.in_channels,
            t.out_channels
        ))),
    }
}
