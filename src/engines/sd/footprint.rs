//! What the memory planner asks the SD engine about its working memory, so that it never reads
//! the engine's configs or kernels: the architecture numbers of a model folder (`Architecture`),
//! which attention keeps its scores on chip, how large the convolutions' workspaces and
//! attention's score chunks may grow. The planner's arithmetic over these lives in
//! models/planner/activations.rs; its tests pin the predictions.

use std::path::Path;

use serde::Serialize;

use super::config::{TextEncoderConfig, UNetConfig, VaeConfig};
use crate::engines::nn::attention::{CPU_SCORE_BUDGET_BYTES, GPU_SCORE_BUDGET_BYTES};
use crate::engines::nn::kernels;

/// Whether CUDA's fused attention kernels (which keep the scores on chip) run heads of `head_dim`
/// in a dtype of `elem_bytes` bytes (f16/bf16 on tensor cores; f32 on the scalar kernel).
pub fn fused_attention(head_dim: u64, elem_bytes: u64) -> bool {
    let dims: &[usize] = if elem_bytes == 2 {
        &kernels::FUSED_ATTENTION_HEAD_DIMS
    } else {
        &kernels::SCALAR_ATTENTION_HEAD_DIMS
    };
    usize::try_from(head_dim).is_ok_and(|d| dims.contains(&d))
}

/// `AttentionMode::Auto`'s budget for one query chunk's scores (and their softmax), on the CPU or
/// on a GPU.
pub fn attention_score_budget(on_cpu: bool) -> u64 {
    let budget = if on_cpu {
        CPU_SCORE_BUDGET_BYTES
    } else {
        GPU_SCORE_BUDGET_BYTES
    };
    budget as u64
}

/// The CPU f32 convolution builds its im2col matrix in bands of at most this many bytes (and at
/// least one output row).
pub const CPU_CONV_BAND_BYTES: u64 = kernels::conv::COL_BAND_BYTES as u64;

/// The CUDA convolution's im2col workspace: at most this many bytes (and at least 8 positions).
pub const CUDA_CONV_BUDGET_BYTES: u64 = kernels::conv::CUDA_COL_BUDGET_BYTES as u64;

/// The UNet numbers the activation formulas use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UNetArch {
    pub in_channels: u64,
    pub block_out_channels: Vec<u64>,
    pub layers_per_block: Vec<u64>,
    pub heads: Vec<u64>,
    /// Which down blocks have transformers (CrossAttnDownBlock2D).
    pub attention: Vec<bool>,
    pub cross_attention_dim: u64,
}

/// The VAE numbers the activation formulas use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VaeArch {
    pub block_out_channels: Vec<u64>,
    pub layers_per_block: u64,
    pub latent_channels: u64,
    /// diffusers upcasts these VAEs to f32 when the job runs in f16.
    pub force_upcast: bool,
}

/// The text encoders' numbers (one for SD 1/2, two for SDXL).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextArch {
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub tokens: u64,
    pub heads: u64,
}

/// A model folder's architecture as the planner needs it: the UNet, the VAE and one entry per text
/// encoder (one for SD 1/2, two for SDXL).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Architecture {
    pub unet: UNetArch,
    pub vae: VaeArch,
    pub text: Vec<TextArch>,
}

impl Architecture {
    /// Reads the components' config.json files (validated as the engine validates them).
    pub fn read(dir: &Path) -> crate::Result<Self> {
        let unet = UNetConfig::load(&dir.join("unet").join("config.json"))?;
        let vae = VaeConfig::load(&dir.join("vae").join("config.json"))?;
        let mut text = Vec::new();
        for name in ["text_encoder", "text_encoder_2"] {
            let folder = dir.join(name);
            if name == "text_encoder_2" && !folder.is_dir() {
                continue;
            }
            let cfg = TextEncoderConfig::load(&folder.join("config.json"))?;
            text.push(TextArch {
                hidden_size: cfg.hidden_size as u64,
                intermediate_size: cfg.intermediate_size as u64,
                tokens: cfg.max_position_embeddings as u64,
                heads: cfg.num_attention_heads as u64,
            });
        }
        let u64s = |v: &[usize]| v.iter().map(|&x| x as u64).collect::<Vec<_>>();
        Ok(Self {
            unet: UNetArch {
                in_channels: unet.in_channels as u64,
                block_out_channels: u64s(&unet.block_out_channels),
                layers_per_block: u64s(&unet.layers_per_block),
                heads: u64s(&unet.num_attention_heads),
                attention: unet
                    .down_block_types
                    .iter()
                    .map(|t| t.contains("CrossAttn"))
                    .collect(),
                cross_attention_dim: unet.cross_attention_dim.first().copied().unwrap_or(768)
                    as u64,
            },
            vae: VaeArch::from_config(&vae),
            text,
        })
    }
}

impl VaeArch {
    pub fn from_config(vae: &VaeConfig) -> Self {
        Self {
            block_out_channels: vae.block_out_channels.iter().map(|&x| x as u64).collect(),
            layers_per_block: vae.layers_per_block as u64,
            latent_channels: vae.latent_channels as u64,
            force_upcast: vae.force_upcast,
        }
    }
}
