//! Image-to-video conditioning (diffusers' `WanImageToVideoPipeline`). Wan 2.1 I2V: the image
//! and zeros after it (FLF2V: and the last image after those) VAE-encoded, with a mask, as extra
//! input channels (`channel_condition`).
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
/// temporal ratio of channels, one a frame of each latent frame: 1 on the given frames, 0 on
/// the others, `frame_mask`) then the video `[image, zeros...]` (FLF2V: `[image, zeros...,
/// last]`) VAE-encoded and normalised, (1, ft + C, F', h, w), f32. The images are at the clip's
/// size.
pub fn channel_condition(
    vae: &WanVae,
    (image, last): (&image::RgbImage, Option<&image::RgbImage>),
    frames: usize,
) -> Result<Tensor> {
    let cpu = candle_core::Device::Cpu;
    let first = image_to_tensor(image, &cpu, DType::F32)?.unsqueeze(2)?;
    let (b, c, _, h, w) = first.dims5()?;
    let ends = 1 + usize::from(last.is_some());
    if frames < ends {
        return Err(Error::bad_input(format!(
            "a clip with a first and a last frame needs 2 frames or more, not {frames}"
        )));
    }
    let mut parts = vec![first];
    if frames > ends {
        parts.push(Tensor::zeros(
            (b, c, frames - ends, h, w),
            DType::F32,
            &cpu,
        )?);
    }
    if let Some(last) = last {
        parts.push(image_to_tensor(last, &cpu, DType::F32)?.unsqueeze(2)?);
    }
    let video = Tensor::cat(&parts, 2)?;
    let z = vae.normalize(&vae.encode(&video)?.to_dtype(DType::F32)?)?;
    let (b, _, lf, lh, lw) = z.dims5()?;
    let ft = vae.config().temporal_ratio();
    let mask = Tensor::from_vec(
        frame_mask(ft, lf, frames, last.is_some()),
        (1, ft, lf, 1, 1),
        z.device(),
    )?
    .broadcast_as((b, ft, lf, lh, lw))?;
    Ok(Tensor::cat(&[&mask, &z], 1)?)
}

/// The mask channels `(ft, lf)` row-major as diffusers builds them: latent frame 0 stands for
/// frame 0 (every channel), latent frame l > 0 for frames 1 + (l - 1) ft + channel; 1 where that
/// frame is given (the first; with `last` the clip's last, frame `frames - 1`), else 0.
pub fn frame_mask(ft: usize, lf: usize, frames: usize, last: bool) -> Vec<f32> {
    let given = |frame: usize| frame == 0 || (last && frame + 1 == frames);
    let mut mask = Vec::with_capacity(ft * lf);
    for channel in 0..ft {
        for l in 0..lf {
            let frame = if l == 0 {
                0
            } else {
                1 + (l - 1) * ft + channel
            };
            mask.push(if given(frame) { 1.0 } else { 0.0 });
        }
    }
    mask
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

    /// diffusers' mask for 9 frames (3 latent frames of 4 channels): the first latent frame
    /// whole; with a last image the last channel of the last latent frame (frame 8) too.
    #[test]
    fn the_mask_marks_the_first_and_last_frames() {
        let first = frame_mask(4, 3, 9, false);
        // Channel-major: each channel's 3 latent frames.
        assert_eq!(first, [1., 0., 0., 1., 0., 0., 1., 0., 0., 1., 0., 0.]);
        let both = frame_mask(4, 3, 9, true);
        assert_eq!(both, [1., 0., 0., 1., 0., 0., 1., 0., 0., 1., 0., 1.]);
        // 5 frames: latent frame 1 holds frames 1..=4, the last in its last channel.
        assert_eq!(frame_mask(4, 2, 5, true), [1., 0., 1., 0., 1., 0., 1., 1.]);
        assert_eq!(frame_mask(4, 1, 1, false), [1., 1., 1., 1.]);
    }
}
