//! Wan (issue 22): Wan 2.1 / 2.2 text- and image-to-video. The 3D causal VAE (`vae`), the UMT5
//! prompt encoder (`text`), the diffusion transformer (`transformer`), the scheduler its config
//! names (`schedule`), the pipeline (`pipeline`) and its image-to-video conditioning
//! (`image_cond`).

pub mod image_cond;
pub mod pipeline;
mod preview;
pub mod schedule;
pub mod text;
pub mod transformer;
pub mod vae;
