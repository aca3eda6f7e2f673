//! diffusers' `AutoencoderKLLTXVideo` config.json (LTX-Video 0.9.0 to 0.9.7), with diffusers'
//! defaults (0.9.0's) for what it leaves out.

use std::path::Path;

use crate::error::Result;

fn d_three() -> usize {
    3
}
fn d_latent() -> usize {
    128
}
fn d_blocks() -> Vec<usize> {
    vec![128, 256, 512, 512]
}
fn d_down_types() -> Vec<String> {
    vec!["LTXVideoDownBlock3D".into(); 4]
}
fn d_layers() -> Vec<usize> {
    vec![4, 3, 3, 3, 4]
}
fn d_scaling() -> Vec<bool> {
    vec![true, true, true, false]
}
fn d_noise() -> Vec<bool> {
    vec![false; 5]
}
fn d_down_kind() -> Vec<String> {
    vec!["conv".into(); 4]
}
fn d_residual() -> Vec<bool> {
    vec![false; 4]
}
fn d_factor() -> Vec<usize> {
    vec![1; 4]
}
fn d_patch() -> usize {
    4
}
fn d_one() -> usize {
    1
}
fn d_eps() -> f64 {
    1e-6
}
fn d_scale() -> f64 {
    1.0
}
fn d_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct LtxVaeConfig {
    #[serde(default = "d_three")]
    pub in_channels: usize,
    #[serde(default = "d_three")]
    pub out_channels: usize,
    #[serde(default = "d_latent")]
    pub latent_channels: usize,
    #[serde(default = "d_blocks")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "d_down_types")]
    pub down_block_types: Vec<String>,
    #[serde(default = "d_blocks")]
    pub decoder_block_out_channels: Vec<usize>,
    #[serde(default = "d_layers")]
    pub layers_per_block: Vec<usize>,
    #[serde(default = "d_layers")]
    pub decoder_layers_per_block: Vec<usize>,
    #[serde(default = "d_scaling")]
    pub spatio_temporal_scaling: Vec<bool>,
    #[serde(default = "d_scaling")]
    pub decoder_spatio_temporal_scaling: Vec<bool>,
    #[serde(default = "d_noise")]
    pub decoder_inject_noise: Vec<bool>,
    #[serde(default = "d_down_kind")]
    pub downsample_type: Vec<String>,
    #[serde(default = "d_residual")]
    pub upsample_residual: Vec<bool>,
    #[serde(default = "d_factor")]
    pub upsample_factor: Vec<usize>,
    #[serde(default)]
    pub timestep_conditioning: bool,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_one")]
    pub patch_size_t: usize,
    #[serde(default = "d_eps")]
    pub resnet_norm_eps: f64,
    #[serde(default = "d_scale")]
    pub scaling_factor: f64,
    #[serde(default = "d_true")]
    pub encoder_causal: bool,
    #[serde(default)]
    pub decoder_causal: bool,
    #[serde(default)]
    pub spatial_compression_ratio: Option<usize>,
    #[serde(default)]
    pub temporal_compression_ratio: Option<usize>,
}

impl LtxVaeConfig {
    /// Reads `<dir>/config.json` and checks what the model code relies on.
    pub fn read(dir: &Path) -> Result<Self> {
        super::super::read_config(dir, "an LTX-Video VAE", Self::check)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        let n = self.decoder_block_out_channels.len();
        if n == 0
            || self.decoder_layers_per_block.len() < n + 1
            || self.decoder_spatio_temporal_scaling.len() < n
            || self.decoder_inject_noise.len() < n + 1
            || self.upsample_residual.len() < n
            || self.upsample_factor.len() < n
        {
            return Err(format!(
                "decoder_block_out_channels {:?} needs n + 1 decoder_layers_per_block and \
                 decoder_inject_noise entries and n decoder_spatio_temporal_scaling, \
                 upsample_residual and upsample_factor entries",
                self.decoder_block_out_channels
            ));
        }
        let e = self.encoder_blocks();
        if self.block_out_channels.is_empty()
            || self.down_block_types.len() < e
            || self.layers_per_block.len() < e + 1
            || self.spatio_temporal_scaling.len() < e
            || (self.is_095() && self.downsample_type.len() < e)
        {
            return Err(format!(
                "block_out_channels {:?} does not fit down_block_types, layers_per_block, \
                 spatio_temporal_scaling or downsample_type",
                self.block_out_channels
            ));
        }
        if let Some(t) = self
            .down_block_types
            .iter()
            .find(|t| *t != "LTXVideoDownBlock3D" && *t != "LTXVideo095DownBlock3D")
        {
            return Err(format!("unknown down block type {t}"));
        }
        if self.patch_size == 0 || self.patch_size_t == 0 || self.upsample_factor.contains(&0) {
            return Err("patch sizes and upsample factors must be positive".into());
        }
        Ok(())
    }

    /// 0.9.5's encoder (LTXVideo095DownBlock3D, one block fewer than channel entries).
    pub fn is_095(&self) -> bool {
        self.down_block_types.last().map(String::as_str) == Some("LTXVideo095DownBlock3D")
    }

    pub fn encoder_blocks(&self) -> usize {
        self.block_out_channels.len() - usize::from(self.is_095())
    }

    /// Pixels per latent along height and width (32 for the released checkpoints).
    pub fn spatial_ratio(&self) -> usize {
        let ups = self.spatio_temporal_scaling.iter().filter(|s| **s).count();
        self.spatial_compression_ratio
            .unwrap_or(self.patch_size << ups)
    }

    /// Frames per latent frame after the first (8).
    pub fn temporal_ratio(&self) -> usize {
        let ups = self.spatio_temporal_scaling.iter().filter(|s| **s).count();
        self.temporal_compression_ratio
            .unwrap_or(self.patch_size_t << ups)
    }
}
