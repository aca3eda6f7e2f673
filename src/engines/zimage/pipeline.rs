//! The Z-Image pipeline, step for step as diffusers' ZImagePipeline (txt2img): the prompt's
//! Qwen3 features; noise (1, 16, H/8, W/8) drawn per seed in f32 (or given, as diffusers draws
//! it); the flow-matching Euler loop over the transformer, whose output is negated before each
//! step; classifier-free guidance for any scale above 0 as `pos + g (pos - neg)` (so diffusers'
//! Z-Image scale g is a classic CFG scale of g + 1), dropped for the steps past `cfg_truncation`
//! and renormalised by `cfg_normalization`; the VAE's shift and scale undone, decoded.

use std::path::Path;

use candle_core::{DType, Tensor};

use super::components::{ZImageComponents, ZImageLoadOptions};
use super::prompt;
use super::tokenizer::{DEFAULT_MAX_LENGTH, QwenTokenizer};
use super::transformer::ZImageTransformerConfig;
use crate::engines::flux::latents::starting_noise;
use crate::engines::flux::preview::latent_preview;
use crate::engines::flux::scheduler::{FlowMatchConfig, FlowMatchEuler};
use crate::engines::flux::vae_io;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::sd::config::VaeConfig;
use crate::engines::sd::{GenerateRequest, GeneratedImage};
use crate::engines::stage::{check_cancel, emit_step, stage};
use crate::error::{Error, Result};

/// diffusers' guidance settings beyond the scale (ZImagePipeline's `cfg_normalization` and
/// `cfg_truncation`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CfgSettings {
    /// Guidance applies while the normalised time `(1000 - t) / 1000` is at most this (1: always).
    pub truncation: f64,
    /// When above 0, a guided prediction's norm is capped at this times the positive's.
    pub normalization: f64,
}

impl Default for CfgSettings {
    fn default() -> Self {
        Self {
            truncation: 1.0,
            normalization: 0.0,
        }
    }
}

/// A loaded (or, when staged, loadable) Z-Image model.
pub struct ZImagePipeline {
    components: ZImageComponents,
    tokenizer: QwenTokenizer,
    scheduler_config: FlowMatchConfig,
    vae_config: VaeConfig,
    device: candle_core::Device,
    dtype: DType,
}

impl ZImagePipeline {
    /// Reads the configs and the tokenizer; loads the networks now when resident.
    pub fn load(opts: ZImageLoadOptions) -> Result<Self> {
        let dir = opts.model_dir.clone();
        let _span = tracing::info_span!("pipeline_load", model = %dir.display()).entered();
        let transformer = ZImageTransformerConfig::load(&dir.join("transformer/config.json"))?;
        let vae_config = VaeConfig::load(&dir.join("vae/config.json"))?;
        if vae_config.latent_channels != transformer.in_channels {
            return Err(Error::bad_input(format!(
                "{}: the VAE has {} latent channels but the transformer takes {}; the folder \
                 mixes models",
                dir.display(),
                vae_config.latent_channels,
                transformer.in_channels
            )));
        }
        let scheduler_config = FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
        let tokenizer = QwenTokenizer::from_dir(&dir.join("tokenizer"))?;
        let (device, dtype) = (opts.device.clone(), opts.dtype);
        let mut components = ZImageComponents::new(opts);
        if components.residency() == crate::vocab::Residency::Resident {
            components.load_all()?;
        }
        Ok(Self {
            components,
            tokenizer,
            scheduler_config,
            vae_config,
            device,
            dtype,
        })
    }

    pub fn model_dir(&self) -> &Path {
        self.components.model_dir()
    }

    fn latent_scaling(&self) -> vae_io::LatentScaling {
        (
            self.vae_config.scaling_factor,
            self.vae_config.shift_factor.unwrap_or(0.0),
        )
    }

    /// The prompt's features, and the negative's when guidance applies (an empty negative is
    /// encoded as "", as diffusers does).
    fn encode_prompts(
        &mut self,
        req: &GenerateRequest,
        guided: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let max = req.max_sequence_length.unwrap_or(DEFAULT_MAX_LENGTH);
        let dtype = self.dtype;
        let encoder = self.components.text_encoder()?;
        let positive = prompt::encode(&self.tokenizer, encoder, &req.prompt, max, dtype)?;
        let negative = if guided {
            Some(prompt::encode(
                &self.tokenizer,
                encoder,
                &req.negative,
                max,
                dtype,
            )?)
        } else {
            None
        };
        Ok((positive, negative))
    }

    /// Run one job: `req.batch` images with seeds seed, seed+1, ...
    pub fn generate(
        &mut self,
        req: &GenerateRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Vec<GeneratedImage>> {
        let _span = tracing::info_span!("generate", steps = req.steps, seed = req.seed).entered();
        let (height, width) = (req.height as usize, req.width as usize);
        if !height.is_multiple_of(16) || !width.is_multiple_of(16) || height == 0 || width == 0 {
            return Err(Error::bad_input(format!(
                "Z-Image makes images whose sides are multiples of 16; {width}x{height} is not"
            )));
        }
        if req.init_image.is_some() || req.mask.is_some() {
            return Err(Error::bad_input(
                "Z-Image runs text-to-image only: drop --init-image and --mask",
            ));
        }
        let n = req.batch as usize;
        let seeds: Vec<u64> = (0..n as u64).map(|i| req.seed.wrapping_add(i)).collect();
        let (lh, lw) = (height / 8, width / 8);
        let channels = self.vae_config.latent_channels;
        let guided = req.guidance > 0.0;

        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let (positive, negative) = stage("text_encoder", || self.encode_prompts(req, guided))?;
        self.components.release_text_encoder();
        check_cancel(cancel)?;

        // diffusers draws (and steps) the latents in f32 whatever the model's dtype.
        let latents = starting_noise(
            req.init_latents.as_ref(),
            &seeds,
            (channels, lh, lw),
            &self.device,
            DType::F32,
            "Z-Image",
        )?;
        let image_seq_len = (lh / 2) * (lw / 2);
        let scheduler =
            FlowMatchEuler::for_zimage(&self.scheduler_config, req.steps as usize, image_seq_len)?;

        sink.emit(EngineEvent::Loading {
            stage: "transformer".into(),
        });
        let denoised = stage("denoise", || {
            self.denoise(Denoise {
                latents,
                positive: &positive,
                negative: negative.as_ref(),
                guidance: req.guidance,
                // diffusers' defaults: no truncation, no renormalisation.
                cfg: CfgSettings::default(),
                scheduler: &scheduler,
                preview_every: req.preview_every,
                attention: AttentionMode::from_slice(req.memory.attention_slice),
                sink,
                cancel,
            })
        })?;
        self.components.release_transformer();
        let scaling = self.latent_scaling();
        let tiled = req.memory.vae_tiling;
        let images = vae_io::finish(
            self.components.vae(),
            &denoised,
            scaling,
            (tiled, &seeds),
            sink,
            cancel,
        )?;
        self.components.release_vae();
        Ok(images)
    }

    fn denoise(&mut self, inp: Denoise<'_>) -> Result<Tensor> {
        let device = self.device.clone();
        let mut latents = inp.latents;
        let n = latents.dim(0)?;
        let transformer = self.components.transformer(inp.attention)?;
        let timesteps = inp.scheduler.timesteps().to_vec();
        let total = timesteps.len();
        let begin = std::time::Instant::now();
        for (i, &t) in timesteps.iter().enumerate() {
            check_cancel(inp.cancel)?;
            let _span = tracing::debug_span!("step", i, t).entered();
            // As diffusers: float32 `(1000 - t) / 1000`.
            let t_norm = (1000f32 - t as f32) / 1000f32;
            let scale = guidance_at(inp.guidance, inp.cfg.truncation, t_norm);
            let negative = inp.negative.filter(|_| scale > 0.0);
            // One (C, 1, H, W) item per image: the prompt's, then the negative's.
            let mut items = Vec::with_capacity(2 * n);
            let mut caps = Vec::with_capacity(2 * n);
            for pass in std::iter::once(inp.positive).chain(negative) {
                for k in 0..n {
                    items.push(latents.get(k)?.unsqueeze(1)?);
                    caps.push(pass.clone());
                }
            }
            let timestep = Tensor::full(t_norm, items.len(), &device)?;
            let out = transformer.forward_watched(&items, &timestep, &caps, inp.cancel)?;
            let mut predictions = Vec::with_capacity(n);
            for k in 0..n {
                let pos = out[k].to_dtype(DType::F32)?.squeeze(1)?;
                let pred = match negative {
                    Some(_) => {
                        let neg = out[n + k].to_dtype(DType::F32)?.squeeze(1)?;
                        guide(&pos, &neg, scale, inp.cfg.normalization)?
                    }
                    None => pos,
                };
                predictions.push(pred);
            }
            let velocity = Tensor::stack(&predictions, 0)?.neg()?;
            latents = inp.scheduler.step(&velocity, i, &latents)?;
            let step = i as u32 + 1;
            emit_step(inp.sink, step, total as u32, begin);
            if inp.preview_every > 0
                && step.is_multiple_of(inp.preview_every)
                && (step as usize) < total
            {
                inp.sink
                    .emit(EngineEvent::Preview(latent_preview(&latents)?));
            }
        }
        tracing::info!(
            steps = total,
            seconds = begin.elapsed().as_secs_f64(),
            "denoising done"
        );
        Ok(latents)
    }
}

/// The guidance scale at normalised time `t_norm`: 0 (no guidance) unless the scale is above 0
/// and, with a truncation of at most 1, the time has not passed it.
fn guidance_at(scale: f64, truncation: f64, t_norm: f32) -> f64 {
    if scale <= 0.0 {
        return 0.0;
    }
    if truncation <= 1.0 && f64::from(t_norm) > truncation {
        return 0.0;
    }
    scale
}

/// `pos + g (pos - neg)` in f32, its norm capped at `normalization` times the positive's when
/// that is above 0 (diffusers' renormalisation: whole-tensor L2 norms).
fn guide(pos: &Tensor, neg: &Tensor, scale: f64, normalization: f64) -> Result<Tensor> {
    let pred = (pos + ((pos - neg)? * scale)?)?;
    if normalization <= 0.0 {
        return Ok(pred);
    }
    let norm = |t: &Tensor| -> Result<f32> { Ok(t.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?) };
    let (pos_norm, new_norm) = (norm(pos)?, norm(&pred)?);
    let max_norm = pos_norm * normalization as f32;
    if new_norm > max_norm {
        return Ok((pred * f64::from(max_norm / new_norm))?);
    }
    Ok(pred)
}

struct Denoise<'a> {
    /// (b, C, H/8, W/8) f32.
    latents: Tensor,
    positive: &'a Tensor,
    negative: Option<&'a Tensor>,
    guidance: f64,
    cfg: CfgSettings,
    scheduler: &'a FlowMatchEuler,
    preview_every: u32,
    attention: AttentionMode,
    sink: &'a dyn ProgressSink,
    cancel: &'a CancelToken,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn guidance_applies_above_zero_until_the_truncation_time() {
        assert_eq!(guidance_at(0.0, 1.0, 0.0), 0.0);
        // diffusers guides for any scale above 0 (`guidance_scale > 0`).
        assert_eq!(guidance_at(0.5, 1.0, 0.0), 0.5);
        assert_eq!(guidance_at(4.0, 1.0, 0.9), 4.0);
        assert_eq!(guidance_at(4.0, 0.5, 0.4), 4.0);
        assert_eq!(guidance_at(4.0, 0.5, 0.6), 0.0);
        // A truncation above 1 never applies (diffusers checks `<= 1`).
        assert_eq!(guidance_at(4.0, 1.5, 0.99), 4.0);
    }

    #[test]
    fn guidance_extrapolates_and_renormalises() {
        let dev = Device::Cpu;
        let pos = Tensor::new(&[3f32, 4.0], &dev).unwrap();
        let neg = Tensor::new(&[1f32, 1.0], &dev).unwrap();
        let plain = guide(&pos, &neg, 2.0, 0.0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(plain, vec![7.0, 10.0]);
        // |pos| = 5: capped at 1.0 x 5.
        let capped = guide(&pos, &neg, 2.0, 1.0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let norm = (capped[0] * capped[0] + capped[1] * capped[1]).sqrt();
        assert!((norm - 5.0).abs() < 1e-5, "{capped:?}");
        assert!((capped[0] / capped[1] - 0.7).abs() < 1e-6);
        // A cap above the guided norm changes nothing.
        let loose = guide(&pos, &neg, 2.0, 10.0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(loose, plain);
    }
}
