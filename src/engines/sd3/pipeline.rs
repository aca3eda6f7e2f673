//! The SD 3.5 pipeline, step for step as diffusers' StableDiffusion3Pipeline (txt2img) and
//! StableDiffusion3Img2ImgPipeline: prompts -> CLIP-L + CLIP-G + T5 states and pooled embedding;
//! noise (1, 16, H/8, W/8) drawn per seed (or given); the flow-matching Euler loop over the
//! transformer with classifier-free guidance (negative then positive in one batch of two when
//! guidance > 1); undo the VAE's scale and shift, decode.

use std::path::Path;

use candle_core::{DType, Tensor};

use super::components::{Sd3Components, Sd3LoadOptions};
use super::decode;
use super::prompt::{Clip, Encoders, Sd3Embeds};
use super::schedule::sd3_schedule;
use super::transformer::Sd3TransformerConfig;
use crate::engines::flux::preview::latent_preview;
use crate::engines::flux::scheduler::{FlowMatchConfig, FlowMatchEuler};
use crate::engines::flux::tokenizer::T5Tokenizer;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::sd::config::VaeConfig;
use crate::engines::sd::latents::{all_finite, image_to_tensor, seeded_noise};
use crate::engines::sd::tokenizer::ClipTokenizer;
use crate::engines::sd::{GenerateRequest, GeneratedImage};
use crate::engines::stage::{check_cancel, emit_step, stage};
use crate::error::{Error, Result};

/// T5 tokens when a job does not say: diffusers' StableDiffusion3Pipeline default.
pub const DEFAULT_SEQUENCE: usize = 256;

/// A loaded (or, when staged, loadable) SD 3.5 model.
pub struct Sd3Pipeline {
    components: Sd3Components,
    clip_l_tokenizer: ClipTokenizer,
    clip_g_tokenizer: ClipTokenizer,
    t5_tokenizer: Option<T5Tokenizer>,
    scheduler_config: FlowMatchConfig,
    transformer_config: Sd3TransformerConfig,
    vae_config: VaeConfig,
    device: candle_core::Device,
    dtype: DType,
}

impl Sd3Pipeline {
    /// Reads the configs and tokenizers; loads the networks now when resident.
    pub fn load(opts: Sd3LoadOptions) -> Result<Self> {
        let dir = opts.model_dir.clone();
        let _span = tracing::info_span!("pipeline_load", model = %dir.display()).entered();
        let transformer_config = Sd3TransformerConfig::load(&dir.join("transformer/config.json"))?;
        let vae_config = VaeConfig::load(&dir.join("vae/config.json"))?;
        if vae_config.latent_channels != transformer_config.in_channels {
            return Err(Error::bad_input(format!(
                "{}: the VAE has {} latent channels but the transformer takes {}; the folder \
                 mixes models",
                dir.display(),
                vae_config.latent_channels,
                transformer_config.in_channels
            )));
        }
        let scheduler_config = FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
        let clip_l_tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
        let clip_g_tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer_2"))?;
        let t5_tokenizer = if opts.no_t5 {
            None
        } else {
            Some(T5Tokenizer::from_dir(&dir.join("tokenizer_3"))?)
        };
        let (device, dtype) = (opts.device.clone(), opts.dtype);
        let mut components = Sd3Components::new(opts);
        if components.residency() == crate::vocab::Residency::Resident {
            components.load_all()?;
        }
        Ok(Self {
            components,
            clip_l_tokenizer,
            clip_g_tokenizer,
            t5_tokenizer,
            scheduler_config,
            transformer_config,
            vae_config,
            device,
            dtype,
        })
    }

    pub fn model_dir(&self) -> &Path {
        self.components.model_dir()
    }

    /// The prompt's conditioning, and the negative prompt's when guidance is on.
    pub fn encode_prompts(
        &mut self,
        prompt: &str,
        negative: Option<&str>,
        max_sequence_length: usize,
    ) -> Result<(Sd3Embeds, Option<Sd3Embeds>)> {
        let (device, dtype) = (self.device.clone(), self.dtype);
        let joint_dim = self.transformer_config.joint_attention_dim;
        let text = self.components.text_encoders()?;
        let t5 = match (&self.t5_tokenizer, text.t5) {
            (Some(tok), Some(enc)) => Some((tok, enc)),
            _ => None,
        };
        let encoders = Encoders {
            clip_l: Clip {
                tokenizer: &self.clip_l_tokenizer,
                encoder: text.clip_l,
            },
            clip_g: Clip {
                tokenizer: &self.clip_g_tokenizer,
                encoder: text.clip_g,
            },
            t5,
            max_sequence_length,
            joint_dim,
        };
        let embeds = encoders.encode(prompt, &device, dtype)?;
        let negative = negative
            .map(|n| encoders.encode(n, &device, dtype))
            .transpose()?;
        Ok((embeds, negative))
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
        let side = 8 * self.transformer_config.patch_size;
        if !height.is_multiple_of(side) || !width.is_multiple_of(side) || height == 0 || width == 0
        {
            return Err(Error::bad_input(format!(
                "SD 3.5 makes images whose sides are multiples of {side}; {width}x{height} is not"
            )));
        }
        if req.mask.is_some() {
            return Err(Error::bad_input(
                "SD 3.5 inpainting is not supported yet: drop --mask (img2img takes --init-image)",
            ));
        }
        let n = req.batch as usize;
        let seeds: Vec<u64> = (0..n as u64).map(|i| req.seed.wrapping_add(i)).collect();
        let (lh, lw) = (height / 8, width / 8);
        let channels = self.vae_config.latent_channels;
        let (device, dtype) = (self.device.clone(), self.dtype);
        let cfg = req.guidance > 1.0;

        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let max_len = req.max_sequence_length.unwrap_or(DEFAULT_SEQUENCE);
        let (prompt, negative) = stage("text_encoder", || {
            self.encode_prompts(&req.prompt, cfg.then_some(req.negative.as_str()), max_len)
        })?;
        self.components.release_text_encoders();
        check_cancel(cancel)?;

        let noise = match &req.init_latents {
            Some(t) => {
                let t = t.to_device(&device)?;
                decode::given_noise(&t, n, (channels, lh, lw), (width, height), dtype)?
            }
            None => seeded_noise(&seeds, (channels, lh, lw), &device, dtype)?,
        };
        let mut scheduler = sd3_schedule(&self.scheduler_config, req.steps as usize)?;
        let latents = match &req.init_image {
            Some(img) => {
                scheduler.truncate_for_strength(req.strength)?;
                sink.emit(EngineEvent::Loading {
                    stage: "vae_encode".into(),
                });
                let pixels = image_to_tensor(img, &device, dtype)?;
                let image_latents = stage("vae_encode", || {
                    let (scaling, shift) = self.latent_scaling();
                    let vae_dtype = self.components.vae_dtype();
                    let vae = self.components.vae()?;
                    decode::encode_image(vae, vae_dtype, &pixels, (scaling, shift), cancel)
                })?
                .to_dtype(dtype)?
                .repeat((n, 1, 1, 1))?;
                self.components.release_vae();
                scheduler.scale_noise(&image_latents, &noise)?
            }
            None => noise,
        };
        check_cancel(cancel)?;

        sink.emit(EngineEvent::Loading {
            stage: "transformer".into(),
        });
        let guided = match &negative {
            Some(neg) => Sd3Embeds::stack(&neg.repeat(n)?, &prompt.repeat(n)?)?,
            None => prompt.repeat(n)?,
        };
        let denoised = stage("denoise", || {
            self.denoise(Denoise {
                latents,
                embeds: &guided,
                guidance: cfg.then_some(req.guidance),
                scheduler: &scheduler,
                preview_every: req.preview_every,
                attention: AttentionMode::from_slice(req.memory.attention_slice),
                sink,
                cancel,
            })
        })?;
        self.components.release_transformer();
        if !all_finite(&denoised)? {
            return Err(Error::job_failed(
                "the denoised latents hold NaN or infinity (the transformer overflowed): try \
                 --dtype f32 or bf16",
            ));
        }
        sink.emit(EngineEvent::Loading {
            stage: "vae_decode".into(),
        });
        let scaling = self.latent_scaling();
        let images = stage("vae_decode", || {
            decode::decode_images(
                &mut self.components,
                &denoised,
                scaling,
                req.memory.vae_tiling,
                cancel,
            )
        })?;
        self.components.release_vae();
        Ok(images
            .into_iter()
            .zip(seeds)
            .map(|(image, seed)| GeneratedImage { image, seed })
            .collect())
    }

    fn latent_scaling(&self) -> (f64, f64) {
        (
            self.vae_config.scaling_factor,
            self.vae_config.shift_factor.unwrap_or(0.0),
        )
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
            let (input, rows) = match inp.guidance {
                Some(_) => (Tensor::cat(&[&latents, &latents], 0)?, 2 * n),
                None => (latents.clone(), n),
            };
            let timestep = Tensor::full(t as f32, rows, &device)?;
            let out = transformer.forward_watched(
                &input,
                &inp.embeds.states,
                &inp.embeds.pooled,
                &timestep,
                inp.cancel,
            )?;
            let velocity = match inp.guidance {
                Some(g) => {
                    let (uncond, text) = (out.narrow(0, 0, n)?, out.narrow(0, n, n)?);
                    (&uncond + ((&text - &uncond)? * g)?)?
                }
                None => out,
            };
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

struct Denoise<'a> {
    /// (b, 16, h/8, w/8).
    latents: Tensor,
    /// Negative then positive rows when guided, else positive only.
    embeds: &'a Sd3Embeds,
    /// The CFG scale, when above 1.
    guidance: Option<f64>,
    scheduler: &'a FlowMatchEuler,
    preview_every: u32,
    attention: AttentionMode,
    sink: &'a dyn ProgressSink,
    cancel: &'a CancelToken,
}
