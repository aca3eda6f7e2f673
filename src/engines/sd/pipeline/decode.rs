//! The pipeline's last stage: latents -> images through the VAE, one image at a time, whole or
//! tiled, redone in f32 when a half-precision decode overflows.

use candle_core::{DType, Tensor};

use super::SdPipeline;
use crate::engines::progress::CancelToken;
use crate::engines::sd::latents::{all_finite, tensor_to_images};
use crate::error::{Error, Result};

impl SdPipeline {
    pub(super) fn decode(
        &mut self,
        latents: &Tensor,
        tiled: bool,
        cancel: &CancelToken,
    ) -> Result<Vec<image::RgbImage>> {
        let decoded = self.decode_tensor(latents, tiled, cancel)?;
        if all_finite(&decoded)? {
            return tensor_to_images(&decoded);
        }
        if self.components.vae_dtype() != DType::F32 {
            tracing::warn!(
                dtype = ?self.components.vae_dtype(),
                "the VAE overflowed in half precision; decoding again in f32"
            );
            self.components.upcast_vae();
            let decoded = self.decode_tensor(latents, tiled, cancel)?;
            if all_finite(&decoded)? {
                return tensor_to_images(&decoded);
            }
        }
        Err(Error::job_failed(
            "the VAE decoded NaN or infinity even in f32: the latents are broken (try another \
             seed or scheduler, or --dtype f32)",
        ))
    }

    /// The decoder's output tensor (b, 3, h, w) in [-1, 1], finite or not.
    pub(super) fn decode_tensor(
        &mut self,
        latents: &Tensor,
        tiled: bool,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let scaled =
            (latents.to_dtype(self.components.vae_dtype())? / self.vae_config.scaling_factor)?;
        let vae = self.components.vae()?;
        let mut decoded = Vec::with_capacity(scaled.dim(0)?);
        // One image at a time: the decoder's activations are the largest of the whole job.
        for i in 0..scaled.dim(0)? {
            let one = scaled.narrow(0, i, 1)?;
            let tiles = tiled.then(|| {
                let tile = vae.default_tile_latent();
                (tile, tile / 4)
            });
            let out = vae.decode_watched(&one, tiles, cancel)?;
            decoded.push(out);
        }
        Ok(Tensor::cat(&decoded, 0)?)
    }
}
