//! Z-Image-Turbo (Tongyi-MAI's, diffusers' ZImagePipeline): a single-stream DiT over FLUX's
//! 16-channel latents, conditioned on Qwen3 hidden states of the chat-templated prompt. The
//! tokenizer with its chat template, the Qwen3 encoder (`nn::text::qwen`), the transformer (dense
//! or GGUF) and the pipeline, each parity-tested against diffusers.

use std::path::Path;

pub mod components;
pub mod pipeline;
pub mod prompt;
pub mod tokenizer;
pub mod transformer;

pub use components::ZImageLoadOptions;
pub use pipeline::ZImagePipeline;

/// Reads and checks every config the Z-Image engine reads before its weights (what a job's
/// submission checks): a bad value is refused naming the file and the key.
pub fn check_configs(dir: &Path) -> crate::Result<()> {
    transformer::ZImageTransformerConfig::load(&dir.join("transformer/config.json"))?;
    crate::engines::flux::scheduler::FlowMatchConfig::load(
        &dir.join("scheduler/scheduler_config.json"),
    )?;
    crate::engines::sd::config::VaeConfig::load(&dir.join("vae/config.json"))?;
    crate::engines::nn::text::qwen_config::QwenConfig::load(&dir.join("text_encoder/config.json"))?;
    Ok(())
}
