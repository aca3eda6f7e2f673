//! Z-Image-Turbo (Tongyi-MAI's, diffusers' ZImagePipeline): a single-stream DiT over FLUX's
//! 16-channel latents, conditioned on Qwen3 hidden states of the chat-templated prompt. So far
//! the tokenizer with its chat template and the transformer, each parity-tested; the pipeline,
//! registry entries and planner are still to come (issue 20).

pub mod tokenizer;
pub mod transformer;
