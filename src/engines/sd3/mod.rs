//! Stable Diffusion 3.5 (Medium, Large, Large Turbo): diffusers' StableDiffusion3Pipeline and
//! StableDiffusion3Img2ImgPipeline on candle. CLIP-L's and OpenCLIP bigG's penultimate states and
//! T5's last hidden state (or zeros, `--no-t5`) condition an MMDiT transformer (joint blocks over
//! image and text tokens; Medium's MMDiT-X blocks add an image-only attention) that predicts a flow
//! over 2x2 latent patches; the flow-matching Euler scheduler with the repo's static shift
//! integrates it under classifier-free guidance; FLUX's 16-channel VAE decodes. The transformer
//! may come from a GGUF file (kept quantized, dequantized per layer).

use std::path::Path;

pub mod components;
mod decode;
pub mod footprint;
pub mod pipeline;
pub mod prompt;
pub mod schedule;
pub mod transformer;

pub use components::Sd3LoadOptions;
pub use pipeline::Sd3Pipeline;

/// Reads and checks every config the SD 3.5 engine reads before its weights (what a job's
/// submission checks): a bad value is refused naming the file and the key. `no_t5`: T5's config
/// is not needed.
pub fn check_configs(dir: &Path, no_t5: bool) -> crate::Result<()> {
    transformer::Sd3TransformerConfig::load(&dir.join("transformer/config.json"))?;
    crate::engines::flux::scheduler::FlowMatchConfig::load(
        &dir.join("scheduler/scheduler_config.json"),
    )?;
    crate::engines::sd::config::VaeConfig::load(&dir.join("vae/config.json"))?;
    for sub in ["text_encoder", "text_encoder_2"] {
        crate::engines::sd::config::TextEncoderConfig::load(&dir.join(sub).join("config.json"))?;
    }
    if !no_t5 {
        crate::engines::nn::text::t5::load_config(&dir.join("text_encoder_3/config.json"))?;
    }
    Ok(())
}
