//! Image-to-video conditioning (diffusers' `WanImageToVideoPipeline`). Wan 2.1 I2V: the image
//! and zeros after it VAE-encoded, with a mask, as extra input channels (`channel_condition`).
//! Wan 2.2 TI2V (`expand_timesteps`): the init image VAE-encoded as one frame (the latent distribution's mean),
//! normalised as the pipeline does (`(z - latents_mean) * (1 / latents_std)`), then put in place
//! of the first latent frame: in the transformer's input at every step (where the pipeline's
//! `first_frame_mask` is 0) and in the latents decoded at the end. The first frame's patch tokens
//! get timestep 0, the others the step's.

use candle_core::{DType, Tensor};

use super::vae::WanVae;
use crate::engines::sd::latents::image_to_tensor;
use crate::error::{Error, Result};

/// The init image (already at the clip's size) → its normalised latent frame (1, C, 1, h, w), f32.
pub fn first_frame_condition(vae: &WanVae, image: &image::RgbImage) -> Result<Tensor> {
    let pixels = image_to_tensor(image, &candle_core::Device::Cpu, DType::F32)?.unsqueeze(2)?;
    let z = vae.encode(&pixels)?.to_dtype(DType::F32)?;
    vae.normalize(&z)
}

/// Wan 2.1 I2V's extra input channels for a clip of `frames` frames: the mask (the VAE's
/// temporal ratio of channels, one a frame of each latent frame: 1 on the image's frame, 0 on
/// the others) then the video `[image, zeros...]` VAE-encoded and normalised, (1, ft + C, F', h,
/// w), f32.
pub fn channel_condition(vae: &WanVae, image: &image::RgbImage, frames: usize) -> Result<Tensor> {
    let first = image_to_tensor(image, &candle_core::Device::Cpu, DType::F32)?.unsqueeze(2)?;
    let (b, c, _, h, w) = first.dims5()?;
    let video = if frames > 1 {
        let rest = Tensor::zeros((b, c, frames - 1, h, w), DType::F32, first.device())?;
        Tensor::cat(&[&first, &rest], 2)?
    } else {
        first
    };
    let z = vae.normalize(&vae.encode(&video)?.to_dtype(DType::F32)?)?;
    let (b, _, lf, lh, lw) = z.dims5()?;
    let ft = vae.config().temporal_ratio();
    let ones = Tensor::ones((b, ft, 1, lh, lw), DType::F32, z.device())?;
    let mask = if lf > 1 {
        let zeros = Tensor::zeros((b, ft, lf - 1, lh, lw), DType::F32, z.device())?;
        Tensor::cat(&[&ones, &zeros], 2)?
    } else {
        ones
    };
    Ok(Tensor::cat(&[&mask, &z], 1)?)
}

/// `(1 - mask) * condition + mask * latents` with the mask 0 on the first latent frame only:
/// the condition's frame first, then the latents' later frames.
pub fn with_first_frame(condition: &Tensor, latents: &Tensor) -> Result<Tensor> {
    let frames = latents.dim(2)?;
    let first = condition.to_dtype(latents.dtype())?;
    if first.dims()
        != [
            latents.dim(0)?,
            latents.dim(1)?,
            1,
            latents.dim(3)?,
            latents.dim(4)?,
        ]
    {
        return Err(Error::job_failed(format!(
            "internal: an image condition of shape {:?} for latents {:?}",
            first.dims(),
            latents.dims()
        )));
    }
    if frames == 1 {
        return Ok(first);
    }
    Ok(Tensor::cat(
        &[&first, &latents.narrow(2, 1, frames - 1)?],
        2,
    )?)
}

/// Per patch token timesteps (1, tokens) for `frames` x `per_frame` tokens: 0 on the first frame's
/// tokens when the first frame is the image (`(mask[:, ::p, ::p] * t).flatten()`), `t` elsewhere.
pub fn token_timesteps(
    t: f32,
    frames: usize,
    per_frame: usize,
    image_first: bool,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let n = frames * per_frame;
    let mut values = vec![t; n];
    if image_first {
        values[..per_frame.min(n)].fill(0.0);
    }
    Ok(Tensor::from_vec(values, (1, n), device)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_is_the_condition_and_its_tokens_are_at_t0() {
        let dev = candle_core::Device::Cpu;
        let latents = Tensor::ones((1, 2, 3, 2, 2), DType::F32, &dev).unwrap();
        let cond = Tensor::full(5f32, (1, 2, 1, 2, 2), &dev).unwrap();
        let mixed = with_first_frame(&cond, &latents).unwrap();
        assert_eq!(mixed.dims(), [1, 2, 3, 2, 2]);
        let v: Vec<f32> = mixed.flatten_all().unwrap().to_vec1().unwrap();
        // Channel 0: frame 0 (4 values) is 5, frames 1 and 2 are 1.
        assert_eq!(&v[..12], &[5., 5., 5., 5., 1., 1., 1., 1., 1., 1., 1., 1.]);
        let bad = Tensor::ones((1, 2, 1, 3, 2), DType::F32, &dev).unwrap();
        assert!(with_first_frame(&bad, &latents).is_err());
        let t = token_timesteps(700.0, 3, 2, true, &dev).unwrap();
        let t: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(t, [0., 0., 700., 700., 700., 700.]);
        let t = token_timesteps(700.0, 2, 2, false, &dev).unwrap();
        assert_eq!(t.dims(), [1, 4]);
    }
}
