//! Wan (issue 22): Wan 2.1 / 2.2 text- and image-to-video. So far the 3D causal VAE (`vae`);
//! the transformer, the UMT5 encoder and the pipeline come next.

pub mod pipeline;
pub mod schedule;
pub mod text;
pub mod transformer;
pub mod vae;
