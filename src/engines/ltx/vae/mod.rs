//! The LTX-Video VAE (diffusers' `AutoencoderKLLTXVideo`): 0.9.0's (32x spatial, 8x temporal,
//! 4x4 patches, no timestep conditioning) and 0.9.1 / 0.9.5's (residual depth-to-space
//! upsamplers, a decoder conditioned on the decode timestep, 0.9.5's space-to-depth encoder).
//! Whole clips go through at once (no feature caches: every conv pads time by repeating the
//! edge frames); `tiled_decode` splits the latents into overlapping spatial tiles as diffusers'
//! `enable_tiling()` does (all frames of a tile at once: diffusers' temporal tiling is the
//! separate `use_framewise_decoding`, off by default and not switched on by `enable_tiling`).
//!
//! Latents here are the VAE's own; the transformer's are `normalize`d:
//! (z - latents_mean) * scaling_factor / latents_std per channel, with `latents_mean` and
//! `latents_std` stored as buffers among the weights.

mod blocks;
mod coders;
pub mod config;
pub mod footprint;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use self::blocks::TimeEmbedder;
use self::coders::{Decoder, Encoder};
pub use self::config::LtxVaeConfig;
use crate::engines::EngineSwitches;
use crate::engines::nn::kernels::Kernels;
use crate::engines::nn::weights::Weights;
use crate::engines::sd::vae::tiling::{TileSpec, tiled};
use crate::error::{Error, Result};

/// diffusers' `tile_sample_min_height` / `_width`: spatial tiles of 512 pixels (16 latents at
/// 32x) ...
pub const TILE_SAMPLE: usize = 512;
/// ... every `tile_sample_stride_height` / `_width` 448 pixels (14 latents), blended over the
/// 64 pixels they overlap.
pub const TILE_SAMPLE_STRIDE: usize = 448;

/// Spatial tiles of a tiled decode, in pixels (diffusers' `tile_sample_min_*` and
/// `tile_sample_stride_*`, the same for height and width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaeTiles {
    pub sample: usize,
    pub stride: usize,
}

impl Default for VaeTiles {
    fn default() -> Self {
        Self {
            sample: TILE_SAMPLE,
            stride: TILE_SAMPLE_STRIDE,
        }
    }
}

impl VaeTiles {
    /// (tile, stride) in latents for a VAE of `spatial_ratio` pixels per latent; both must be
    /// whole latents and the stride positive and below the tile.
    pub fn in_latents(&self, spatial_ratio: usize) -> Result<(usize, usize)> {
        let r = spatial_ratio.max(1);
        if self.stride == 0
            || self.stride >= self.sample
            || !self.sample.is_multiple_of(r)
            || !self.stride.is_multiple_of(r)
        {
            return Err(Error::bad_input(format!(
                "LTX-Video VAE tiles of {} pixels every {}: the stride must be positive, below \
                 the tile, and both multiples of the VAE's {r} pixels per latent",
                self.sample, self.stride
            )));
        }
        Ok((self.sample / r, self.stride / r))
    }
}

pub struct LtxVae {
    cfg: LtxVaeConfig,
    encoder: Option<Encoder>,
    decoder: Decoder,
    latents_mean: Tensor,
    latents_std: Tensor,
    device: Device,
    dtype: DType,
}

impl LtxVae {
    /// Loads a diffusers `vae/` folder (config.json + diffusion_pytorch_model.safetensors);
    /// `with_encoder`: also the encoder (image-to-video).
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        with_encoder: bool,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let cfg = LtxVaeConfig::read(dir)?;
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        let kernels = switches.kernels();
        weights.build("LTX-Video VAE", |vb| {
            Self::build(cfg.clone(), vb, with_encoder, kernels)
        })
    }

    /// From a VarBuilder holding the diffusers names.
    pub fn build(
        cfg: LtxVaeConfig,
        vb: VarBuilder,
        with_encoder: bool,
        kernels: Kernels,
    ) -> candle_core::Result<Self> {
        cfg.check().map_err(candle_core::Error::Msg)?;
        let c = cfg.latent_channels;
        let stat = |name: &str| -> candle_core::Result<Tensor> {
            vb.get(c, name)?
                .to_dtype(DType::F32)?
                .reshape((1, c, 1, 1, 1))
        };
        Ok(Self {
            encoder: if with_encoder {
                Some(Encoder::load(&cfg, vb.pp("encoder"), kernels)?)
            } else {
                None
            },
            decoder: Decoder::load(&cfg, vb.pp("decoder"), kernels)?,
            latents_mean: stat("latents_mean")?,
            latents_std: stat("latents_std")?,
            device: vb.device().clone(),
            dtype: vb.dtype(),
            cfg,
        })
    }

    pub fn config(&self) -> &LtxVaeConfig {
        &self.cfg
    }

    /// Whether `decode` needs a decode timestep (0.9.1 and later).
    pub fn timestep_conditioned(&self) -> bool {
        self.cfg.timestep_conditioning
    }

    /// Video frames from `latent_frames`: 1 + 8 (n - 1) for the released checkpoints.
    pub fn frames_for(&self, latent_frames: usize) -> usize {
        1 + self.cfg.temporal_ratio() * latent_frames.saturating_sub(1)
    }

    /// Latents (b, c, t, h, w) → frames (b, 3, 1 + r (t - 1), h s, w s), not clamped (f32);
    /// `timestep` (b,): the decode timestep of a timestep-conditioned VAE (before its
    /// `timestep_scale_multiplier`), ignored by the others.
    pub fn decode(&self, z: &Tensor, timestep: Option<&Tensor>) -> Result<Tensor> {
        let z = z.to_device(&self.device)?.to_dtype(self.dtype)?;
        let t = timestep.map(|t| t.to_device(&self.device)).transpose()?;
        Ok(self.decoder.forward(&z, t.as_ref())?.to_dtype(DType::F32)?)
    }

    /// `decode` in spatial tiles as diffusers' `tiled_decode`: latents larger than a tile (in
    /// either side) are cut into tiles of `tiles.sample / ratio` latents every `tiles.stride /
    /// ratio`, each decoded whole (all frames, the same timestep), blended into its upper and
    /// left neighbours with linear ramps over the `sample - stride` overlapping pixels and
    /// cropped to the stride. Latents that fit one tile decode as `decode` does.
    pub fn tiled_decode(
        &self,
        z: &Tensor,
        timestep: Option<&Tensor>,
        tiles: VaeTiles,
    ) -> Result<Tensor> {
        let ratio = self.cfg.spatial_ratio();
        let (tile, stride) = tiles.in_latents(ratio)?;
        let spec = TileSpec::new(tile, tile - stride, ratio, 1)?;
        let z = z.to_device(&self.device)?.to_dtype(self.dtype)?;
        let t = timestep.map(|t| t.to_device(&self.device)).transpose()?;
        let out = tiled(&z, &spec, |x| self.decoder.forward(x, t.as_ref()))?;
        Ok(out.to_dtype(DType::F32)?)
    }

    /// Frames (b, 3, f, h, w) in [-1, 1] → the encoder's moments (b, 2c, t, h/s, w/s): mean,
    /// then log-variance (diffusers' `_encode`).
    pub fn encode_moments(&self, x: &Tensor) -> Result<Tensor> {
        let Some(encoder) = &self.encoder else {
            return Err(Error::job_failed(
                "internal: the LTX-Video VAE was loaded without its encoder",
            ));
        };
        let (_, _, f, h, w) = x.dims5()?;
        let (s, r) = (self.cfg.spatial_ratio(), self.cfg.temporal_ratio());
        if f == 0 || !h.is_multiple_of(s) || !w.is_multiple_of(s) || (f - 1) % r != 0 {
            return Err(Error::bad_input(format!(
                "the LTX-Video VAE encodes 1 + {r} n frames whose height and width are multiples \
                 of {s}, got {f} frames of {w}x{h}"
            )));
        }
        let x = x.to_device(&self.device)?.to_dtype(self.dtype)?;
        Ok(encoder.forward(&x)?.to_dtype(DType::F32)?)
    }

    /// The latent distribution's mean.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.encode_moments(x)?;
        Ok(m.narrow(1, 0, self.cfg.latent_channels)?)
    }

    /// VAE latents → the transformer's: (z - mean) * scaling_factor / std.
    pub fn normalize(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        Ok((z.broadcast_sub(&mean)? * self.cfg.scaling_factor)?.broadcast_div(&std)?)
    }

    /// The transformer's latents → the VAE's: z * std / scaling_factor + mean.
    pub fn denormalize(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        Ok((z.broadcast_mul(&std)? / self.cfg.scaling_factor)?.broadcast_add(&mean)?)
    }

    fn stats(&self, z: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let t = |v: &Tensor| v.to_device(z.device())?.to_dtype(z.dtype());
        Ok((t(&self.latents_mean)?, t(&self.latents_std)?))
    }
}
