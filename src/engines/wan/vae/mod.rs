//! The Wan 3D causal VAE (diffusers' `AutoencoderKLWan`): Wan 2.1's (8x spatial, 4x temporal)
//! and Wan 2.2's (`is_residual`, 2x2 patches: 16x spatial). Decoding feeds one latent frame at a time through the decoder, encoding one video
//! frame then four at a time, with each causal conv's last frames carried between chunks
//! (`FeatCache`), exactly as diffusers' `_decode` / `_encode` loop; the first chunk is the
//! special one (it makes one frame, not four). Spatial tiling (`tiled_decode`) bounds memory
//! for large frames; `footprint` tells the planner what a decode needs.
//!
//! Latents here are the VAE's own; the pipeline's latents are `normalize`d
//! ((z - mean) / std per channel, the config's `latents_mean` / `latents_std`).

mod blocks;
mod coders;
pub mod config;
pub mod footprint;
mod resample;
mod residual;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use self::coders::{Decoder, Encoder};
pub use self::config::WanVaeConfig;
use self::residual::{patchify, unpatchify};
use crate::engines::EngineSwitches;
use crate::engines::nn::conv3d_causal::{CausalConv3d, FeatCache};
use crate::engines::nn::kernels::Kernels;
use crate::engines::nn::weights::Weights;
use crate::engines::sd::vae::tiling::{TileSpec, tiled};
use crate::error::{Error, Result};

/// diffusers' default tiles: 256-pixel tiles every 192 pixels.
pub const TILE_SAMPLE: usize = 256;
pub const TILE_SAMPLE_STRIDE: usize = 192;

pub struct WanVae {
    cfg: WanVaeConfig,
    encoder: Option<Encoder>,
    decoder: Decoder,
    quant_conv: Option<CausalConv3d>,
    post_quant_conv: CausalConv3d,
    device: Device,
    dtype: DType,
}

impl WanVae {
    /// Loads a diffusers `vae/` folder (config.json + diffusion_pytorch_model.safetensors);
    /// `with_encoder`: also the encoder (image-to-video, `--from-image`).
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        with_encoder: bool,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let cfg = WanVaeConfig::read(dir)?;
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        let kernels = switches.kernels();
        weights.build("Wan VAE", |vb| {
            Self::build(cfg.clone(), vb, with_encoder, kernels)
        })
    }

    /// From a VarBuilder holding the diffusers names.
    pub fn build(
        cfg: WanVaeConfig,
        vb: VarBuilder,
        with_encoder: bool,
        kernels: Kernels,
    ) -> candle_core::Result<Self> {
        cfg.check().map_err(candle_core::Error::Msg)?;
        let z = cfg.z_dim;
        let conv1 = |c: usize, vb: VarBuilder| {
            CausalConv3d::load(c, c, [1; 3], [1; 3], [0; 3], vb, kernels)
        };
        let (encoder, quant_conv) = if with_encoder {
            (
                Some(Encoder::load(&cfg, vb.pp("encoder"), kernels)?),
                Some(conv1(2 * z, vb.pp("quant_conv"))?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            decoder: Decoder::load(&cfg, vb.pp("decoder"), kernels)?,
            post_quant_conv: conv1(z, vb.pp("post_quant_conv"))?,
            encoder,
            quant_conv,
            device: vb.device().clone(),
            dtype: vb.dtype(),
            cfg,
        })
    }

    pub fn config(&self) -> &WanVaeConfig {
        &self.cfg
    }

    /// Video frames from `frames` latent frames: 1 + 4 (n - 1).
    pub fn frames_for(&self, latent_frames: usize) -> usize {
        1 + self.cfg.temporal_ratio() * latent_frames.saturating_sub(1)
    }

    /// Latents (b, z, t, h, w) → frames (b, 3, 1 + 4 (t - 1), 8h, 8w) in [-1, 1] (f32).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let z = z.to_device(&self.device)?.to_dtype(self.dtype)?;
        Ok(self.decode_whole(&z)?)
    }

    /// `decode` in spatial tiles of `tile` latents overlapping by `overlap` latents, blended
    /// as diffusers' `tiled_decode` (it tiles only latents larger than a tile).
    pub fn tiled_decode(&self, z: &Tensor, tile: usize, overlap: usize) -> Result<Tensor> {
        // diffusers blends the tiles' raw (still patchified) outputs, then unpatchifies and
        // clamps once.
        let ratio = self.cfg.spatial_ratio() / self.patch();
        let spec = TileSpec::new(tile, overlap, ratio, 1)?;
        let z = z.to_device(&self.device)?.to_dtype(self.dtype)?;
        let out = tiled(&z, &spec, |t| self.decode_raw(t))?;
        Ok(unpatchify(&out, self.patch())?.clamp(-1f32, 1f32)?)
    }

    /// diffusers' default tiling in latents for this VAE: (tile, overlap).
    pub fn default_tiles(&self) -> (usize, usize) {
        let r = self.cfg.spatial_ratio();
        (TILE_SAMPLE / r, (TILE_SAMPLE - TILE_SAMPLE_STRIDE) / r)
    }

    fn patch(&self) -> usize {
        self.cfg.patch_size.unwrap_or(1).max(1)
    }

    fn decode_whole(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        unpatchify(&self.decode_raw(z)?, self.patch())?.clamp(-1f32, 1f32)
    }

    /// `_decode` before unpatchify and the clamp: post_quant_conv on the whole clip, then one
    /// latent frame at a time through the decoder with the feature cache.
    fn decode_raw(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.post_quant_conv.forward(z, None)?;
        let t = x.dim(2)?;
        let mut cache = FeatCache::new();
        let mut outs = Vec::with_capacity(t);
        for i in 0..t {
            cache.start_chunk();
            let frame = x.narrow(2, i, 1)?;
            let out = self.decoder.forward(&frame, &mut cache, i == 0)?;
            outs.push(out.to_dtype(DType::F32)?);
        }
        Tensor::cat(&outs, 2)
    }

    /// Frames (b, 3, f, h, w) in [-1, 1] → the encoder's moments (b, 2z, 1 + (f - 1) / 4, h/8,
    /// w/8): mean then log-variance (diffusers' `_encode`; frames past the last whole group of
    /// four are dropped as there).
    pub fn encode_moments(&self, x: &Tensor) -> Result<Tensor> {
        let (Some(encoder), Some(quant)) = (&self.encoder, &self.quant_conv) else {
            return Err(Error::job_failed(
                "internal: the Wan VAE was loaded without its encoder",
            ));
        };
        let x = x.to_device(&self.device)?.to_dtype(self.dtype)?;
        let (_, _, f, h, w) = x.dims5()?;
        let r = self.cfg.spatial_ratio();
        if f == 0 || !h.is_multiple_of(r) || !w.is_multiple_of(r) {
            return Err(Error::bad_input(format!(
                "the Wan VAE encodes frames whose height and width are multiples of {r}, got \
                 {f} frames of {w}x{h}"
            )));
        }
        let x = patchify(&x, self.patch())?;
        let steps = 1 + (f - 1) / 4;
        let mut cache = FeatCache::new();
        let mut outs = Vec::with_capacity(steps);
        for i in 0..steps {
            cache.start_chunk();
            let chunk = if i == 0 {
                x.narrow(2, 0, 1)?
            } else {
                x.narrow(2, 1 + 4 * (i - 1), 4)?
            };
            outs.push(encoder.forward(&chunk, &mut cache)?);
        }
        let out = Tensor::cat(&outs, 2)?;
        Ok(quant.forward(&out, None)?.to_dtype(DType::F32)?)
    }

    /// The latent distribution's mode (its mean): what image-to-video conditions on.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.encode_moments(x)?;
        Ok(m.narrow(1, 0, self.cfg.z_dim)?)
    }

    /// VAE latents → the transformer's: (z - mean) / std per channel.
    pub fn normalize(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        Ok(z.broadcast_sub(&mean)?.broadcast_div(&std)?)
    }

    /// The transformer's latents → the VAE's: z * std + mean (what the pipeline decodes).
    pub fn denormalize(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        Ok(z.broadcast_mul(&std)?.broadcast_add(&mean)?)
    }

    fn stats(&self, z: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let shape = (1, self.cfg.z_dim, 1, 1, 1);
        let t = |v: &[f32]| {
            Tensor::new(v, z.device())?
                .reshape(shape)?
                .to_dtype(z.dtype())
        };
        Ok((t(&self.cfg.latents_mean)?, t(&self.cfg.latents_std)?))
    }
}
