//! LTX-Video 0.9.x (Lightricks; diffusers' LTXPipeline): a T5-conditioned video DiT over
//! 1x1x1-patched latents of a 32x / 8x causal video VAE.
//! - `vae`: `AutoencoderKLLTXVideo`, encoder and decoder (timestep-conditioned from 0.9.1);
//! - `transformer`: `LTXVideoTransformer3DModel`;
//! - `pipeline`: `LTXPipeline.__call__` (text-to-video).

pub mod pipeline;
pub mod transformer;
pub mod vae;

use std::path::Path;

use crate::error::{Error, Result};

/// Reads `<dir>/config.json` as `T` and runs `check` on it; both failures are bad input naming
/// the file and `what` it should have been.
pub(crate) fn read_config<T: serde::de::DeserializeOwned>(
    dir: &Path,
    what: &str,
    check: impl FnOnce(&T) -> std::result::Result<(), String>,
) -> Result<T> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let cfg: T = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(format!("{}: not {what} config: {e}", path.display())))?;
    check(&cfg).map_err(|m| Error::bad_input(format!("{}: {m}", path.display())))?;
    Ok(cfg)
}
