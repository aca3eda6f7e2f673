//! The LTX-Video text-to-video pipeline, step for step as diffusers' `LTXPipeline.__call__`:
//! the prompt's and (with guidance above 1) the negative prompt's T5 states with their padding
//! masks (`max_sequence_length` 128); float32 noise (1, C, (F - 1)/8 + 1, H/32, W/32) drawn per
//! seed or given (`--init-latents`, unpacked), packed into tokens; FlowMatchEuler over
//! `linspace(1, 1/n, n)` shifted by the `mu` of `calculate_shift` on the token count; classifier-
//! free guidance `uncond + g (cond - uncond)` on a batch of two; the RoPE scaled by (8 /
//! frame_rate, 32, 32); the latents unpacked, de-normalised and decoded, at `decode_timestep`
//! with `decode_noise_scale` of fresh noise mixed in when the VAE is timestep-conditioned.
//!
//! T5 runs on the padded ids without a mask (as diffusers calls it); the mask only reaches the
//! transformer's cross-attention.
//!
//! Residency: `Resident` loads T5, the transformer and the VAE's decoder at load and keeps them
//! (the VAE is reloaded with its encoder on the first image-to-video request and kept so);
//! `Staged` loads each component when its stage starts and drops it after: the VAE with its
//! encoder for the first frame's latents (image-to-video), T5 for the prompts, the transformer
//! for the denoise, the VAE's decoder for the decode. `LtxRequest::vae_tiling` decodes in
//! diffusers' spatial tiles (`vae::VaeTiles::default()`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::transformer::{LtxTransformer, LtxTransformerConfig};
use super::vae::{LtxVae, LtxVaeConfig, VaeTiles};
use crate::engines::EngineSwitches;
use crate::engines::flux::scheduler::FlowMatchConfig;
use crate::engines::flux::tokenizer::T5Tokenizer;
use crate::engines::nn::text::t5_text::{T5Source, T5Text};
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::sd::noise::{NoiseSource, SeededNoise};
use crate::engines::stage::{check_cancel, stage, timed_load};
use crate::error::{Error, Result};
use crate::vocab::Residency;

mod denoise;
mod grid;

pub use grid::{check_configs, latent_grid, pack, unpack};

/// LTXPipeline's default `max_sequence_length`.
pub const MAX_SEQUENCE_LENGTH: usize = 128;
/// LTXPipeline's default `frame_rate`.
pub const FRAME_RATE: f64 = 25.0;

/// What loading an LTX folder needs.
#[derive(Debug, Clone)]
pub struct LtxLoadOptions {
    pub model_dir: PathBuf,
    pub device: Device,
    pub dtype: DType,
    pub switches: EngineSwitches,
    /// Resident: everything loaded at once; staged: each component for its stage only. The
    /// VAE's encoder loads only for a request with an `image`.
    pub residency: Residency,
    /// T5's weights from this llama.cpp GGUF (kept quantized) instead of text_encoder/.
    pub text_encoder_gguf: Option<PathBuf>,
}

/// One clip to make.
#[derive(Debug, Clone)]
pub struct LtxRequest {
    pub prompt: String,
    pub negative: String,
    pub steps: u32,
    pub guidance: f64,
    pub width: u32,
    pub height: u32,
    /// 8n + 1 frames (the VAE's temporal ratio n + 1).
    pub frames: u32,
    pub frame_rate: f64,
    pub seed: u64,
    /// The unpacked 5-D starting noise (1, C, latent frames, H/32, W/32), f32.
    pub init_latents: Option<Tensor>,
    pub max_sequence_length: Option<u32>,
    /// The VAE's decode timestep and noise mix (diffusers' defaults 0.0 and None = the
    /// timestep); only a timestep-conditioned VAE reads them.
    pub decode_timestep: f64,
    pub decode_noise_scale: Option<f64>,
    /// Image-to-video (`LTXImageToVideoPipeline`): the first frame (1, 3, H, W) in [-1, 1] at
    /// the clip's size. Its latents replace the first latent frame of the noise, its tokens
    /// get timestep 0 and only the later frames are stepped.
    pub image: Option<Tensor>,
    /// Decode in spatial tiles (diffusers' `vae.enable_tiling()`: 512-pixel tiles every 448).
    pub vae_tiling: bool,
}

/// An LTX-Video model: its components loaded (resident) or loaded per stage (staged).
pub struct LtxPipeline {
    opts: LtxLoadOptions,
    tokenizer: T5Tokenizer,
    config: LtxTransformerConfig,
    vae_config: LtxVaeConfig,
    text_encoder: Option<T5Text>,
    transformer: Option<LtxTransformer>,
    vae: Option<LtxVae>,
    /// The loaded VAE has its encoder (image-to-video).
    vae_encoder: bool,
    scheduler: FlowMatchConfig,
}

impl LtxPipeline {
    pub fn load(opts: LtxLoadOptions) -> Result<Self> {
        let dir = opts.model_dir.clone();
        let _span = tracing::info_span!("pipeline_load", model = %dir.display()).entered();
        let (config, vae_config) = check_configs(&dir)?;
        let scheduler = FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
        let tokenizer = T5Tokenizer::from_dir(&dir.join("tokenizer"))?;
        let mut pipeline = Self {
            opts,
            tokenizer,
            config,
            vae_config,
            text_encoder: None,
            transformer: None,
            vae: None,
            vae_encoder: false,
            scheduler,
        };
        if !pipeline.staged() {
            pipeline.load_text_encoder()?;
            pipeline.load_transformer()?;
            pipeline.load_vae(false)?;
        }
        Ok(pipeline)
    }

    fn staged(&self) -> bool {
        self.opts.residency != Residency::Resident
    }

    fn load_text_encoder(&mut self) -> Result<&T5Text> {
        let o = &self.opts;
        if self.text_encoder.is_none() {
            let te = o.model_dir.join("text_encoder");
            let encoder = timed_load("text_encoder", || {
                T5Text::load(T5Source {
                    dir: &te,
                    gguf: o.text_encoder_gguf.as_deref(),
                    device: &o.device,
                    dtype: o.dtype,
                    fp16_variant: false,
                    switches: o.switches,
                })
            })?;
            self.text_encoder = Some(encoder);
        }
        self.text_encoder
            .as_ref()
            .ok_or_else(|| Error::job_failed("internal: the text encoder did not load"))
    }

    fn load_transformer(&mut self) -> Result<&LtxTransformer> {
        let o = &self.opts;
        if self.transformer.is_none() {
            let dir = o.model_dir.join("transformer");
            let t = timed_load("transformer", || {
                LtxTransformer::load(&dir, &o.device, o.dtype, o.switches)
            })?;
            self.transformer = Some(t);
        }
        self.transformer
            .as_ref()
            .ok_or_else(|| Error::job_failed("internal: the transformer did not load"))
    }

    /// The VAE, with its encoder when `encoder` (kept loaded if it already has what is needed).
    fn load_vae(&mut self, encoder: bool) -> Result<&LtxVae> {
        let o = &self.opts;
        if self.vae.is_none() || (encoder && !self.vae_encoder) {
            self.vae = None;
            let dir = o.model_dir.join("vae");
            let v = timed_load("vae", || {
                LtxVae::load(&dir, &o.device, o.dtype, encoder, o.switches)
            })?;
            self.vae = Some(v);
            self.vae_encoder = encoder;
        }
        self.vae
            .as_ref()
            .ok_or_else(|| Error::job_failed("internal: the VAE did not load"))
    }

    pub fn model_dir(&self) -> &Path {
        &self.opts.model_dir
    }

    pub fn residency(&self) -> Residency {
        self.opts.residency
    }

    /// Latent channels and the VAE's spatial compression (the shape `--init-latents` must have).
    pub fn latent_shape(&self) -> (usize, u32) {
        (
            self.vae_config.latent_channels,
            self.vae_config.spatial_ratio() as u32,
        )
    }

    /// One prompt's T5 states (1, max_len, d) and mask (1, max_len): T5 runs on the padded ids
    /// without a mask, as diffusers' `_get_t5_prompt_embeds` calls it; the mask goes to the
    /// transformer's cross-attention.
    fn prompt_embeds(
        &self,
        encoder: &T5Text,
        prompt: &str,
        max_len: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (ids, mask) = self.tokenizer.encode_masked(prompt, max_len)?;
        let states = encoder.encode(&ids)?.to_dtype(DType::F32)?;
        let m: Vec<f32> = mask.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(m, (1, max_len), &self.opts.device)?;
        Ok((states, mask))
    }

    /// The clip's frames decoded: (1, 3, frames, height, width), not clamped, f32.
    pub fn generate(
        &mut self,
        req: &LtxRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let grid = latent_grid(&self.vae_config, req.frames, req.width, req.height)?;
        let c = self.vae_config.latent_channels;
        let shape = [1usize, c, grid[0], grid[1], grid[2]];
        let device = self.opts.device.clone();
        let mut noise = SeededNoise::new(req.seed);
        let latents = match &req.init_latents {
            Some(t) if t.dims() == shape => t.to_device(&device)?.to_dtype(DType::F32)?,
            Some(t) => {
                return Err(Error::bad_input(format!(
                    "--init-latents has shape {:?}; {} frames at {}x{} take the noise {shape:?}",
                    t.dims(),
                    req.frames,
                    req.width,
                    req.height
                )));
            }
            None => noise.randn(&shape, &device, DType::F32)?,
        };
        let latents = match &req.image {
            Some(image) => self.with_first_frame(image, &latents, req, sink)?,
            None => latents,
        };
        check_cancel(cancel)?;
        let (p, pt) = (self.config.patch_size, self.config.patch_size_t);
        let latents = pack(&latents, p, pt)?;
        let tokens = [grid[0] / pt, grid[1] / p, grid[2] / p];
        let (text, mask) = self.encode_prompts(req, sink)?;
        check_cancel(cancel)?;
        sink.emit(EngineEvent::Loading {
            stage: "transformer".into(),
        });
        self.load_transformer()?;
        // Each stage ends with a device synchronize, so its logged time is the device's.
        let latents = stage("denoise", || {
            let out = self.denoise(latents, &text, &mask, tokens, req, sink, cancel)?;
            out.device().synchronize()?;
            Ok(out)
        });
        if self.staged() {
            self.transformer = None;
        }
        let latents = latents?;
        check_cancel(cancel)?;
        sink.emit(EngineEvent::Loading {
            stage: "vae".into(),
        });
        self.load_vae(false)?;
        let video = stage("vae_decode", || {
            let out = self.decode(&latents, tokens, req, &mut noise)?;
            out.device().synchronize()?;
            Ok(out)
        });
        if self.staged() {
            self.vae = None;
        }
        video
    }

    /// The prompt's and (guided) the negative prompt's T5 states and masks, negative first.
    fn encode_prompts(
        &mut self,
        req: &LtxRequest,
        sink: &dyn ProgressSink,
    ) -> Result<(Tensor, Tensor)> {
        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let max_len = req
            .max_sequence_length
            .map_or(MAX_SEQUENCE_LENGTH, |n| n as usize);
        self.load_text_encoder()?;
        let embeds = stage("text_encoder", || {
            let Some(encoder) = &self.text_encoder else {
                return Err(Error::job_failed("internal: the text encoder did not load"));
            };
            let (pos, pos_mask) = self.prompt_embeds(encoder, &req.prompt, max_len)?;
            if req.guidance <= 1.0 {
                return Ok((pos, pos_mask));
            }
            let (neg, neg_mask) = self.prompt_embeds(encoder, &req.negative, max_len)?;
            Ok((
                Tensor::cat(&[&neg, &pos], 0)?,
                Tensor::cat(&[&neg_mask, &pos_mask], 0)?,
            ))
        });
        if self.staged() {
            self.text_encoder = None;
        }
        embeds
    }

    /// `prepare_latents` of LTXImageToVideoPipeline: the image's latents (the encoder's mean,
    /// normalised) as latent frame 0, the noise after it. diffusers draws a sample of the
    /// latent distribution with its generator; the mean is what a seed-independent run can
    /// reproduce (the VAE's variance is small).
    fn with_first_frame(
        &mut self,
        image: &Tensor,
        noise: &Tensor,
        req: &LtxRequest,
        sink: &dyn ProgressSink,
    ) -> Result<Tensor> {
        if self.config.patch_size_t != 1 {
            return Err(Error::bad_input(
                "image-to-video needs a transformer with patch_size_t 1 (every LTX-Video release)",
            ));
        }
        let want = [1, 3, req.height as usize, req.width as usize];
        if image.dims() != want {
            return Err(Error::bad_input(format!(
                "the first frame has shape {:?}; a {}x{} clip takes {want:?}",
                image.dims(),
                req.width,
                req.height
            )));
        }
        sink.emit(EngineEvent::Loading {
            stage: "vae".into(),
        });
        self.load_vae(true)?;
        let z = stage("vae_encode", || {
            let Some(vae) = &self.vae else {
                return Err(Error::job_failed("internal: the VAE did not load"));
            };
            let z = vae.encode(&image.unsqueeze(2)?)?;
            vae.normalize(&z.to_device(noise.device())?)
        });
        if self.staged() {
            self.vae = None;
        }
        let z = z?;
        let t = noise.dim(2)?;
        Ok(Tensor::cat(&[&z, &noise.narrow(2, 1, t - 1)?], 2)?)
    }

    /// The latents unpacked, de-normalised and decoded (in tiles when the request asks),
    /// with the decode timestep and its noise mix for a timestep-conditioned VAE.
    fn decode(
        &self,
        latents: &Tensor,
        tokens: [usize; 3],
        req: &LtxRequest,
        noise: &mut SeededNoise,
    ) -> Result<Tensor> {
        let Some(vae) = &self.vae else {
            return Err(Error::job_failed("internal: the VAE did not load"));
        };
        let z = unpack(
            latents,
            tokens,
            self.config.patch_size,
            self.config.patch_size_t,
        )?;
        let z = vae.denormalize(&z)?;
        let (z, t) = if vae.timestep_conditioned() {
            let scale = req.decode_noise_scale.unwrap_or(req.decode_timestep);
            let z = if scale != 0.0 {
                let n = noise.randn(z.dims(), z.device(), DType::F32)?;
                ((z * (1.0 - scale))? + (n * scale)?)?
            } else {
                z
            };
            let t = Tensor::new(&[req.decode_timestep as f32], z.device())?;
            (z, Some(t))
        } else {
            if req.decode_timestep != 0.0 || req.decode_noise_scale.is_some_and(|s| s != 0.0) {
                tracing::warn!(
                    "this LTX-Video VAE (0.9.0) is not timestep-conditioned: --decode-timestep \
                     and --decode-noise-scale are ignored"
                );
            }
            (z, None)
        };
        if req.vae_tiling {
            vae.tiled_decode(&z, t.as_ref(), VaeTiles::default())
        } else {
            vae.decode(&z, t.as_ref())
        }
    }
}
