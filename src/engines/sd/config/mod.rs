//! diffusers / transformers `config.json` files mapped onto typed structs. Missing keys take the
//! defaults of diffusers' (and transformers') constructors; unknown keys are ignored, so fine-tunes
//! that carry extra keys still load. Values given as "one for all blocks or a list" are resolved into
//! one entry per down block here, so the model code never branches on the JSON's shape.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

mod text_encoder;
mod unet;
mod vae;

pub use text_encoder::TextEncoderConfig;
pub use unet::UNetConfig;
pub use vae::VaeConfig;

/// A JSON value that is either one number for every block or a list with one per block.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(usize),
    Many(Vec<usize>),
}

impl OneOrMany {
    fn per_block(&self, blocks: usize, key: &str) -> std::result::Result<Vec<usize>, String> {
        match self {
            Self::One(v) => Ok(vec![*v; blocks]),
            Self::Many(v) if v.len() == blocks => Ok(v.clone()),
            Self::Many(v) => Err(format!(
                "`{key}` has {} entries but the model has {blocks} down blocks",
                v.len()
            )),
        }
    }
}

/// `sample_size` is an int or `[height, width]`; the first is what diffusers' tiling uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SampleSize {
    One(usize),
    Many(Vec<usize>),
}

impl SampleSize {
    fn first(&self) -> Option<usize> {
        match self {
            Self::One(v) => Some(*v),
            Self::Many(v) => v.first().copied(),
        }
    }
}

fn four() -> usize {
    4
}
fn three() -> usize {
    3
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn f_one() -> f64 {
    1.0
}
fn silu() -> String {
    "silu".to_string()
}

fn unsupported(key: &str, value: impl std::fmt::Debug) -> String {
    format!("`{key}` = {value:?} is not supported by this engine")
}

fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "cannot read {}: {e}; a diffusers model folder needs this config.json beside its weights",
            path.display()
        ))
    })
}

fn bad_config(path: &Path, why: &str) -> Error {
    Error::bad_input(format!(
        "{} is not a usable diffusers config: {why}",
        path.display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_config_file_is_bad_input() {
        let err = UNetConfig::load(Path::new("/nonexistent/unet/config.json")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("config.json"));
    }
}
