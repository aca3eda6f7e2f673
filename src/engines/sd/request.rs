//! What the Stable Diffusion pipeline is asked to do: everything resolved, validated and loaded
//! (defaults applied, images decoded), so the engine only computes. The checks live in one place,
//! `jobs::spec::resolve` (bench uses the same functions); the engine does not repeat them.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::vocab::Residency;

/// How to load a pipeline from a diffusers folder.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The diffusers folder (model_index.json at its root).
    pub model_dir: PathBuf,
    pub device: Device,
    pub dtype: DType,
    pub residency: Residency,
    /// Use `*.fp16.safetensors` variant files where present (f16/bf16 runs).
    pub prefer_fp16_variant: bool,
    /// The PALLAIDIUM_* switches the networks are loaded and built with.
    pub switches: crate::engines::EngineSwitches,
    /// LoRAs merged into the UNet and text encoders at load.
    pub loras: Vec<crate::engines::nn::lora::LoraSpec>,
}

/// Memory-saving modes for one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryModes {
    /// Attention computed over query chunks of this many tokens (None: all at once).
    pub attention_slice: Option<usize>,
    /// Decode (and encode) the VAE in overlapping tiles.
    pub vae_tiling: bool,
}

/// One txt2img / img2img / inpaint generation, fully resolved.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: String,
    pub negative: String,
    pub steps: u32,
    /// Classifier-free guidance scale; <= 1 skips the unconditional pass.
    pub guidance: f64,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    /// Images in this job; image i uses seed + i.
    pub batch: u32,
    pub scheduler: crate::vocab::Scheduler,
    /// img2img / inpaint source, RGB, already at width x height.
    pub init_image: Option<image::RgbImage>,
    /// How much of the init image to repaint, 0..1.
    pub strength: f64,
    /// Inpainting mask, at width x height; white (255) = repaint.
    pub mask: Option<image::GrayImage>,
    /// Initial latents, shape (1 or batch, 4, h/8, w/8), replacing the seeded noise.
    pub init_latents: Option<Tensor>,
    pub memory: MemoryModes,
    /// Emit a latent preview every this many steps (0: never).
    pub preview_every: u32,
    /// Prompt tokens the text encoders read, bos and eos included (None: all their positions).
    pub max_sequence_length: Option<usize>,
    /// FLUX: true classifier-free guidance scale with `negative` (applies above 1).
    pub true_cfg: Option<f64>,
}

impl Default for GenerateRequest {
    /// An empty prompt, 25 Euler steps at guidance 7.5, one 512x512 image, no inputs.
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative: String::new(),
            steps: 25,
            guidance: 7.5,
            seed: 0,
            width: 512,
            height: 512,
            batch: 1,
            scheduler: crate::vocab::Scheduler::Euler,
            init_image: None,
            strength: 1.0,
            mask: None,
            init_latents: None,
            memory: MemoryModes::default(),
            preview_every: 0,
            max_sequence_length: None,
            true_cfg: None,
        }
    }
}

/// One finished image and the seed that made it.
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    pub image: image::RgbImage,
    pub seed: u64,
}
