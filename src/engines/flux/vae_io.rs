//! The 16-channel VAE's side of a flow-matching pipeline (FLUX, Z-Image): images to the latents
//! the transformer sees (`(mean - shift_factor) * scaling_factor`) and latents back to images
//! (`latents / scaling_factor + shift_factor`, decoded one image at a time, tiled on request,
//! redone in f32 when half precision overflows).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::engines::EngineSwitches;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::sd::GeneratedImage;
use crate::engines::sd::latents::{all_finite, tensor_to_images};
use crate::engines::sd::vae::Vae;
use crate::engines::stage::{stage, timed_load};
use crate::error::{Error, Result};

/// A pipeline's VAE as the encode and decode below need it: loaded on demand, in a dtype that
/// can be widened to f32 after an overflow.
pub trait VaeHolder {
    fn vae(&mut self) -> Result<&Vae>;
    fn vae_dtype(&self) -> DType;
    /// Decodes in f32 from now on.
    fn upcast_vae(&mut self);
}

/// A pipeline's `vae/` folder, loaded when first used and dropped on `release`.
pub struct LazyVae {
    dir: PathBuf,
    device: Device,
    dtype: DType,
    switches: EngineSwitches,
    vae: Option<Vae>,
}

impl LazyVae {
    /// The VAE of `dir` in `dtype` (its fp16 weights variant when that is not f32).
    pub fn new(dir: PathBuf, device: Device, dtype: DType, switches: EngineSwitches) -> Self {
        Self {
            dir,
            device,
            dtype,
            switches,
            vae: None,
        }
    }

    /// Frees the weights (a staged run's next stage needs the memory).
    pub fn release(&mut self) {
        self.vae = None;
    }
}

impl VaeHolder for LazyVae {
    fn vae(&mut self) -> Result<&Vae> {
        if self.vae.is_none() {
            let fp16 = self.dtype != DType::F32;
            let vae = timed_load("vae", || {
                Vae::load_with(&self.dir, &self.device, self.dtype, fp16, self.switches)
            })?;
            self.vae = Some(vae);
        }
        self.vae
            .as_ref()
            .ok_or_else(|| Error::job_failed("internal: the VAE is not loaded"))
    }

    fn vae_dtype(&self) -> DType {
        self.dtype
    }

    fn upcast_vae(&mut self) {
        if self.dtype != DType::F32 {
            self.dtype = DType::F32;
            self.vae = None;
        }
    }
}

/// The end of a flow pipeline: denoised latents (b, 16, h/8, w/8) checked for overflow, decoded
/// as the `vae_decode` stage, one image per seed.
pub fn finish(
    holder: &mut dyn VaeHolder,
    latents: &Tensor,
    scaling: LatentScaling,
    (tiled, seeds): (bool, &[u64]),
    sink: &dyn ProgressSink,
    cancel: &CancelToken,
) -> Result<Vec<GeneratedImage>> {
    if !all_finite(latents)? {
        return Err(Error::job_failed(
            "the denoised latents hold NaN or infinity (the transformer overflowed): try \
             --dtype f32 or bf16",
        ));
    }
    sink.emit(EngineEvent::Loading {
        stage: "vae_decode".into(),
    });
    let images = stage("vae_decode", || {
        decode(holder, latents, scaling, tiled, cancel)
    })?;
    Ok(images
        .into_iter()
        .zip(seeds.iter().copied())
        .map(|(image, seed)| GeneratedImage { image, seed })
        .collect())
}

/// The VAE config's `(scaling_factor, shift_factor)`.
pub type LatentScaling = (f64, f64);

/// `image` in [-1, 1] -> the VAE's latent mean, shifted and scaled as the transformer sees
/// latents, in `dtype`.
pub fn encode_image(
    holder: &mut dyn VaeHolder,
    image: &Tensor,
    (scaling, shift): LatentScaling,
    dtype: DType,
    cancel: &CancelToken,
) -> Result<Tensor> {
    let vae_dtype = holder.vae_dtype();
    let vae = holder.vae()?;
    let mean = vae.encode_mean_watched(&image.to_dtype(vae_dtype)?, None, cancel)?;
    Ok(((mean.to_dtype(DType::F32)? - shift)? * scaling)?.to_dtype(dtype)?)
}

/// Latents (b, 16, h/8, w/8) -> images, one at a time, redone in f32 when a half-precision
/// decode overflows.
pub fn decode(
    holder: &mut dyn VaeHolder,
    latents: &Tensor,
    scaling: LatentScaling,
    tiled: bool,
    cancel: &CancelToken,
) -> Result<Vec<image::RgbImage>> {
    let decoded = decode_tensor(holder, latents, scaling, tiled, cancel)?;
    if all_finite(&decoded)? {
        return tensor_to_images(&decoded);
    }
    if holder.vae_dtype() != DType::F32 {
        tracing::warn!("the VAE overflowed in half precision; decoding again in f32");
        holder.upcast_vae();
        let decoded = decode_tensor(holder, latents, scaling, tiled, cancel)?;
        if all_finite(&decoded)? {
            return tensor_to_images(&decoded);
        }
    }
    Err(Error::job_failed(
        "the VAE decoded NaN or infinity even in f32: the latents are broken (try another \
         seed, or --dtype f32)",
    ))
}

/// The decoder's output (b, 3, h, w) in [-1, 1]: latents / scaling + shift, decoded.
fn decode_tensor(
    holder: &mut dyn VaeHolder,
    latents: &Tensor,
    (scaling, shift): LatentScaling,
    tiled: bool,
    cancel: &CancelToken,
) -> Result<Tensor> {
    let vae_dtype = holder.vae_dtype();
    let scaled = ((latents.to_dtype(DType::F32)? / scaling)? + shift)?.to_dtype(vae_dtype)?;
    let vae = holder.vae()?;
    let mut decoded = Vec::with_capacity(scaled.dim(0)?);
    for i in 0..scaled.dim(0)? {
        let one = scaled.narrow(0, i, 1)?;
        let tiles = tiled.then(|| {
            let tile = vae.default_tile_latent();
            (tile, tile / 4)
        });
        decoded.push(vae.decode_watched(&one, tiles, cancel)?);
    }
    Ok(Tensor::cat(&decoded, 0)?)
}
