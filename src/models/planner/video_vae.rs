//! The video VAE as the planner sees it: its compression, latent channels and the working
//! memory of a decode, for Wan's causal 3D VAE and LTX-Video's.

use crate::engines::ltx::vae::LtxVaeConfig;
use crate::engines::wan::vae::WanVaeConfig;
use crate::engines::wan::vae::footprint::decode_footprint as wan_decode;

/// A video model's VAE config.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoVae {
    Wan(WanVaeConfig),
    Ltx(LtxVaeConfig),
}

impl VideoVae {
    /// Pixels per latent along height and width.
    pub fn spatial_ratio(&self) -> usize {
        match self {
            Self::Wan(c) => c.spatial_ratio(),
            Self::Ltx(c) => c.spatial_ratio(),
        }
    }

    /// Frames per latent frame after the first.
    pub fn temporal_ratio(&self) -> usize {
        match self {
            Self::Wan(c) => c.temporal_ratio(),
            Self::Ltx(c) => c.temporal_ratio(),
        }
    }

    pub fn latent_channels(&self) -> usize {
        match self {
            Self::Wan(c) => c.z_dim,
            Self::Ltx(c) => c.latent_channels,
        }
    }

    /// The decode's working bytes for latents (frames, h, w), whole or in the engine's tiles.
    pub fn decode_working(
        &self,
        latent: (usize, usize, usize),
        elem_bytes: usize,
        tiled: bool,
        score_budget: u64,
    ) -> u64 {
        let r = self.spatial_ratio().max(1);
        let (f, h, w) = latent;
        match self {
            Self::Wan(c) => {
                use crate::engines::wan::vae::{TILE_SAMPLE, TILE_SAMPLE_STRIDE};
                let tile = tiled.then(|| (TILE_SAMPLE / r, (TILE_SAMPLE - TILE_SAMPLE_STRIDE) / r));
                wan_decode(c, f, h, w, elem_bytes, tile, score_budget).total()
            }
            Self::Ltx(c) => {
                use crate::engines::ltx::vae::{VaeTiles, footprint::decode_footprint};
                // diffusers' AutoencoderKLLTXVideo tiles of 512 pixels every 448.
                let tile = tiled
                    .then(|| VaeTiles::default().in_latents(r).ok())
                    .flatten();
                decode_footprint(c, latent, elem_bytes, tile)
            }
        }
    }
}
