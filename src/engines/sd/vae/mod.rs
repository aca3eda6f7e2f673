//! The autoencoder (diffusers' AutoencoderKL): pixels <-> latents, whole or in blended tiles.
//! Owned rather than candle's: that one fixes in/out channels, cannot be configured from
//! config.json (mid-block attention, quant convs) and materialises the mid block's full
//! pixel-by-pixel attention matrix, which at 1024x1024 is gigabytes.

mod blocks;
pub mod tiling;

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use crate::engines::EngineSwitches;
use crate::engines::nn::kernels::Conv2d;

use self::blocks::{Decoder, Encoder};
use super::config::VaeConfig;
use super::unet::resnet::conv;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::weights::Weights;
use crate::engines::progress::CancelToken;
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Vae {
    config: VaeConfig,
    encoder: Encoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    decoder: Decoder,
    dtype: DType,
    device: Device,
}

impl Vae {
    /// `load_with` with no PALLAIDIUM_* switches set (parity tests, tools); jobs pass theirs.
    pub fn load(dir: &Path, device: &Device, dtype: DType, fp16_variant: bool) -> Result<Self> {
        Self::load_with(dir, device, dtype, fp16_variant, Default::default())
    }

    pub fn load_with(
        dir: &Path,
        device: &Device,
        dtype: DType,
        fp16_variant: bool,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_vae", dir = %dir.display()).entered();
        let config = VaeConfig::load(&dir.join("config.json"))?;
        let weights = Weights::open(dir, device, dtype, fp16_variant, switches)?;
        weights.build("VAE", |vb| Self::new(vb, config, switches))
    }

    pub fn new(
        vb: VarBuilder,
        config: VaeConfig,
        switches: EngineSwitches,
    ) -> candle_core::Result<Self> {
        let kernels = switches.kernels();
        let l = 2 * config.latent_channels;
        let quant_conv = if config.use_quant_conv {
            Some(conv(vb.pp("quant_conv"), l, l, 1, 1, 0, kernels)?)
        } else {
            None
        };
        let lc = config.latent_channels;
        let post_quant_conv = if config.use_post_quant_conv {
            Some(conv(vb.pp("post_quant_conv"), lc, lc, 1, 1, 0, kernels)?)
        } else {
            None
        };
        Ok(Self {
            encoder: Encoder::new(vb.pp("encoder"), &config, kernels)?,
            decoder: Decoder::new(vb.pp("decoder"), &config, kernels)?,
            quant_conv,
            post_quant_conv,
            dtype: vb.dtype(),
            device: vb.device().clone(),
            config,
        })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Latents (b, latent_channels, h, w), already divided by `scaling_factor` (and shifted) ->
    /// pixels (b, out_channels, h*f, w*f) in about [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        self.decode_watched(latents, None, &CancelToken::new())
    }

    /// Pixels (b, in_channels, H, W) in [-1, 1], H and W multiples of the downscale factor ->
    /// the mean of the latent distribution, unscaled.
    pub fn encode_mean(&self, image: &Tensor) -> Result<Tensor> {
        self.encode_mean_watched(image, None, &CancelToken::new())
    }

    /// Decodes in overlapping tiles of `tile_latent` latents, blended over `overlap_latent`
    /// latents exactly as diffusers' `tiled_decode` (which uses tile 64 and overlap 16 for a
    /// 512-pixel VAE sample size).
    pub fn decode_tiled(
        &self,
        latents: &Tensor,
        tile_latent: usize,
        overlap_latent: usize,
    ) -> Result<Tensor> {
        self.decode_watched(
            latents,
            Some((tile_latent, overlap_latent)),
            &CancelToken::new(),
        )
    }

    /// Encodes in overlapping tiles of `tile_latent * f` pixels, blended over `overlap_latent`
    /// latents, as diffusers' `_tiled_encode`; returns the latent mean.
    pub fn encode_mean_tiled(
        &self,
        image: &Tensor,
        tile_latent: usize,
        overlap_latent: usize,
    ) -> Result<Tensor> {
        self.encode_mean_watched(
            image,
            Some((tile_latent, overlap_latent)),
            &CancelToken::new(),
        )
    }

    /// `decode` (whole, or in `(tile, overlap)` latent tiles as `decode_tiled`), stopping with
    /// `Error::Cancelled` soon after `cancel` is set (checked before every block and tile).
    pub fn decode_watched(
        &self,
        latents: &Tensor,
        tiles: Option<(usize, usize)>,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let _span = tracing::debug_span!("vae_decode", tiled = tiles.is_some()).entered();
        self.check_channels(latents, self.config.latent_channels, "latent")?;
        let xs = latents.to_device(&self.device)?.to_dtype(self.dtype)?;
        let Some((tile, overlap)) = tiles else {
            return Ok(self.decode_tile(&xs, cancel)?);
        };
        let f = self.config.downscale_factor();
        let spec = tiling::TileSpec::new(tile, overlap, f, 1)?;
        tiling::tiled(&xs, &spec, |tile| self.decode_tile(tile, cancel))
    }

    /// `encode_mean` (whole, or in `(tile, overlap)` latent tiles as `encode_mean_tiled`),
    /// stopping with `Error::Cancelled` soon after `cancel` is set.
    pub fn encode_mean_watched(
        &self,
        image: &Tensor,
        tiles: Option<(usize, usize)>,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let _span = tracing::debug_span!("vae_encode", tiled = tiles.is_some()).entered();
        self.check_image(image)?;
        let xs = image.to_device(&self.device)?.to_dtype(self.dtype)?;
        let Some((tile, overlap)) = tiles else {
            return Ok(self.encode_tile(&xs, cancel)?);
        };
        let f = self.config.downscale_factor();
        let spec = tiling::TileSpec::new(tile * f, overlap * f, 1, f)?;
        tiling::tiled(&xs, &spec, |tile| self.encode_tile(tile, cancel))
    }

    /// The size in latents diffusers tiles with: `sample_size / f` (64 for SD 1.5).
    pub fn default_tile_latent(&self) -> usize {
        (self.config.sample_size / self.config.downscale_factor()).max(1)
    }

    fn decode_tile(&self, xs: &Tensor, cancel: &CancelToken) -> candle_core::Result<Tensor> {
        cancel.check()?;
        let xs = match &self.post_quant_conv {
            Some(c) => c.forward(xs)?,
            None => xs.clone(),
        };
        self.decoder.forward(&xs, AttentionMode::Auto, cancel)
    }

    fn encode_tile(&self, xs: &Tensor, cancel: &CancelToken) -> candle_core::Result<Tensor> {
        cancel.check()?;
        let h = self.encoder.forward(xs, AttentionMode::Auto, cancel)?;
        let moments = match &self.quant_conv {
            Some(c) => c.forward(&h)?,
            None => h,
        };
        moments.narrow(1, 0, self.config.latent_channels)
    }

    fn check_channels(&self, xs: &Tensor, want: usize, what: &str) -> Result<()> {
        let (_, c, _, _) = xs.dims4()?;
        if c != want {
            return Err(Error::bad_input(format!(
                "the VAE takes {want} {what} channels, got {c}"
            )));
        }
        Ok(())
    }

    fn check_image(&self, image: &Tensor) -> Result<()> {
        self.check_channels(image, self.config.in_channels, "image")?;
        let (_, _, h, w) = image.dims4()?;
        let f = self.config.downscale_factor();
        if h % f != 0 || w % f != 0 || h == 0 || w == 0 {
            return Err(Error::bad_input(format!(
                "image size {w}x{h} must be a positive multiple of {f} to encode"
            )));
        }
        Ok(())
    }
}
