//! Wan (issue 22): Wan 2.1 / 2.2 text- and image-to-video. The 3D causal VAE (`vae`), the UMT5
//! prompt encoder (`text`) and the diffusion transformer (`transformer`); the pipeline comes
//! next.

pub mod text;
pub mod transformer;
pub mod vae;
