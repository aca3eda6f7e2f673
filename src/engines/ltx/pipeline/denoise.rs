//! The denoising loop of `LTXPipeline.__call__`: FlowMatchEuler over `linspace(1, 1/n, n)`
//! shifted by the `mu` of the token count, classifier-free guidance on a batch of two, the RoPE
//! scaled by the frame rate; image-to-video keeps the first latent frame's tokens at timestep 0.

use std::time::Instant;

use candle_core::Tensor;

use super::{LtxPipeline, LtxRequest};
use crate::engines::flux::scheduler::{FlowMatchEuler, calculate_shift, linspace};
use crate::engines::ltx::transformer::LtxInputs;
use crate::engines::progress::{CancelToken, ProgressSink};
use crate::engines::stage::{check_cancel, emit_step};
use crate::error::{Error, Result};

impl LtxPipeline {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn denoise(
        &self,
        mut latents: Tensor,
        text: &Tensor,
        mask: &Tensor,
        tokens: [usize; 3],
        req: &LtxRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let n = req.steps.max(1) as usize;
        let seq = tokens.iter().product::<usize>();
        let s = &self.scheduler;
        let mu = calculate_shift(
            seq,
            s.base_image_seq_len.unwrap_or(256),
            s.max_image_seq_len.unwrap_or(4096),
            s.base_shift.unwrap_or(0.5),
            s.max_shift.unwrap_or(1.15),
        );
        let schedule = FlowMatchEuler::with_sigmas(s, &linspace(1.0, 1.0 / n as f64, n), Some(mu))?;
        let Some(transformer) = &self.transformer else {
            return Err(Error::job_failed("internal: the transformer did not load"));
        };
        let vae = &self.vae_config;
        let rope_scale = [
            (vae.temporal_ratio() as f64 / req.frame_rate) as f32,
            vae.spatial_ratio() as f32,
            vae.spatial_ratio() as f32,
        ];
        let batch = text.dim(0)?;
        let conditioned = req.image.is_some();
        // Image-to-video: 1 for the first latent frame's tokens (timestep 0, never stepped).
        let per_frame = tokens[1] * tokens[2];
        let keep = |t: f32| -> Vec<f32> {
            (0..seq)
                .map(|i| if conditioned && i < per_frame { 0.0 } else { t })
                .collect()
        };
        let total = schedule.timesteps().len() as u32;
        let begin = Instant::now();
        for (i, &t) in schedule.timesteps().iter().enumerate() {
            check_cancel(cancel)?;
            let input = if batch == 2 {
                Tensor::cat(&[&latents, &latents], 0)?
            } else {
                latents.clone()
            };
            let timestep = if conditioned {
                let row = Tensor::from_vec(keep(t as f32), (1, seq), latents.device())?;
                Tensor::cat(&vec![&row; batch], 0)?
            } else {
                Tensor::full(t as f32, batch, latents.device())?
            };
            let inputs = LtxInputs {
                text,
                mask: Some(mask),
                timestep: &timestep,
                grid: tokens,
                rope_scale: Some(rope_scale),
            };
            let pred = transformer.forward(&input, &inputs)?;
            let velocity = if batch == 2 {
                let uncond = pred.narrow(0, 0, 1)?;
                let cond = pred.narrow(0, 1, 1)?;
                (&uncond + ((cond - &uncond)? * req.guidance)?)?
            } else {
                pred
            };
            latents = if conditioned {
                // Tokens are frame-major (patch_size_t 1): the first frame's stay as they are.
                let rest = seq - per_frame;
                let stepped = schedule.step(
                    &velocity.narrow(1, per_frame, rest)?,
                    i,
                    &latents.narrow(1, per_frame, rest)?,
                )?;
                Tensor::cat(&[&latents.narrow(1, 0, per_frame)?, &stepped], 1)?
            } else {
                schedule.step(&velocity, i, &latents)?
            };
            emit_step(sink, i as u32 + 1, total, begin);
        }
        Ok(latents)
    }
}
