//! diffusers' `AutoencoderKLWan` config.json, with diffusers' defaults for what it leaves out.

use std::path::Path;

use crate::error::{Error, Result};

fn d_base() -> usize {
    96
}
fn d_z() -> usize {
    16
}
fn d_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn d_res() -> usize {
    2
}
fn d_down() -> Vec<bool> {
    vec![false, true, true]
}
fn d_three() -> usize {
    3
}
fn d_t() -> Option<usize> {
    Some(4)
}
fn d_s() -> Option<usize> {
    Some(8)
}
// diffusers' defaults: Wan 2.1's 16-channel statistics.
fn d_mean() -> Vec<f32> {
    vec![
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715,
        0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
    ]
}
fn d_std() -> Vec<f32> {
    vec![
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652,
        1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
    ]
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct WanVaeConfig {
    #[serde(default = "d_base")]
    pub base_dim: usize,
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    #[serde(default = "d_z")]
    pub z_dim: usize,
    #[serde(default = "d_mult")]
    pub dim_mult: Vec<usize>,
    #[serde(default = "d_res")]
    pub num_res_blocks: usize,
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    #[serde(default = "d_down")]
    pub temperal_downsample: Vec<bool>,
    #[serde(default = "d_mean")]
    pub latents_mean: Vec<f32>,
    #[serde(default = "d_std")]
    pub latents_std: Vec<f32>,
    /// Wan 2.2's VAE (residual down/up blocks with AvgDown3D / DupUp3D shortcuts).
    #[serde(default)]
    pub is_residual: bool,
    #[serde(default = "d_three")]
    pub in_channels: usize,
    #[serde(default = "d_three")]
    pub out_channels: usize,
    /// Wan 2.2: pixels folded into channels before the encoder (2).
    #[serde(default)]
    pub patch_size: Option<usize>,
    #[serde(default = "d_t")]
    pub scale_factor_temporal: Option<usize>,
    #[serde(default = "d_s")]
    pub scale_factor_spatial: Option<usize>,
}

impl WanVaeConfig {
    /// Reads `<dir>/config.json` and checks what the model code relies on.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| {
            Error::bad_input(format!("{}: not a Wan VAE config: {e}", path.display()))
        })?;
        cfg.check()
            .map_err(|m| Error::bad_input(format!("{}: {m}", path.display())))?;
        Ok(cfg)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        let stages = self.dim_mult.len();
        if stages == 0 || self.temperal_downsample.len() + 1 < stages {
            return Err(format!(
                "dim_mult {:?} needs {} temperal_downsample entries, found {}",
                self.dim_mult,
                stages.saturating_sub(1),
                self.temperal_downsample.len()
            ));
        }
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            return Err(format!(
                "latents_mean ({}) and latents_std ({}) must have z_dim = {} values",
                self.latents_mean.len(),
                self.latents_std.len(),
                self.z_dim
            ));
        }
        if self.base_dim == 0 || self.z_dim == 0 || self.patch_size == Some(0) {
            return Err("base_dim, z_dim and patch_size must be positive".into());
        }
        Ok(())
    }

    pub fn decoder_dim(&self) -> usize {
        self.decoder_base_dim.unwrap_or(self.base_dim)
    }

    /// Pixels per latent along height and width (8 for 2.1, 16 for 2.2).
    pub fn spatial_ratio(&self) -> usize {
        self.scale_factor_spatial.unwrap_or(8)
    }

    /// Frames per latent frame after the first (4).
    pub fn temporal_ratio(&self) -> usize {
        self.scale_factor_temporal.unwrap_or(4)
    }

    /// Whether the decoder's up block `i` doubles time (the encoder's flags reversed).
    pub fn temporal_upsample(&self) -> Vec<bool> {
        let mut up = self.temperal_downsample.clone();
        up.reverse();
        up
    }
}
