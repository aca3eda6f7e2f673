//! The FLUX.1 pipeline, step for step as diffusers' FluxPipeline (txt2img) and
//! FluxImg2ImgPipeline: prompts -> CLIP pooled + T5 states; noise (1, 16, H/8, W/8) drawn per
//! seed (or given unpacked, as diffusers draws it) and packed into 2x2 patches; the flow-matching
//! Euler loop over the transformer (embedded guidance for dev, two passes for true CFG); unpack,
//! undo the VAE's shift and scale, decode.

use std::path::Path;

use candle_core::{DType, Tensor};

use super::components::{FluxComponents, FluxLoadOptions};
use super::latents::{image_ids, pack, starting_noise, text_ids, unpack};
use super::preview::latent_preview;
use super::prompt::{Encoders, PromptEmbeds};
use super::scheduler::{FlowMatchConfig, FlowMatchEuler};
use super::tokenizer::T5Tokenizer;
use super::transformer::{FluxTransformerConfig, Inputs};
use super::vae_io;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::sd::config::VaeConfig;
use crate::engines::sd::latents::image_to_tensor;
use crate::engines::sd::tokenizer::ClipTokenizer;
use crate::engines::sd::{GenerateRequest, GeneratedImage};
use crate::engines::stage::{check_cancel, stage};
use crate::error::{Error, Result};

/// T5 tokens when a job does not say: diffusers' FluxPipeline default.
const DEFAULT_SEQUENCE: usize = 512;

/// A loaded (or, when staged, loadable) FLUX model.
pub struct FluxPipeline {
    components: FluxComponents,
    clip_tokenizer: ClipTokenizer,
    t5_tokenizer: T5Tokenizer,
    scheduler_config: FlowMatchConfig,
    transformer_config: FluxTransformerConfig,
    vae_config: VaeConfig,
    device: candle_core::Device,
    dtype: DType,
}

impl FluxPipeline {
    /// Reads the configs and tokenizers; loads the networks now when resident.
    pub fn load(opts: FluxLoadOptions) -> Result<Self> {
        let dir = opts.model_dir.clone();
        let _span = tracing::info_span!("pipeline_load", model = %dir.display()).entered();
        let transformer_config = FluxTransformerConfig::load(&dir.join("transformer/config.json"))?;
        let vae_config = VaeConfig::load(&dir.join("vae/config.json"))?;
        if vae_config.latent_channels * 4 != transformer_config.in_channels {
            return Err(Error::bad_input(format!(
                "{}: the VAE has {} latent channels but the transformer takes {} (2x2 patches of \
                 {} channels); the folder mixes models",
                dir.display(),
                vae_config.latent_channels,
                transformer_config.in_channels,
                transformer_config.in_channels / 4
            )));
        }
        let scheduler_config = FlowMatchConfig::load(&dir.join("scheduler/scheduler_config.json"))?;
        let clip_tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
        let t5_tokenizer = T5Tokenizer::from_dir(&dir.join("tokenizer_2"))?;
        let (device, dtype) = (opts.device.clone(), opts.dtype);
        let patches = lora_patches(&opts)?;
        let mut components = FluxComponents::new(opts, patches);
        if components.residency() == crate::vocab::Residency::Resident {
            components.load_all()?;
        }
        Ok(Self {
            components,
            clip_tokenizer,
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

    /// Whether the transformer embeds `--guidance` (FLUX.1-dev) rather than ignoring it.
    pub fn has_guidance_embeds(&self) -> bool {
        self.transformer_config.guidance_embeds
    }

    fn encode_prompts(
        &mut self,
        req: &GenerateRequest,
        true_cfg: bool,
    ) -> Result<(PromptEmbeds, Option<PromptEmbeds>)> {
        let (device, dtype) = (self.device.clone(), self.dtype);
        let max_sequence_length = req.max_sequence_length.unwrap_or(DEFAULT_SEQUENCE);
        let (clip, t5) = self.components.text_encoders()?;
        let encoders = Encoders {
            clip_tokenizer: &self.clip_tokenizer,
            clip,
            t5_tokenizer: &self.t5_tokenizer,
            t5,
            max_sequence_length,
        };
        let prompt = encoders.encode(&req.prompt, &device, dtype)?;
        let negative = if true_cfg {
            Some(encoders.encode(&req.negative, &device, dtype)?)
        } else {
            None
        };
        Ok((prompt, negative))
    }

    fn latent_scaling(&self) -> (f64, f64) {
        (
            self.vae_config.scaling_factor,
            self.vae_config.shift_factor.unwrap_or(0.0),
        )
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
                "FLUX makes images whose sides are multiples of 16; {width}x{height} is not"
            )));
        }
        if req.mask.is_some() {
            return Err(Error::bad_input(
                "FLUX inpainting is not supported yet: drop --mask (img2img takes --init-image)",
            ));
        }
        let n = req.batch as usize;
        let seeds: Vec<u64> = (0..n as u64).map(|i| req.seed.wrapping_add(i)).collect();
        let (lh, lw) = (height / 8, width / 8);
        let channels = self.vae_config.latent_channels;
        let (device, dtype) = (self.device.clone(), self.dtype);
        let true_cfg = req
            .true_cfg
            .filter(|&t| t > 1.0 && !req.negative.trim().is_empty());

        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let (prompt, negative) = stage("text_encoder", || {
            self.encode_prompts(req, true_cfg.is_some())
        })?;
        self.components.release_text_encoders();
        check_cancel(cancel)?;

        let noise = starting_noise(
            req.init_latents.as_ref(),
            &seeds,
            (channels, lh, lw),
            &device,
            dtype,
            "FLUX",
        )?;
        let image_seq_len = (lh / 2) * (lw / 2);
        let mut scheduler =
            FlowMatchEuler::for_flux(&self.scheduler_config, req.steps as usize, image_seq_len)?;
        let latents = match &req.init_image {
            Some(img) => {
                let left = scheduler.truncate_for_strength(req.strength)?;
                if left == 0 {
                    return Err(Error::bad_input(format!(
                        "--strength {} with {} steps leaves no denoising step to run: raise \
                         --strength or --steps",
                        req.strength, req.steps
                    )));
                }
                sink.emit(EngineEvent::Loading {
                    stage: "vae_encode".into(),
                });
                let pixels = image_to_tensor(img, &device, dtype)?;
                let scaling = self.latent_scaling();
                let image_latents = stage("vae_encode", || {
                    vae_io::encode_image(self.components.vae(), &pixels, scaling, dtype, cancel)
                })?
                .repeat((n, 1, 1, 1))?;
                self.components.release_vae();
                scheduler.scale_noise(&image_latents, &noise)?
            }
            None => noise,
        };
        let latents = pack(&latents)?;
        check_cancel(cancel)?;

        sink.emit(EngineEvent::Loading {
            stage: "transformer".into(),
        });
        let denoised = stage("denoise", || {
            self.denoise(DenoiseInputs {
                latents,
                prompt: &prompt,
                negative: negative.as_ref(),
                true_cfg: true_cfg.unwrap_or(1.0),
                guidance: req.guidance,
                scheduler: &scheduler,
                lh,
                lw,
                preview_every: req.preview_every,
                attention: AttentionMode::from_slice(req.memory.attention_slice),
                sink,
                cancel,
            })
        })?;
        self.components.release_transformer();
        let latents = unpack(&denoised, height, width, 8)?;
        let scaling = self.latent_scaling();
        let tiled = req.memory.vae_tiling;
        let images = vae_io::finish(
            self.components.vae(),
            &latents,
            scaling,
            (tiled, &seeds),
            sink,
            cancel,
        )?;
        self.components.release_vae();
        Ok(images)
    }

    fn denoise(&mut self, inp: DenoiseInputs<'_>) -> Result<Tensor> {
        let (device, dtype) = (self.device.clone(), self.dtype);
        let mut latents = inp.latents;
        let n = latents.dim(0)?;
        let img_ids = image_ids(inp.lh, inp.lw, &device)?;
        let txt_ids = text_ids(inp.prompt.t5.dim(1)?, &device)?;
        let prompt = inp.prompt.repeat(n)?;
        let negative = inp.negative.map(|e| e.repeat(n)).transpose()?;
        let guidance = if self.transformer_config.guidance_embeds {
            Some(Tensor::full(inp.guidance as f32, n, &device)?)
        } else {
            None
        };
        let transformer = self.components.transformer(inp.attention)?;
        let timesteps = inp.scheduler.timesteps().to_vec();
        let total = timesteps.len();
        let begin = std::time::Instant::now();
        for (i, &t) in timesteps.iter().enumerate() {
            check_cancel(inp.cancel)?;
            let _span = tracing::debug_span!("step", i, t).entered();
            // As diffusers: the pipeline passes t / 1000 (in f32), the model scales it back.
            let timestep = Tensor::full((t as f32) / 1000.0, n, &device)?.to_dtype(dtype)?;
            // Cancelling stops the forward between blocks (a step is long on the CPU).
            let forward = |embeds: &PromptEmbeds| {
                transformer.forward_watched(
                    &Inputs {
                        hidden_states: &latents,
                        encoder_hidden_states: &embeds.t5,
                        pooled: &embeds.pooled,
                        timestep: &timestep,
                        guidance: guidance.as_ref(),
                        img_ids: &img_ids,
                        txt_ids: &txt_ids,
                    },
                    inp.cancel,
                )
            };
            let mut velocity = forward(&prompt)?;
            if let Some(negative) = &negative {
                let uncond = forward(negative)?;
                velocity = (&uncond + ((&velocity - &uncond)? * inp.true_cfg)?)?;
            }
            latents = inp.scheduler.step(&velocity, i, &latents)?;
            let step = i as u32 + 1;
            crate::engines::stage::emit_step(inp.sink, step, total as u32, begin);
            if inp.preview_every > 0
                && step.is_multiple_of(inp.preview_every)
                && (step as usize) < total
            {
                let unpacked = unpack(&latents, inp.lh * 8, inp.lw * 8, 8)?;
                inp.sink
                    .emit(EngineEvent::Preview(latent_preview(&unpacked)?));
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

struct DenoiseInputs<'a> {
    /// Packed (b, seq, 64).
    latents: Tensor,
    prompt: &'a PromptEmbeds,
    negative: Option<&'a PromptEmbeds>,
    true_cfg: f64,
    guidance: f64,
    scheduler: &'a FlowMatchEuler,
    lh: usize,
    lw: usize,
    preview_every: u32,
    attention: AttentionMode,
    sink: &'a dyn ProgressSink,
    cancel: &'a CancelToken,
}

/// The job's LoRAs matched against the transformer and CLIP (FLUX's LoRAs leave T5 alone).
fn lora_patches(opts: &FluxLoadOptions) -> Result<crate::engines::nn::lora::Patches> {
    use crate::engines::nn::lora::{Target, patches_for};
    if opts.loras.is_empty() {
        return Ok(Default::default());
    }
    if let Some(file) = &opts.transformer {
        return Err(crate::Error::bad_input(format!(
            "--lora: LoRAs merge into the dense transformer/ weights of the model folder, not \
             into --transformer {} (a GGUF's quantized layers); drop one of the two",
            file.display()
        )));
    }
    let fp16 = opts.dtype != candle_core::DType::F32;
    patches_for(
        &opts.loras,
        &opts.model_dir,
        &[Target::Transformer, Target::TextEncoder],
        fp16,
        None,
    )
}
