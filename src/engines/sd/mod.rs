//! Stable Diffusion: SD 1.x, 2.x, XL and their turbo and inpainting variants.

pub mod request;

pub use request::{GenerateRequest, GeneratedImage, LoadOptions, MemoryModes, Residency};

pub mod attention;
pub mod clip;
pub mod config;
pub mod weights;
pub mod noise;
pub mod schedulers;
pub mod tokenizer;
pub mod unet;
