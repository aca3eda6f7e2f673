//! One loaded engine of any family, as the worker's cache holds it. The family (from the registry
//! or the model's own configs) picks the engine; each engine only computes.

use std::path::Path;

use candle_core::{DType, Device};

use crate::engines::EngineSwitches;
use crate::engines::audio::musicgen::MusicGen;
use crate::engines::audio::parler::ParlerTts;
use crate::engines::flux::{FluxLoadOptions, FluxPipeline};
use crate::engines::ltx::pipeline::{LtxLoadOptions, LtxPipeline};
use crate::engines::sd::pipeline::SdPipeline;
use crate::engines::sd::{GenerateRequest, GeneratedImage, LoadOptions};
use crate::engines::sd3::{Sd3LoadOptions, Sd3Pipeline};
use crate::engines::text::blip::BlipCaptioner;
use crate::engines::text::enhance::PromptEnhancer;
use crate::engines::text::whisper::WhisperEngine;
use crate::engines::upscale::Upscaler;
use crate::engines::wan::pipeline::{WanLoadOptions, WanPipeline};
use crate::engines::zimage::{ZImageLoadOptions, ZImagePipeline};
use crate::engines::{CancelToken, ProgressSink};
use crate::models::Family;
use crate::vocab::Residency;

pub enum Engine {
    Sd(Box<SdPipeline>),
    Flux(Box<FluxPipeline>),
    ZImage(Box<ZImagePipeline>),
    Sd3(Box<Sd3Pipeline>),
    Parler(Box<ParlerTts>),
    MusicGen(Box<MusicGen>),
    Whisper(Box<WhisperEngine>),
    Blip(Box<BlipCaptioner>),
    Enhancer(Box<PromptEnhancer>),
    Upscaler(Box<Upscaler>),
    Wan(Box<WanPipeline>),
    Ltx(Box<LtxPipeline>),
}

/// What loading needs.
pub struct EngineLoad<'a> {
    pub family: Family,
    pub path: &'a Path,
    pub device: &'a Device,
    pub dtype: DType,
    pub residency: Residency,
    /// The run's PALLAIDIUM_* switches (kernels, weight loading, profile).
    pub switches: EngineSwitches,
    /// Flow models: the transformer's weights and the big text encoder's (`--text-encoder-2`:
    /// FLUX's and SD 3.5's T5, Z-Image's Qwen3) from these files instead of the folder's.
    pub transformer: Option<&'a Path>,
    pub text_encoder_2: Option<&'a Path>,
    /// SD 3.5: T5 left out (`--no-t5`).
    pub no_t5: bool,
    /// LoRAs merged into the weights at load.
    pub loras: &'a [crate::engines::nn::lora::LoraSpec],
}

impl Engine {
    pub fn load(what: &EngineLoad<'_>) -> crate::Result<Self> {
        let _span = tracing::info_span!("load", family = %what.family).entered();
        let (path, device, dtype, switches) = (what.path, what.device, what.dtype, what.switches);
        Ok(match what.family {
            Family::Sd1 | Family::Sd2 | Family::Sdxl => {
                Self::Sd(Box::new(SdPipeline::load(&LoadOptions {
                    model_dir: path.to_path_buf(),
                    device: device.clone(),
                    dtype,
                    residency: what.residency,
                    prefer_fp16_variant: dtype != DType::F32,
                    switches,
                    loras: what.loras.to_vec(),
                })?))
            }
            Family::Flux => Self::Flux(Box::new(FluxPipeline::load(FluxLoadOptions {
                model_dir: path.to_path_buf(),
                transformer: what.transformer.map(Path::to_path_buf),
                text_encoder_2: what.text_encoder_2.map(Path::to_path_buf),
                device: device.clone(),
                dtype,
                residency: what.residency,
                switches,
                loras: what.loras.to_vec(),
            })?)),
            Family::ZImage => Self::ZImage(Box::new(ZImagePipeline::load(ZImageLoadOptions {
                model_dir: path.to_path_buf(),
                transformer: what.transformer.map(Path::to_path_buf),
                text_encoder: what.text_encoder_2.map(Path::to_path_buf),
                device: device.clone(),
                dtype,
                residency: what.residency,
                switches,
            })?)),
            Family::Sd3 => Self::Sd3(Box::new(Sd3Pipeline::load(Sd3LoadOptions {
                model_dir: path.to_path_buf(),
                transformer: what.transformer.map(Path::to_path_buf),
                text_encoder_3: what.text_encoder_2.map(Path::to_path_buf),
                no_t5: what.no_t5,
                device: device.clone(),
                dtype,
                residency: what.residency,
                switches,
            })?)),
            Family::ParlerTts => Self::Parler(Box::new(ParlerTts::load_with(
                path, device, dtype, switches,
            )?)),
            Family::Musicgen => Self::MusicGen(Box::new(MusicGen::load_with(
                path, device, dtype, switches,
            )?)),
            Family::Whisper => Self::Whisper(Box::new(WhisperEngine::load_with(
                path, device, dtype, switches,
            )?)),
            Family::Blip => Self::Blip(Box::new(BlipCaptioner::load_with(
                path, device, dtype, switches,
            )?)),
            Family::GgufLlm => Self::Enhancer(Box::new(PromptEnhancer::load(path, device)?)),
            Family::Realesrgan => {
                Self::Upscaler(Box::new(Upscaler::load(path, device, dtype, switches)?))
            }
            Family::Wan => Self::Wan(Box::new(WanPipeline::load(WanLoadOptions {
                model_dir: path.to_path_buf(),
                device: device.clone(),
                dtype,
                residency: what.residency,
                switches,
                text_encoder_gguf: what.text_encoder_2.map(Path::to_path_buf),
            })?)),
            Family::Ltx => Self::Ltx(Box::new(LtxPipeline::load(LtxLoadOptions {
                model_dir: path.to_path_buf(),
                device: device.clone(),
                dtype,
                switches,
                residency: what.residency,
                text_encoder_gguf: what.text_encoder_2.map(Path::to_path_buf),
            })?)),
        })
    }

    /// The image generator inside, for image jobs (None for the other families).
    pub fn images(&mut self) -> Option<&mut dyn ImageEngine> {
        match self {
            Self::Sd(e) => Some(e.as_mut()),
            Self::Flux(e) => Some(e.as_mut()),
            Self::ZImage(e) => Some(e.as_mut()),
            Self::Sd3(e) => Some(e.as_mut()),
            _ => None,
        }
    }

    pub fn family_name(&self) -> &'static str {
        match self {
            Self::Sd(_) => "stable diffusion",
            Self::Flux(_) => "flux",
            Self::ZImage(_) => "z-image",
            Self::Sd3(_) => "sd3",
            Self::Parler(_) => "parler-tts",
            Self::MusicGen(_) => "musicgen",
            Self::Whisper(_) => "whisper",
            Self::Blip(_) => "blip",
            Self::Enhancer(_) => "gguf-llm",
            Self::Upscaler(_) => "real-esrgan",
            Self::Wan(_) => "wan",
            Self::Ltx(_) => "ltx",
        }
    }
}

/// What image jobs ask of an engine, whichever the family.
pub trait ImageEngine {
    fn generate(
        &mut self,
        req: &GenerateRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> crate::Result<Vec<GeneratedImage>>;
}

impl ImageEngine for SdPipeline {
    fn generate(
        &mut self,
        req: &GenerateRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> crate::Result<Vec<GeneratedImage>> {
        SdPipeline::generate(self, req, sink, cancel)
    }
}

impl ImageEngine for FluxPipeline {
    fn generate(
        &mut self,
        req: &GenerateRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> crate::Result<Vec<GeneratedImage>> {
        FluxPipeline::generate(self, req, sink, cancel)
    }
}

impl ImageEngine for ZImagePipeline {
    fn generate(
        &mut self,
        req: &GenerateRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> crate::Result<Vec<GeneratedImage>> {
        ZImagePipeline::generate(self, req, sink, cancel)
    }
}

impl ImageEngine for Sd3Pipeline {
    fn generate(
        &mut self,
        req: &GenerateRequest,
        sink: &dyn ProgressSink,
        cancel: &CancelToken,
    ) -> crate::Result<Vec<GeneratedImage>> {
        Sd3Pipeline::generate(self, req, sink, cancel)
    }
}
