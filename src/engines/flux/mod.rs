//! FLUX.1 (schnell, dev): diffusers' FluxPipeline and FluxImg2ImgPipeline on candle. CLIP-L's
//! pooled output and T5's hidden states condition an MMDiT transformer (double- then
//! single-stream blocks, 3-axis RoPE over text + image ids) that predicts a flow over packed
//! 2x2 latent patches; a flow-matching Euler scheduler integrates it; a 16-channel VAE decodes.
//! The transformer and T5 may come from GGUF files (dequantized per layer or multiplied
//! quantized), which is how FLUX fits a 16 GB Mac.

use std::path::Path;

/// Reads and checks every config the FLUX engine reads before its weights (what a job's
/// submission checks): a bad value is refused naming the file and the key.
pub fn check_configs(dir: &Path) -> crate::Result<()> {
    crate::engines::sd::config::VaeConfig::load(&dir.join("vae/config.json"))?;
    crate::engines::sd::config::TextEncoderConfig::load(&dir.join("text_encoder/config.json"))?;
    crate::engines::nn::text::t5::load_config(&dir.join("text_encoder_2/config.json"))?;
    Ok(())
}

pub mod components;
pub mod pipeline;
mod preview;
pub mod prompt;

pub use components::FluxLoadOptions;
pub use pipeline::FluxPipeline;

pub mod footprint;
