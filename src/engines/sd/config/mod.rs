//! diffusers / transformers `config.json` files mapped onto typed structs. Missing keys take the
//! defaults of diffusers' (and transformers') constructors; unknown keys are ignored, so fine-tunes
//! that carry extra keys still load. Values given as "one for all blocks or a list" are resolved into
//! one entry per down block here, so the model code never branches on the JSON's shape.

use serde::Deserialize;

use crate::engines::config_check::{bad_config, read_config, unsupported};

mod unet;
mod vae;

pub use crate::engines::nn::text::clip_config::TextEncoderConfig;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_config_file_is_bad_input() {
        let err =
            UNetConfig::load(std::path::Path::new("/nonexistent/unet/config.json")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("config.json"));
    }
}
