//! The Stable Diffusion pipeline: prompts -> conditioning -> seeded latents -> denoising loop ->
//! VAE decode -> images; txt2img, img2img and inpainting (9-channel UNets natively, mask blending
//! for ordinary ones), following diffusers' pipelines step for step so results match them.

use std::path::Path;

use candle_core::{DType, Tensor};
use serde::de::DeserializeOwned;

use super::components::Components;
use super::conditioning::{Conditioning, EncoderPair, encode_sd, encode_sdxl};
use super::config::{UNetConfig, VaeConfig};
use super::denoise::{DenoiseInputs, Inpainting, denoise};
use super::latents::{
    all_finite, image_to_tensor, mask_to_latent_size, mask_to_tensor, seeded_noise,
};
use super::request::{GenerateRequest, GeneratedImage, LoadOptions};
use super::schedulers::{self, SchedulerConfig};
use super::tokenizer::ClipTokenizer;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::stage::{check_cancel, stage};
use crate::error::{Error, Result};

/// A loaded (or, when staged, loadable) Stable Diffusion model.
pub struct SdPipeline {
    components: Components,
    tokenizer: ClipTokenizer,
    tokenizer_2: Option<ClipTokenizer>,
    scheduler_config: SchedulerConfig,
    unet_config: UNetConfig,
    vae_config: VaeConfig,
    force_zeros_for_empty_prompt: bool,
    device: candle_core::Device,
    dtype: DType,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_input(format!(
            "cannot read {}: {e}; is this a diffusers model folder?",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(format!("{} is not valid: {e}", path.display())))
}

#[derive(serde::Deserialize, Default)]
struct ModelIndex {
    #[serde(default)]
    force_zeros_for_empty_prompt: Option<bool>,
}

impl SdPipeline {
    /// Read the configurations and tokenizers; load the networks now when resident.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let dir = &opts.model_dir;
        let _span = tracing::info_span!("pipeline_load", model = %dir.display()).entered();
        let index: ModelIndex = read_json(&dir.join("model_index.json"))?;
        let unet_config = UNetConfig::load(&dir.join("unet").join("config.json"))?;
        let vae_config = VaeConfig::load(&dir.join("vae").join("config.json"))?;
        let scheduler_config =
            SchedulerConfig::load(&dir.join("scheduler").join("scheduler_config.json"))?;
        let sdxl = unet_config.addition_embed_type.as_deref() == Some("text_time");
        // The tokenizers' vocabularies are parsed on another thread while the weights load.
        let (tokenizers, components) = std::thread::scope(|scope| {
            let tokenizers = scope.spawn(|| -> Result<_> {
                let first = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
                let second = if sdxl {
                    Some(ClipTokenizer::from_dir(&dir.join("tokenizer_2"))?)
                } else {
                    None
                };
                Ok((first, second))
            });
            let components = Self::load_components(opts, &vae_config, &unet_config, sdxl);
            let tokenizers = tokenizers
                .join()
                .unwrap_or_else(|_| Err(Error::job_failed("the tokenizer thread panicked")));
            (tokenizers, components)
        });
        let (tokenizer, tokenizer_2) = tokenizers?;
        let components = components?;
        Ok(Self {
            components,
            tokenizer,
            tokenizer_2,
            scheduler_config,
            unet_config,
            vae_config,
            force_zeros_for_empty_prompt: index.force_zeros_for_empty_prompt.unwrap_or(sdxl),
            device: opts.device.clone(),
            dtype: opts.dtype,
        })
    }

    /// The components, loaded now when resident.
    fn load_components(
        opts: &LoadOptions,
        vae_config: &VaeConfig,
        unet_config: &UNetConfig,
        sdxl: bool,
    ) -> Result<Components> {
        // As diffusers: SDXL's pipelines upcast an f16 VAE that says `force_upcast` (its VAE
        // overflows in f16); SD 1.x/2.x pipelines decode in the model's dtype. Any half-precision
        // decode that overflows anyway is redone in f32 (`decode`).
        let vae_dtype = if sdxl && opts.dtype == DType::F16 && vae_config.force_upcast {
            DType::F32
        } else {
            opts.dtype
        };
        let patches =
            Self::lora_patches(opts, sdxl, unet_config.layers_per_block.first().copied())?;
        let mut components = Components::new(opts, vae_dtype, sdxl, patches);
        if components.residency() == crate::vocab::Residency::Resident {
            components.load_all()?;
        }
        Ok(components)
    }

    /// The job's LoRAs matched against the UNet and text encoders (refused when any module
    /// matches nothing: a LoRA for another model).
    fn lora_patches(
        opts: &LoadOptions,
        sdxl: bool,
        layers_per_block: Option<usize>,
    ) -> Result<crate::engines::nn::lora::Patches> {
        use crate::engines::nn::lora::{Target, patches_for};
        if opts.loras.is_empty() {
            return Ok(Default::default());
        }
        let targets: &[Target] = if sdxl {
            &[Target::Unet, Target::TextEncoder, Target::TextEncoder2]
        } else {
            &[Target::Unet, Target::TextEncoder]
        };
        patches_for(
            &opts.loras,
            &opts.model_dir,
            targets,
            opts.prefer_fp16_variant,
            layers_per_block,
        )
    }

    pub fn is_sdxl(&self) -> bool {
        self.tokenizer_2.is_some()
    }

    /// Whether the UNet takes the 9-channel inpainting input (latents + mask + masked image).
    pub fn is_inpainting_model(&self) -> bool {
        self.unet_config.in_channels == 9
    }

    fn encode_prompts(&mut self, req: &GenerateRequest, guided: bool) -> Result<Conditioning> {
        let (device, dtype, zeros) = (
            self.device.clone(),
            self.dtype,
            self.force_zeros_for_empty_prompt,
        );
        let negative = guided.then_some(req.negative.as_str());
        let (te, te2) = self.components.text_encoders()?;
        let positions = self.tokenizer.max_length();
        let length = match req.max_sequence_length {
            Some(n) if n > positions => {
                tracing::warn!(
                    "--max-sequence-length {n} is more than the text encoder's {positions} \
                     positions; {positions} used"
                );
                positions
            }
            Some(n) => n,
            None => positions,
        };
        let first = EncoderPair {
            tokenizer: &self.tokenizer,
            encoder: te,
            length,
        };
        match (&self.tokenizer_2, te2) {
            (Some(tok2), Some(te2)) => {
                let second = EncoderPair {
                    tokenizer: tok2,
                    encoder: te2,
                    length,
                };
                encode_sdxl(
                    [&first, &second],
                    &req.prompt,
                    negative,
                    zeros,
                    &device,
                    dtype,
                )
            }
            _ => encode_sd(&first, &req.prompt, negative, &device, dtype),
        }
    }

    /// VAE-encode an image batch to scaled latents (the latent mean, deterministic).
    fn encode_image(&mut self, image: &Tensor, cancel: &CancelToken) -> Result<Tensor> {
        let scaling = self.vae_config.scaling_factor;
        let vae_dtype = self.components.vae_dtype();
        let vae = self.components.vae()?;
        let mean = vae.encode_mean_watched(&image.to_dtype(vae_dtype)?, None, cancel)?;
        Ok((mean.to_dtype(self.dtype)? * scaling)?)
    }

    /// Run one job: `req.batch` images with seeds seed, seed+1, ...
    pub fn generate(
        &mut self,
        req: &GenerateRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> Result<Vec<GeneratedImage>> {
        let _span = tracing::info_span!("generate", steps = req.steps, seed = req.seed).entered();
        if req.scheduler.is_flow() {
            return Err(Error::bad_input(format!(
                "scheduler {} is FLUX's flow-matching one, not for a Stable Diffusion model",
                req.scheduler
            )));
        }
        let n = req.batch as usize;
        let seeds: Vec<u64> = (0..n as u64).map(|i| req.seed.wrapping_add(i)).collect();
        let (lh, lw) = (req.height as usize / 8, req.width as usize / 8);
        let (device, dtype) = (self.device.clone(), self.dtype);
        let guided = req.guidance > 1.0;

        sink.emit(EngineEvent::Loading {
            stage: "text_encoder".into(),
        });
        let cond = stage("text_encoder", || self.encode_prompts(req, guided))?;
        self.components.release_text_encoders();
        check_cancel(cancel)?;

        let mut scheduler = schedulers::build_kind(
            req.scheduler.into(),
            &self.scheduler_config,
            req.steps as usize,
        )?;
        let has_image = req.init_image.is_some();
        let start = if has_image {
            schedulers::img2img_start(req.steps as usize, req.strength)
        } else {
            0
        };
        if start >= scheduler.timesteps().len() {
            return Err(Error::bad_input(format!(
                "--strength {} with {} steps leaves no denoising step to run: raise --strength or --steps",
                req.strength, req.steps
            )));
        }
        if has_image {
            scheduler.set_begin_index(start);
        }

        let latent_channels = 4;
        let noise = match &req.init_latents {
            Some(t) => {
                let t = t.to_device(&device)?.to_dtype(dtype)?;
                if t.dim(0)? == n {
                    t
                } else {
                    t.repeat((n, 1, 1, 1))?
                }
            }
            None => seeded_noise(&seeds, (latent_channels, lh, lw), &device, dtype)?,
        };

        // Image latents for img2img and inpainting.
        let image_tensor = req
            .init_image
            .as_ref()
            .map(|img| image_to_tensor(img, &device, dtype))
            .transpose()?;
        let mask_full = req
            .mask
            .as_ref()
            .map(|m| mask_to_tensor(m, &device, dtype))
            .transpose()?;
        let inpaint9 = self.is_inpainting_model();
        if inpaint9 && (mask_full.is_none() || image_tensor.is_none()) {
            return Err(Error::bad_input(
                "this is an inpainting model: give --init-image and --mask (white = repaint)",
            ));
        }
        if image_tensor.is_some() {
            sink.emit(EngineEvent::Loading {
                stage: "vae_encode".into(),
            });
        }
        if mask_full.is_some() && image_tensor.is_none() {
            return Err(Error::bad_input(
                "--mask needs --init-image: the image to repaint",
            ));
        }
        // Inpainting at full strength starts from pure noise, as diffusers' is_strength_max.
        let from_noise = mask_full.is_some() && req.strength >= 1.0;
        let image_latents = match &image_tensor {
            Some(img) if !(inpaint9 && from_noise) => {
                Some(stage("vae_encode", || self.encode_image(img, cancel))?.repeat((n, 1, 1, 1))?)
            }
            _ => None,
        };
        let inpainting = match (&mask_full, &image_tensor) {
            (Some(mask), Some(img)) => {
                let small = mask_to_latent_size(mask, lh, lw)?.repeat((n, 1, 1, 1))?;
                let masked_image_latents = if inpaint9 {
                    let keep = (mask.ones_like()? - mask)?;
                    let masked = img.broadcast_mul(&keep)?;
                    Some(
                        stage("vae_encode", || self.encode_image(&masked, cancel))?
                            .repeat((n, 1, 1, 1))?,
                    )
                } else {
                    None
                };
                Some(Inpainting {
                    mask: small,
                    masked_image_latents,
                    image_latents: image_latents.clone(),
                })
            }
            _ => None,
        };
        let latents = match &image_latents {
            Some(il) if !from_noise => scheduler.add_noise(il, &noise, start)?,
            _ => (&noise * scheduler.init_noise_sigma())?,
        };
        self.components.release_vae();
        check_cancel(cancel)?;

        sink.emit(EngineEvent::Loading {
            stage: "unet".into(),
        });
        let time_ids = if self.is_sdxl() {
            Some(super::conditioning::sdxl_time_ids(
                req.height, req.width, &device, dtype,
            )?)
        } else {
            None
        };
        let sdxl = self.is_sdxl();
        let dirs: Vec<&std::path::Path> = req.controlnets.iter().map(|c| c.dir.as_path()).collect();
        let nets = self.components.controlnets(&dirs, dtype)?;
        let control = super::controlnet::steer::steering(
            &req.controlnets,
            nets,
            &self.unet_config,
            (&device, dtype),
            n,
            guided,
        )?;
        let unet = self.components.unet()?;
        let latents = denoise(DenoiseInputs {
            unet,
            control: &control,
            scheduler: scheduler.as_mut(),
            cond: &cond,
            time_ids: time_ids.as_ref(),
            latents,
            noise: &noise,
            start,
            guidance: req.guidance,
            inpainting: inpainting.as_ref(),
            memory: req.memory,
            preview_every: req.preview_every,
            sdxl,
            seed: req.seed,
            sink,
            cancel,
        })?;
        self.components.release_unet();
        if !all_finite(&latents)? {
            return Err(Error::job_failed(
                "the denoised latents hold NaN or infinity (the UNet overflowed): try --dtype f32 or a lower --guidance",
            ));
        }

        sink.emit(EngineEvent::Loading {
            stage: "vae_decode".into(),
        });
        let images = stage("vae_decode", || {
            self.decode(&latents, req.memory.vae_tiling, cancel)
        })?;
        self.components.release_vae();
        Ok(images
            .into_iter()
            .zip(seeds)
            .map(|(image, seed)| GeneratedImage { image, seed })
            .collect())
    }
}

mod decode;

#[cfg(test)]
mod tests;
