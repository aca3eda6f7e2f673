//! Z-Image (Tongyi-MAI's Z-Image-Turbo): a single-stream DiT over FLUX's 16-channel latents,
//! conditioned on Qwen3 hidden states.

pub mod transformer;
