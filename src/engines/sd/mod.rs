//! Stable Diffusion: SD 1.x, 2.x, XL and their turbo and inpainting variants.

mod components;
pub mod conditioning;
pub mod controlnet;
pub mod denoise;
pub mod footprint;
pub mod json_compat;
pub mod latents;
pub mod pipeline;
pub mod request;

pub use pipeline::SdPipeline;

pub use request::{GenerateRequest, GeneratedImage, LoadOptions, MemoryModes};

pub mod config;
pub mod noise;
pub mod schedulers;
pub mod tokenizer;
pub mod unet;
pub mod vae;
