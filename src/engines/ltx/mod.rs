//! LTX-Video 0.9.x (Lightricks; diffusers' LTXPipeline): a T5-conditioned video DiT over
//! 1x1x1-patched latents of a 32x / 8x causal video VAE.
//! - `vae`: `AutoencoderKLLTXVideo`, encoder and decoder (timestep-conditioned from 0.9.1).

pub mod vae;
