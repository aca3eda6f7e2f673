//! The Wan text-to-video pipeline, step for step as diffusers' `WanPipeline.__call__`: the
//! prompt's and (with guidance above 1) the negative prompt's UMT5 embeddings padded to
//! `max_sequence_length` (512); float32 noise (1, C, (F - 1)/4 + 1, H/8, W/8) drawn per seed (or
//! given: `--init-latents`, as diffusers draws it); the scheduler over the transformer with
//! classifier-free guidance `uncond + g (cond - uncond)`; the VAE's `latents_mean` / `latents_std`
//! undone and the latents decoded (in spatial tiles when asked). Staged residency loads each
//! component for its stage and drops it after (the memory plan picks it when they do not fit
//! together).
//!
//! Wan 2.2 TI2V folders (model_index.json's `expand_timesteps`) make text-to-video the same way
//! with one timestep per patch token (all equal without an image) and their 16x VAE, and
//! image-to-video as `WanImageToVideoPipeline` does (`image_cond`): the init image VAE-encoded
//! first (staged: the VAE with its encoder for that stage only) and held as the first latent frame.
//! Wan 2.1 image-to-video folders (`WanImageToVideoPipeline` with a CLIP `image_encoder`) take
//! the image as extra input channels and CLIP features (`pipeline/conditioning.rs`); they need one.
//! Wan 2.1 FLF2V folders (the same, with `pos_embed_seq_len` in the transformer's image embedder)
//! take a last image too and need it.
//!
//! A job without a negative prompt is guided by the empty prompt "", as WanPipeline does with
//! `negative_prompt=None` (the long Chinese/English negative prompt of Wan's own scripts is only
//! an example in diffusers' docs; pass it with `--negative` to use it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::image_cond::{token_timesteps, with_first_frame};
use super::schedule::WanSchedulerConfig;
use super::text::{MAX_SEQUENCE_LENGTH, T5Tokenizer, Umt5Encoder, prompt_embeds};
use super::transformer::{WanTransformer, WanTransformerConfig};
use super::vae::{WanVae, WanVaeConfig};
use crate::engines::EngineSwitches;
use crate::engines::nn::text::clip_image::ClipImageProcessor;
use crate::engines::nn::text::clip_vision::VisionTower;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::sd::noise::{NoiseSource, SeededNoise};
use crate::engines::stage::{check_cancel, emit_step, stage, timed_load};
use crate::error::{Error, Result};
use crate::vocab::Residency;

mod conditioning;
mod folder;

use conditioning::Condition;
use folder::check_channels;
pub use folder::{
    ImageInput, check_configs, check_image_frames, check_text_to_video, expands_timesteps,
    image_input,
};

/// What loading a Wan folder needs.
#[derive(Debug, Clone)]
pub struct WanLoadOptions {
    pub model_dir: PathBuf,
    pub device: Device,
    pub dtype: DType,
    pub residency: Residency,
    pub switches: EngineSwitches,
    /// UMT5 from this llama.cpp/city96 GGUF instead of text_encoder/'s weights (kept
    /// quantized; text_encoder/config.json still gives its shape).
    pub text_encoder_gguf: Option<PathBuf>,
}

/// One clip to make.
#[derive(Debug, Clone)]
pub struct VideoRequest {
    pub prompt: String,
    pub negative: String,
    pub steps: u32,
    pub guidance: f64,
    pub width: u32,
    pub height: u32,
    /// 4n + 1 frames.
    pub frames: u32,
    pub seed: u64,
    /// The 5-D starting noise (1, C, latent frames, H/8, W/8), f32.
    pub init_latents: Option<Tensor>,
    pub max_sequence_length: Option<u32>,
    /// Decode in spatial tiles (diffusers' `vae.enable_tiling()` defaults).
    pub vae_tiling: bool,
    /// A latent preview of the middle frame every this many steps (0: none).
    pub preview_every: u32,
    /// img2vid: the first frame as given (resized to `width` x `height` for the VAE here; Wan
    /// 2.1's CLIP preprocessing takes it as it is).
    pub init_image: Option<image::RgbImage>,
    /// First-last-frame (Wan 2.1 FLF2V, `--last-image`): the last frame as given, taken as the
    /// first is.
    pub last_image: Option<image::RgbImage>,
}

/// A Wan text-to-video model: its components loaded (resident) or loaded per stage (staged).
pub struct WanPipeline {
    opts: WanLoadOptions,
    tokenizer: T5Tokenizer,
    config: WanTransformerConfig,
    vae_config: WanVaeConfig,
    /// One timestep per patch token (Wan 2.2 TI2V).
    expand_timesteps: bool,
    image_input: ImageInput,
    /// Wan 2.1 I2V's CLIP image tower and its preprocessing.
    image_encoder: Option<VisionTower>,
    image_processor: Option<ClipImageProcessor>,
    text_encoder: Option<Umt5Encoder>,
    transformer: Option<WanTransformer>,
    vae: Option<WanVae>,
    /// The loaded VAE has its encoder (image-to-video).
    vae_encoder: bool,
    scheduler: WanSchedulerConfig,
}

impl WanPipeline {
    pub fn load(opts: WanLoadOptions) -> Result<Self> {
        let dir = opts.model_dir.clone();
        let _span = tracing::info_span!("pipeline_load", model = %dir.display()).entered();
        let scheduler = WanSchedulerConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
        let tokenizer = T5Tokenizer::from_dir(&dir.join("tokenizer"))?;
        let config = WanTransformerConfig::load(&dir.join("transformer/config.json"))?;
        let vae_config = WanVaeConfig::read(&dir.join("vae"))?;
        let expand_timesteps = expands_timesteps(&dir)?;
        let image_input = check_channels(&dir, &config, &vae_config, expand_timesteps)?;
        let image_processor = match (image_input, config.image_dim) {
            (ImageInput::Channels, Some(_)) => {
                conditioning::check_image_configs(&dir, &config)?;
                Some(ClipImageProcessor::load(
                    &dir.join(conditioning::PROCESSOR_CONFIG),
                )?)
            }
            _ => None,
        };
        let mut pipeline = Self {
            opts,
            tokenizer,
            config,
            vae_config,
            expand_timesteps,
            image_input,
            image_encoder: None,
            image_processor,
            text_encoder: None,
            transformer: None,
            vae: None,
            vae_encoder: false,
            scheduler,
        };
        if pipeline.opts.residency == Residency::Resident {
            pipeline.load_text_encoder()?;
            pipeline.load_transformer()?;
            pipeline.load_vae(pipeline.takes_images())?;
            pipeline.load_image_encoder()?;
        }
        Ok(pipeline)
    }

    fn staged(&self) -> bool {
        self.opts.residency != Residency::Resident
    }

    fn load_text_encoder(&mut self) -> Result<&Umt5Encoder> {
        let o = &self.opts;
        if self.text_encoder.is_none() {
            let dir = o.model_dir.join("text_encoder");
            let te = timed_load("text_encoder", || match &o.text_encoder_gguf {
                Some(gguf) => {
                    let config =
                        crate::engines::nn::text::t5::load_config(&dir.join("config.json"))?;
                    Umt5Encoder::load_gguf(gguf, &config, &o.device, o.dtype)
                }
                None => Umt5Encoder::load(&dir, &o.device, o.dtype, o.switches),
            })?;
            self.text_encoder = Some(te);
        }
        self.text_encoder
            .as_ref()
            .ok_or_else(|| Error::job_failed("internal: the text encoder did not load"))
    }

    fn load_transformer(&mut self) -> Result<()> {
        let o = &self.opts;
        if self.transformer.is_none() {
            let dir = o.model_dir.join("transformer");
            let t = timed_load("transformer", || {
                WanTransformer::load(&dir, &o.device, o.dtype, o.switches)
            })?;
            self.transformer = Some(t);
        }
        Ok(())
    }

    /// The VAE, with its encoder when `encoder` (kept loaded if it already has what is needed).
    fn load_vae(&mut self, encoder: bool) -> Result<&WanVae> {
        let o = &self.opts;
        if self.vae.is_none() || (encoder && !self.vae_encoder) {
            self.vae = None;
            let dir = o.model_dir.join("vae");
            let v = timed_load("vae", || {
                WanVae::load(&dir, &o.device, o.dtype, encoder, o.switches)
            })?;
            self.vae = Some(v);
            self.vae_encoder = encoder;
        }
        self.vae
            .as_ref()
            .ok_or_else(|| Error::job_failed("internal: the VAE did not load"))
    }

    /// Whether the model makes image-to-video (Wan 2.2 TI2V, Wan 2.1 I2V).
    pub fn takes_images(&self) -> bool {
        self.image_input != ImageInput::None
    }

    pub fn model_dir(&self) -> &Path {
        &self.opts.model_dir
    }

    /// Latent channels and the VAE's spatial compression (the shape `--init-latents` must have).
    pub fn latent_shape(&self) -> (usize, u32) {
        (
            self.latent_channels(),
            self.vae_config.spatial_ratio() as u32,
        )
    }

    fn latent_channels(&self) -> usize {
        self.vae_config.z_dim
    }

    /// The clip's frames decoded: (1, 3, frames, height, width) in [-1, 1], f32.
    pub fn generate(
        &mut self,
        req: &VideoRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let (frames, width, height) = (req.frames, req.width, req.height);
        let (ft, r) = (
            self.vae_config.temporal_ratio() as u32,
            self.vae_config.spatial_ratio() as u32,
        );
        let [pt, ph, pw] = self.config.patch_size.map(|p| p.max(1) as u32);
        let side = r * ph.max(pw);
        if frames == 0
            || !(frames - 1).is_multiple_of(ft)
            || !width.is_multiple_of(side)
            || !height.is_multiple_of(side)
        {
            return Err(Error::bad_input(format!(
                "this Wan model makes {ft}n+1 frames at sides in multiples of {side}, not \
                 {frames} frames at {width}x{height}"
            )));
        }
        let shape = (
            1usize,
            self.latent_channels(),
            ((frames - 1) / ft + 1) as usize,
            (height / r) as usize,
            (width / r) as usize,
        );
        if !(shape.2 as u32).is_multiple_of(pt) {
            return Err(Error::bad_input(format!(
                "{frames} frames make {} latent frames; this transformer's patches take {pt}",
                shape.2
            )));
        }
        let device = self.opts.device.clone();
        let latents = match &req.init_latents {
            Some(t) if t.dims() == [shape.0, shape.1, shape.2, shape.3, shape.4] => {
                t.to_device(&device)?.to_dtype(DType::F32)?
            }
            Some(t) => {
                return Err(Error::bad_input(format!(
                    "--init-latents has shape {:?}; {frames} frames at {width}x{height} take \
                     the noise {shape:?}",
                    t.dims()
                )));
            }
            None => SeededNoise::new(req.seed).randn(
                &[shape.0, shape.1, shape.2, shape.3, shape.4],
                &device,
                DType::F32,
            )?,
        };
        let condition = self.image_condition(req, sink, cancel)?;
        check_cancel(cancel)?;
        let guided = req.guidance > 1.0;
        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let max_len = req
            .max_sequence_length
            .map_or(MAX_SEQUENCE_LENGTH, |n| n as usize);
        let (positive, negative) = stage("text_encoder", || {
            self.load_text_encoder()?;
            let (Some(enc), tok) = (&self.text_encoder, &self.tokenizer) else {
                return Err(Error::job_failed("internal: the text encoder did not load"));
            };
            let pos = prompt_embeds(enc, tok, &req.prompt, max_len)?;
            let neg = if guided {
                Some(prompt_embeds(enc, tok, &req.negative, max_len)?)
            } else {
                None
            };
            Ok((pos, neg))
        })?;
        if self.staged() {
            self.text_encoder = None;
        }
        check_cancel(cancel)?;
        sink.emit(EngineEvent::Loading {
            stage: "transformer".into(),
        });
        self.load_transformer()?;
        // Each stage ends with a device synchronize, so its logged time is the device's (one
        // wait per stage, nothing inside the loop).
        let latents = stage("denoise", || {
            let prompts = (&positive, negative.as_ref());
            let out = self.denoise(latents, prompts, &condition, req, (sink, cancel))?;
            out.device().synchronize()?;
            Ok(out)
        })?;
        if self.staged() {
            self.transformer = None;
        }
        check_cancel(cancel)?;
        sink.emit(EngineEvent::Loading {
            stage: "vae".into(),
        });
        self.load_vae(false)?;
        let video = stage("vae_decode", || {
            let out = self.decode(&latents, req.vae_tiling)?;
            out.device().synchronize()?;
            Ok(out)
        });
        if self.staged() {
            self.vae = None;
        }
        video
    }

    fn denoise(
        &self,
        mut latents: Tensor,
        (positive, negative): (&Tensor, Option<&Tensor>),
        condition: &Condition,
        req: &VideoRequest,
        (sink, cancel): (&dyn ProgressSink, &CancelToken),
    ) -> Result<Tensor> {
        let Some(transformer) = &self.transformer else {
            return Err(Error::job_failed("internal: the transformer did not load"));
        };
        let mut schedule = self.scheduler.build(req.steps as usize)?;
        let timesteps = schedule.timesteps();
        let total = timesteps.len() as u32;
        let dtype = transformer.dtype();
        let begin = Instant::now();
        for (i, &t) in timesteps.iter().enumerate() {
            check_cancel(cancel)?;
            let input = match condition {
                Condition::FirstFrame(c) => with_first_frame(c, &latents)?,
                Condition::Channels { latents: c, .. } => Tensor::cat(&[&latents, c], 1)?,
                Condition::None => latents.clone(),
            }
            .to_dtype(dtype)?;
            let first = matches!(condition, Condition::FirstFrame(_));
            let timestep = self.timestep(t, &latents, first)?;
            let image = match condition {
                Condition::Channels { clip, .. } => clip.as_ref(),
                _ => None,
            };
            let predict = |text: &Tensor| {
                transformer.forward_image_watched(&input, &timestep, text, image, cancel)
            };
            let cond = predict(positive)?;
            let velocity = match negative {
                Some(neg) => {
                    let uncond = predict(neg)?;
                    // noise_uncond + g * (noise_pred - noise_uncond), in the model's dtype.
                    (&uncond + ((cond - &uncond)? * req.guidance)?)?
                }
                None => cond,
            };
            latents = schedule.step(&velocity, i, &latents)?;
            let step = i as u32 + 1;
            emit_step(sink, step, total, begin);
            if req.preview_every > 0 && step.is_multiple_of(req.preview_every) && step < total {
                sink.emit(EngineEvent::Preview(super::preview::middle_frame_preview(
                    &latents,
                )?));
            }
        }
        match condition {
            Condition::FirstFrame(c) => with_first_frame(c, &latents),
            _ => Ok(latents),
        }
    }

    /// The transformer's timestep input: `t` (1,), or with `expand_timesteps` one per patch
    /// token (1, F/pt * H/ph * W/pw): all `t` without an image (WanPipeline's mask is all ones),
    /// 0 on the first frame's tokens when it is the init image.
    fn timestep(&self, t: f64, latents: &Tensor, image_first: bool) -> Result<Tensor> {
        let device = &self.opts.device;
        if !self.expand_timesteps {
            return Ok(Tensor::new(&[t as f32], device)?);
        }
        let (_, _, f, h, w) = latents.dims5()?;
        let [pt, ph, pw] = self.config.patch_size.map(|p| p.max(1));
        token_timesteps(t as f32, f / pt, (h / ph) * (w / pw), image_first, device)
    }

    /// The transformer's latents de-normalised (`latents / (1/std) + mean`) and decoded.
    fn decode(&self, latents: &Tensor, tiled: bool) -> Result<Tensor> {
        let Some(vae) = &self.vae else {
            return Err(Error::job_failed("internal: the VAE did not load"));
        };
        let z = vae.denormalize(&latents.to_dtype(self.opts.dtype)?)?;
        let video = if tiled {
            let (tile, overlap) = vae.default_tiles();
            vae.tiled_decode(&z, tile, overlap)?
        } else {
            vae.decode(&z)?
        };
        Ok(video.to_dtype(DType::F32)?)
    }
}
