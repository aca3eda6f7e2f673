//! SD 3.5's latents in and out of the VAE: given noise checked against the image size, an init
//! image encoded to shifted and scaled latents, and latents decoded (again in f32 when a
//! half-precision decode overflows).

use candle_core::{DType, Tensor};

use super::components::Sd3Components;
use crate::engines::progress::CancelToken;
use crate::engines::sd::latents::{all_finite, tensor_to_images};
use crate::engines::sd::vae::Vae;
use crate::error::{Error, Result};

/// `--init-latents` as the unpacked noise (1 or n, c, h/8, w/8), repeated to `n` images.
pub fn given_noise(
    t: &Tensor,
    n: usize,
    (c, lh, lw): (usize, usize, usize),
    (width, height): (usize, usize),
    dtype: DType,
) -> Result<Tensor> {
    let dims = t.dims();
    let fits = dims.len() == 4 && dims[1..] == [c, lh, lw] && (dims[0] == 1 || dims[0] == n);
    if !fits {
        return Err(Error::bad_input(format!(
            "--init-latents has shape {dims:?}; SD 3.5 at {width}x{height} takes the noise \
             [1, {c}, {lh}, {lw}]"
        )));
    }
    let t = t.to_dtype(dtype)?;
    Ok(if dims[0] == n {
        t
    } else {
        t.repeat((n, 1, 1, 1))?
    })
}

/// `image` in [-1, 1] -> the VAE's latent mean as the transformer sees latents (diffusers'
/// `(latents - shift_factor) * scaling_factor`), in f32.
pub fn encode_image(
    vae: &Vae,
    vae_dtype: DType,
    image: &Tensor,
    (scaling, shift): (f64, f64),
    cancel: &CancelToken,
) -> Result<Tensor> {
    let mean = vae.encode_mean_watched(&image.to_dtype(vae_dtype)?, None, cancel)?;
    Ok(((mean.to_dtype(DType::F32)? - shift)? * scaling)?)
}

/// Latents (b, 16, h/8, w/8) -> images, one at a time, redone in f32 when a half-precision
/// decode overflows.
pub fn decode_images(
    components: &mut Sd3Components,
    latents: &Tensor,
    scaling: (f64, f64),
    tiled: bool,
    cancel: &CancelToken,
) -> Result<Vec<image::RgbImage>> {
    let decoded = decode_tensor(components, latents, scaling, tiled, cancel)?;
    if all_finite(&decoded)? {
        return tensor_to_images(&decoded);
    }
    if components.vae_dtype() != DType::F32 {
        tracing::warn!("the VAE overflowed in half precision; decoding again in f32");
        components.upcast_vae();
        let decoded = decode_tensor(components, latents, scaling, tiled, cancel)?;
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
pub fn decode_tensor(
    components: &mut Sd3Components,
    latents: &Tensor,
    (scaling, shift): (f64, f64),
    tiled: bool,
    cancel: &CancelToken,
) -> Result<Tensor> {
    let vae_dtype = components.vae_dtype();
    let scaled = ((latents.to_dtype(DType::F32)? / scaling)? + shift)?.to_dtype(vae_dtype)?;
    let vae = components.vae()?;
    let tiles = tiled.then(|| {
        let tile = vae.default_tile_latent();
        (tile, tile / 4)
    });
    let decoded = (0..scaled.dim(0)?)
        .map(|i| vae.decode_watched(&scaled.narrow(0, i, 1)?, tiles, cancel))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&decoded, 0)?)
}
