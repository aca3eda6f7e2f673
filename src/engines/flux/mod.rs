//! FLUX.1 (schnell, dev): diffusers' FluxPipeline and FluxImg2ImgPipeline on candle. CLIP-L's
//! pooled output and T5's hidden states condition an MMDiT transformer (double- then
//! single-stream blocks, 3-axis RoPE over text + image ids) that predicts a flow over packed
//! 2x2 latent patches; a flow-matching Euler scheduler integrates it; a 16-channel VAE decodes.
//! The transformer and T5 may come from GGUF files (kept quantized, dequantized per layer),
//! which is how FLUX fits a 16 GB Mac.

use std::path::Path;

pub mod components;
pub mod footprint;
pub mod latents;
pub mod pipeline;
pub(crate) mod preview;
pub mod prompt;
pub mod scheduler;
pub mod tokenizer;
pub mod transformer;

pub use components::FluxLoadOptions;
pub use pipeline::FluxPipeline;

/// Reads and checks every config the FLUX engine reads before its weights (what a job's
/// submission checks): a bad value is refused naming the file and the key.
pub fn check_configs(dir: &Path) -> crate::Result<()> {
    transformer::FluxTransformerConfig::load(&dir.join("transformer/config.json"))?;
    scheduler::FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
    crate::engines::sd::config::VaeConfig::load(&dir.join("vae/config.json"))?;
    crate::engines::sd::config::TextEncoderConfig::load(&dir.join("text_encoder/config.json"))?;
    crate::engines::nn::text::t5::load_config(&dir.join("text_encoder_2/config.json"))?;
    Ok(())
}
