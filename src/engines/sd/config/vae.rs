//! `vae/config.json` (diffusers' AutoencoderKL).

use std::path::Path;

use serde::Deserialize;

use super::{SampleSize, bad_config, four, one, read_config, silu, three, unsupported, yes};
use crate::engines::config_check as check;
use crate::error::Result;

fn vae_down_blocks() -> Vec<String> {
    vec!["DownEncoderBlock2D".to_string()]
}
fn vae_up_blocks() -> Vec<String> {
    vec!["UpDecoderBlock2D".to_string()]
}
fn vae_channels() -> Vec<usize> {
    vec![64]
}
fn vae_sample() -> usize {
    32
}
fn sd_scaling() -> f64 {
    0.18215
}
fn groups32_plain() -> usize {
    32
}

/// `vae/config.json` as written by diffusers' AutoencoderKL.
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default = "vae_down_blocks")]
    pub down_block_types: Vec<String>,
    #[serde(default = "vae_up_blocks")]
    pub up_block_types: Vec<String>,
    #[serde(default = "vae_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "silu")]
    pub act_fn: String,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "groups32_plain")]
    pub norm_num_groups: usize,
    #[serde(default = "vae_sample", deserialize_with = "sample_size_first")]
    pub sample_size: usize,
    #[serde(default = "sd_scaling")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "yes")]
    pub force_upcast: bool,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
}

fn sample_size_first<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<usize, D::Error> {
    let s = SampleSize::deserialize(d)?;
    s.first()
        .ok_or_else(|| serde::de::Error::custom("sample_size is an empty list"))
}

impl VaeConfig {
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let c: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if c.block_out_channels.is_empty()
            || c.down_block_types.len() != c.block_out_channels.len()
            || c.up_block_types.len() != c.block_out_channels.len()
        {
            return Err(
                "down_block_types, up_block_types and block_out_channels must agree".into(),
            );
        }
        if let Some(t) = c
            .down_block_types
            .iter()
            .find(|t| *t != "DownEncoderBlock2D")
        {
            return Err(unsupported("down_block_types", t));
        }
        if let Some(t) = c.up_block_types.iter().find(|t| *t != "UpDecoderBlock2D") {
            return Err(unsupported("up_block_types", t));
        }
        if c.act_fn != "silu" {
            return Err(unsupported("act_fn", &c.act_fn));
        }
        c.check_sizes()?;
        Ok(c)
    }

    /// The values the VAE divides or indexes by: channels into groups, latents by the scaling
    /// factor, tiles by the sample size.
    fn check_sizes(&self) -> check::Check {
        check::positive(&[
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("latent_channels", self.latent_channels),
            ("norm_num_groups", self.norm_num_groups),
            ("layers_per_block", self.layers_per_block),
            ("sample_size", self.sample_size),
        ])?;
        check::all_positive("block_out_channels", &self.block_out_channels)?;
        for (i, &ch) in self.block_out_channels.iter().enumerate() {
            check::multiple_of(
                &format!("block_out_channels[{i}]"),
                ch,
                "norm_num_groups",
                self.norm_num_groups,
            )?;
        }
        if !self.scaling_factor.is_finite() || self.scaling_factor == 0.0 {
            return Err(format!(
                "`scaling_factor` = {}: latents are divided by it, so it must be a non-zero number",
                self.scaling_factor
            ));
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = read_config(path)?;
        Self::from_json(&text).map_err(|e| bad_config(path, &e))
    }

    /// Pixels per latent along each side (8 for every SD VAE).
    pub fn downscale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vae_config_defaults_and_list_sample_size() {
        let c = VaeConfig::from_json(r#"{"block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"],
            "sample_size": [512, 512], "scaling_factor": 0.13025}"#)
        .unwrap();
        assert_eq!(c.sample_size, 512);
        assert_eq!(c.downscale_factor(), 8);
        assert_eq!(c.latent_channels, 4);
        assert!(c.force_upcast && c.use_quant_conv && c.mid_block_add_attention);
        assert_eq!(c.shift_factor, None);
        for (json, key) in [
            (r#"{"norm_num_groups": 0}"#, "`norm_num_groups` = 0"),
            (
                r#"{"norm_num_groups": 48}"#,
                "not a multiple of `norm_num_groups` = 48",
            ),
            (
                r#"{"block_out_channels": [0]}"#,
                "`block_out_channels`[0] = 0",
            ),
            (r#"{"latent_channels": 0}"#, "`latent_channels` = 0"),
            (r#"{"sample_size": 0}"#, "`sample_size` = 0"),
            (r#"{"scaling_factor": 0.0}"#, "`scaling_factor` = 0"),
        ] {
            let err = VaeConfig::from_json(json).unwrap_err();
            assert!(err.contains(key), "{json}: {err}");
        }
        let d = VaeConfig::from_json("{}").unwrap();
        assert!((d.scaling_factor - 0.18215).abs() < 1e-12);
        assert_eq!(d.sample_size, 32);
    }
}
