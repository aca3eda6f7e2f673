//! Z-Image-Turbo (diffusers' ZImagePipeline): so far the Qwen3 tokenizer with its chat template.

pub mod tokenizer;
