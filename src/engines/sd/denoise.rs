//! The denoising loop: classifier-free guidance, the scheduler step, inpainting input or blending,
//! progress and previews every step, cancellation between steps.

use std::time::Instant;

use candle_core::Tensor;

use super::conditioning::Conditioning;
use super::controlnet::steer::{self, Steering};
use super::latents::latent_preview;
use super::noise::SeededNoise;
use super::request::MemoryModes;
use super::schedulers::Scheduler;
use super::unet::{AddedConditioning, UNet, UNetStep};
use crate::engines::nn::attention::AttentionMode;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

/// Inpainting inputs at latent size, already batched.
pub struct Inpainting {
    /// (n, 1, h, w), 1 = repaint.
    pub mask: Tensor,
    /// 9-channel models: the VAE latents of the image with the masked area blanked.
    pub masked_image_latents: Option<Tensor>,
    /// Ordinary models: the clean image latents re-noised and blended outside the mask every step.
    pub image_latents: Option<Tensor>,
}

pub struct DenoiseInputs<'a> {
    pub unet: &'a UNet,
    /// ControlNets steering each step (none: plain denoising).
    pub control: &'a [Steering],
    pub scheduler: &'a mut dyn Scheduler,
    pub cond: &'a Conditioning,
    pub time_ids: Option<&'a Tensor>,
    pub latents: Tensor,
    /// The initial noise (inpainting blending re-noises the image with it).
    pub noise: &'a Tensor,
    /// First timestep index (img2img).
    pub start: usize,
    pub guidance: f64,
    pub inpainting: Option<&'a Inpainting>,
    pub memory: MemoryModes,
    pub preview_every: u32,
    pub sdxl: bool,
    /// Seeds the ancestral samplers' fresh noise.
    pub seed: u64,
    pub sink: &'a dyn ProgressSink,
    pub cancel: &'a CancelToken,
}

fn doubled(t: &Tensor, guided: bool) -> Result<Tensor> {
    Ok(if guided {
        Tensor::cat(&[t, t], 0)?
    } else {
        t.clone()
    })
}

pub fn denoise(inp: DenoiseInputs<'_>) -> Result<Tensor> {
    let n = inp.latents.dim(0)?;
    let guided = inp.cond.negative.is_some();
    let context = inp.cond.hidden_states(n)?;
    let added = match (inp.cond.pooled_batch(n)?, inp.time_ids) {
        (Some(text_embeds), Some(ids)) => Some(AddedConditioning {
            text_embeds,
            time_ids: ids.repeat((context.dim(0)?, 1))?,
        }),
        _ => None,
    };
    let attn = AttentionMode::from_slice(inp.memory.attention_slice);
    let timesteps = inp.scheduler.timesteps().to_vec();
    let total = timesteps.len() - inp.start;
    // Ancestral samplers draw fresh noise each step; seeded apart from the initial noise.
    let mut step_noise = SeededNoise::new(inp.seed ^ 0x5DEE_CE66_D1CE_5EED);
    let mut latents = inp.latents;
    let begin = Instant::now();
    for (done, index) in (inp.start..timesteps.len()).enumerate() {
        if inp.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let t = timesteps[index];
        let _span = tracing::debug_span!("step", index, t).entered();
        let model_in = inp
            .scheduler
            .scale_model_input(&doubled(&latents, guided)?, index)?;
        let step = UNetStep {
            timestep: t,
            context: &context,
            added: added.as_ref(),
            attn,
            cancel: inp.cancel,
        };
        // The ControlNets take the scaled latents, before a 9-channel UNet's mask channels.
        let control = steer::residuals(inp.control, &model_in, &step, done, total)?;
        let model_in = match inp
            .inpainting
            .and_then(|i| i.masked_image_latents.as_ref().map(|m| (&i.mask, m)))
        {
            Some((mask, masked)) => {
                let mask = doubled(mask, guided)?.to_dtype(model_in.dtype())?;
                let masked = doubled(masked, guided)?.to_dtype(model_in.dtype())?;
                Tensor::cat(&[&model_in, &mask, &masked], 1)?
            }
            None => model_in,
        };
        let out = inp
            .unet
            .forward_controlled(&model_in, &step, control.as_ref())?;
        let guided_out = if guided {
            let uncond = out.narrow(0, 0, n)?;
            let text = out.narrow(0, n, n)?;
            (&uncond + ((&text - &uncond)? * inp.guidance)?)?
        } else {
            out
        };
        latents = inp
            .scheduler
            .step(&guided_out, index, &latents, &mut step_noise)?;
        // Ordinary models inpaint by blending: outside the mask, the image re-noised to the next level.
        if let Some(blend) = inp.inpainting.filter(|i| i.masked_image_latents.is_none())
            && let Some(image_latents) = &blend.image_latents
        {
            let proper = if index + 1 < timesteps.len() {
                inp.scheduler
                    .add_noise(image_latents, inp.noise, index + 1)?
            } else {
                image_latents.clone()
            };
            let mask = blend.mask.to_dtype(latents.dtype())?;
            let keep = (mask.ones_like()? - &mask)?;
            latents = (proper.broadcast_mul(&keep)? + latents.broadcast_mul(&mask)?)?;
        }
        let step = done as u32 + 1;
        crate::engines::stage::emit_step(inp.sink, step, total as u32, begin);
        if inp.preview_every > 0
            && step.is_multiple_of(inp.preview_every)
            && (step as usize) < total
        {
            inp.sink
                .emit(EngineEvent::Preview(latent_preview(&latents, inp.sdxl)?));
        }
    }
    tracing::info!(
        steps = total,
        seconds = begin.elapsed().as_secs_f64(),
        "denoising done"
    );
    Ok(latents)
}
